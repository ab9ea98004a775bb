"""`docker exec`: exec instances as moby keeps them (daemon/exec.go, daemon/container/exec.go).

An exec instance is created against a running container (POST /containers/{id}/exec), started
once (POST /exec/{id}/start), and can be inspected until the daemon forgets it. Like moby we
keep instances in memory only: a daemon restart forgets them. The lifecycle:

    create  → the process config is checked and stored (the user is looked up now, for an
              early error); the instance is listed in the container's ExecIDs
    start   → the OCI process is built from the container's own (config.json: rlimits,
              noNewPrivileges, capabilities, oomScoreAdj) with the exec's args, env, cwd, user,
              terminal; the container's shim runs it (the `exec` op of runtime/shim.py) and the
              caller streams that connection; its control frames land in `Exec.control`
    exit    → ExitCode is set, Running cleared, the instance leaves the container's ExecIDs

moby forgets the instances of a container when the container stops (its Cleanup) and sweeps
finished ones every five minutes; here both happen lazily, when an instance is looked up.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.runtime import spec as specs
from dockyard.runtime.users import UserLookupError

from .bundles import _own_capabilities, read_in_root
from .names import new_id
from .shims import read_frame

if TYPE_CHECKING:
    from .container_store import Container
    from .containers import ContainerService

# moby/term's key names for --detach-keys (ctrl-@ is 0, ctrl-a 1, ... ctrl-_ 31).
_CTRL_KEYS = ["ctrl-@", *(f"ctrl-{c}" for c in "abcdefghijklmnopqrstuvwxyz"), "ctrl-[", "ctrl-\\"]
_CTRL_KEYS += ["ctrl-]", "ctrl-^", "ctrl-_"]
DEFAULT_DETACH_KEYS = bytes([16, 17])  # ctrl-p, ctrl-q
GC_INTERVAL = 300.0  # moby's execCommandGC ticks every five minutes
STOPPED_GRACE = 10.0  # how long an exec that ended with its container can still be inspected
RESIZE_WAIT = 10.0  # moby waits this long for an exec to start before resizing it
EXIT_EACCES, EXIT_NOT_FOUND, EXIT_UNKNOWN = 126, 127, 128


def detach_keys_to_bytes(keys: str) -> bytes:
    """moby/term ToBytes: "ctrl-p,ctrl-q" → b"\\x10\\x11"."""
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1:
            codes += key.encode()[:1]
        elif key in _CTRL_KEYS:
            codes.append(_CTRL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class ExecStartError(DockyardError):
    """The runtime could not start the process; `exit_code` is what exec inspect reports."""

    def __init__(self, message: str, exit_code: int, status: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status


def start_error(runtime_message: str) -> ExecStartError:
    """moby's setExitCodeFromError over the text containerd reports for a failed exec."""
    text = (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        f"{runtime_message}: unknown"
    )
    lower = text.lower()
    if "permission denied" in lower:
        return ExecStartError(text, EXIT_EACCES, 400)
    if "is a directory" in lower:
        return ExecStartError(text + ": permission denied", EXIT_EACCES, 400)
    if "not a directory" in lower:
        text += (
            ": Are you trying to mount a directory onto a file (or vice-versa)? Check if the "
            "specified host path exists and is the expected type"
        )
        return ExecStartError(text, EXIT_NOT_FOUND, 400)
    if any(
        s in lower
        for s in ("executable file not found", "no such file or directory", "runc create/exec")
    ):
        return ExecStartError(text, EXIT_NOT_FOUND, 400)
    return ExecStartError(text, EXIT_UNKNOWN, 500)


class Exec:
    """One exec instance (moby's container.ExecConfig)."""

    def __init__(self, container: Container, body: dict[str, Any], detach_keys: bytes) -> None:
        cmd = [str(a) for a in body.get("Cmd") or []]
        self.id = new_id()
        self.container_id = container.id
        self.container_started = container.state.get("StartedAt")
        self.open_stdin = bool(body.get("AttachStdin"))
        self.open_stdout = bool(body.get("AttachStdout"))
        self.open_stderr = bool(body.get("AttachStderr"))
        self.detach_keys = detach_keys
        self.entrypoint, self.args = cmd[0], cmd[1:]
        self.tty = bool(body.get("Tty"))
        size = body.get("ConsoleSize")
        self.console_size: list[int] | None = [int(size[0]), int(size[1])] if size else None
        self.privileged = bool(body.get("Privileged"))
        self.user = body.get("User") or container.config.get("User") or ""
        self.working_dir = body.get("WorkingDir") or container.config.get("WorkingDir") or ""
        env_config = dict(container.config, Tty=self.tty)
        self.env = specs.replace_or_append_env(
            specs.process_env(env_config), [str(e) for e in body.get("Env") or []]
        )
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.live = True  # listed in the container's ExecIDs (created, not yet exited)
        self.finished = 0.0  # monotonic time of the exit
        self.error: ExecStartError | None = None
        self.started = threading.Event()  # set once the process runs or failed to
        self.lock = threading.Lock()

    # -- what the shim says, through the connection that started the process -------------------
    def control(self, message: dict[str, Any]) -> None:
        """A frame-3 message of the shim's exec op: {"pid"}, then {"exit_code"}; or {"error"}."""
        with self.lock:
            if "error" in message:
                self.error = start_error(str(message["error"]))
                self._end(self.error.exit_code)
            elif "exit_code" in message:
                self._end(int(message["exit_code"]))
            elif "pid" in message:
                self.pid = int(message["pid"])
            self.started.set()

    def lost(self) -> None:
        """The shim connection ended without an exit: the container (and so its shim) is gone;
        the process was killed with it."""
        with self.lock:
            if self.exit_code is None:
                if not self.pid and self.error is None:
                    self.error = ExecStartError(
                        f"container {self.container_id} is not running", EXIT_EACCES, 409
                    )
                self._end(137 if self.pid else EXIT_EACCES)
            self.started.set()

    def failed(self, exc: DockyardError) -> None:
        """Starting failed before the shim ran anything (moby's deferred cleanup: 126)."""
        with self.lock:
            if self.exit_code is None:
                self._end(getattr(exc, "exit_code", None) or EXIT_EACCES)
            self.started.set()

    def _end(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
        self.running = False
        self.live = False
        self.finished = time.monotonic()

    def inspect(self) -> dict[str, Any]:
        with self.lock:
            process: dict[str, Any] = {
                "tty": self.tty,
                "entrypoint": self.entrypoint,
                "arguments": list(self.args),
                "privileged": self.privileged,
            }
            if self.user:
                process["user"] = self.user
            return {
                "ID": self.id,
                "Running": self.running,
                "ExitCode": self.exit_code,
                "ProcessConfig": process,
                "OpenStdin": self.open_stdin,
                "OpenStderr": self.open_stderr,
                "OpenStdout": self.open_stdout,
                "CanRemove": bool(self.finished) and time.monotonic() - self.finished > GC_INTERVAL,
                "ContainerID": self.container_id,
                "DetachKeys": base64.b64encode(self.detach_keys).decode(),
                "Pid": self.pid,
            }


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._execs: dict[str, Exec] = {}
        self._guard = threading.Lock()

    # -- lookups -------------------------------------------------------------------------------
    def _active_container(self, ref: str) -> Container:
        """moby getActiveContainer: running, not paused, not restarting."""
        container = self.containers.find(ref)
        if container.state.get("Restarting"):
            raise Conflict(
                f"Container {container.id} is restarting, wait until the container is running"
            )
        if not container.running:
            raise Conflict(f"container {container.id} is not running")
        if container.state.get("Paused"):
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")
        return container

    def _current(self, exec_: Exec) -> Container | None:
        """The exec's container while it still runs the same process tree as at create."""
        container = self.containers.store.get(exec_.container_id)
        if container is None or not (container.running or container.state.get("Restarting")):
            return None
        if container.state.get("StartedAt") != exec_.container_started:
            return None
        return container

    def _sweep(self) -> None:
        """moby's Cleanup (a stopped container's execs are forgotten) and execCommandGC. An
        exec that ended with its container stays a few seconds, so that the client streaming
        it reads its exit code (137) rather than a 404, as it mostly does from moby."""
        now = time.monotonic()
        with self._guard:
            execs = list(self._execs.values())
        for exec_ in execs:
            age = now - exec_.finished if exec_.finished else None
            stale = age is not None and age > 2 * GC_INTERVAL
            recent = age is not None and age < STOPPED_GRACE
            if stale or (not recent and self._current(exec_) is None):
                with self._guard:
                    self._execs.pop(exec_.id, None)

    def find(self, exec_id: str) -> Exec:
        """An instance by its full ID (moby looks them up by ID only)."""
        self._sweep()
        with self._guard:
            exec_ = self._execs.get(exec_id)
        if exec_ is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return exec_

    def _startable(self, exec_id: str) -> tuple[Exec, Container]:
        """moby getExecConfig: the instance, its container running and not paused."""
        exec_ = self.find(exec_id)
        container = self._current(exec_)
        if container is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        if container.state.get("Restarting"):
            raise Conflict(
                f"Container {container.id} is restarting, wait until the container is running"
            )
        if container.state.get("Paused"):
            raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
        return exec_, container

    def ids_of(self, container: Container) -> list[str] | None:
        """The container's ExecIDs: instances created and not yet exited (null when none)."""
        with self._guard:
            execs = list(self._execs.values())
        ids = [
            e.id
            for e in execs
            if e.container_id == container.id
            and e.live
            and container.running
            and e.container_started == container.state.get("StartedAt")
        ]
        return ids or None

    # -- create, inspect -----------------------------------------------------------------------
    def create(self, ref: str, body: dict[str, Any]) -> str:
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidParameter("No exec command specified")
        body = dict(body, Cmd=cmd)
        container = self._active_container(ref)
        if body.get("User"):
            self._user(container, str(body["User"]))  # an early error, as moby looks it up now
        keys = b""
        if body.get("DetachKeys"):
            try:
                keys = detach_keys_to_bytes(str(body["DetachKeys"]))
            except ValueError:
                raise DockyardError(
                    f"Invalid escape keys ({body['DetachKeys']}) provided"
                ) from None
        size = body.get("ConsoleSize")
        if size is not None and (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(n, int) for n in size)
        ):
            raise InvalidParameter("invalid ConsoleSize: expected [height, width]")
        self._sweep()
        exec_ = Exec(container, body, keys)
        with self._guard:
            self._execs[exec_.id] = exec_
        return exec_.id

    def inspect(self, exec_id: str) -> dict[str, Any]:
        return self.find(exec_id).inspect()

    # -- start ---------------------------------------------------------------------------------
    def start(
        self, exec_id: str, console_size: list[int] | None = None
    ) -> tuple[Exec, socket.socket]:
        """Run the process: a connection to the shim, its `exec` request sent. The caller reads
        it (frames 1/2 output, frame 3 control → `exec.control`) and writes stdin frames."""
        exec_, container = self._startable(exec_id)
        with exec_.lock:
            if exec_.exit_code is not None:
                raise Conflict(f"exec command {exec_.id} has already run")
            if exec_.running:
                raise Conflict(f"exec command {exec_.id} is already running")
            exec_.running = True
        try:
            process = self._process(exec_, container, console_size)
            header = {"op": "exec", "process": process, "tty": exec_.tty, "stdin": exec_.open_stdin}
            try:
                sock = self.containers.shims.connect(container.id, header)
            except OSError:
                raise Conflict(f"container {container.id} is not running") from None
        except DockyardError as exc:
            exec_.failed(exc)
            raise
        return exec_, sock

    def start_detached(self, exec_id: str, console_size: list[int] | None = None) -> Exec:
        """Start, wait until the process runs (or report why it cannot), then let a thread
        read the connection to record the exit."""
        exec_, sock = self.start(exec_id, console_size)
        first = self._read_control(exec_, sock)
        if exec_.error is not None:
            sock.close()
            raise exec_.error
        if first:
            threading.Thread(
                target=self._follow, args=(exec_, sock), daemon=True, name=f"exec-{exec_.id[:12]}"
            ).start()
        else:
            sock.close()
        return exec_

    def _read_control(self, exec_: Exec, sock: socket.socket) -> bool:
        """Read until the first control frame; False when the connection ended first."""
        while True:
            try:
                got = read_frame(sock)
            except OSError:
                got = None
            if got is None:
                exec_.lost()
                return False
            stream, payload = got
            if stream == 3:
                with contextlib.suppress(ValueError):
                    exec_.control(json.loads(payload))
                return exec_.exit_code is None

    def _follow(self, exec_: Exec, sock: socket.socket) -> None:
        with sock:
            while exec_.exit_code is None and self._read_control(exec_, sock):
                pass

    def _process(
        self, exec_: Exec, container: Container, console_size: list[int] | None
    ) -> dict[str, Any]:
        """The OCI process: the container's, with the exec's settings over it (moby
        ContainerExecStart and execSetPlatformOpt)."""
        path = os.path.join(self.containers.directory(container.id), "config.json")
        try:
            with open(path) as f:
                process = dict(json.load(f).get("process") or {})
        except (OSError, ValueError):
            raise Conflict(f"container {container.id} is not running") from None
        process.pop("consoleSize", None)
        process["args"] = [exec_.entrypoint, *exec_.args]
        process["env"] = list(exec_.env)
        process["cwd"] = exec_.working_dir or "/"
        process["terminal"] = exec_.tty
        size = console_size or exec_.console_size
        if exec_.tty and size:
            process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
        if exec_.user:
            uid, gid, gids = self._user(container, exec_.user)
            process["user"] = {"uid": uid, "gid": gid, "additionalGids": list(gids)}
        if exec_.privileged:
            every = _own_capabilities()
            process["capabilities"] = {
                "bounding": list(every),
                "permitted": list(every),
                "effective": list(every),
            }
        return process

    def _user(self, container: Container, user: str) -> tuple[int, int, list[int]]:
        """moby getUser: the user looked up in the container's own /etc/passwd and /etc/group,
        then the container's --group-add groups."""
        rootfs = self.containers.rootfs(container.id)
        passwd = read_in_root(rootfs, "/etc/passwd")
        group = read_in_root(rootfs, "/etc/group")
        try:
            return specs.resolve_user(
                user, passwd, group, container.host_config.get("GroupAdd") or []
            )
        except UserLookupError as exc:
            raise InvalidParameter(str(exc)) from None

    # -- resize --------------------------------------------------------------------------------
    def resize(self, exec_id: str, height: int, width: int) -> None:
        exec_, container = self._startable(exec_id)
        if not exec_.started.wait(RESIZE_WAIT):
            raise DockyardError("timeout waiting for exec session ready")
        if not exec_.pid or exec_.error is not None:
            raise InvalidParameter("exec process is not started")
        if exec_.exit_code is not None or not exec_.tty:
            return
        request = {"op": "resize", "height": height, "width": width, "exec": exec_.pid}
        try:
            with self.containers.shims.connect(container.id, request) as sock:
                read_frame(sock)
        except OSError:
            raise Conflict(f"container {container.id} is not running") from None
