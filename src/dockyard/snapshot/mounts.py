"""Mounts as data, and the few syscalls that make and unmake them.

A `Mount` is what a snapshotter returns (containerd's shape): a type, a source and options.
`mount_all` puts a list of them on a target directory, `unmount` takes everything at a target
off again. Everything is a direct syscall through ctypes: no `mount` binary (a container must
start in a few milliseconds) and no chdir (the daemon is multi-threaded).

overlayfs takes its lower layers through the new mount API (fsopen/fsconfig/fsmount/move_mount,
one `lowerdir+` per layer, Linux 6.8+), so an image of any depth mounts: the classic mount(2)
data is one page, about 80 layers at /var/lib/dockyard's path length. Where the new API is
missing, classic mount(2) is used, with `/proc/self/fd/N` names for the layers when their paths
would not fit.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from dockyard.errors import DockyardError

# syscall numbers of the new mount API: the same on every architecture (asm-generic)
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432

_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 0x1
_MOUNT_ATTR_RDONLY = 0x1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100

MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

# the overlay options every container root is mounted with (docker's overlay2 sets index=off;
# redirect_dir and metacopy would make an upper dir that is not a plain layer diff)
OVERLAY_OPTIONS = ("index=off", "redirect_dir=off", "metacopy=off")


class MountError(DockyardError):
    """A mount or unmount failed; `errno` says why."""

    def __init__(self, message: str, errno_: int = 0) -> None:
        super().__init__(message)
        self.errno = errno_


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount: `type` "overlay" or "bind"; `options` as mount(8) spells them, e.g.
    ("index=off", "lowerdir=/l1:/l2", "upperdir=/u", "workdir=/w") or ("rbind", "ro")."""

    type: str
    source: str
    options: tuple[str, ...] = ()

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def option(self, name: str) -> str | None:
        prefix = name + "="
        for option in self.options:
            if option.startswith(prefix):
                return option[len(prefix) :]
        return None

    @property
    def lowerdirs(self) -> list[str]:
        """The overlay's lower layers, top first."""
        value = self.option("lowerdir")
        return value.split(":") if value else []


def overlay_mount(
    lowers: Sequence[str], upper: str | None = None, work: str | None = None
) -> Mount:
    """An overlay of `lowers` (top first) under `upper`; read-only when there is no upper."""
    if not lowers:
        raise ValueError("an overlay needs at least one lower layer")
    for path in lowers:
        if ":" in path or "," in path:
            raise ValueError(f"layer path {path!r} has a ':' or ','")
    options = [*OVERLAY_OPTIONS, "lowerdir=" + ":".join(lowers)]
    if upper is not None:
        if work is None:
            raise ValueError("an overlay with an upper dir needs a work dir")
        options += [f"upperdir={upper}", f"workdir={work}"]
    else:
        options.append("ro")
    return Mount("overlay", "overlay", tuple(options))


def bind_mount(source: str, *, readonly: bool) -> Mount:
    return Mount("bind", source, ("rbind", "ro" if readonly else "rw"))


# -- syscalls -------------------------------------------------------------------------------------


def _check(result: int, what: str, path: str = "") -> int:
    if result < 0:
        err = ctypes.get_errno()
        where = f" {path}" if path else ""
        raise MountError(f"{what}{where}: {os.strerror(err)}", err)
    return result


def _syscall(number: int, *args: object) -> int:
    return int(_libc.syscall(ctypes.c_long(number), *args))


def _fs_log(fd: int) -> str:
    """The messages a filesystem context logged (why overlayfs refused), one line each."""
    lines = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        lines.append(data.decode(errors="replace").strip())
    return "; ".join(lines)


class _NewApiUnavailable(Exception):
    """fsopen or `lowerdir+` is not known to this kernel: use classic mount(2)."""


def _fsconfig(fd: int, key: str, value: str | None) -> None:
    cmd = _FSCONFIG_SET_FLAG if value is None else _FSCONFIG_SET_STRING
    result = _syscall(
        _SYS_FSCONFIG,
        ctypes.c_int(fd),
        ctypes.c_uint(cmd),
        ctypes.c_char_p(key.encode()),
        ctypes.c_char_p(None if value is None else os.fsencode(value)),
        ctypes.c_int(0),
    )
    if result < 0:
        err = ctypes.get_errno()
        detail = _fs_log(fd)
        if key == "lowerdir+" and "Unknown parameter" in detail:
            raise _NewApiUnavailable  # overlayfs before 6.8 has no lowerdir+
        raise MountError(f"overlay option {key}={value}: {detail or os.strerror(err)}", err)


def _overlay_new_api(m: Mount, target: str) -> None:
    fd = _syscall(_SYS_FSOPEN, ctypes.c_char_p(b"overlay"), ctypes.c_uint(_FSOPEN_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.ENODEV):
            raise _NewApiUnavailable
        raise MountError(f"fsopen overlay: {os.strerror(err)}", err)
    try:
        _fsconfig(fd, "source", m.source)
        for option in m.options:
            key, sep, value = option.partition("=")
            if key == "lowerdir":
                for layer in m.lowerdirs:
                    _fsconfig(fd, "lowerdir+", layer)
            elif key != "ro":
                _fsconfig(fd, key, value if sep else None)
        result = _syscall(
            _SYS_FSCONFIG,
            ctypes.c_int(fd),
            ctypes.c_uint(_FSCONFIG_CMD_CREATE),
            ctypes.c_char_p(None),
            ctypes.c_char_p(None),
            ctypes.c_int(0),
        )
        if result < 0:
            err = ctypes.get_errno()
            detail = _fs_log(fd) or os.strerror(err)
            raise MountError(f"mounting overlay on {target}: {detail}", err)
        attrs = _MOUNT_ATTR_RDONLY if m.readonly else 0
        mfd = _check(
            _syscall(
                _SYS_FSMOUNT,
                ctypes.c_int(fd),
                ctypes.c_uint(_FSMOUNT_CLOEXEC),
                ctypes.c_uint(attrs),
            ),
            "fsmount overlay for",
            target,
        )
    finally:
        os.close(fd)
    try:
        _check(
            _syscall(
                _SYS_MOVE_MOUNT,
                ctypes.c_int(mfd),
                ctypes.c_char_p(b""),
                ctypes.c_int(_AT_FDCWD),
                ctypes.c_char_p(os.fsencode(target)),
                ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
            ),
            "move_mount overlay to",
            target,
        )
    finally:
        os.close(mfd)


def classic_overlay_data(m: Mount, lower_names: Sequence[str] | None = None) -> str:
    """mount(2) data for overlay `m`; `lower_names` replace its lower layer paths."""
    lowers = ":".join(lower_names if lower_names is not None else m.lowerdirs)
    parts = []
    for option in m.options:
        if option.startswith("lowerdir="):
            parts.append("lowerdir=" + lowers)
        elif option != "ro":
            parts.append(option)
    return ",".join(parts)


def _overlay_classic(m: Mount, target: str) -> None:
    limit = os.sysconf("SC_PAGESIZE") - 1
    flags = MS_RDONLY if m.readonly else 0
    data = classic_overlay_data(m)
    with ExitStack() as stack:
        if len(data) > limit:
            # Shorter names for the same directories, without a chdir: the fds stay open until
            # the kernel has resolved them.
            names = []
            for layer in m.lowerdirs:
                fd = os.open(layer, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                stack.callback(os.close, fd)
                names.append(f"/proc/self/fd/{fd}")
            data = classic_overlay_data(m, names)
            if len(data) > limit:
                raise MountError(
                    f"cannot mount {len(m.lowerdirs)} layers on {target}: this kernel has no "
                    f"fsconfig lowerdir+ and the mount data ({len(data)} bytes) exceeds a page",
                    errno.E2BIG,
                )
        _check(
            _libc.mount(b"overlay", os.fsencode(target), b"overlay", flags, data.encode()),
            "mounting overlay on",
            target,
        )


def _bind(m: Mount, target: str) -> None:
    flags = MS_BIND | (MS_REC if "rbind" in m.options else 0)
    src, dst = os.fsencode(m.source), os.fsencode(target)
    _check(_libc.mount(src, dst, None, flags, None), f"bind-mounting {m.source} on", target)
    if m.readonly:
        try:
            _check(
                _libc.mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None),
                "remounting read-only",
                target,
            )
        except BaseException:
            unmount(target)
            raise


def _kernel_has_lowerdir_plus(release: str) -> bool:
    """overlayfs takes `lowerdir+` from Linux 6.8 (before 6.5 it had no fs_context at all, and
    fsconfig would only collect a page of legacy options)."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return match is not None and (int(match[1]), int(match[2])) >= (6, 8)


# cleared once the kernel said it has no fsopen or lowerdir+
_new_api = _kernel_has_lowerdir_plus(os.uname().release)


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount `mounts` on directory `target`, in order (usually one)."""
    global _new_api
    done = 0
    try:
        for m in mounts:
            if m.type == "overlay":
                if _new_api:
                    try:
                        _overlay_new_api(m, target)
                    except _NewApiUnavailable:
                        _new_api = False
                        _overlay_classic(m, target)
                else:
                    _overlay_classic(m, target)
            elif m.type == "bind":
                _bind(m, target)
            else:
                raise MountError(f"unknown mount type {m.type!r}")
            done += 1
    except BaseException:
        if done:
            unmount(target)
        raise


def unmount(target: str) -> None:
    """Unmount everything mounted at `target` (lazily: a process still in there keeps its
    view). Idempotent: nothing mounted there, or no such path, is fine."""
    path = os.fsencode(target)
    for _ in range(64):  # mounts stacked on one target come off one at a time
        if _libc.umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0:
            continue
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
            return
        if err == errno.EPERM and not is_mounted(target):
            return  # not root, and nothing to do anyway
        raise MountError(f"unmounting {target}: {os.strerror(err)}", err)
    raise MountError(f"unmounting {target}: still mounted after 64 unmounts")


# -- what is mounted ----------------------------------------------------------------------------


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode()
    i = 0
    while i < len(raw):
        digits = raw[i + 1 : i + 4]
        if raw[i] == 0x5C and len(digits) == 3 and digits.isdigit():
            out.append(int(digits, 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> Iterator[str]:
    """Every mount point of this process's mount namespace, in mount order."""
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ", 5)
            if len(fields) > 4:
                yield _unescape(fields[4])


def is_mounted(target: str) -> bool:
    target = os.path.abspath(target)
    return any(point == target for point in mount_points())


def mounts_under(path: str) -> list[str]:
    """Mount points at or below `path`, deepest first (the order to unmount them in)."""
    path = os.path.abspath(path)
    found = [p for p in mount_points() if p == path or p.startswith(path.rstrip("/") + "/")]
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def unmount_under(path: str) -> list[str]:
    """Unmount whatever is mounted at or below `path`; returns the mount points."""
    points = mounts_under(path)
    for point in points:
        unmount(point)
    return points
