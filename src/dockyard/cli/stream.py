"""Copying a container's stdio between the terminal and a hijacked connection (attach, exec).

One thread, one poll loop: the connection's output (docker's 8-byte frames, or raw bytes for a
TTY) goes to our stdout/stderr; our stdin goes to the connection, and its end half-closes the
connection (the container's stdin closes; its output keeps coming until it exits)."""

from __future__ import annotations

import _socket
import os
import select

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHUNK = 65536


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def pump(sock: Any, leftover: bytes, *, tty: bool, stdin: bool, out: int = 1, err: int = 2) -> None:
    """Until the connection ends. `stdin`: forward fd 0."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    stdin_open = stdin
    if stdin_open:
        poller.register(0, select.POLLIN)
    buffer = b""

    def output(data: bytes) -> None:
        nonlocal buffer
        if tty:
            _write_all(out, data)
            return
        buffer += data
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            stream, payload = buffer[0], buffer[8 : 8 + size]
            buffer = buffer[8 + size :]
            _write_all(err if stream == 2 else out, payload)

    if leftover:
        output(leftover)
    while True:
        for fd, _events in poller.poll():
            if fd == sock.fileno():
                try:
                    data = sock.recv(CHUNK)
                except OSError:
                    data = b""
                if not data:
                    return
                output(data)
            elif fd == 0:
                try:
                    data = os.read(0, CHUNK)
                except OSError:
                    data = b""
                if data:
                    try:
                        sock.sendall(data)
                    except OSError:
                        return
                    continue
                poller.unregister(0)
                stdin_open = False
                try:
                    sock.shutdown(_socket.SHUT_WR)
                except OSError:
                    pass


class RawTerminal:
    """Our terminal in raw mode for the length of a `with` (for `-it`), restored after."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.saved: Any = None

    def __enter__(self) -> RawTerminal:
        import termios
        import tty

        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *_: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def terminal_size(fd: int = 1) -> tuple[int, int]:
    """(height, width), or (0, 0) when fd is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return size.lines, size.columns
