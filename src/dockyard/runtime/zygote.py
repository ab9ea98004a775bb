"""The shim zygote: a warm process that forks one shim per container.

The daemon starts it once per exec-root and it outlives the daemon (a daemon killed with
SIGKILL finds it, and its shims, still there). It has imported the runtime already and frozen
its objects for the collector (gc.freeze), so a shim starts without a new interpreter and
shares most of its memory with the zygote and its siblings. As the shims' parent it also reaps
them. One JSON line per connection on <exec-root>/zygote.sock:
  {"op": "ping"}                 → {"version": …, "pid": …}
  {"op": "spawn", …shim request} → the shim itself answers, on this connection (see shim.py)
  {"op": "shutdown"}             → {} and the zygote exits once no shim is left
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import sys

from dockyard import __version__

from . import shim, unixsock

# A protocol change must change this, so that a daemon never talks to an older zygote.
PROTOCOL = f"{__version__}/4"  # 4: spawn {"runtime"}, pause/resume ops


class Zygote:
    def __init__(self, path: str) -> None:
        self.path = path
        self.children: set[int] = set()
        self.retiring = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        unixsock.bind(self.listener, path)
        os.chmod(path, 0o600)
        self.listener.listen(64)

    def _reap(self, *_: object) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.children.discard(pid)
        if self.retiring and not self.children:
            self._exit()

    def _exit(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os._exit(0)

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, self._reap)
        signal.signal(signal.SIGTERM, lambda *_: self._retire())
        gc.collect()
        gc.freeze()  # what exists now is shared with every shim: keep the collector off it
        while True:
            conn, _ = self.listener.accept()
            try:
                self._handle(conn)
            except (OSError, ValueError) as exc:
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            finally:
                conn.close()

    def _retire(self) -> None:
        self.retiring = True
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if not self.children:
            self._exit()

    def _handle(self, conn: socket.socket) -> None:
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                return
            line += chunk
        request = json.loads(line)
        op = request.get("op")
        if op == "ping":
            conn.sendall(json.dumps({"version": PROTOCOL, "pid": os.getpid()}).encode() + b"\n")
        elif op == "shutdown":
            conn.sendall(b"{}\n")
            self._retire()
        elif op == "spawn":
            self._spawn(request, conn)
        else:
            raise ValueError(f"unknown op {op!r}")

    def _spawn(self, request: dict, conn: socket.socket) -> None:
        # Hold SIGCHLD off while forking, so the child's pid is in the set before it can die.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                    self.listener.close()
                    shim.run(request, conn)
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 0
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            self.children.add(pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m dockyard.runtime.zygote SOCKET", file=sys.stderr)
        return 2
    os.umask(0o022)
    Zygote(args[0]).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
