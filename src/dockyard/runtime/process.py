"""The last steps before execve, shared by a container's init and `exec_process`.

Order (runc's finalizeNamespace): rlimits and oom_score_adj as root; no_new_privs; seccomp
early when no_new_privs is off (loading it then needs CAP_SYS_ADMIN); chdir (first as root, once
more after the user switch if that was refused); the bounding set dropped; PR_SET_KEEPCAPS so
the permitted set survives setresuid; setgroups, setresgid, setresuid; capset and the ambient
set; seccomp late when no_new_privs is on; the executable looked up with Go's exec.LookPath rules
(so the error texts are the ones runc prints and docker classifies); execve.

Errors a caller must be able to classify are `ExecError`s carrying docker's exit code:
  exec: "nosuch": executable file not found in $PATH        127
  exec: "/nosuch": stat /nosuch: no such file or directory  127
  exec: "/etc": permission denied                           126
  chdir to cwd ("/x") set in config.json failed: …          126 for EACCES, 127 for ENOENT…
using docker's own rule (cli/command/container/run.go and moby's start error translation):
"executable file not found" or "no such file or directory" -> 127, "permission denied" or
"is a directory" -> 126, anything else -> 125 (a daemon error).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import socket
import stat
import struct
import termios
from typing import Any

from . import caps, syscalls

# docker exit codes for a container that could not be started
EXIT_NOT_FOUND = 127
EXIT_CANNOT_INVOKE = 126
EXIT_DAEMON_ERROR = 125


def docker_exit_code(message: str) -> int:
    """The exit code `docker run` reports for a start error with this message."""
    if "executable file not found" in message or "no such file or directory" in message:
        return EXIT_NOT_FOUND
    if "permission denied" in message or "is a directory" in message:
        return EXIT_CANNOT_INVOKE
    return EXIT_DAEMON_ERROR


class ContainerError(Exception):
    """Creating or starting a container failed; `message` is runc-style text."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = docker_exit_code(message) if exit_code is None else exit_code


class ExecError(ContainerError):
    """The user's program could not be run (lookup, chdir or execve failed)."""


def go_strerror(err: int) -> str:
    """Go prints errno text in lower case ("no such file or directory"); runc's texts do too."""
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


def error_payload(exc: BaseException) -> dict[str, Any]:
    """What a child sends back over its error channel before exiting."""
    if isinstance(exc, ContainerError):
        return {"message": exc.message, "exec": isinstance(exc, ExecError), "code": exc.exit_code}
    if isinstance(exc, OSError) and exc.errno:
        where = f" {exc.filename}" if exc.filename else ""
        msg = exc.strerror if exc.strerror and ":" in exc.strerror else go_strerror(exc.errno)
        return {"message": f"{msg}{where}", "exec": False, "code": None}
    return {"message": f"{type(exc).__name__}: {exc}", "exec": False, "code": None}


def error_from_payload(payload: dict[str, Any]) -> ContainerError:
    cls = ExecError if payload.get("exec") else ContainerError
    return cls(payload["message"], payload.get("code"))


# -- environment and lookup ---------------------------------------------------------------------
def prepare_env(env: list[str] | None, uid: int) -> list[str]:
    """Deduplicate (the last value wins, first position kept) and add HOME from /etc/passwd."""
    seen: dict[str, str] = {}
    for kv in env or ():
        key, sep, _ = kv.partition("=")
        if not sep or not key:
            raise ContainerError(f"invalid environment variable {kv!r}: missing '=' or name")
        if "\0" in kv:
            raise ContainerError(f"invalid environment variable {key!r}: contains nul byte")
        seen[key] = kv
    if not seen.get("HOME", "HOME=").partition("=")[2]:
        seen.pop("HOME", None)
        seen["HOME"] = "HOME=" + _home_of(uid)
    return list(seen.values())


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2].strip() == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def lookup(name: str, env: list[str]) -> str:
    """Go's exec.LookPath against the container's PATH, with runc's error texts."""
    if "/" in name:
        err = _find_executable(name)
        if err:
            raise ExecError(f'exec: "{name}": {err}')
        return name
    path = next((kv[5:] for kv in reversed(env) if kv.startswith("PATH=")), "")
    for d in path.split(":"):
        candidate = os.path.join(d or ".", name)
        if _find_executable(candidate) is None:
            return candidate
    raise ExecError(f'exec: "{name}": executable file not found in $PATH')


def _find_executable(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError as e:
        return f"stat {path}: {go_strerror(e.errno or errno.ENOENT)}"
    if stat.S_ISDIR(st.st_mode) or not _may_execute(st):
        return go_strerror(errno.EACCES)
    return None


def _may_execute(st: os.stat_result) -> bool:
    """X_OK for our effective ids, worked out here rather than by faccessat2(2): seccomp
    profiles older than that syscall answer EPERM for it (Go's LookPath falls back the same
    way)."""
    mode = st.st_mode
    if os.geteuid() == 0:
        return bool(mode & 0o111)
    if st.st_uid == os.geteuid():
        return bool(mode & 0o100)
    if st.st_gid == os.getegid() or st.st_gid in os.getgroups():
        return bool(mode & 0o010)
    return bool(mode & 0o001)


# -- limits, user, capabilities ----------------------------------------------------------------
RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}


def validate_rlimits(rlimits: list[dict[str, Any]] | None) -> None:
    for r in rlimits or ():
        if r.get("type") not in RLIMITS:
            raise ContainerError(f"unknown rlimit type {r.get('type')!r}")
        soft, hard = (min(int(r.get(k, 0)), 2**64) for k in ("soft", "hard"))
        if soft > hard:
            raise ContainerError(
                f"rlimit {r['type']}: soft limit {soft} is above the hard limit {hard}"
            )


def _rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value >= 2**63 or value < 0 else value


def apply_rlimits(rlimits: list[dict[str, Any]] | None) -> None:
    """setrlimit each; a hard limit above ours is clamped to ours rather than failing.

    Raising a hard limit needs CAP_SYS_RESOURCE, which this machine class does not give even to
    root (hard RLIMIT_NOFILE 20000): runc and crun fail there when podman asks for 1048576.
    We keep the container running with the highest limit the host allows instead.
    """
    for r in rlimits or ():
        which = RLIMITS[r["type"]]
        soft, hard = _rlim(r.get("soft", 0)), _rlim(r.get("hard", 0))
        try:
            resource.prlimit(0, which, (soft, hard))
        except (ValueError, PermissionError):
            _, our_hard = resource.prlimit(0, which)
            if our_hard != resource.RLIM_INFINITY:
                hard = our_hard if hard == resource.RLIM_INFINITY else min(hard, our_hard)
                soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
            resource.prlimit(0, which, (soft, hard))


def write_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def fix_stdio_owner(uid: int) -> None:
    """Let a non-root container user use its own stdio (a pty slave we made is root's)."""
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
            if st.st_uid == uid or (stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)):
                continue
            os.fchown(fd, uid, -1)
        except OSError:
            continue  # a closed fd, a file we may not chown, a read-only /dev: leave it


def finalize(process: dict[str, Any], seccomp: tuple[bytes, int] | None) -> tuple[str, list[str]]:
    """Apply user, capabilities, no_new_privs, seccomp and cwd; return (executable, env)."""
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    nnp = bool(process.get("noNewPrivileges"))
    sets = caps.CapSets.from_spec(process.get("capabilities"))
    apply_rlimits(process.get("rlimits"))
    write_oom_score_adj(process.get("oomScoreAdj"))
    if nnp:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    cwd = process.get("cwd") or "/"
    retry_chdir = False
    try:
        os.chdir(cwd)
        _verify_cwd()  # before seccomp: a profile may deny getcwd (runtime-tools' does)
    except PermissionError:
        retry_chdir = True  # maybe only the container user may enter it
    except OSError as e:
        raise _chdir_error(cwd, e) from e
    env = prepare_env(process.get("env"), uid)
    if seccomp and not nnp:
        # Without no_new_privs loading a filter needs CAP_SYS_ADMIN: now, while we have it.
        syscalls.seccomp_set_filter(*seccomp)
    caps.drop_bounding(sets)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    fix_stdio_owner(uid)
    groups = [int(g) for g in user.get("additionalGids") or ()]
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if retry_chdir:
        try:
            os.chdir(cwd)
        except OSError as e:
            raise _chdir_error(cwd, e) from e
        _verify_cwd()
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
    caps.apply(sets)
    if "umask" in user:
        os.umask(int(user["umask"]))
    args = process.get("args") or []
    if not args:
        raise ContainerError("process.args must not be empty")
    executable = lookup(args[0], env)
    if nnp and seccomp:
        syscalls.seccomp_set_filter(*seccomp)
    return executable, env


def _chdir_error(cwd: str, e: OSError) -> ExecError:
    return ExecError(
        f'chdir to cwd ("{cwd}") set in config.json failed: {go_strerror(e.errno or 0)}'
    )


def _verify_cwd() -> None:
    # getcwd(2) says "(unreachable)" when cwd is outside our root: a leaked host directory
    # (CVE-2024-21626); Python raises FileNotFoundError for that.
    try:
        ok = os.getcwd().startswith("/")
    except FileNotFoundError:
        ok = False
    if not ok:
        raise ContainerError(
            "current working directory is outside of container mount namespace root"
        )


def execve(executable: str, args: list[str], env: list[str]) -> None:
    """execve; on failure raise an ExecError whose code follows the shell's 126/127 rule."""
    with contextlib.suppress(OSError):  # the creator's death no longer concerns the program
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, 0)
    try:
        os.execve(executable, args, dict(kv.split("=", 1) for kv in env))
    except OSError as e:
        err = e.errno or errno.EIO
        code = EXIT_NOT_FOUND if err == errno.ENOENT else EXIT_CANNOT_INVOKE
        raise ExecError(f"exec {executable}: {go_strerror(err)}", code) from e


# -- terminal -----------------------------------------------------------------------------------
_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430


def open_pty(console_size: dict[str, int] | None) -> tuple[int, str]:
    """A new pty pair from the container's own devpts instance: (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, struct.pack("I", 0)))[0]
    if console_size and console_size.get("height") and console_size.get("width"):
        winsize = struct.pack("HHHH", console_size["height"], console_size["width"], 0, 0)
        fcntl.ioctl(master, termios.TIOCSWINSZ, winsize)
    return master, f"/dev/pts/{number}"


def become_terminal_session(slave_path: str) -> None:
    """setsid, the slave as stdin/stdout/stderr, and it as our controlling terminal."""
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def send_fd(sock: socket.socket, fd: int, payload: bytes) -> None:
    """One message with `fd` attached (SCM_RIGHTS), the way runc hands the pty master to
    --console-socket (its payload there is the pty's name)."""
    sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])


def recv_message(sock: socket.socket) -> tuple[bytes, int | None]:
    """One message and the fd attached to it, if any (made close-on-exec)."""
    msg, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(struct.calcsize("i")))
    fd = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fd = struct.unpack("i", data[: struct.calcsize("i")])[0]
            os.set_inheritable(fd, False)
    return msg, fd
