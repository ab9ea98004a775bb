"""The daemon's side of the shims: the zygote that forks them, spawning, and connecting.

The zygote (runtime/zygote.py) is started once per exec-root and outlives the daemon; a new
daemon finds it by its socket. Spawning is two-phase (see runtime/shim.py): the shim creates
the container and listens, the daemon connects the clients that attached before start, then
tells the shim to start it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from dockyard.errors import DockyardError
from dockyard.runtime import unixsock
from dockyard.runtime.shim import CONTROL, EXIT_FILE, HEADER, SOCKET

from .runtimes import DEFAULT_RUNTIME, Runtimes

ZYGOTE_SOCKET = "zygote.sock"
START_TIMEOUT = 30.0
LEFTOVER_TIMEOUT = 5.0


class ShimError(DockyardError):
    """The shim could not create or start the container; `exit_code` is docker's 125-127."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = 400 if exit_code in (126, 127) else 500


def _request(path: str, message: dict[str, Any], timeout: float = START_TIMEOUT) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        unixsock.connect(sock, path)
        sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    except OSError:
        sock.close()
        raise
    return sock


def _read_line(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data:
        raise ShimError("the shim went away before it answered")
    return json.loads(data)


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """One stream frame, or None at the end of the connection."""
    head = _recv_exactly(sock, HEADER.size)
    if head is None:
        return None
    stream, size = HEADER.unpack(head)
    payload = _recv_exactly(sock, size) if size else b""
    return None if payload is None else (stream, payload)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    parts, have = [], 0
    while have < size:
        chunk = sock.recv(size - have)
        if not chunk:
            return None
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


class Spawned:
    """A shim between create and start: `pid` is the container's init."""

    def __init__(self, sock: socket.socket, reply: dict[str, Any]) -> None:
        self.sock = sock
        self.pid: int = reply["pid"]
        self.shim_pid: int = reply.get("shim", 0)

    def start(self) -> None:
        try:
            self.sock.sendall(b"start\n")
            reply = _read_line(self.sock)
        finally:
            self.sock.close()
        if "error" in reply:
            raise ShimError(reply["error"], int(reply.get("exit_code") or 125))

    def abandon(self) -> None:
        """Give up before start: the shim removes the container and exits."""
        self.sock.close()


class ShimManager:
    def __init__(self, exec_root: str) -> None:
        self.exec_root = exec_root
        self.zygote_socket = os.path.join(exec_root, ZYGOTE_SOCKET)
        self.runtime_root = os.path.join(exec_root, "runtime")
        self.runtimes = Runtimes(exec_root)
        self._zygote: subprocess.Popen[bytes] | None = None
        self._zygote_lock = threading.Lock()  # two starts at once must not make two zygotes

    # -- the zygote ----------------------------------------------------------------------------
    def _ping(self) -> bool:
        from dockyard.runtime.zygote import PROTOCOL

        try:
            with _request(self.zygote_socket, {"op": "ping"}, timeout=2) as sock:
                return _read_line(sock).get("version") == PROTOCOL
        except (OSError, ValueError, ShimError):
            return False

    def ensure_zygote(self) -> None:
        with self._zygote_lock:
            self._ensure_zygote()

    def _ensure_zygote(self) -> None:
        if self._ping():
            return
        # An older zygote (another protocol) retires once its shims are gone.
        with (
            contextlib.suppress(OSError),
            _request(self.zygote_socket, {"op": "shutdown"}, timeout=2) as sock,
        ):
            sock.recv(16)
        os.makedirs(self.exec_root, exist_ok=True)
        log = open(os.path.join(self.exec_root, "zygote.log"), "ab")  # noqa: SIM115
        with log:
            self._zygote = subprocess.Popen(
                [sys.executable, "-m", "dockyard.runtime.zygote", self.zygote_socket],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # the terminal's signals must not reach it
                close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ping():
            if self._zygote.poll() is not None or time.monotonic() > deadline:
                raise DockyardError(
                    f"the shim zygote did not start; see {self.exec_root}/zygote.log"
                )
            time.sleep(0.01)

    def shutdown(self) -> None:
        """Ask the zygote to exit once its shims are gone (graceful daemon shutdown)."""
        with (
            contextlib.suppress(OSError, ShimError, ValueError),
            _request(self.zygote_socket, {"op": "shutdown"}, timeout=2) as sock,
        ):
            _read_line(sock)
        if self._zygote is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._zygote.wait(timeout=5)

    # -- shims ---------------------------------------------------------------------------------
    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.exec_root, "containers", container_id)

    def spawn(self, request: dict[str, Any], runtime: str = DEFAULT_RUNTIME) -> Spawned:
        """Fork a shim that creates the container (phase one of two) with `runtime`."""
        external = self.runtimes.request(runtime)
        if external is not None:
            request = {**request, "runtime": external}
        # The container's last shim reports its exit before it removes the runtime's state
        # and cgroups: a restart right after the exit waits for that (or fails "exists").
        state_root = self.runtimes.state_root(runtime, self.runtime_root)
        leftover = os.path.join(state_root, request["id"])
        deadline = time.monotonic() + LEFTOVER_TIMEOUT
        while os.path.exists(leftover) and time.monotonic() < deadline:
            time.sleep(0.005)
        directory = self.container_dir(request["id"])
        os.makedirs(directory, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, EXIT_FILE))
        message = {"op": "spawn", "dir": directory, "state_root": self.runtime_root, **request}
        try:
            sock = _request(self.zygote_socket, message)
        except OSError:  # no zygote yet (or it went away): start one, once
            self.ensure_zygote()
            sock = _request(self.zygote_socket, message)
        try:
            reply = _read_line(sock)
        except BaseException:
            sock.close()
            raise
        if "error" in reply:
            sock.close()
            raise ShimError(reply["error"], int(reply.get("exit_code") or 125))
        return Spawned(sock, reply)

    def connect(self, container_id: str, header: dict[str, Any]) -> socket.socket:
        """A connection to a running container's shim, its request sent."""
        path = os.path.join(self.container_dir(container_id), SOCKET)
        sock = _request(path, header, timeout=None)  # type: ignore[arg-type]
        sock.settimeout(None)
        return sock

    def exit_result(self, container_id: str) -> dict[str, Any] | None:
        """What the shim recorded when the container exited, if it did."""
        try:
            with open(os.path.join(self.container_dir(container_id), EXIT_FILE)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def alive(self, container_id: str) -> bool:
        return os.path.exists(os.path.join(self.container_dir(container_id), SOCKET))

    def forget(self, container_id: str) -> None:
        """Remove what the shim left in the exec-root (after the exit was recorded)."""
        import shutil

        shutil.rmtree(self.container_dir(container_id), ignore_errors=True)


__all__ = ["CONTROL", "ShimError", "ShimManager", "Spawned", "read_frame"]
