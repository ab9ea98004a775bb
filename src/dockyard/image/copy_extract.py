"""`docker cp`'s extraction: a tar unpacked into a directory that is its root.

As go-archive's Unpack with moby's copy options: names are cleaned with any leading `/`
stripped and must stay inside; parents are resolved inside the root (copy_archive.openat2 with
RESOLVE_IN_ROOT: a symlink in the destination pointing to /etc leads to the destination's own
etc) and created as 0755 directories when missing; an existing entry is replaced unless both
are directories (with `no_overwrite_dir_non_dir`, refused when one is a directory and the
other not); owners from the tar unless `chown` (or `no_lchown`: the client's extraction);
xattrs (EPERM ignored), modes, then times (directories' at the end). Below a resolved parent,
everything is done one name at a time with O_NOFOLLOW and through fds, so a concurrent change
of the tree (a running container) cannot lead a write outside the root.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import shutil
import stat
from collections.abc import Callable
from typing import BinaryIO

from dockyard.errors import DockyardError
from dockyard.image.copy_archive import O_PATH, go_clean, readlink_in
from dockyard.image.tarsafe import resolve_in_root
from dockyard.image.tarstream import BLK, CHR, DIR, FIFO, LNK, REG, SYM, TarHeader, TarReader

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def name_rebaser(old: str, new: str) -> Callable[[str], str]:
    """go-archive's newNameRebaser: `old` replaced by `new` at the start of entry names."""
    old, new = old.rstrip("/"), new.rstrip("/")
    if not old:
        return lambda name: f"{new}/{name.lstrip('/')}" if new else name.lstrip("/")

    def rebase(name: str) -> str:
        if not name.startswith(old):
            return name
        suffix = name[len(old) :]
        if suffix and not suffix.startswith("/"):
            return name
        return new + suffix

    return rebase


def _quote(text: str) -> str:
    from dockyard.image.shellwords import go_quote

    return go_quote(text)


class _Extractor:
    _PARENTS = 256  # parent directory fds kept open

    def __init__(
        self,
        dest_fd: int,
        dest_name: str,
        *,
        no_overwrite_dir_non_dir: bool,
        chown: tuple[int, int] | None,
        no_lchown: bool,
    ) -> None:
        self.dest_fd = dest_fd
        self.dest_name = dest_name
        self.no_overwrite = no_overwrite_dir_non_dir
        self.chown = chown
        self.lchown = not no_lchown
        self.parents: collections.OrderedDict[str, int] = collections.OrderedDict()
        # parent paths as the tar names them → resolved; forgotten whenever a symlink is made
        # or anything removed (the only changes that resolve a path differently)
        self.aliases: dict[str, str] = {}
        self.dirs: list[tuple[str, int, int]] = []  # (resolved path, atime, mtime)

    def close(self) -> None:
        for fd in self.parents.values():
            os.close(fd)
        self.parents.clear()

    # -- directories ---------------------------------------------------------------------
    def _walk_to(self, resolved: str, create: bool) -> int:
        """An O_PATH fd of resolved directory `resolved` (root-relative, no symlinks left),
        reached one component at a time without following anything; missing ones are made
        (0755, as moby's implied directories) when `create`."""
        fd = os.dup(self.dest_fd)
        try:
            for part in resolved.split("/") if resolved else ():
                try:
                    nxt = os.open(part, O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    nxt = os.open(part, O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY, dir_fd=fd)
                    os.chmod(f"/proc/self/fd/{nxt}", 0o755)  # whatever the umask
                os.close(fd)
                fd = nxt
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OSError(errno.ENOTDIR, "not a directory", resolved) from None
            raise
        return fd

    def _parent(self, parent: str, create: bool = True) -> tuple[int, str]:
        """(O_PATH fd, resolved path) of directory `parent` of the tar, resolved inside the
        root; the fd is cached (do not close it)."""
        resolved = self.aliases.get(parent)
        if resolved is None:
            resolved = resolve_in_root(parent, readlink_in(self.dest_fd)) if parent else ""
            self.aliases[parent] = resolved
        fd = self.parents.get(resolved)
        if fd is not None:
            self.parents.move_to_end(resolved)
            return fd, resolved
        fd = self._walk_to(resolved, create)
        self.parents[resolved] = fd
        if len(self.parents) > self._PARENTS:
            os.close(self.parents.popitem(last=False)[1])
        return fd, resolved

    # -- entries -------------------------------------------------------------------------
    def entry(self, h: TarHeader, reader: TarReader) -> None:
        name = go_clean(h.name.lstrip("/"))
        if name == ".":
            return
        if name == ".." or name.startswith("../"):
            raise DockyardError(f"invalid entry name {_quote(h.name)}")
        parent, _, base = name.rpartition("/")
        link_target = ""
        if h.type == LNK:
            link_target = go_clean(h.linkname)
            if link_target.startswith("/"):  # the tar's root (kaniko writes them so)
                link_target = go_clean(h.linkname.lstrip("/"))
            if link_target in (".", "..") or link_target.startswith("../"):
                raise DockyardError(f"invalid hardlink target {_quote(h.linkname)}")
        pfd, resolved_parent = self._parent(parent)
        path = f"{resolved_parent}/{base}" if resolved_parent else base
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.no_overwrite and is_dir and h.type != DIR:
                raise DockyardError(
                    f"cannot overwrite directory {_quote(name)} with non-directory "
                    f"{_quote(self.dest_name)}"
                )
            if self.no_overwrite and not is_dir and h.type == DIR:
                raise DockyardError(
                    f"cannot overwrite non-directory {_quote(name)} with directory "
                    f"{_quote(self.dest_name)}"
                )
            if not (is_dir and h.type == DIR):
                self.aliases.clear()
                if is_dir:
                    shutil.rmtree(base, dir_fd=pfd)
                    self.close()  # cached fds below it name removed directories
                    pfd, _ = self._parent(parent)
                else:
                    os.unlink(base, dir_fd=pfd)
        link_source = None
        if link_target:
            tparent, _, tbase = link_target.rpartition("/")
            link_source = (self._parent(tparent, create=False)[0], tbase)
        self._create(h, reader, pfd, base, path, link_source)

    def _create(
        self,
        h: TarHeader,
        reader: TarReader,
        pfd: int,
        base: str,
        path: str,
        link_source: tuple[int, str] | None,
    ) -> None:
        uid, gid = self.chown or (h.uid, h.gid)
        atime = mtime = max(h.mtime_ns, 0)
        if h.atime_ns is not None:
            atime = max(h.atime_ns, mtime)
        kind = h.type
        if kind == REG:
            fd = os.open(
                base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=pfd
            )
            try:
                while chunk := reader.read(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                self._owner(fd, uid, gid, path)
                self._xattrs(fd, h)
                os.fchmod(fd, h.mode & 0o7777)
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
        elif kind == DIR:
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass  # a directory merges into a directory
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                self._owner(fd, uid, gid, path)
                self._xattrs(fd, h)
                os.fchmod(fd, h.mode & 0o7777)
            finally:
                os.close(fd)
            self.dirs.append((path, atime, mtime))
        elif kind == SYM:
            os.symlink(h.linkname, base, dir_fd=pfd)
            self.aliases.clear()
            if self.lchown:
                try:
                    os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
                except OSError as e:
                    raise self._chown_error(path, uid, gid, e) from e
            os.utime(base, ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)
        elif kind == LNK:
            assert link_source is not None
            sfd, sbase = link_source
            os.link(sbase, base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
            self._by_path(pfd, base, uid, gid, h, path, atime, mtime)
        elif kind in (CHR, BLK, FIFO):
            fmt = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}[kind]
            os.mknod(base, fmt | 0o600, os.makedev(h.devmajor, h.devminor), dir_fd=pfd)
            self._by_path(pfd, base, uid, gid, h, path, atime, mtime)
        else:
            raise DockyardError(f"unhandled tar header type {ord(kind[:1] or chr(0))}")

    def _by_path(
        self, pfd: int, base: str, uid: int, gid: int, h: TarHeader, path: str, at: int, mt: int
    ) -> None:
        """Metadata of a node opened O_PATH (a hardlink's target may be a symlink: then its
        own owner only, as moby does)."""
        fd = os.open(base, O_PATH | os.O_NOFOLLOW, dir_fd=pfd)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                if self.lchown:
                    os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
                return
            proc = f"/proc/self/fd/{fd}"
            if self.lchown:
                try:
                    os.chown(proc, uid, gid)
                except OSError as e:
                    raise self._chown_error(path, uid, gid, e) from e
            for key, value in h.xattrs.items():
                self._setxattr(proc, key, value)
            os.chmod(proc, h.mode & 0o7777)
            os.utime(proc, ns=(at, mt))
        finally:
            os.close(fd)

    def _owner(self, fd: int, uid: int, gid: int, path: str) -> None:
        if self.lchown:
            try:
                os.fchown(fd, uid, gid)
            except OSError as e:
                raise self._chown_error(path, uid, gid, e) from e

    @staticmethod
    def _chown_error(path: str, uid: int, gid: int, e: OSError) -> DockyardError:
        return DockyardError(f'failed to Lchown "{path}" for UID {uid}, GID {gid}: {e.strerror}')

    def _xattrs(self, target: int | str, h: TarHeader) -> None:
        for key, value in h.xattrs.items():
            self._setxattr(target, key, value)

    @staticmethod
    def _setxattr(target: int | str, key: str, value: bytes) -> None:
        try:
            os.setxattr(target, key, value)
        except OSError as e:
            if e.errno != errno.EPERM:
                raise
            log.warning("ignored xattr %s in archive: %s", key, e.strerror)

    def finish(self) -> None:
        for path, atime, mtime in self.dirs:
            try:
                fd = self._walk_to(path, create=False)
            except OSError:
                continue
            try:
                os.utime(f"/proc/self/fd/{fd}", ns=(atime, mtime))
            finally:
                os.close(fd)


def extract_tar(
    stream: BinaryIO,
    dest_fd: int,
    *,
    dest_name: str = "",
    no_overwrite_dir_non_dir: bool = False,
    chown: tuple[int, int] | None = None,
    no_lchown: bool = False,
    rebase: Callable[[str], str] | None = None,
) -> int:
    """Extract the (uncompressed) tar read from `stream` into directory `dest_fd`, which is
    its root: nothing is written outside it. `dest_name` names it in messages. Returns the
    bytes read. Errors are DockyardError (a corrupt tar: InvalidArchive) or OSError."""
    extractor = _Extractor(
        dest_fd,
        dest_name,
        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        chown=chown,
        no_lchown=no_lchown,
    )
    reader = TarReader(stream, CHUNK)
    try:
        while (h := reader.next()) is not None:
            if rebase is not None:
                h.name = rebase(h.name)
                if h.type == LNK:
                    h.linkname = rebase(h.linkname)
            extractor.entry(h, reader)
        total = reader.finish()
        extractor.finish()
    finally:
        extractor.close()
    return total
