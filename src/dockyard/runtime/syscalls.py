"""Thin ctypes wrappers for the Linux system calls Python 3.11's `os` module lacks.

Everything here raises `OSError` (with the path when there is one) on failure, like `os` does,
so callers handle one exception type. Only the calls the runtime needs are wrapped; their
numbers are per architecture where glibc has no wrapper (pivot_root, capget/capset, close_range,
seccomp). The functions are safe to call in a child after `os.fork()`: they allocate nothing
but small ctypes buffers and take no Python-level locks.
"""

from __future__ import annotations

import ctypes
import os
import platform

_libc = ctypes.CDLL(None, use_errno=True)

# Namespace clone flags (linux/sched.h).
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# prctl(2) options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLOSE_RANGE_CLOEXEC = 1 << 2

# Syscalls glibc 2.36 does not wrap, by machine.
_NR = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "close_range": 436, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "close_range": 436, "seccomp": 277},
}[platform.machine()]

_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.syscall.restype = ctypes.c_long


def _fail(what: str, path: str | None = None) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}", path)


def _b(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None,
    flags: int = 0,
    data: str | bytes | None = None,
) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data) or None) != 0:
        raise _fail("mount", os.fsdecode(target))


def umount2(target: str | bytes, flags: int = 0) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        raise _fail("umount2", os.fsdecode(target))


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(_NR["pivot_root"], _b(new_root), _b(put_old)) != 0:
        raise _fail("pivot_root", new_root)


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        raise _fail("unshare")


def setns(fd: int, nstype: int = 0) -> None:
    if _libc.setns(fd, nstype) != 0:
        raise _fail("setns")


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) != 0:
        raise _fail("sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _libc.setdomainname(raw, len(raw)) != 0:
        raise _fail("setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        raise _fail("prctl")
    return int(ret)


def sched_getcpu() -> int:
    return int(_libc.sched_getcpu())


def close_range_cloexec(first: int) -> None:
    """Mark every fd >= first close-on-exec in one call (Linux 5.11); fall back to a loop."""
    if _libc.syscall(_NR["close_range"], first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC) == 0:
        return
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the fd of the listing itself, already closed


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CAP_V3 = 0x20080522


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    header = _CapHeader(_CAP_V3, pid)
    data = (_CapData * 2)()
    if _libc.syscall(_NR["capget"], ctypes.byref(header), data) != 0:
        raise _fail("capget")
    return tuple(  # type: ignore[return-value]
        getattr(data[0], f) | (getattr(data[1], f) << 32)
        for f in ("effective", "permitted", "inheritable")
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.syscall(_NR["capset"], ctypes.byref(header), data) != 0:
        raise _fail("capset")


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def seccomp_set_filter(program: bytes, flags: int = 0) -> None:
    """Install a classic-BPF seccomp filter (struct sock_filter[] as raw bytes)."""
    count = len(program) // ctypes.sizeof(SockFilter)
    buf = (SockFilter * count).from_buffer_copy(program)
    prog = SockFprog(count, buf)
    # SECCOMP_SET_MODE_FILTER = 1
    if _libc.syscall(_NR["seccomp"], 1, flags, ctypes.byref(prog)) != 0:
        raise _fail("seccomp")


def load_library(soname: str) -> ctypes.CDLL | None:
    """dlopen by soname; ctypes.util.find_library would fork ldconfig, far too slow here."""
    for candidate in (soname, soname.rsplit(".so", 1)[0] + ".so"):
        try:
            return ctypes.CDLL(candidate, use_errno=True)
        except OSError:
            continue
    return None
