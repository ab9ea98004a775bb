"""Watching running containers for their exit: one thread, one `wait` connection per shim."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from .shims import CONTROL, ShimManager, read_frame

log = logging.getLogger("dockyard.exits")


class ExitWatcher:
    """Calls `on_exit(container_id, result)` when a watched container's shim reports its exit,
    or `result=None` when the shim vanished without saying (the caller then reads the exit
    file, or declares the container dead)."""

    def __init__(
        self, shims: ShimManager, on_exit: Callable[[str, dict[str, Any] | None], None]
    ) -> None:
        self.shims = shims
        self.on_exit = on_exit
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, socket.socket]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)
        self._thread.start()

    def watch(self, container_id: str) -> None:
        """Start watching a running container (its shim must be listening)."""
        sock = self.shims.connect(container_id, {"op": "wait"})
        with self._lock:
            self._pending.append((container_id, sock))
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self.selector.select():
                if key.data is None:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    with self._lock:
                        pending, self._pending = self._pending, []
                    for container_id, sock in pending:
                        self.selector.register(sock, selectors.EVENT_READ, container_id)
                    continue
                sock = key.fileobj
                container_id = key.data
                self.selector.unregister(sock)
                result = None
                with contextlib.suppress(OSError, ValueError):
                    frame = read_frame(sock)  # type: ignore[arg-type]
                    if frame is not None and frame[0] == CONTROL:
                        result = json.loads(frame[1])
                sock.close()  # type: ignore[union-attr]
                try:
                    self.on_exit(container_id, result)
                except Exception:
                    log.exception("handling the exit of %s failed", container_id)
