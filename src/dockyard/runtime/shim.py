"""The per-container shim: what supervises a running container, so that the daemon need not.

A shim is forked from the shim zygote (zygote.py), already warm, one per container. It creates
and starts the container with its runtime (shim_runtime.py: our in-process runtime/linux.py by
default, or an installed runc/crun driven as containerd's shim does), then, until the
container's init exits: holds its stdio (pipes, or the pty master with `tty`), writes the output
to the json-file log, serves clients on `<dir>/shim.sock`, reaps the init and exec processes,
and finally records the exit in `<dir>/exit.json` (written before anyone is told, so a daemon
that was down reads it on restart), removes the container's cgroups and exits.

Protocol on shim.sock: a client sends one JSON line, then both sides speak docker's stream
frames (8-byte header: stream id, 3 zero bytes, big-endian length; then the payload):
  {"op": "attach", "stdin": b, "stdout": b, "stderr": b}   output frames 1/2, stdin frames 0
  {"op": "exec", "process": {...}, "tty": b, "stdin": b}   frame 3 {"pid"} or {"error",
      "exit_code"}; then output frames; last, frame 3 {"exit_code"}
  {"op": "wait"}                                            frame 3 {"exit_code", "oom_killed",
      "finished_at"} when the container exits
  {"op": "resize", "height": h, "width": w, "exec": pid?}   frame 3 {}
  {"op": "pause"} / {"op": "resume"}                        frame 3 {} or {"error"}
From the client, a stdin frame of length 0 closes stdin; frame 4 {"height", "width"} resizes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import time
from collections.abc import Callable
from typing import Any

from . import linux, syscalls, unixsock
from .logfile import JsonFileLog, rfc3339_nano
from .shim_runtime import driver_for

HEADER = struct.Struct(">BxxxL")
STDIN, STDOUT, STDERR, CONTROL, RESIZE = 0, 1, 2, 3, 4
READ = 64 * 1024
STDIN_HIGH_WATER = 1 << 20
EXIT_FILE = "exit.json"
SOCKET = "shim.sock"


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


def control(message: dict[str, Any]) -> bytes:
    return frame(CONTROL, json.dumps(message, separators=(",", ":")).encode())


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class Peer:
    """A connected client: its frame parser and what it asked for."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = b""
        self.header: dict[str, Any] | None = None
        self.streams: set[int] = set()
        self.sink: Stdin | None = None  # where its stdin frames go
        self.waits = False
        self.exec: ExecSession | None = None

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def frames(self) -> list[tuple[int, bytes]]:
        out = []
        while len(self.inbox) >= HEADER.size:
            stream, size = HEADER.unpack_from(self.inbox)
            if len(self.inbox) < HEADER.size + size:
                break
            out.append((stream, self.inbox[HEADER.size : HEADER.size + size]))
            self.inbox = self.inbox[HEADER.size + size :]
        return out


class Stdin:
    """A process's stdin (a pipe or the pty master), written without ever blocking the shim:
    a full pipe while the process blocks on its full stdout pipe would deadlock both."""

    def __init__(self, shim: Shim, fd: int, owned: bool) -> None:
        self.shim, self.fd, self.owned = shim, fd, owned
        self.buffer = bytearray()
        self.closing = False
        os.set_blocking(fd, False)

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            return
        self.buffer += data
        self.flush()

    def flush(self) -> None:
        while self.buffer and self.fd >= 0:
            try:
                n = os.write(self.fd, self.buffer)
            except BlockingIOError:
                break
            except OSError:  # the reader went away: drop what is left
                self.buffer.clear()
                break
            del self.buffer[:n]
        if not self.full:
            self.shim.stdin_has_room(self)
        if self.fd >= 0:
            if self.buffer:
                self.shim.watch(self.fd, select.POLLOUT, lambda _ev: self.flush())
            elif self.closing:
                self.close()
            else:
                self.shim.unwatch_out(self.fd)

    def close_when_drained(self) -> None:
        self.closing = True
        self.flush()

    def close(self) -> None:
        if self.fd >= 0:
            self.shim.unwatch_out(self.fd)
            if self.owned:
                os.close(self.fd)
            self.fd = -1

    @property
    def full(self) -> bool:
        return len(self.buffer) > STDIN_HIGH_WATER


class ExecSession:
    """One `docker exec` process, streamed to the connection that started it."""

    def __init__(self, peer: Peer, pid: int, tty_fd: int | None) -> None:
        self.peer, self.pid, self.tty_fd = peer, pid, tty_fd
        self.outputs: set[int] = set()
        self.status: int | None = None
        self.stdin: Stdin | None = None


class Shim:
    def __init__(self, request: dict[str, Any], reply: socket.socket) -> None:
        self.req = request
        self.id: str = request["id"]
        self.dir: str = request["dir"]
        self.reply = reply
        self.tty = bool(request.get("tty"))
        self.stdin_once = bool(request.get("stdin_once"))
        log = request.get("log") or {}
        self.log = JsonFileLog(log["path"], log.get("max_size", -1), log.get("max_file", 1))
        self.poll = select.poll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.masks: dict[int, int] = {}
        self.peers: dict[int, Peer] = {}
        self.outputs: dict[int, int] = {}  # container output fd → stream id
        self.stdin: Stdin | None = None
        self.console: int | None = None
        self.init_pid = 0
        self.status: int | None = None
        self.exited_at = 0.0
        self.exited_ns = 0  # wall clock, for FinishedAt: when it was reaped, not drained
        self.execs: dict[int, ExecSession] = {}
        self.paused: list[Peer] = []  # clients not read while their process's stdin is full
        self.runtime = driver_for(request)

    # -- the poll loop -------------------------------------------------------------------------
    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None:
        if events & select.POLLOUT:
            self.handlers[-fd - 1] = handler
        else:
            self.handlers[fd] = handler
        self.masks[fd] = self.masks.get(fd, 0) | events
        self.poll.register(fd, self.masks[fd])

    def unwatch_out(self, fd: int) -> None:
        if self.masks.get(fd, 0) & select.POLLOUT:
            self.masks[fd] &= ~select.POLLOUT
            self.handlers.pop(-fd - 1, None)
            if self.masks[fd]:
                self.poll.modify(fd, self.masks[fd])
            else:
                self.masks.pop(fd)
                self.poll.unregister(fd)

    def unwatch(self, fd: int) -> None:
        self.handlers.pop(fd, None)
        self.handlers.pop(-fd - 1, None)
        if self.masks.pop(fd, None) is not None:
            self.poll.unregister(fd)

    def loop(self) -> None:
        while True:
            if self.status is not None and self._finished():
                return
            timeout = 100 if self.status is not None else None
            for fd, events in self.poll.poll(timeout):
                if events & (select.POLLOUT) and (-fd - 1) in self.handlers:
                    self.handlers[-fd - 1](events)
                if events & ~select.POLLOUT and fd in self.handlers:
                    self.handlers[fd](events)

    def _finished(self) -> bool:
        """The container exited: end once its output is drained (or after a grace period
        for output held by a process that escaped the pid namespace's teardown)."""
        drained = not self.outputs
        return drained or time.monotonic() - self.exited_at > 2.0

    # -- start-up ------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the container, let clients attach, then start it when the spawner says so.

        Two steps, as docker's clients need: they attach between create and start (`docker run`
        attaches first), and must not miss the first bytes of output. The spawner gets
        {"pid"} once the container exists and shim.sock listens; it connects its attach
        clients, then sends "start" on the spawn connection and gets {"started": true}."""
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        self.children_signal()
        stdio, ours = self._stdio()
        try:
            try:
                self.init_pid, console = self.runtime.create(stdio, self.tty)
            finally:
                for fd in stdio or ():
                    if fd not in (0, 1, 2):
                        os.close(fd)
            if self.tty:
                self.console = console
                assert self.console is not None
                ours = {"out": self.console, "in": self.console}
            self._adopt_stdio(ours)
            self.listener = self._listen()
            self._send({"pid": self.init_pid, "shim": os.getpid()})
            if self._receive_line() != b"start":
                raise linux.ContainerError("the daemon gave up before start")
            self._accept_waiting()
            self.runtime.start()
        except Exception as exc:  # whatever went wrong, the container must not be left behind
            code = getattr(exc, "exit_code", None) or 125
            self._send({"error": str(exc), "exit_code": code})
            self.reply.close()
            self.runtime.abort()
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.dir, SOCKET))
            raise SystemExit(0) from None
        self._send({"started": True})
        self.reply.close()

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        path = os.path.join(self.dir, SOCKET)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        unixsock.bind(listener, path)
        listener.listen(64)
        self.watch(listener.fileno(), select.POLLIN, lambda _ev: self._accept())
        return listener

    def _accept_waiting(self) -> None:
        """Take the clients that connected before start, with their requests, so that the
        output of the first instant reaches them."""
        self.listener.setblocking(False)
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                break
            self._adopt_peer(sock)
            peer = self.peers[sock.fileno()]
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                while peer.header is None and self.peers.get(sock.fileno()) is peer:
                    self._receive(peer)
            sock.settimeout(None)
        self.listener.setblocking(True)

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            self.reply.sendall(json.dumps(message).encode() + b"\n")

    def _receive_line(self) -> bytes:
        line = b""
        with contextlib.suppress(OSError):
            while not line.endswith(b"\n"):
                chunk = self.reply.recv(4096)
                if not chunk:
                    break
                line += chunk
        return line.strip()

    def _stdio(self) -> tuple[tuple[int, int, int] | None, dict[str, int]]:
        if self.tty:
            return None, {}
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        ours = {"out": out_r, "err": err_r}
        if self.req.get("stdin"):
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
            ours["in"] = in_w
            os.close(null)
            return (in_r, out_w, err_w), ours
        return (null, out_w, err_w), ours

    def _adopt_stdio(self, ours: dict[str, int]) -> None:
        if "in" in ours:
            self.stdin = Stdin(self, ours["in"], owned=not self.tty)
        if self.tty:
            self._output(ours["out"], STDOUT)
        else:
            self._output(ours["out"], STDOUT)
            self._output(ours["err"], STDERR)

    def _output(self, fd: int, stream: int) -> None:
        self.outputs[fd] = stream
        self.watch(fd, select.POLLIN, lambda _ev: self._read_output(fd))

    def children_signal(self) -> None:
        """SIGCHLD wakes the poll loop through a pipe (the handler itself does nothing)."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.watch(r, select.POLLIN, lambda _ev: self._reap(r))

    # -- output --------------------------------------------------------------------------------
    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ)
        except OSError as exc:  # EIO: the pty's other side is gone
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        stream = self.outputs[fd]
        if not data:
            self.unwatch(fd)
            del self.outputs[fd]
            if fd != self.console:
                os.close(fd)
            return
        self.log.write("stdout" if stream == STDOUT else "stderr", data)
        payload = frame(stream, data)
        for peer in list(self.peers.values()):
            if stream in peer.streams and peer.exec is None and not peer.send(payload):
                self._drop(peer)

    # -- clients -------------------------------------------------------------------------------
    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        self._adopt_peer(sock)

    def _adopt_peer(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        peer = Peer(sock)
        self.peers[sock.fileno()] = peer
        self.watch(sock.fileno(), select.POLLIN, lambda _ev: self._receive(peer))

    def _receive(self, peer: Peer) -> None:
        try:
            data = peer.sock.recv(READ)
        except OSError:
            data = b""
        if not data:
            self._peer_eof(peer)
            return
        peer.inbox += data
        if peer.header is None:
            line, sep, rest = peer.inbox.partition(b"\n")
            if not sep:
                return
            peer.inbox = rest
            try:
                peer.header = json.loads(line)
            except ValueError:
                self._drop(peer)
                return
            self._open(peer)
        for stream, payload in peer.frames():
            self._client_frame(peer, stream, payload)
        sink = peer.sink
        if sink is not None and sink.full:  # stop reading until the process catches up
            self.unwatch(peer.sock.fileno())
            self.paused.append(peer)

    def stdin_has_room(self, sink: Stdin) -> None:
        for peer in [p for p in self.paused if p.sink is sink]:
            self.paused.remove(peer)
            if peer.sock.fileno() >= 0:
                self.watch(peer.sock.fileno(), select.POLLIN, lambda _ev, p=peer: self._receive(p))

    def _open(self, peer: Peer) -> None:
        header = peer.header or {}
        op = header.get("op")
        if op == "attach":
            peer.streams = {s for s, k in ((STDOUT, "stdout"), (STDERR, "stderr")) if header.get(k)}
            if header.get("stdin") and self.stdin is not None:
                peer.sink = self.stdin
        elif op == "wait":
            # Told in finish(), never before exit.json is written: whoever hears of the exit
            # may remove this shim's directory at once.
            peer.waits = True
        elif op == "resize":
            session = self.execs.get(header["exec"]) if header.get("exec") else None
            if session is not None and session.tty_fd is not None:
                with contextlib.suppress(OSError, KeyError, ValueError):
                    set_winsize(session.tty_fd, int(header["height"]), int(header["width"]))
            elif not header.get("exec"):
                self._resize(header)
            peer.send(control({}))
        elif op == "exec":
            self._exec(peer, header)
        elif op in ("pause", "resume"):
            try:
                self.runtime.pause() if op == "pause" else self.runtime.resume()
            except Exception as exc:
                peer.send(control({"error": str(exc)}))
            else:
                peer.send(control({}))
        else:
            peer.send(control({"error": f"unknown op {op!r}"}))
            self._drop(peer)

    def _client_frame(self, peer: Peer, stream: int, payload: bytes) -> None:
        if stream == STDIN and peer.sink is not None:
            if payload:
                peer.sink.write(payload)
            elif peer.exec is not None or self.stdin_once:
                peer.sink.close_when_drained()
        elif stream == RESIZE:
            with contextlib.suppress(ValueError, OSError):
                size = json.loads(payload)
                if peer.exec is not None and peer.exec.tty_fd is not None:
                    set_winsize(peer.exec.tty_fd, int(size["height"]), int(size["width"]))
                else:
                    self._resize(size)

    def _resize(self, size: dict[str, Any]) -> None:
        if self.console is not None:
            with contextlib.suppress(OSError, KeyError, ValueError):
                set_winsize(self.console, int(size["height"]), int(size["width"]))

    def _peer_eof(self, peer: Peer) -> None:
        """The client closed (or half-closed) its side: its stdin ends."""
        if peer.sink is not None and (peer.exec is not None or self.stdin_once):
            peer.sink.close_when_drained()
        self._drop(peer)

    def _drop(self, peer: Peer) -> None:
        fd = peer.sock.fileno()
        if fd >= 0:
            self.unwatch(fd)
            self.peers.pop(fd, None)
        if peer.exec is not None and peer.exec.status is None:
            # Nobody listens any more; the process runs on (docker does the same).
            peer.exec.peer = None  # type: ignore[assignment]
        with contextlib.suppress(OSError):
            peer.sock.close()

    # -- exec ----------------------------------------------------------------------------------
    def _exec(self, peer: Peer, header: dict[str, Any]) -> None:
        if self.init_pid <= 0 or self.status is not None:
            peer.send(control({"error": f"container {self.id} is not running", "exit_code": 126}))
            self._drop(peer)
            return
        tty = bool(header.get("tty"))
        mine: dict[str, int] = {}
        theirs: list[int] = []
        try:
            if tty:
                stdio = None
            else:
                in_r, in_w = os.pipe2(os.O_CLOEXEC) if header.get("stdin") else (-1, -1)
                if in_r < 0:
                    in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                else:
                    mine["in"] = in_w
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                mine.update(out=out_r, err=err_r)
                stdio = (in_r, out_w, err_w)
                theirs = [in_r, out_w, err_w]
            pid, console = self._exec_in_runtime(header["process"], stdio, tty)
        except linux.ContainerError as exc:
            for fd in [*mine.values(), *theirs]:
                os.close(fd)
            peer.send(control({"error": str(exc), "exit_code": exc.exit_code or 126}))
            self._drop(peer)
            return
        for fd in theirs:
            os.close(fd)
        session = ExecSession(peer, pid, console)
        peer.exec = session
        self.execs[pid] = session
        if tty:
            assert console is not None
            mine = {"out": console}
            if header.get("stdin"):
                mine["in"] = console
        if "in" in mine:
            session.stdin = Stdin(self, mine["in"], owned=not tty)
            peer.sink = session.stdin
        for key, stream in (("out", STDOUT), ("err", STDERR)):
            if key in mine:
                fd = mine[key]
                session.outputs.add(fd)
                self.watch(
                    fd,
                    select.POLLIN,
                    lambda _ev, fd=fd, s=stream: self._exec_output(session, fd, s),
                )
        peer.send(control({"pid": pid}))

    def _exec_in_runtime(
        self, proc: dict[str, Any], stdio: tuple[int, int, int] | None, tty: bool
    ) -> tuple[int, int | None]:
        """The runtime starts the process; it becomes ours (we are a subreaper). SIGCHLD stays
        blocked meanwhile, so the process cannot be reaped before it is known."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            return self.runtime.exec(proc, stdio, tty)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

    def _exec_output(self, session: ExecSession, fd: int, stream: int) -> None:
        try:
            data = os.read(fd, READ)
        except OSError:
            data = b""
        if not data:
            self.unwatch(fd)
            session.outputs.discard(fd)
            if fd != session.tty_fd:
                os.close(fd)
            self._exec_maybe_done(session)
            return
        if session.peer is not None and not session.peer.send(frame(stream, data)):
            self._drop(session.peer)

    def _exec_maybe_done(self, session: ExecSession) -> None:
        if session.status is None or session.outputs:
            return
        self.execs.pop(session.pid, None)
        if session.stdin is not None:
            session.stdin.close()
        if session.tty_fd is not None:
            for fd in list(session.outputs):
                self.unwatch(fd)
            with contextlib.suppress(OSError):
                os.close(session.tty_fd)
        if session.peer is not None:
            session.peer.send(control({"exit_code": _exit_code(session.status)}))
            self._drop(session.peer)

    # -- exits ---------------------------------------------------------------------------------
    def _reap(self, wakeup: int) -> None:
        with contextlib.suppress(OSError):
            while os.read(wakeup, 512):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid:
                self._container_exited(status)
            elif pid in self.execs:
                session = self.execs[pid]
                session.status = status
                if session.tty_fd is not None:
                    # A pty's output ends with EIO once the process is gone; read what is left.
                    for fd in list(session.outputs):
                        self._exec_output(session, fd, STDOUT)
                self._exec_maybe_done(session)

    def _container_exited(self, status: int) -> None:
        self.status = status
        self.exited_at = time.monotonic()
        self.exited_ns = time.time_ns()
        if self.tty and self.console in self.outputs:
            # Read what the pty still holds (until EIO), then it counts as drained.
            with contextlib.suppress(OSError):
                os.set_blocking(self.console, False)
            while self.console in self.outputs:
                try:
                    self._read_output(self.console)
                except BlockingIOError:
                    break

    def finish(self) -> None:
        """Record the exit, tell the waiters, release the container."""
        assert self.status is not None
        self.log.close()
        oom = self.runtime.oom_killed()
        result = {
            "exit_code": _exit_code(self.status),
            "oom_killed": oom,
            "finished_at": rfc3339_nano(self.exited_ns or time.time_ns()),
        }
        path = os.path.join(self.dir, EXIT_FILE)
        # Renamed into place, not fsynced: it must survive the daemon (a process), and a
        # host that loses power loses the container anyway. fsync cost 1-3 ms per exit here.
        with open(path + ".tmp", "w") as f:
            json.dump(result, f)
        os.rename(path + ".tmp", path)
        for session in list(self.execs.values()):
            session.status = session.status if session.status is not None else 137 << 8
            session.outputs.clear()
            self._exec_maybe_done(session)
        for peer in list(self.peers.values()):
            if peer.waits:
                self._send_exit(peer, result)
            self._drop(peer)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.dir, SOCKET))
        try:
            self.runtime.delete()
        except Exception as exc:  # the daemon removes what is left when it cleans up
            print(f"shim {self.id}: delete: {exc!r}", file=sys.stderr)

    def _send_exit(self, peer: Peer, result: dict[str, Any] | None = None) -> None:
        if result is None:
            assert self.status is not None
            result = {"exit_code": _exit_code(self.status)}
        peer.send(control(result))


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run(request: dict[str, Any], reply: socket.socket) -> None:
    """The shim's life, in a process forked for it (see zygote.py)."""
    shim = Shim(request, reply)
    shim.start()
    shim.loop()
    shim.finish()
