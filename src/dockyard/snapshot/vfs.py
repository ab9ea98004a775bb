"""The vfs (copy) driver: each snapshot is a full tree; no overlayfs needed.

Preparing a snapshot copies its parent's tree; a layer is applied onto the copy with whiteouts
deleting (`apply_layer(..., whiteouts="delete")`). A container root is a bind mount of its tree.
Diffs and changes compare the snapshot's tree with its parent's (moby's naive differ).

Copying keeps everything a layer can hold: modes, owners (when root), times, xattrs, hardlinks (as hardlinks), symlinks, device nodes and
fifos. File data is shared where the file system can (FICLONE: btrfs, XFS), else copied in the
kernel (copy_file_range), else through a buffer. Directory modes and times are set after their
contents, deepest first, so that writing the contents does not change them.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.image.layer import write_diff_trees
from dockyard.snapshot.changes import Change, changes_usage, tree_changes
from dockyard.snapshot.driver import Driver, fs_dir
from dockyard.snapshot.mounts import Mount, bind_mount
from dockyard.snapshot.usage import Usage, tree_counts

log = logging.getLogger(__name__)

FICLONE = 0x40049409
CHUNK = 1 << 20
_NO_XATTR = (errno.ENOTSUP, errno.ENODATA)
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_SRC = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Copier:
    privileged: bool = field(default_factory=lambda: os.geteuid() == 0)
    clone: bool = True  # FICLONE until the file system says it cannot
    range_copy: bool = True  # copy_file_range until it says it cannot
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)

    def xattrs(self, src: str | int, dst: str | int, symlink: bool = False) -> None:
        follow = not symlink
        try:
            names = os.listxattr(src, follow_symlinks=follow)
        except OSError as e:
            if e.errno in _NO_XATTR:
                return
            raise
        for name in names:
            try:
                value = os.getxattr(src, name, follow_symlinks=follow)
                os.setxattr(dst, name, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in (*_NO_XATTR, errno.EPERM):
                    raise
                log.debug("not copying xattr %s of %s: %s", name, src, e)

    def data(self, sfd: int, dfd: int, size: int) -> None:
        if size == 0:
            return
        if self.clone:
            try:
                fcntl.ioctl(dfd, FICLONE, sfd)
                return
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL):
                    raise
                self.clone = False
        copied = 0
        if self.range_copy:
            try:
                while copied < size:
                    n = os.copy_file_range(sfd, dfd, size - copied)
                    if n == 0:
                        break
                    copied += n
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                self.range_copy = False
        while data := os.read(sfd, CHUNK):  # the rest (a file that grew, or no range copy)
            view = memoryview(data)
            while view:
                view = view[os.write(dfd, view) :]

    def regular(self, src: str, dst: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                os.link(first, dst, follow_symlinks=False)
                return
            self.links[key] = dst
        sfd = os.open(src, _OPEN_SRC)
        try:
            dfd = os.open(dst, _OPEN_NEW, 0o600)
            try:
                self.data(sfd, dfd, st.st_size)
                if self.privileged:
                    os.fchown(dfd, st.st_uid, st.st_gid)
                self.xattrs(sfd, dfd)
                os.fchmod(dfd, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def special(self, src: str, dst: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    os.link(first, dst, follow_symlinks=False)
                    return
                self.links[key] = dst
            os.mknod(dst, mode, st.st_rdev)
        else:
            log.debug("not copying socket %s", src)
            return
        symlink = stat.S_ISLNK(mode)
        if self.privileged:
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        self.xattrs(src, dst, symlink=symlink)
        if not symlink:
            os.chmod(dst, stat.S_IMODE(mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def directory(self, src: str, dst: str, st: os.stat_result, exists: bool) -> None:
        if not exists:
            os.mkdir(dst, 0o700)
        if self.privileged:
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        self.xattrs(src, dst)
        self.dirs.append((dst, st))

    def finish(self) -> None:
        for dst, st in reversed(self.dirs):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: str, dst: str) -> None:
    """Copy the tree `src` into the existing, empty directory `dst` (whose own mode, owner,
    xattrs and times become those of `src`)."""
    copier = _Copier()
    copier.directory(src, dst, os.lstat(src), exists=True)
    stack = [(src, dst)]
    while stack:
        sdir, ddir = stack.pop()
        with os.scandir(sdir) as it:
            entries = list(it)
        for entry in entries:
            s, d = entry.path, f"{ddir}/{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                copier.directory(s, d, st, exists=False)
                stack.append((s, d))
            elif stat.S_ISREG(st.st_mode):
                copier.regular(s, d, st)
            else:
                copier.special(s, d, st)
    copier.finish()


class VfsDriver(Driver):
    name = "vfs"
    whiteouts = "delete"

    def create(self, base: str, parent: str | None, *, readonly: bool, mountable: bool) -> None:
        fs = fs_dir(base)
        os.mkdir(fs, 0o755)
        if parent is not None and not readonly:  # a view shows its parent's tree as it is
            copy_tree(parent, fs)

    def mounts(self, base: str, parents: Sequence[str], *, readonly: bool) -> list[Mount]:
        if readonly and parents:
            return [bind_mount(parents[0], readonly=True)]
        return [bind_mount(fs_dir(base), readonly=readonly)]

    def diff(self, base: str, parents: Sequence[str], out: BinaryIO) -> None:
        if parents:
            write_diff_trees(parents[0], fs_dir(base), out)
            return
        with tempfile.TemporaryDirectory(prefix="empty-", dir=base) as empty:
            write_diff_trees(empty, fs_dir(base), out)

    def changes(self, base: str, parents: Sequence[str]) -> list[Change]:
        return tree_changes(parents[0] if parents else None, fs_dir(base))

    def usage(self, base: str, parents: Sequence[str]) -> Usage:
        fs = fs_dir(base)
        if not parents:
            return tree_counts(fs)
        return Usage(*changes_usage(fs, tree_changes(parents[0], fs)))

    def driver_data(self, base: str, parents: Sequence[str]) -> dict[str, str] | None:
        return {"SourceDir": fs_dir(base)}
