"""The diff service: a layer tar applied onto a directory, and directories diffed into a tar.

Two verbs, as containerd's diff service has them:
- `apply_layer(stream, root)` unpacks an uncompressed layer tar onto `root`;
- `write_diff_overlay(upper, out)` / `write_diff_trees(lower, upper, out)` (in `layer_diff`)
  write the changes of an overlayfs upper dir, or between two full trees, as a layer tar.

Whiteouts (OCI image-spec, as docker writes them): `.wh.NAME` deletes NAME from the layers
below; `.wh..wh..opq` in directory D hides everything lower layers put in D. Both only remove
what lower layers put there: what this layer itself writes stays, wherever the marker sits in
the tar (moby keeps the paths already unpacked when it meets an opaque marker; the image-spec
says a whiteout never hides an entry of its own layer). On an overlayfs layer directory
(`whiteouts="overlay"`) they become what the kernel reads: a 0/0 character device NAME and the
`trusted.overlay.opaque=y` xattr (`user.overlay.opaque` when not root, for `userxattr` mounts).

Creating inodes can be the slow part, so new entries may be created by a few threads while
the tar is read (`layer_writer`: once creations prove slow, ~600 µs each on ext4 without a
journal after many deletions, ~50 µs on a healthy one): a regular file of up to 1 MiB (with
its bytes; bigger ones are written here), a symlink or a directory, when nothing is at its path
yet. Everything else runs on the reading thread, in tar order, which settles the hazards: it
waits for the task creating a path (and its parent) before it looks at or changes that path; a
task starts only after the one creating its parent directory; removing anything (a replacement,
a whiteout) and the directory times at the end wait for every task. An error is the one the
tar order gives: that of the earliest failing entry.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO, Literal

from dockyard.errors import DockyardError, InvalidArchive
from dockyard.image.layer_diff import write_diff_overlay, write_diff_trees
from dockyard.image.layer_writer import WritePool
from dockyard.image.tarsafe import check_symlink, hardlink_target, member_path, resolve_in_root
from dockyard.image.tarstream import BLK, CHR, DIR, FIFO, LNK, REG, SYM, TarHeader, TarReader

__all__ = [
    "OPAQUE_MARKER",
    "WHITEOUT_PREFIX",
    "apply_layer",
    "write_diff_overlay",
    "write_diff_trees",
]

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): skipped
OPAQUE_MARKER = ".wh..wh..opq"
CHUNK = 1 << 20
WORKERS = 8  # threads creating new entries (0: all on the reading thread, in tar order)
SLOW_TASK = 200e-6  # seconds: creations slower than this on average start the threads
SMALL_FILE = 1 << 20  # regular files up to this size are handed to a worker with their bytes
MAX_BYTES_IN_FLIGHT = 64 << 20  # file bytes (and xattrs) held by queued tasks
MAX_TASKS_IN_FLIGHT = 1024

_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# errors that the archive's content causes (a 400, not a 500)
_ARCHIVE_ERRNOS = frozenset(
    (
        errno.EEXIST,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.EMLINK,
        errno.EPERM,
        errno.ENOTEMPTY,
    )
)


def _entry_error(e: OSError, where: str, root: str) -> DockyardError:
    """The error an OSError while applying an entry becomes: the archive's fault or ours."""
    if e.errno in _ARCHIVE_ERRNOS:
        return InvalidArchive(f"{where}: {e.strerror or e}")
    if isinstance(e.filename, int):  # a file descriptor: its number says nothing (and varies)
        return DockyardError(f"applying {where} to {root}: [Errno {e.errno}] {e.strerror}")
    return DockyardError(f"applying {where} to {root}: {e}")


def _overlay_internal(xattr: str) -> bool:
    return xattr.startswith(("trusted.overlay.", "user.overlay."))


@dataclass(slots=True)
class _DirMeta:
    ino: int
    mode: int
    atime_ns: int
    mtime_ns: int


def _times(h: TarHeader) -> tuple[int, int]:
    """(atime, mtime) in ns, as moby sets them: atime = max(atime, mtime), both >= epoch."""
    mtime = max(h.mtime_ns, 0)
    atime = max(h.atime_ns if h.atime_ns is not None else 0, mtime)
    return atime, mtime


class _Applier:
    def __init__(self, root: str, shown_root: str, overlay: bool, track_created: bool) -> None:
        self.root = root
        self.shown_root = shown_root  # as the caller named it, for messages
        self.rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.overlay = overlay
        self.escaping_symlinks = False
        self.privileged = os.geteuid() == 0
        self.opaque_xattr = "trusted.overlay.opaque" if self.privileged else "user.overlay.opaque"
        # resolved root-relative paths known to be real directories ("" is the root)
        self.known_dirs: set[str] = {""}
        self.aliases: dict[str, str] = {}  # parent path as named in the tar -> resolved
        self.unpacked: set[str] = set()  # resolved paths this layer wrote
        self.dirs: dict[str, _DirMeta] = {}  # mode and times, applied at the end
        self.created: list[str] | None = [] if track_created else None
        # While the root started empty and all that is in it is tracked above (no directory
        # removed, no whiteout node made), a path in neither set is known to be absent.
        self.all_tracked = not track_created
        self.pool = WritePool(
            WORKERS,
            max_bytes=MAX_BYTES_IN_FLIGHT,
            max_tasks=MAX_TASKS_IN_FLIGHT,
            slow=SLOW_TASK,
            describe=self._task_error,
        )

    # -- paths ------------------------------------------------------------------------------
    def _readlink(self, path: str) -> str | None:
        if path in self.known_dirs or (self.all_tracked and path not in self.unpacked):
            return None  # a directory, or nothing
        self.pool.wait(path)  # a symlink being created must be there before it is read
        try:
            return os.readlink(path, dir_fd=self.rfd)
        except OSError:
            return None  # not a symlink, or missing (created later as a directory)

    def _resolve(self, parent: str) -> str:
        """The resolved form of a parent path, without creating anything."""
        if parent in self.known_dirs:
            return parent
        resolved = self.aliases.get(parent)
        if resolved is None:
            resolved = resolve_in_root(parent, self._readlink)
            self.aliases[parent] = resolved
        return resolved

    def _parent_dir(self, parent: str, name: str) -> str:
        """Resolve `parent` inside the root and make sure it is a directory (moby creates
        missing parents as 0755 root-owned directories)."""
        resolved = self._resolve(parent)
        if resolved in self.known_dirs:
            return resolved
        prefix = above = ""
        for part in resolved.split("/"):
            above, prefix = prefix, f"{prefix}/{part}" if prefix else part
            if prefix in self.known_dirs:
                continue
            self.pool.wait(prefix)  # (resolving waited already: the rule, stated where we look)
            st = self._lstat(prefix)
            if st is None:
                self._defer(prefix, above, name, 0, partial(self._write_implied_dir, prefix))
            elif not stat.S_ISDIR(st.st_mode):
                raise InvalidArchive(f"tar entry {name!r}: parent {prefix!r} is not a directory")
            self.known_dirs.add(prefix)
        return resolved

    def _lstat(self, path: str) -> os.stat_result | None:
        """What is at `path`; None when nothing is (also when its parent is still queued: a
        new directory is empty)."""
        if self.all_tracked and path not in self.unpacked and path not in self.known_dirs:
            return None
        try:
            return os.stat(path, dir_fd=self.rfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _created(self, path: str) -> None:
        if self.created is not None:
            self.created.append(path)

    def _abs(self, path: str) -> str:
        return f"{self.root}/{path}"

    # -- removal ----------------------------------------------------------------------------
    def _remove(self, path: str, st: os.stat_result | None = None) -> None:
        """Remove whatever is at resolved `path` (never following a symlink)."""
        self.pool.drain()  # nothing is removed while an entry is still being created
        if st is None:
            try:
                st = os.stat(path, dir_fd=self.rfd, follow_symlinks=False)
            except FileNotFoundError:
                return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, dir_fd=self.rfd)
            self.known_dirs.clear()
            self.known_dirs.add("")
            self.all_tracked = False
        else:
            os.unlink(path, dir_fd=self.rfd)
        self.aliases.clear()

    def _prune(self, path: str) -> None:
        """Remove what is under directory `path` and was not written by this layer."""
        stack = [path]
        while stack:
            current = stack.pop()
            with os.scandir(self._abs(current) if current else self.root) as it:
                children = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for child, is_dir in children:
                child_path = f"{current}/{child}" if current else child
                if child_path not in self.unpacked:
                    self._remove(child_path)
                elif is_dir:
                    stack.append(child_path)

    # -- whiteouts --------------------------------------------------------------------------
    def _whiteout(self, parent: str, base: str, h: TarHeader) -> None:
        if base == OPAQUE_MARKER:
            if self.overlay:
                target = self._abs(parent) if parent else self.root
                os.setxattr(target, self.opaque_xattr, b"y", follow_symlinks=False)
            else:
                self._prune(parent)
            return
        victim = base[len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", ".."):
            raise InvalidArchive(f"invalid whiteout entry {h.name!r}")
        if victim.startswith(WHITEOUT_PREFIX):
            return  # AUFS metadata below the top: names nothing that can exist
        path = f"{parent}/{victim}" if parent else victim
        if path in self.unpacked:
            # A whiteout never hides its own layer's entries; under a directory this layer
            # wrote it still hides what lower layers put there.
            try:
                st = os.stat(path, dir_fd=self.rfd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(st.st_mode):
                if self.overlay:
                    os.setxattr(self._abs(path), self.opaque_xattr, b"y", follow_symlinks=False)
                else:
                    self._prune(path)
        elif self.overlay:
            self._remove(path)
            os.mknod(path, stat.S_IFCHR, 0, dir_fd=self.rfd)
            self._created(path)
            self.all_tracked = False
            if self.privileged and (h.uid or h.gid):
                os.chown(path, h.uid, h.gid, dir_fd=self.rfd, follow_symlinks=False)
        else:
            self._remove(path)

    # -- entries ----------------------------------------------------------------------------
    def entry(self, h: TarHeader, reader: TarReader) -> None:
        rel = member_path(h.name)
        if rel is None:
            return  # the root itself: docker skips it
        if rel.startswith(WHITEOUT_META_PREFIX) and rel != OPAQUE_MARKER:
            return
        parent_name, _, base = rel.rpartition("/")
        if h.type == SYM and not self.escaping_symlinks:
            check_symlink(rel, h.linkname)
        link_target = hardlink_target(h.name, h.linkname) if h.type == LNK else ""
        parent = self._parent_dir(parent_name, h.name)
        if base.startswith(WHITEOUT_PREFIX):
            self.pool.drain()
            self._whiteout(parent, base, h)
            return
        path = f"{parent}/{base}" if parent else base
        if self._handed_over(path, parent, h, reader):
            self.unpacked.add(path)
            return
        self.pool.wait(parent)
        self.pool.wait(path)
        kind = h.type
        if kind == REG:
            self._regular(path, h, reader)
        elif kind == DIR:
            self._directory(path, h)
        elif kind == SYM:
            self._replace(path, lambda: os.symlink(h.linkname, path, dir_fd=self.rfd))
            self._metadata(path, h, symlink=True)
        elif kind == LNK:
            self._hardlink(path, link_target, h)
        elif kind in (CHR, BLK, FIFO):
            if kind != FIFO and not self.privileged:
                log.debug("not root: skipping device node %s", h.name)
                return
            if not (0 <= h.devmajor < 1 << 32 and 0 <= h.devminor < 1 << 32):
                raise InvalidArchive(f"device number out of range for {h.name!r}")
            fmt = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}[kind]
            dev = os.makedev(h.devmajor, h.devminor)
            self._replace(path, lambda: os.mknod(path, fmt | 0o600, dev, dir_fd=self.rfd))
            self._metadata(path, h)
        self.unpacked.add(path)

    # -- new entries, created by the pool ------------------------------------------------------
    def _handed_over(self, path: str, parent: str, h: TarHeader, reader: TarReader) -> bool:
        """Hand the creation of `path` to the pool if it is a small file, a symlink or a
        directory and nothing is there (nor queued: what is queued is in `unpacked` or
        `known_dirs`)."""
        kind = h.type
        if kind not in (SYM, DIR) and not (kind == REG and h.size <= SMALL_FILE):
            return False
        if path in self.unpacked or path in self.known_dirs:
            return False
        if not self.all_tracked and not self._absent(path):
            return False
        cost = sum(len(v) for v in h.xattrs.values()) if h.xattrs else 0
        work: Callable[[], None]
        if kind == REG:
            parts = []
            while chunk := reader.read(CHUNK):
                parts.append(chunk)
            data = b"".join(parts)
            cost += len(data)
            work = partial(self._write_new_file, path, h, data)
        elif kind == SYM:
            work = partial(self._write_new_symlink, path, h)
        else:
            atime, mtime = _times(h)
            meta = self.dirs[path] = _DirMeta(0, h.mode, atime, mtime)  # ino set by the task
            self.known_dirs.add(path)
            work = partial(self._write_new_dir, path, h, meta)
        self._defer(path, parent, h.name, cost, work)
        return True

    def _absent(self, path: str) -> bool:
        try:
            return self._lstat(path) is None
        except OSError:
            return False  # the reading thread meets the same error and reports it

    def _defer(
        self, path: str, parent: str, name: str, cost: int, work: Callable[[], None]
    ) -> None:
        """Queue `work()`, which creates `path` for entry `name`, after the task creating
        `parent` (if any)."""
        self._created(path)  # (before it exists: a rollback removes only what is there)
        self.pool.submit(path, work, cost=cost, after=parent, name=name)

    def _task_error(self, error: BaseException, name: str) -> BaseException:
        """What a task's failure in a worker raises: what it would have on this thread."""
        if not isinstance(error, OSError):
            return error
        described = _entry_error(error, f"tar entry {name!r}", self.shown_root)
        described.__cause__ = error
        return described

    def _write_new_file(self, path: str, h: TarHeader, data: bytes) -> None:
        fd = os.open(path, _OPEN_NEW, 0o600, dir_fd=self.rfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            self._file_metadata(fd, h)
        finally:
            os.close(fd)

    def _write_new_symlink(self, path: str, h: TarHeader) -> None:
        os.symlink(h.linkname, path, dir_fd=self.rfd)
        self._metadata(path, h, symlink=True)

    def _write_implied_dir(self, path: str) -> None:
        os.mkdir(path, 0o755, dir_fd=self.rfd)
        os.chmod(path, 0o755, dir_fd=self.rfd)  # whatever the umask

    def _write_new_dir(self, path: str, h: TarHeader, meta: _DirMeta) -> None:
        os.mkdir(path, 0o700, dir_fd=self.rfd)
        meta.ino = self._dir_metadata(path, h)

    # -- entries on the reading thread ------------------------------------------------------
    def _replace(self, path: str, create: Callable[[], None]) -> None:
        """Run `create()`; if the path is taken, remove what is there and run it again."""
        try:
            create()
        except FileExistsError:
            self._remove(path)
            create()
        self._created(path)

    def _regular(self, path: str, h: TarHeader, reader: TarReader) -> None:
        try:
            fd = os.open(path, _OPEN_NEW, 0o600, dir_fd=self.rfd)
        except FileExistsError:
            self._remove(path)
            fd = os.open(path, _OPEN_NEW, 0o600, dir_fd=self.rfd)
        self._created(path)
        try:
            while chunk := reader.read(CHUNK):
                while chunk:
                    chunk = chunk[os.write(fd, chunk) :]
            self._file_metadata(fd, h)
        finally:
            os.close(fd)

    def _file_metadata(self, fd: int, h: TarHeader) -> None:
        if self.privileged:
            os.fchown(fd, h.uid, h.gid)
        if h.xattrs:
            self._xattrs(fd, h)
        os.fchmod(fd, h.mode)
        os.utime(fd, ns=_times(h))

    def _directory(self, path: str, h: TarHeader) -> None:
        try:
            os.mkdir(path, 0o700, dir_fd=self.rfd)
            self._created(path)
        except FileExistsError:
            st = os.stat(path, dir_fd=self.rfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):  # a directory merges into a directory
                self._remove(path, st)
                os.mkdir(path, 0o700, dir_fd=self.rfd)
                self._created(path)
        self.known_dirs.add(path)
        atime, mtime = _times(h)
        self.dirs[path] = _DirMeta(self._dir_metadata(path, h), h.mode, atime, mtime)

    def _dir_metadata(self, path: str, h: TarHeader) -> int:
        """Owner and xattrs of directory `path` (mode and times come at the end); its inode."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.rfd)
        try:
            if self.privileged:
                os.fchown(fd, h.uid, h.gid)
            self._xattrs(fd, h)
            return os.fstat(fd).st_ino
        finally:
            os.close(fd)

    def _hardlink(self, path: str, target: str, h: TarHeader) -> None:
        tparent, _, tbase = target.rpartition("/")
        resolved = self._resolve(tparent)
        source = f"{resolved}/{tbase}" if resolved else tbase
        if source == path:
            raise InvalidArchive(f"invalid hardlink {h.name!r} -> {h.linkname!r}: links itself")
        self.pool.wait(source)
        try:
            st = os.stat(source, dir_fd=self.rfd, follow_symlinks=False)
        except OSError:
            raise InvalidArchive(
                f"invalid hardlink {h.name!r} -> {h.linkname!r}: target does not exist"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArchive(
                f"invalid hardlink {h.name!r} -> {h.linkname!r}: target is a directory"
            )

        def link() -> None:  # follow_symlinks=False: link the symlink, never its target
            os.link(source, path, src_dir_fd=self.rfd, dst_dir_fd=self.rfd, follow_symlinks=False)

        self._replace(path, link)
        if not stat.S_ISLNK(st.st_mode):
            self._metadata(path, h)

    def _metadata(self, path: str, h: TarHeader, *, symlink: bool = False) -> None:
        """Owner, xattrs, mode and times of a non-regular, non-directory entry at `path`."""
        if self.privileged:
            os.chown(path, h.uid, h.gid, dir_fd=self.rfd, follow_symlinks=False)
        self._xattrs(self._abs(path), h)
        if not symlink:
            os.chmod(path, h.mode, dir_fd=self.rfd)
        os.utime(path, ns=_times(h), dir_fd=self.rfd, follow_symlinks=False)

    def _xattrs(self, target: int | str, h: TarHeader) -> None:
        for key, value in h.xattrs.items():
            if _overlay_internal(key):
                continue  # overlayfs' own attributes never come from a layer
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.EPERM:  # moby ignores EPERM (not allowed here) only
                    raise
                log.debug("ignored xattr %s on %s: %s", key, h.name, e)

    def finish_dirs(self) -> None:
        """Directory modes and times, deepest first (entries written inside changed them)."""
        for path, meta in reversed(self.dirs.items()):
            try:
                st = os.stat(path, dir_fd=self.rfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if st.st_ino != meta.ino or not stat.S_ISDIR(st.st_mode):
                continue  # replaced or removed later in the tar
            os.chmod(path, meta.mode, dir_fd=self.rfd)
            os.utime(path, ns=(meta.atime_ns, meta.mtime_ns), dir_fd=self.rfd)

    def rollback(self, was_empty: bool) -> None:
        """Remove what this call created: everything when the root started empty."""
        if was_empty:
            with os.scandir(self.root) as it:
                names = [e.name for e in it]
            for name in names:
                self._silently(lambda n=name: self._remove(n))
        else:
            for path in reversed(self.created or []):
                self._silently(lambda p=path: self._remove(p))

    @staticmethod
    def _silently(action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as e:
            log.warning("rolling back a layer: %s", e)

    def close(self) -> None:
        os.close(self.rfd)


def apply_layer(
    stream: BinaryIO,
    root: str,
    *,
    whiteouts: Literal["delete", "overlay"] = "delete",
    escaping_symlinks: bool = False,
) -> int:
    """Apply the uncompressed layer tar read from `stream` onto directory `root`.

    The stream is read once, sequentially (sockets and pipes are fine), and always to EOF, so a
    caller hashing what it hands over gets the layer's diffID. Returns the bytes read.

    `whiteouts="delete"`: `root` holds the layers below (a copy snapshotter); whiteouts delete.
    `whiteouts="overlay"`: `root` is an empty overlayfs layer dir; whiteouts are recorded.

    Hostile or corrupt input raises InvalidArchive naming the entry; nothing is ever written
    outside `root`. On any error this call removes what it created: when `root` started empty
    it is empty again. When `root` held lower layers, what the tar already deleted or replaced
    there is gone: the caller must then discard `root` (snapshots are applied into a fresh
    directory and removed on error). `root` must not change while the layer is applied.

    A relative symlink whose target climbs above the root (`../../etc/passwd`) is refused, as
    moby refuses it outside a chroot, unless `escaping_symlinks`: a container's own changes
    (commit) may hold one, and docker accepts them there; the link is harmless, since every
    path is resolved inside the root, by us and by the kernel in a container.
    """
    if whiteouts not in ("delete", "overlay"):
        raise ValueError(f"unknown whiteout mode {whiteouts!r}")
    with os.scandir(root) as it:
        was_empty = next(it, None) is None
    applier = _Applier(
        os.path.abspath(root), root, whiteouts == "overlay", track_created=not was_empty
    )
    applier.escaping_symlinks = escaping_symlinks
    reader = TarReader(stream, CHUNK)
    h: TarHeader | None = None
    try:
        try:
            while (h := reader.next()) is not None:
                applier.entry(h, reader)
            applier.pool.drain()
            total = reader.finish()
            applier.finish_dirs()
        except OSError as e:
            if e is reader.stream_error:
                raise  # reading the stream failed (a dropped connection): not our message
            where = f"tar entry {h.name!r}" if h is not None else "layer"
            raise _entry_error(e, where, root) from e
    except BaseException as e:
        # Workers only ever run entries before the failing one: an error of theirs comes first
        # in the tar, so it is the one to report (a KeyboardInterrupt stays one).
        earlier = applier.pool.close()
        applier.rollback(was_empty)
        if earlier is not None and earlier is not e and isinstance(e, Exception):
            raise earlier from None
        raise
    finally:
        applier.pool.close()
        applier.close()
    return total
