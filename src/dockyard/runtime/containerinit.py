"""The child side: what a freshly forked process does to become a container's init or an exec.

Both functions run in the child of `os.fork()` and never return: they end in execve or in
`os._exit`. Before the container is "created" they report over `sock` (a SOCK_SEQPACKET
socketpair to the caller), one JSON message a packet:

  {"type": "hooks"}             rootfs is mounted: run prestart/createRuntime, answer "go"
  {"type": "console", ...}      with the pty master attached (SCM_RIGHTS)
  {"type": "ready"}             set up and blocked before exec (the caller writes state)
  {"type": "error", "error": …} then _exit(1)

After "ready" the init opens the exec FIFO for writing (which blocks until `start` opens it for
reading), writes "0", and execs. The FIFO is close-on-exec: EOF tells `start` the exec
happened; if execve fails the error JSON follows the "0" and the init exits with 126/127.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

from . import mounts, namespaces, process, syscalls
from .cgroups import Cgroup
from .process import ContainerError
from .state import run_hooks

# Signals a created-but-not-started init should die of. PID 1 of a namespace ignores signals it
# has no handler for, so without these `kill ID TERM` on a created container would do nothing.
_FATAL = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


@dataclass
class Plan:
    """Everything the child needs, computed and validated by the caller before fork."""

    spec: dict[str, Any]
    bundle: str
    rootfs: str
    ns: dict[str, str | None]
    cgroup: Cgroup | None
    seccomp: tuple[bytes, int] | None
    terminal: bool
    stdio: tuple[int, int, int] | None = None
    extra_fds: list[int] = field(default_factory=list)
    hooks_sync: bool = False
    container_id: str = ""
    cpus: set[int] = field(default_factory=set)  # the caller's CPU affinity, restored on exec
    # Die (SIGKILL) if the creator dies before start: a shim wants that, the CLI's `create`
    # (whose process exits at once, by contract) does not.
    die_with_creator: bool = False


def _reset_signals() -> None:
    # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive execve: a container
    # process must start with default dispositions (`yes | head` has to end).
    for sig in range(1, 32):  # Python never touches real-time signals
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if sig in _FATAL:
                signal.signal(sig, _die)
            elif signal.getsignal(sig) is not signal.SIG_DFL:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            continue
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _die(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


def _place_fds(plan: Plan, keep: list[int]) -> list[int]:
    """Put stdio on 0-2 and extra fds on 3.. ; first move our own fds out of the way."""
    floor = 3 + len(plan.extra_fds) + 16
    moved = [fcntl_dupfd(fd, floor) for fd in keep]
    sources = list(plan.stdio or ()) + list(plan.extra_fds)
    high = [fcntl_dupfd(fd, floor) for fd in sources]
    targets = ([0, 1, 2] if plan.stdio else []) + list(range(3, 3 + len(plan.extra_fds)))
    for src, dst in zip(high, targets, strict=True):
        os.dup2(src, dst, inheritable=True)
    for fd in high:
        os.close(fd)
    return moved


def _close_others(keep: set[int]) -> None:
    """Close what we inherited from our creator (its sockets, its other containers' pipes):
    while we wait for start, an fd held here would keep a peer of the creator waiting."""
    high = max(keep) + 1
    start = 0
    for fd in sorted(keep):
        if fd > start:
            os.closerange(start, fd)
        start = fd + 1
    os.closerange(high, 65536)


def fcntl_dupfd(fd: int, floor: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _send(sock: socket.socket, message: dict[str, Any], fd: int | None = None) -> None:
    data = json.dumps(message).encode()
    if fd is None:
        sock.send(data)
    else:
        process.send_fd(sock, fd, data)


def run_init(plan: Plan, sock: socket.socket, fifo_fd: int) -> None:
    """Become the container's init. Never returns."""
    fifo = None
    try:
        gc.disable()  # a collection would touch every object: copy-on-write faults galore
        _reset_signals()
        # Until the exec, we die with our creator: an init whose creator is gone would wait
        # for a start that never comes (cleared again right before the exec).
        if plan.die_with_creator:
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        # detach(): the old socket object must not close its fd number later, which dup2 may
        # by then have reused for stdio.
        sock_fd, fifo_fd = _place_fds(plan, [sock.detach(), fifo_fd])
        _close_others({sock_fd, fifo_fd, *range(3 + len(plan.extra_fds))})
        # Our own fd directory, opened now: after pivot_root the FIFO's path is out of reach
        # and the container may have no /proc of its own. Closed before exec.
        fd_dir = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        sock = socket.socket(fileno=sock_fd)
        spec, linux = plan.spec, plan.spec.get("linux") or {}
        proc = spec.get("process") or {}
        # The caller makes our cgroup ("mk"), then moves us into it ("cg") meanwhile: the
        # first cgroup migration after a quiet spell waits for an RCU grace period (10-15 ms
        # here), so we mount while it waits. We need its directories for the cgroup binds,
        # and to be in it before a new cgroup namespace is rooted there, or before the exec.
        cgroup = _CgroupSync(sock)
        if plan.ns.get("cgroup", "") is None:
            cgroup.joined()  # the new cgroup namespace is rooted where we are
        namespaces.enter(plan.ns)
        if plan.ns.get("network", "") is None:
            namespaces.loopback_up()
        os.umask(0)
        mount_ns = "mount" in plan.ns
        if mount_ns:
            root_flag = mounts.prepare_root(plan.rootfs, linux.get("rootfsPropagation"))
            cgroupns = "cgroup" in plan.ns
            needs_dev = True
            for m in spec.get("mounts") or ():
                if m.get("type") == "cgroup":
                    cgroup.made()  # its binds need the cgroup directories
                mounts.mount_one(
                    plan.rootfs, m, bundle=plan.bundle, cgroup=plan.cgroup, cgroupns=cgroupns
                )
                if os.path.normpath(m.get("destination", "")) == "/dev" and _is_bind(m):
                    needs_dev = False  # the caller brings its own /dev
            if needs_dev:
                mounts.setup_dev(plan.rootfs, linux.get("devices"))
        if plan.hooks_sync:
            cgroup.joined()  # messages arrive in order: "cg" comes before "go"
            _send(sock, {"type": "hooks"})
            if sock.recv(64) != b"go":
                os._exit(1)
        hooks = spec.get("hooks") or {}
        if hooks.get("createContainer"):
            run_hooks("createContainer", hooks["createContainer"], _hook_state(plan, "created"))
        if mount_ns:
            mounts.pivot(plan.rootfs)
            mounts.apply_root_propagation(root_flag)
        else:
            mounts.chroot_only(plan.rootfs)
        cwd = proc.get("cwd") or "/"
        if not os.path.lexists(cwd):  # as runc; a non-directory fails at chdir with its errno
            os.makedirs(cwd, mode=0o755, exist_ok=True)
        if plan.terminal:
            _setup_console(sock, proc)
        if mount_ns:
            mounts.finalize(
                spec.get("mounts") or [], bool((spec.get("root") or {}).get("readonly"))
            )
        os.umask(0o022)
        if spec.get("hostname"):
            syscalls.sethostname(spec["hostname"])
        if spec.get("domainname"):
            syscalls.setdomainname(spec["domainname"])
        namespaces.write_sysctls(linux.get("sysctl"))
        if mount_ns:
            mounts.readonly_paths(linux.get("readonlyPaths"))
            mounts.mask_paths(linux.get("maskedPaths"))
        syscalls.close_range_cloexec(3 + len(plan.extra_fds))
        cgroup.joined()
        if plan.cpus:
            os.sched_setaffinity(0, plan.cpus)
        if proc:
            executable, env = process.finalize(proc, plan.seccomp)
        _send(sock, {"type": "ready"})
        sock.close()
        sock = None  # type: ignore[assignment]
        # Blocks until `start` opens the FIFO for reading: reopening our O_PATH fd of it.
        fifo = os.open(str(fifo_fd), os.O_WRONLY | os.O_CLOEXEC, dir_fd=fd_dir)
        os.close(fifo_fd)
        os.close(fd_dir)
        os.write(fifo, b"0")
        if hooks.get("startContainer"):
            run_hooks("startContainer", hooks["startContainer"], _hook_state(plan, "created"))
        if not proc:  # a spec may leave process out; then `start` MUST fail
            raise ContainerError("process is not set in config.json: nothing to start")
        process.execve(executable, proc.get("args") or [], env)
    except BaseException as exc:  # everything is reported, then _exit
        _report(exc, sock, fifo)
    os._exit(1)


def _expect(sock: socket.socket, word: bytes) -> bool:
    if sock.recv(64) != word:
        os._exit(1)  # the caller gave up on us
    return True


class _CgroupSync:
    """The caller's two cgroup messages, "mk" then "cg", each awaited at most once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.state = 0  # 0: nothing yet, 1: made, 2: joined

    def made(self) -> None:
        if self.state < 1:
            _expect(self.sock, b"mk")
            self.state = 1

    def joined(self) -> None:
        self.made()
        if self.state < 2:
            _expect(self.sock, b"cg")
            self.state = 2


def _is_bind(m: dict[str, Any]) -> bool:
    return m.get("type") == "bind" or bool({"bind", "rbind"} & set(m.get("options") or ()))


def _setup_console(sock: socket.socket, proc: dict[str, Any]) -> None:
    master, slave = process.open_pty(proc.get("consoleSize"))
    _send(sock, {"type": "console", "name": slave}, master)
    os.close(master)
    process.become_terminal_session(slave)
    # /dev/console is the container's terminal too (runtime-spec "Default Devices").
    if os.path.isdir("/dev"):
        try:
            if not os.path.exists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            syscalls.mount(slave, "/dev/console", None, syscalls.MS_BIND)
        except OSError:
            pass  # a read-only /dev: the container still has its pty on 0-2


def _hook_state(plan: Plan, status: str) -> dict[str, Any]:
    return {
        "ociVersion": "1.2.0",
        "id": plan.container_id,
        "status": status,
        "pid": os.getpid(),
        "bundle": plan.bundle,
        "annotations": plan.spec.get("annotations") or {},
    }


def _report(exc: BaseException, sock: socket.socket | None, fifo: int | None) -> None:
    """Send the error to whoever listens, then exit. Nothing here may import: after
    pivot_root the caller's sys.path is gone."""
    code = 1
    try:
        payload = process.error_payload(exc)
        if fifo is not None:
            code = payload.get("code") or 1
            os.write(fifo, json.dumps(payload).encode())
        elif sock is not None:
            _send(sock, {"type": "error", "error": payload})
        else:
            os.write(2, f"dockyard-runtime: {payload['message']}\n".encode())
    except BaseException:
        pass
    os._exit(code)


def run_exec(
    init_pid: int,
    proc: dict[str, Any],
    cgroup: Cgroup | None,
    seccomp: tuple[bytes, int] | None,
    plan: Plan,
    sock: socket.socket,
) -> None:
    """Become a new process in a running container (`docker exec`). Never returns.

    The caller already put us in the init's PID namespace (we are its child, forked there).
    """
    try:
        gc.disable()
        _reset_signals()
        for sig in _FATAL:
            signal.signal(sig, signal.SIG_DFL)  # not PID 1: default dispositions are right
        (sock_fd,) = _place_fds(plan, [sock.detach()])
        sock = socket.socket(fileno=sock_fd)
        if cgroup is not None:
            cgroup.join(0)
        fds = []
        try:
            for name, flag in _EXEC_NS:
                path = f"/proc/{init_pid}/ns/{name}"
                if os.path.exists(path) and not _same_ns(path, f"/proc/self/ns/{name}"):
                    fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag))
            for fd, flag in fds:
                syscalls.setns(fd, flag)
        finally:
            for fd, _ in fds:
                os.close(fd)
        os.chdir("/")
        if proc.get("terminal"):
            _setup_console(sock, proc)
        syscalls.close_range_cloexec(3 + len(plan.extra_fds))
        executable, env = process.finalize(proc, seccomp)
        sock.close()
        sock = None  # type: ignore[assignment]
        process.execve(executable, proc.get("args") or [], env)
    except BaseException as exc:
        _report(exc, sock, None)
    os._exit(1)


# Mount last: once in it, /proc/<pid> paths would resolve in the container's /proc.
_EXEC_NS = (
    ("cgroup", syscalls.CLONE_NEWCGROUP),
    ("ipc", syscalls.CLONE_NEWIPC),
    ("uts", syscalls.CLONE_NEWUTS),
    ("net", syscalls.CLONE_NEWNET),
    ("mnt", syscalls.CLONE_NEWNS),
)


def _same_ns(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
