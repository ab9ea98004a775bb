"""Namespaces: which to create or join, the PID-namespace trick, loopback, hostname, sysctls.

PID (and time) namespaces apply to the *children* of the process that unshares or joins them.
So the caller of `create()` enters them itself for one `fork()` only (`for_children`): it
unshares CLONE_NEWPID (or setns to the `path` given), forks — the child is PID 1 of the new
namespace and still the caller's own child, so the caller can waitpid() it without a
subreaper — and immediately setns back to its own namespace. Both calls touch only the calling
thread's `pid_for_children`, so other threads of a shim are not affected.

All other namespaces are entered by the child itself (`enter`): first every `path` is opened and
joined, then the new ones are unshared in one call. User namespaces are not supported.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

from . import syscalls
from .syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)

FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}


class NamespaceError(ValueError):
    pass


def parse(namespaces: list[dict[str, Any]] | None) -> dict[str, str | None]:
    """{type: path or None (a new one)}; rejects unknown and duplicate types."""
    out: dict[str, str | None] = {}
    for ns in namespaces or ():
        kind = ns.get("type", "")
        if kind not in FLAGS:
            raise NamespaceError(f"namespace type {kind!r} is not supported")
        if kind in out:
            raise NamespaceError(f"duplicate namespace {kind!r}")
        if kind == "user":
            raise NamespaceError("user namespaces are not supported by dockyard-runtime")
        out[kind] = ns.get("path") or None
    return out


@contextlib.contextmanager
def for_children(kind: str, path: str | None, new: bool) -> Iterator[None]:
    """Put this thread's *children* into a new (or the given) pid/time namespace, then undo."""
    if not new and path is None:
        yield
        return
    flag = FLAGS[kind]
    own = os.open(f"/proc/thread-self/ns/{PROC_NAMES[kind]}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if path is not None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, flag)
            finally:
                os.close(fd)
        else:
            syscalls.unshare(flag)
        try:
            yield
        finally:
            syscalls.setns(own, flag)
    finally:
        os.close(own)


def enter(spec: dict[str, str | None]) -> None:
    """In the child: join the namespaces given by path, then unshare the new ones."""
    joins = []
    try:
        for kind, path in spec.items():
            if kind in ("pid", "time") or path is None:
                continue
            joins.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), FLAGS[kind], path))
        # Mount namespace last: joining it changes how later paths would resolve (they are all
        # open already, but keep runc's order for the benefit of anyone reading /proc).
        joins.sort(key=lambda j: j[1] == CLONE_NEWNS)
        for fd, flag, path in joins:
            try:
                syscalls.setns(fd, flag)
            except OSError as e:
                raise OSError(
                    e.errno, f"joining namespace {path}: {os.strerror(e.errno or 0)}"
                ) from e
    finally:
        for fd, _, _ in joins:
            os.close(fd)
    flags = 0
    for kind, path in spec.items():
        if path is None and kind not in ("pid", "time"):
            flags |= FLAGS[kind]
    if flags:
        syscalls.unshare(flags)


def loopback_up() -> None:
    """Bring `lo` up in a new network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS on a socket)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), siocgifflags, req))[1]
        fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


_IPC_SYSCTLS = {
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
}


def check_sysctls(sysctls: dict[str, str] | None, ns: dict[str, str | None]) -> None:
    """A sysctl is only allowed when it is namespaced and that namespace is the container's own
    (otherwise writing it would change the host): runc's rule."""
    for key in sysctls or {}:
        name = key.replace("/", ".")
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            need = "ipc"
        elif name.startswith("net."):
            need = "network"
        elif name in ("kernel.hostname", "kernel.domainname"):
            need = "uts"
        else:
            raise NamespaceError(f"sysctl {key!r} is not in a separate kernel namespace")
        path = ns.get(need, "")
        if need not in ns or (path is not None and is_own(path, need)):
            raise NamespaceError(f"sysctl {key!r} is not allowed in the host's {need} namespace")


def is_own(path: str, kind: str) -> bool:
    try:
        a, b = os.stat(path), os.stat(f"/proc/self/ns/{PROC_NAMES[kind]}")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def write_sysctls(sysctls: dict[str, str] | None) -> None:
    for key, value in (sysctls or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
