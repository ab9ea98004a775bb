"""Unix socket paths longer than the kernel's 108 bytes (deep exec-roots, 64-hex container IDs):
bind and connect through /proc/self/fd/N/NAME, a short name for the same directory, instead
of changing the working directory (the daemon is multi-threaded)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

LIMIT = 100  # sun_path holds 108 bytes with the terminating NUL; keep a margin


def _short(path: str, act: Callable[[str], None]) -> None:
    if len(os.fsencode(path)) < LIMIT:
        act(path)
        return
    fd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        act(f"/proc/self/fd/{fd}/{os.path.basename(path)}")
    finally:
        os.close(fd)


def bind(sock: socket.socket, path: str) -> None:
    _short(path, sock.bind)


def connect(sock: socket.socket, path: str) -> None:
    _short(path, sock.connect)
