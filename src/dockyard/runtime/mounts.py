"""The container's root filesystem, inside its new mount namespace, in runc's order.

  prepare_root   everything private (so nothing we mount leaks to the host and pivot_root is
                 allowed), the root bound onto itself (pivot_root needs a mount point)
  mount_all      the spec's mounts in order; a `cgroup` mount becomes a tmpfs with one
                 directory per hierarchy (v1) or a cgroup2 mount (v2)
  setup_dev      device nodes (mknod, or a bind of the host's node where mknod is refused),
                 /dev/ptmx -> pts/ptmx, /dev/fd and /dev/std* symlinks
  pivot          pivot_root(".", ".") then a lazy unmount of the old root stacked on "."
  finalize       tmpfs and /dev remounted read-only when asked, root.readonly, umask
  readonly_paths / mask_paths   after sysctls, as runc

Every destination is resolved with `secure_join` so a symlink in the image (say /etc/hosts ->
/host/etc/passwd) cannot make us mount outside the container's root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Any

from . import cgroups, syscalls
from .syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
    mount,
)

# option -> (clear?, flag); the mount(8) vocabulary the OCI spec refers to.
_FLAGS = {
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, syscalls.MS_SYNCHRONOUS),
    "async": (True, syscalls.MS_SYNCHRONOUS),
    "dirsync": (False, syscalls.MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, syscalls.MS_MANDLOCK),
    "nomand": (True, syscalls.MS_MANDLOCK),
    "atime": (True, syscalls.MS_NOATIME),
    "noatime": (False, syscalls.MS_NOATIME),
    "diratime": (True, syscalls.MS_NODIRATIME),
    "nodiratime": (False, syscalls.MS_NODIRATIME),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, syscalls.MS_RELATIME),
    "norelatime": (True, syscalls.MS_RELATIME),
    "strictatime": (False, syscalls.MS_STRICTATIME),
    "nostrictatime": (True, syscalls.MS_STRICTATIME),
    "lazytime": (False, syscalls.MS_LAZYTIME),
    "nolazytime": (True, syscalls.MS_LAZYTIME),
    "silent": (False, syscalls.MS_SILENT),
    "loud": (True, syscalls.MS_SILENT),
    "nosymfollow": (False, syscalls.MS_NOSYMFOLLOW),
    "symfollow": (True, syscalls.MS_NOSYMFOLLOW),
}
PROPAGATION = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# Options only mount(8) or the runtime interprets; never passed to the kernel as data.
_IGNORED = {
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "_netdev",
    "tmpcopyup",
    "idmap",
    "ridmap",
}


class MountError(Exception):
    pass


def parse_options(options: list[str] | None) -> tuple[int, int, list[int], str]:
    """(flags, cleared flags, propagation flags, data) from a spec mount's options."""
    flags = cleared = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options or ():
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            if clear:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
                cleared &= ~flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _IGNORED or (opt.startswith("r") and opt[1:] in _FLAGS):
            continue  # "rro", "rnosuid"…: mount_setattr(2) recursive attributes, not supported
        else:
            data.append(opt)
    return flags, cleared, propagation, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """`root/unsafe` with every symlink resolved as if `root` were "/" (cannot escape root)."""
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > 255:
            raise OSError(errno.ELOOP, "too many symlinks", unsafe)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p and p != "."] + parts
    return os.path.join(root, *resolved)


def prepare_root(rootfs: str, propagation: str | None) -> int:
    """Make our copy of the host's mounts private and bind the root; returns the root's flag.

    Nothing we mount may leak to the host, and pivot_root refuses a root whose parent mount is
    shared: "/" gets the spec's rootfsPropagation (default rprivate) and the root's parent mount
    is made private (or slave) explicitly when that is not already recursive-private.
    """
    flag = PROPAGATION.get(propagation or "") or (MS_PRIVATE | MS_REC)
    mount(None, "/", None, flag)
    if flag != MS_PRIVATE | MS_REC:
        parent_flag = MS_SLAVE if flag & MS_SLAVE else MS_PRIVATE
        path = os.path.dirname(rootfs)
        while True:
            try:
                mount(None, path, None, parent_flag)
                break
            except OSError as e:
                if e.errno != errno.EINVAL or path == "/":  # EINVAL: not a mount point
                    raise
                path = os.path.dirname(path)
    mount(rootfs, rootfs, "bind", MS_BIND | MS_REC)
    return flag


def apply_root_propagation(flag: int) -> None:
    """After pivot_root: shared/unbindable root propagation is set on the new "/" itself."""
    if flag and not flag & (MS_PRIVATE | MS_SLAVE):
        mount(None, "/", None, flag)


def _create_mountpoint(dest: str, as_file: bool) -> None:
    if as_file:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o755))
    else:
        os.makedirs(dest, mode=0o755, exist_ok=True)


def mount_one(
    rootfs: str, m: dict[str, Any], *, bundle: str, cgroup: cgroups.Cgroup | None, cgroupns: bool
) -> None:
    destination = m.get("destination") or ""
    if not destination:
        raise MountError("mount without a destination")
    kind = m.get("type") or ""
    source = m.get("source") or kind or "none"
    flags, cleared, propagation, data = parse_options(m.get("options"))
    is_bind = bool(flags & MS_BIND) or kind == "bind"
    if is_bind:
        flags |= MS_BIND
        if not source.startswith("/"):
            source = os.path.join(bundle, source)
    dest = secure_join(rootfs, destination)
    if kind in ("proc", "sysfs"):
        # Never mount proc or sysfs through a symlink (an old container breakout).
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(os.lstat(dest).st_mode):
                raise MountError(f"filesystem {kind!r} must be mounted on an ordinary directory")
    if kind == "cgroup":
        _create_mountpoint(dest, False)
        _mount_cgroup(dest, flags, propagation, cgroup, cgroupns)
        return
    _create_mountpoint(dest, is_bind and not os.path.isdir(source))
    rel_dest = "/" + os.path.relpath(dest, rootfs)
    if is_bind:
        mount(source, dest, None, MS_BIND | (flags & MS_REC))
        # A bind mount ignores the other flags: they take a second, remount call.
        if flags & ~(MS_BIND | MS_REC | MS_REMOUNT) or cleared:
            remount = flags | MS_BIND | MS_REMOUNT
            try:
                mount(None, dest, None, remount & ~MS_REC)
            except PermissionError:
                # Locked flags from the source mount (nosuid/nodev/noexec) must be kept.
                st = os.statvfs(dest)
                mount(
                    None,
                    dest,
                    None,
                    (remount & ~MS_REC) | (st.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)),
                )
    else:
        # tmpfs and /dev stay writable until finalize(): we still create files in them.
        if kind == "tmpfs" or rel_dest == "/dev":
            flags &= ~MS_RDONLY
        mount(source, dest, kind or None, flags, data or None)
    for p in propagation:
        mount(None, dest, None, p)


def _mount_cgroup(
    dest: str, flags: int, propagation: list[int], cg: cgroups.Cgroup | None, cgroupns: bool
) -> None:
    hierarchies = cgroups.hierarchies()
    base = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    if cgroups.is_unified_only():
        try:
            mount("cgroup2", dest, "cgroup2", base)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EBUSY) or cg is None:
                raise
            mount(cg.dirs[cgroups.UNIFIED], dest, None, MS_BIND | MS_REC)
            mount(None, dest, None, MS_BIND | MS_REMOUNT | base)
        return
    mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    for h in hierarchies:
        if h.key == cgroups.UNIFIED:
            continue  # runc shows only the v1 hierarchies on a hybrid host
        sub = os.path.join(dest, os.path.basename(h.mountpoint))
        os.makedirs(sub, exist_ok=True)
        if cgroupns:
            source = "systemd" if h.key.startswith("name=") else "cgroup"
            mount(source, sub, "cgroup", base, h.key)
        else:
            # No cgroup namespace: show the container's own cgroup as the hierarchy's root.
            own = cg.dirs.get(h.key) if cg else None
            mount(own or h.mountpoint, sub, None, MS_BIND | MS_REC)
            mount(None, sub, None, MS_BIND | MS_REMOUNT | base)
        if "," in h.key:
            for name in h.key.split(","):
                link = os.path.join(dest, name)
                if not os.path.lexists(link):
                    os.symlink(os.path.basename(h.mountpoint), link)
    for p in propagation:
        mount(None, dest, None, p)


# The devices every container has (runtime-spec "Default Devices").
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)
_DEV_KIND = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def setup_dev(rootfs: str, devices: list[dict[str, Any]] | None) -> None:
    wanted = [
        {"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
        for p, ma, mi in DEFAULT_DEVICES
    ]
    for dev in devices or ():
        wanted = [d for d in wanted if d["path"] != dev.get("path")] + [dev]
    for dev in wanted:
        if os.path.normpath(dev["path"]) == "/dev/ptmx":
            continue  # the symlink to the container's own devpts instance, below
        kind = _DEV_KIND.get(dev.get("type", ""))
        if kind is None:
            raise MountError(
                f"{dev.get('type')!r} is not a valid device type for device {dev['path']}"
            )
        dest = secure_join(rootfs, dev["path"])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        mode = dev.get("fileMode", 0o666) & 0o7777
        try:
            os.mknod(dest, mode | kind, os.makedev(dev.get("major", 0), dev.get("minor", 0)))
        except FileExistsError:
            continue
        except PermissionError:
            # mknod refused (a user namespace, a nodev mount): bind the host's node instead.
            _create_mountpoint(dest, True)
            mount(dev["path"], dest, None, MS_BIND)
            continue
        os.chmod(dest, mode)  # our umask is 0 during setup, but be explicit
        os.chown(dest, dev.get("uid", 0) or 0, dev.get("gid", 0) or 0)
    ptmx = secure_join(rootfs, "/dev/ptmx")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)
    links = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin")]
    links += [("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, name in links:
        with contextlib.suppress(FileExistsError):
            os.symlink(target, secure_join(rootfs, name))


def pivot(rootfs: str) -> None:
    os.chdir(rootfs)
    try:
        # pivot_root(".", ".") stacks the old root on top of the new one at "."; unmounting "."
        # lazily then removes the old root without needing a directory to put it in.
        syscalls.pivot_root(".", ".")
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        _move_root(rootfs)  # an initramfs root (rootfs) cannot be pivoted away from
        return
    mount(None, ".", None, MS_SLAVE | MS_REC)
    syscalls.umount2(".", MNT_DETACH)
    os.chdir("/")


def _move_root(rootfs: str) -> None:
    mount(rootfs, "/", None, syscalls.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def chroot_only(rootfs: str) -> None:
    """No mount namespace asked for: a plain chroot, nothing mounted."""
    os.chroot(rootfs)
    os.chdir("/")


def finalize(mounts: list[dict[str, Any]], readonly_root: bool) -> None:
    for m in mounts:
        flags, _, _, _ = parse_options(m.get("options"))
        dest = os.path.normpath(m.get("destination", ""))
        if flags & MS_RDONLY and (m.get("type") == "tmpfs" or dest == "/dev"):
            mount(None, dest, None, flags | MS_REMOUNT | MS_BIND | MS_RDONLY)
    if readonly_root:
        try:
            mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        except PermissionError:
            st = os.statvfs("/")
            mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | st.f_flag)


def readonly_paths(paths: list[str] | None) -> None:
    for path in paths or ():
        try:
            mount(path, path, None, MS_BIND | MS_REC)
        except FileNotFoundError:
            continue
        keep = os.statvfs(path).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
        mount(path, path, None, keep | MS_BIND | MS_REMOUNT | MS_RDONLY)


def mask_paths(paths: list[str] | None) -> None:
    """/dev/null over files, an empty read-only tmpfs over directories; missing paths skipped.

    We stat first rather than try the bind and catch ENOTDIR as runc does: a failed bind over a
    directory costs up to a millisecond here, a stat microseconds.
    """
    for path in paths or ():
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            continue
        if is_dir:
            mount("tmpfs", path, "tmpfs", MS_RDONLY, "nr_blocks=1,nr_inodes=1")
        else:
            mount("/dev/null", path, None, MS_BIND)
