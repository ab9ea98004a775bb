"""Driving an installed OCI runtime binary (runc, crun) for a shim, as containerd's runc shim does.

    rt = Binary(path, name, state_root, container_id, work_dir)
    pid, console = rt.create(bundle, stdio=(in, out, err) or None for a terminal)
    rt.start()
    pid, console = rt.exec(process_spec, stdio=…, terminal=…)   # `<rt> exec --detach`
    rt.pause(); rt.resume(); rt.kill(sig, all=False); rt.delete(force=True)

Every call runs `<rt> --root <state_root> --log <work_dir>/runtime.log --log-format json …` to
completion in a child of the caller (no `subprocess`: a shim is a forked, single-threaded
process). Without a terminal the runtime's stdio is the container's stdio, so its own words go
to the log file, whose last error becomes the ContainerError's message (exit code 126/127 by
docker's rules). The container's init (and an exec'd process) outlives the runtime and is
re-parented to the caller, which must be a child subreaper to reap it.

crun 1.8 and cgroups in hybrid mode (v1 controllers, cgroup2 at /sys/fs/cgroup/unified): crun
refuses every container while cgroup2 holds a controller ("cgroups in hybrid mode not supported,
drop all controllers from cgroupv2"; a fresh machine of our class has hugetlb there), and it
checks that before it looks at `--cgroup-manager`, so `disabled` does not help. What it checks
is its own view of /sys/fs/cgroup: so crun runs in a mount namespace of its own (a slave of the
host's, gone when crun exits) where /sys/fs/cgroup is a fresh tmpfs holding only the v1
hierarchies (bind mounts of the host's). crun then sees legacy cgroup v1, manages the
container's v1 cgroups at the same host paths as runc and our runtime would, and mounts v1
cgroups in the container. Nothing outside that namespace changes, so nothing is left to undo
and other users of the host (a hugetlb hierarchy bound by someone else, docker, podman) are
not touched. runc 1.1 supports hybrid mode itself and runs in the host's mount namespace.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import tempfile
from typing import Any

from . import process, syscalls
from .process import ContainerError

EXTERNAL = ("runc", "crun")
CGROUP_ROOT = "/sys/fs/cgroup"


def find(name: str) -> str | None:
    """The binary of an external runtime on PATH (or in the sbin directories root has)."""
    if name not in EXTERNAL:
        return None
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(name, path=path)


def hybrid_cgroups() -> bool:
    """/sys/fs/cgroup is a tmpfs of v1 hierarchies with cgroup2 mounted at `unified`."""
    try:
        return _fs_type(CGROUP_ROOT) == "tmpfs" and _fs_type(CGROUP_ROOT + "/unified") == "cgroup2"
    except OSError:
        return False


def _fs_type(path: str) -> str | None:
    """The type of the file system mounted exactly at `path`, from our mountinfo."""
    with open("/proc/self/mountinfo") as f:
        found = None
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and fields[4] == path:
                found = right.split()[0]  # the last mount on a path is the visible one
    return found


def _v1_view() -> tuple[list[str], dict[str, str]]:
    """What a v1-only /sys/fs/cgroup holds: the names of the host's v1 hierarchies mounted
    directly under it, and its symlinks (cpu → cpu,cpuacct on systemd hosts)."""
    mounts, links = [], {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            if right.split()[:1] == ["cgroup"] and os.path.dirname(point) == CGROUP_ROOT:
                mounts.append(os.path.basename(point))
    for name in os.listdir(CGROUP_ROOT):
        path = os.path.join(CGROUP_ROOT, name)
        if os.path.islink(path):
            links[name] = os.readlink(path)
    return sorted(set(mounts)), links


def _enter_v1_view(mounts: list[str], links: dict[str, str]) -> None:
    """In the child, before exec: a private /sys/fs/cgroup without cgroup2 (see the docstring)."""
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
    fds = {
        name: os.open(os.path.join(CGROUP_ROOT, name), os.O_PATH | os.O_DIRECTORY)
        for name in mounts
    }
    flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
    syscalls.mount("tmpfs", CGROUP_ROOT, "tmpfs", flags, "mode=755")
    for name, fd in fds.items():
        target = os.path.join(CGROUP_ROOT, name)
        os.mkdir(target)
        syscalls.mount(f"/proc/self/fd/{fd}", target, None, syscalls.MS_BIND | syscalls.MS_REC)
        os.close(fd)
    for name, dest in links.items():
        os.symlink(dest, os.path.join(CGROUP_ROOT, name))


def needs_v1_view(name: str) -> bool:
    """Whether runtime `name` must run in a v1-only view of the cgroups (see the docstring)."""
    return name == "crun" and hybrid_cgroups()


def enter_v1_view() -> None:
    """Enter a private mount namespace with a v1-only /sys/fs/cgroup, for a process about to
    exec crun (a subprocess preexec_fn, say)."""
    _enter_v1_view(*_v1_view())


class Binary:
    """One container under an external runtime; see the module docstring."""

    def __init__(
        self, path: str, name: str, state_root: str, container_id: str, work_dir: str
    ) -> None:
        self.path, self.name, self.id = path, name, container_id
        self.state_root = state_root
        self.work_dir = work_dir
        # Beside the runtime's own state, not in work_dir: the daemon may remove that as soon
        # as the exit is recorded, while the shim still has to `delete`.
        self.log = os.path.join(state_root, f"{container_id}.log")
        self.view = _v1_view() if needs_v1_view(name) else None
        self.execs = 0

    # -- running the binary --------------------------------------------------------------------
    def run(self, *args: str, stdio: tuple[int, int, int] | None = None) -> None:
        """`<rt> --root … <args>` to completion; ContainerError with its message if it fails."""
        os.makedirs(self.state_root, mode=0o711, exist_ok=True)
        argv = [self.path, "--root", self.state_root, "--log", self.log, "--log-format", "json"]
        argv += args
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.log)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        fds = stdio or (null, null, null)
        view = self.view
        pid = os.fork()
        if pid == 0:  # pragma: no cover - ends in execv or _exit
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                    signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)  # dup2 leaves the copy inheritable
                syscalls.close_range_cloexec(3)
                if view is not None:
                    _enter_v1_view(*view)
                os.execv(self.path, argv)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.write(2, f"{self.name}: {exc}\n".encode())
            finally:
                os._exit(127)
        os.close(null)
        _, status = _waitpid(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise ContainerError(self._error(code))

    def _error(self, code: int) -> str:
        """The runtime's last error from its log, or how it ended."""
        message = ""
        try:
            with open(self.log, errors="replace") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        entry = {"msg": line.strip(), "level": "error"}
                    if entry.get("level") in ("error", "fatal") and entry.get("msg"):
                        message = str(entry["msg"])
        except OSError:
            pass
        if not message:
            return f"{self.name} exited with status {code}"
        # crun ends with C's strerror ("No such file or directory"); runc, our runtime and the
        # rules that turn a message into exit code 126/127 (docker's CLI and moby) use Go's.
        for err in (errno.ENOENT, errno.EACCES, errno.EISDIR, errno.ENOTDIR):
            message = message.replace(os.strerror(err), process.go_strerror(err))
        return message

    # -- the operations -------------------------------------------------------------------------
    def create(self, bundle: str, stdio: tuple[int, int, int] | None) -> tuple[int, int | None]:
        """`create`: the init exists and waits for `start`; its pid and, with a terminal
        (stdio None), the pty master."""
        pid_file = os.path.join(self.work_dir, "init.pid")
        with _console(stdio is None) as console:
            extra = ["--console-socket", console.path] if console.path else []
            self.run(
                "create", "--bundle", bundle, *extra, "--pid-file", pid_file, self.id, stdio=stdio
            )
            master = console.receive()
        return _read_pid(pid_file), master

    def start(self) -> None:
        self.run("start", self.id)

    def exec(
        self, proc: dict[str, Any], stdio: tuple[int, int, int] | None, terminal: bool
    ) -> tuple[int, int | None]:
        """`exec --detach`: a process in the running container, its pid (and pty master)."""
        self.execs += 1
        spec_path = os.path.join(self.work_dir, f"exec-{self.execs}.json")
        pid_file = os.path.join(self.work_dir, f"exec-{self.execs}.pid")
        with open(spec_path, "w") as f:
            json.dump(dict(proc, terminal=terminal), f)
        try:
            with _console(terminal) as console:
                extra = ["--console-socket", console.path] if console.path else []
                self.run(
                    "exec",
                    "--detach",
                    "--pid-file",
                    pid_file,
                    "--process",
                    spec_path,
                    *extra,
                    self.id,
                    stdio=None if terminal else stdio,
                )
                master = console.receive()
            return _read_pid(pid_file), master
        except ContainerError as exc:  # docker's exec rules: 127 not found, else 126
            code = 127 if process.docker_exit_code(exc.message) == 127 else 126
            # The daemon says "exec failed: unable to start container process: " itself.
            message = exc.message.removeprefix("exec failed: unable to start container process: ")
            raise ContainerError(message, code) from None
        finally:
            for path in (spec_path, pid_file):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def pause(self) -> None:
        self.run("pause", self.id)

    def resume(self) -> None:
        self.run("resume", self.id)

    def kill(self, sig: int = signal.SIGTERM, all: bool = False) -> None:
        self.run("kill", *(["--all"] if all else []), self.id, str(int(sig)))

    def delete(self, force: bool = False) -> None:
        self.run("delete", *(["--force"] if force else []), self.id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.log)


def _waitpid(pid: int) -> tuple[int, int]:
    while True:
        try:
            return os.waitpid(pid, 0)
        except InterruptedError:
            continue


def _read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


class _Console:
    """A `--console-socket` for the runtime, in a short temporary directory (a unix socket
    path must fit in 108 bytes, and the runtime connects to it by name)."""

    def __init__(self, wanted: bool) -> None:
        self.dir = tempfile.mkdtemp(prefix="dy-pty-") if wanted else None
        self.path = os.path.join(self.dir, "pty.sock") if self.dir else ""
        self.listener: socket.socket | None = None
        if self.path:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self.listener.bind(self.path)
            self.listener.listen(1)

    def receive(self) -> int | None:
        """The pty master the runtime sent (it connected and sent before it exited)."""
        if self.listener is None:
            return None
        self.listener.settimeout(5)
        conn, _ = self.listener.accept()
        with conn:
            _, fd = process.recv_message(conn)
        if fd is None:
            raise ContainerError(f"{self.path}: the runtime sent no terminal")
        return fd

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def _console(wanted: bool) -> Any:
    console = _Console(wanted)
    try:
        yield console
    finally:
        console.close()
