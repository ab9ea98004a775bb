"""Dockyard's low-level OCI runtime, in process: create, start, kill, exec, pause, delete.

A container is started by forking the calling Python process — no new interpreter, no runtime
binary — so a shim starts one in a few milliseconds. The forked child becomes the container's
init (PID 1 of its namespace, and a child of the caller, who can therefore `waitpid` it). The
same functions back the `dockyard-runtime` command line (runtime/cli.py).

    create(bundle_or_spec, container_id, state_root=DEFAULT_STATE_ROOT, *,
           bundle=None, stdio=None, terminal=None, extra_fds=(), cgroup_parent="/dockyard",
           pid_file=None) -> Container
        Set the container up — namespaces, cgroup and resources, root filesystem, user,
        capabilities, seccomp — and leave its init blocked just before execve (runc's exec
        FIFO). `bundle_or_spec` is a bundle directory (its config.json is read) or the spec
        as a dict (then `bundle`, default the state directory, anchors relative paths).
        `stdio` = (in, out, err) fds for the process, default: the caller's own 0-2.
        `terminal` overrides process.terminal; with a terminal the pty master (from the
        container's own /dev/pts) is `Container.console`. `extra_fds` become fds 3, 4, ….
        Raises ContainerError/ExecError (ExecError.exit_code is docker's 126/127) having
        undone everything.
    load(container_id, state_root) -> Container           a container created by anyone
    Container.start()          exec the user's program; raises ExecError if execve fails
    Container.pid, .id, .bundle, .console (pty master fd or None), .state_dir
    Container.status() -> "created" | "running" | "paused" | "stopped"
    Container.state() -> dict  the runtime-spec state
    Container.kill(sig=SIGTERM, all=False)
    Container.wait_status(timeout=None) -> int  the raw wait status (caller must be the parent)
    Container.wait(timeout=None) -> int         exit code, 128+N when killed by signal N
    Container.pause() / .resume()               cgroup freezer
    Container.stats() -> dict, .pids() -> list[int], .oom_killed() -> bool
    Container.delete(force=False) -> list[str]  kill leftovers, remove cgroups and state;
                                                returns poststop hook warnings
    exec_process(container, process, *, stdio=None, terminal=None, extra_fds=()) -> ExecProcess
        A new process in a running container (`docker exec`): it enters the init's
        namespaces and cgroup, then applies the process spec's user, env, cwd, capabilities,
        rlimits and noNewPrivileges (and the container's seccomp profile). Returns once the
        program has been exec'd: ExecProcess(pid, console) with .wait_status()/.wait().

Example (as root):

    c = create("/tmp/bundle", "web1", "/run/dockyard/runtime", stdio=(0, out_w, err_w))
    c.start()
    code = c.wait()           # 137 if it was OOM-killed or `kill -9`ed
    oom = c.oom_killed()
    c.delete()

Not supported: user namespaces (and so idmapped mounts and rootless), AppArmor and SELinux
labels, seccomp user notification, cgroup v2 device rules (needs BPF), intelRdt,
personality, scheduler and I/O priority settings. See the module docstrings of cgroups.py
(where container cgroups go), process.py (rlimits above the host's hard limit are clamped,
the exit code rules) and seccomp.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import caps, cgroups, containerinit, namespaces, process, seccomp, state, syscalls
from .cgroups import Cgroup
from .process import ContainerError, ExecError
from .state import FIFO, Record

__all__ = [
    "DEFAULT_STATE_ROOT",
    "Container",
    "ContainerError",
    "ExecError",
    "ExecProcess",
    "create",
    "exec_process",
    "load",
]

DEFAULT_STATE_ROOT = "/run/dockyard/runtime"


def _read_spec(
    bundle_or_spec: str | os.PathLike[str] | dict[str, Any], bundle: str | None
) -> tuple[dict[str, Any], str | None]:
    if isinstance(bundle_or_spec, dict):
        return bundle_or_spec, bundle
    path = os.path.abspath(os.fspath(bundle_or_spec))
    try:
        with open(os.path.join(path, "config.json")) as f:
            return json.load(f), path
    except FileNotFoundError as e:
        raise ContainerError(f"JSON specification file {path}/config.json not found") from e
    except ValueError as e:
        raise ContainerError(f"invalid config.json: {e}") from e


def _plan(
    spec: dict[str, Any], bundle: str, container_id: str, terminal: bool | None
) -> containerinit.Plan:
    version = str(spec.get("ociVersion", ""))
    if not re.fullmatch(r"1\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?", version):
        raise ContainerError(f"unsupported ociVersion {version!r}: this runtime implements 1.x")
    proc = spec.get("process")
    if proc is not None and not proc.get("args"):
        raise ContainerError("process.args must not be empty")
    proc = proc or {}
    root = (spec.get("root") or {}).get("path")
    if not root:
        raise ContainerError("root.path must be set")
    rootfs = os.path.realpath(os.path.join(bundle, root))
    if not os.path.isdir(rootfs):
        raise ContainerError(f"rootfs ({rootfs}) does not exist")
    linux = spec.get("linux") or {}
    try:
        ns = namespaces.parse(linux.get("namespaces"))
        namespaces.check_sysctls(linux.get("sysctl"), ns)
        caps.CapSets.from_spec(proc.get("capabilities"))
    except (ValueError, caps.CapabilityError) as e:
        raise ContainerError(str(e)) from e
    if ns.get("mount") and namespaces.is_own(ns["mount"], "mount"):
        # Setting a root up "inside" our own mount namespace would rearrange the host's mounts.
        raise ContainerError("joining the runtime's own mount namespace is not supported")
    if spec.get("hostname") and "uts" not in ns:
        raise ContainerError("unable to set hostname without a private UTS namespace")
    if spec.get("domainname") and "uts" not in ns:
        raise ContainerError("unable to set domainname without a private UTS namespace")
    process.validate_rlimits(proc.get("rlimits"))
    profile = linux.get("seccomp")
    try:
        program = seccomp.compile_profile(profile) if profile else None
    except seccomp.SeccompError as e:
        raise ContainerError(str(e)) from e
    want_terminal = bool(proc.get("terminal")) if terminal is None else terminal
    hooks = spec.get("hooks") or {}
    return containerinit.Plan(
        spec=spec,
        bundle=bundle,
        rootfs=rootfs,
        ns=ns,
        cgroup=None,
        seccomp=program,
        terminal=want_terminal,
        hooks_sync=bool(hooks.get("prestart") or hooks.get("createRuntime")),
        container_id=container_id,
    )


def create(
    bundle_or_spec: str | os.PathLike[str] | dict[str, Any],
    container_id: str,
    state_root: str = DEFAULT_STATE_ROOT,
    *,
    bundle: str | None = None,
    stdio: tuple[int, int, int] | None = None,
    terminal: bool | None = None,
    extra_fds: tuple[int, ...] | list[int] = (),
    cgroup_parent: str = "/dockyard",
    pid_file: str | None = None,
    die_with_creator: bool = False,
) -> Container:
    """Create a container whose init waits before exec; see the module docstring."""
    if not state.valid_id(container_id):
        raise ContainerError(f"invalid container id {container_id!r}")
    spec, bundle = _read_spec(bundle_or_spec, bundle)
    state_dir = os.path.join(state_root, container_id)
    os.makedirs(state_root, mode=0o711, exist_ok=True)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise ContainerError(f"container with id exists: {container_id}") from None
    bundle = os.path.abspath(bundle or state_dir)
    child = -1
    cg: Cgroup | None = None
    console: int | None = None
    try:
        plan = _plan(spec, bundle, container_id, terminal)
        plan.stdio, plan.extra_fds = stdio, list(extra_fds)
        plan.cpus = os.sched_getaffinity(0)
        linux = spec.get("linux") or {}
        try:
            path = cgroups.container_path(linux.get("cgroupsPath"), container_id, cgroup_parent)
        except ValueError as e:
            raise ContainerError(str(e)) from e
        cg = Cgroup.for_path(path)
        plan.cgroup = cg
        resources = dict(linux.get("resources") or {})
        resources["devices"] = cgroups.device_rules(resources, linux.get("devices"))
        fifo_path = os.path.join(state_dir, FIFO)
        os.mkfifo(fifo_path)
        # 0622 whatever our umask: the init may have switched to any user when it opens it.
        os.chmod(fifo_path, 0o622)
        fifo_fd = os.open(fifo_path, os.O_PATH | os.O_CLOEXEC)
        ours, theirs = socket.socketpair(
            socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        )
        try:
            with (
                namespaces.for_children(
                    "pid", plan.ns.get("pid"), "pid" in plan.ns and plan.ns["pid"] is None
                ),
                namespaces.for_children(
                    "time", plan.ns.get("time"), "time" in plan.ns and plan.ns["time"] is None
                ),
            ):
                if plan.ns.get("time", "") is None:
                    _write_time_offsets(linux.get("timeOffsets"))
                child = os.fork()
                if child == 0:  # pragma: no cover - the child ends in execve or _exit
                    try:
                        ours.close()
                        containerinit.run_init(plan, theirs, fifo_fd)
                    finally:
                        os._exit(1)  # never let the child run the caller's code
        finally:
            theirs.close()
            os.close(fifo_fd)
        # A new child is queued on our CPU and would wait for us to sleep (milliseconds): move
        # it to the others, where it can run now. It takes back our CPU set before exec.
        if len(plan.cpus) > 1:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(child, plan.cpus - {_current_cpu()} or plan.cpus)
        # From here the child sets itself up while we write its state and make its cgroup:
        # it waits for our "mk" (cgroup made) and "cg" (joined) only where it needs them.
        record = Record(
            id=container_id,
            bundle=bundle,
            pid=child,
            pid_start=state.proc_start_time(child),
            created=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            cgroup_path=cg.path,
            annotations=dict(spec.get("annotations") or {}),
            hooks={
                k: v for k, v in (spec.get("hooks") or {}).items() if k in ("poststart", "poststop")
            },
            seccomp=linux.get("seccomp"),
            rootfs=plan.rootfs,
            process=spec.get("process") or {},
        )
        cg.note_new_dirs(keep=cgroup_parent)
        record.cgroup_created_top = cg.created_top
        state.save(state_dir, record, "created")
        try:
            cg.create()
            cg.apply(resources)
        except (OSError, ValueError) as e:
            raise ContainerError(f"cgroup resources: {e}") from e
        ours.send(b"mk")
        try:
            cg.join(child)
        except OSError as e:
            raise ContainerError(f"cannot join cgroup {cg.path}: {e}") from e
        ours.send(b"cg")
        with ours:
            console = _converse(ours, child, spec, record)
        if pid_file:
            tmp = f"{pid_file}.tmp"
            with open(tmp, "w") as f:
                f.write(str(child))
            os.rename(tmp, pid_file)
        return Container(state_dir, record, parent=True, console=console)
    except BaseException:
        if console is not None:
            os.close(console)
        if child > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        if cg is not None:
            with contextlib.suppress(OSError):
                cg.destroy()
        state.remove_dir(state_dir)
        raise


def _current_cpu() -> int:
    return int(syscalls.sched_getcpu())


def _write_time_offsets(offsets: dict[str, dict[str, int]] | None) -> None:
    lines = []
    for clock, off in (offsets or {}).items():
        lines.append(f"{clock} {off.get('secs', 0)} {off.get('nanosecs', 0)}\n")
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))


def _converse(sock: socket.socket, child: int, spec: dict[str, Any], record: Record) -> int | None:
    """Serve the init's requests until it is ready; returns the pty master if it sent one."""
    console = None
    try:
        while True:
            data, fd = process.recv_message(sock)
            if not data:
                _, status = os.waitpid(child, 0)
                raise ContainerError(f"container init exited before it was ready (status {status})")
            msg = json.loads(data)
            kind = msg.get("type")
            if kind == "ready":
                return console
            if kind == "console" and fd is not None:
                console = fd
            elif kind == "hooks":
                hooks = spec.get("hooks") or {}
                hook_state = state.oci_state(record, "created")  # what runc passes
                try:
                    state.run_hooks("prestart", hooks.get("prestart"), hook_state)
                    state.run_hooks("createRuntime", hooks.get("createRuntime"), hook_state)
                except state.HookError as e:
                    raise ContainerError(str(e)) from e
                sock.send(b"go")
            elif kind == "error":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child, 0)
                raise process.error_from_payload(msg["error"])
    except BaseException:
        if console is not None:
            os.close(console)
        raise


def load(container_id: str, state_root: str = DEFAULT_STATE_ROOT) -> Container:
    """The container `container_id`, as any process (the CLI, a restarted daemon) finds it."""
    if not state.valid_id(container_id):
        raise ContainerError(f"invalid container id {container_id!r}")
    state_dir = os.path.join(state_root, container_id)
    try:
        record = state.load(state_dir)
    except FileNotFoundError:
        raise ContainerError(f"container does not exist: {container_id}") from None
    return Container(state_dir, record)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _wait_child(pid: int, timeout: float | None) -> int | None:
    """waitpid with an optional timeout (a pidfd tells us when); None on timeout."""
    if timeout is not None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            fd = None
        if fd is not None:
            try:
                if not select.select([fd], [], [], timeout)[0]:
                    return None
            finally:
                os.close(fd)
    _, status = os.waitpid(pid, 0)
    return status


class Container:
    """A created container; see the module docstring for the operations."""

    def __init__(
        self, state_dir: str, record: Record, *, parent: bool = False, console: int | None = None
    ) -> None:
        self.state_dir = state_dir
        self.record = record
        self.console = console
        self._parent = parent
        self._status: int | None = record.exit_status
        self._cgroup: Cgroup | None = None

    id = property(lambda self: self.record.id)
    pid = property(lambda self: self.record.pid)
    bundle = property(lambda self: self.record.bundle)

    @property
    def cgroup(self) -> Cgroup:
        if self._cgroup is None:
            self._cgroup = Cgroup.for_path(self.record.cgroup_path)
            self._cgroup.created_top = self.record.cgroup_created_top
        return self._cgroup

    def status(self) -> str:
        if self._status is not None or not state.alive(self.record):
            return "stopped"
        if os.path.exists(os.path.join(self.state_dir, FIFO)):
            return "created"
        return "paused" if self.cgroup.frozen() else "running"

    def state(self) -> dict[str, Any]:
        return state.oci_state(self.record, self.status())

    def _save(self, status: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            state.save(self.state_dir, self.record, status)

    def start(self) -> None:
        current = self.status()
        if current != "created":
            raise ContainerError(f"cannot start a container that is {current}: {self.id}")
        fifo_path = os.path.join(self.state_dir, FIFO)
        data = _rendezvous(fifo_path, self.pid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fifo_path)
        if not data.startswith(b"0"):
            self._save("stopped")
            raise ContainerError(f"cannot start container {self.id}: its init process is gone")
        if len(data) > 1:
            self._save("stopped")
            raise process.error_from_payload(json.loads(data[1:]))
        self._save("running")
        try:
            # "running" even if the program already exited: it did run (runc does the same).
            hook_state = state.oci_state(self.record, "running")
            state.run_hooks("poststart", self.record.hooks.get("poststart"), hook_state)
        except state.HookError as e:
            with contextlib.suppress(ContainerError, OSError):
                self.kill(signal.SIGKILL, all=True)  # the spec: a failed poststart stops it
            raise ContainerError(str(e)) from e

    def kill(self, sig: int = signal.SIGTERM, all: bool = False) -> None:
        current = self.status()
        if current == "stopped":
            raise ContainerError(f"container not running: {self.id}")
        if all:
            self.cgroup.kill_all(sig)
        else:
            os.kill(self.pid, sig)
        if current == "paused" and sig == signal.SIGKILL:
            self.cgroup.thaw()  # a frozen task cannot act on SIGKILL

    def wait_status(self, timeout: float | None = None) -> int | None:
        """Reap the init and return its raw wait status (None on timeout); parent only."""
        if self._status is None and not self._parent:
            raise ContainerError(
                f"only the process that created {self.id} can wait for it: poll status() instead"
            )
        if self._status is None:
            status = _wait_child(self.pid, timeout)
            if status is None:
                return None
            self._status = status
            self.record.exit_status = status  # kept in memory: the caller is about to delete
        return self._status

    def reaped(self, status: int) -> None:
        """The caller reaped the init itself (a shim's waitpid(-1) loop): remember its status so
        that wait_status() and delete() do not wait for a child that is gone."""
        self._status = status
        self.record.exit_status = status

    def wait(self, timeout: float | None = None) -> int | None:
        status = self.wait_status(timeout)
        return None if status is None else _exit_code(status)

    def pause(self) -> None:
        if self.status() != "running":
            raise ContainerError(f"container not running: {self.id}")
        self.cgroup.freeze()
        self._save("paused")

    def resume(self) -> None:
        if self.status() != "paused":
            raise ContainerError(f"container not paused: {self.id}")
        self.cgroup.thaw()
        self._save("running")

    def pids(self) -> list[int]:
        return self.cgroup.pids()

    def stats(self) -> dict[str, Any]:
        return self.cgroup.stats()

    def oom_killed(self) -> bool:
        if self.cgroup.exists():
            self.record.oom_kills = max(self.record.oom_kills, self.cgroup.oom_kill_count())
        return self.record.oom_kills > 0

    def delete(self, force: bool = False) -> list[str]:
        current = self.status()
        if current != "stopped" and not force:
            raise ContainerError(
                f"cannot delete container {self.id} that is not stopped: {current}"
            )
        if self.cgroup.exists():
            self.oom_killed()  # remember the count: the cgroup is about to go
            if current != "stopped":
                self.cgroup.kill_all(signal.SIGKILL)
        if current != "stopped" and state.alive(self.record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self._parent and self._status is None:
            self.wait_status()
        self.cgroup.destroy()
        if self.console is not None:
            os.close(self.console)
            self.console = None
        state.remove_dir(self.state_dir)
        return state.run_hooks(
            "poststop",
            self.record.hooks.get("poststop"),
            state.oci_state(self.record, "stopped"),
            warn_only=True,
        )

    def exec(self, proc: dict[str, Any], **kwargs: Any) -> ExecProcess:
        return exec_process(self, proc, **kwargs)


def _rendezvous(fifo_path: str, pid: int) -> bytes:
    """Open the exec FIFO for reading (which releases the init) and read until it closes.

    Opened non-blocking and watched with a pidfd too: if the init is already dead nobody will
    ever open the other end, and a blocking open would hang forever.
    """
    fd = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = None
    data = b""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        init_gone = pidfd is None
        while True:
            events = dict(poller.poll(None if not init_gone else 0))
            if fd in events:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    return data  # the writer closed: exec happened or the init died
                if chunk:
                    data += chunk
                    continue
            if pidfd is not None and pidfd in events:
                init_gone = True
                poller.unregister(pidfd)
                continue
            if init_gone and fd not in events:
                return data
    finally:
        os.close(fd)
        if pidfd is not None:
            os.close(pidfd)


@dataclass
class ExecProcess:
    pid: int
    console: int | None = None
    _status: int | None = None

    def wait_status(self, timeout: float | None = None) -> int | None:
        if self._status is None:
            self._status = _wait_child(self.pid, timeout)
        return self._status

    def reaped(self, status: int) -> None:
        """The caller reaped the init itself (a shim's waitpid(-1) loop): remember its status so
        that wait_status() and delete() do not wait for a child that is gone."""
        self._status = status
        self.record.exit_status = status

    def wait(self, timeout: float | None = None) -> int | None:
        status = self.wait_status(timeout)
        return None if status is None else _exit_code(status)


def exec_process(
    container: Container | str,
    proc: dict[str, Any],
    *,
    stdio: tuple[int, int, int] | None = None,
    terminal: bool | None = None,
    extra_fds: tuple[int, ...] | list[int] = (),
) -> ExecProcess:
    """Run `proc` (an OCI process object) inside a running container; see the docstring."""
    c = Container(container, state.load(container)) if isinstance(container, str) else container
    current = c.status()
    if current != "running":
        raise ContainerError(f"cannot exec in a {current} container: {c.id}")
    proc = dict(proc)
    if terminal is not None:
        proc["terminal"] = terminal
    if not proc.get("args"):
        raise ContainerError("process.args must not be empty")
    try:
        caps.CapSets.from_spec(proc.get("capabilities"))
        program = seccomp.compile_profile(c.record.seccomp) if c.record.seccomp else None
    except (ValueError, caps.CapabilityError) as e:
        raise ContainerError(str(e)) from e
    process.validate_rlimits(proc.get("rlimits"))
    plan = containerinit.Plan(
        spec={}, bundle=c.bundle, rootfs="/", ns={}, cgroup=None, seccomp=program, terminal=False
    )
    plan.stdio, plan.extra_fds = stdio, list(extra_fds)
    cg = c.cgroup if c.cgroup.exists() else None
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    console = None
    try:
        with namespaces.for_children("pid", f"/proc/{c.pid}/ns/pid", False), _time_ns_of(c.pid):
            child = os.fork()
            if child == 0:  # pragma: no cover
                try:
                    ours.close()
                    containerinit.run_exec(c.pid, proc, cg, program, plan, theirs)
                finally:
                    os._exit(1)
        theirs.close()
        with ours:
            while True:
                data, fd = process.recv_message(ours)
                if not data:
                    return ExecProcess(child, console)  # the socket closed on exec: it runs
                msg = json.loads(data)
                if msg.get("type") == "console" and fd is not None:
                    console = fd
                elif msg.get("type") == "error":
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(child, 0)
                    raise process.error_from_payload(msg["error"])
    except BaseException:
        if console is not None:
            os.close(console)
        raise
    finally:
        with contextlib.suppress(OSError):
            theirs.close()


def _time_ns_of(pid: int) -> contextlib.AbstractContextManager[None]:
    path = f"/proc/{pid}/ns/time"
    try:
        differs = os.stat(path).st_ino != os.stat("/proc/self/ns/time").st_ino
    except OSError:
        differs = False
    return namespaces.for_children("time", path, False) if differs else contextlib.nullcontext()
