"""The diff service's `compare` verb: directories written out as a layer tar.

- `write_diff_overlay(upper, out)`: an overlayfs upper dir already is the diff; whiteout
  devices (0/0 char) become `.wh.NAME`, opaque dirs get a `.wh..wh..opq` entry after their own.
- `write_diff_trees(lower, upper, out)`: two full trees (the copy snapshotter) compared with
  moby's `changes.go` rules: an entry is changed when its type or mode, owner, device number or
  (for non-directories) size or mtime differ, and here also when its xattrs or symlink target do
  (moby compares only security.capability); contents are not read. Changed dirs and the parents
  of any change are written; a deleted entry becomes one `.wh.NAME` (nothing under it).

The tar is deterministic in its order: a depth-first walk, names sorted bytewise, each
directory before its contents. Headers are PAX: names without "./", directories ending in "/",
numeric owners with empty uname/gname, nanosecond mtimes, xattrs (`security.capability`,
`user.*`, `trusted.*` other than overlayfs' own) as `SCHILY.xattr.*`. A file seen again through
another hardlink is a hardlink entry. Contents are streamed, never held whole.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.errors import DockyardError
from dockyard.image.tarstream import (
    BLK,
    CHR,
    DIR,
    END_OF_ARCHIVE,
    FIFO,
    LNK,
    SYM,
    TarHeader,
    encode_header,
)

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_SMALL = 256 << 10  # files up to this size go through the output buffer
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_UNSUPPORTED_XATTRS = (  # an upper dir using these is not a plain diff
    "trusted.overlay.redirect",
    "trusted.overlay.metacopy",
    "user.overlay.redirect",
    "user.overlay.metacopy",
)
_XATTR_MISSING = (errno.ENOTSUP, errno.ENODATA, errno.ENOENT)


def _wanted(name: str) -> bool:
    if name.startswith(("trusted.overlay.", "user.overlay.")):
        return False
    return name == "security.capability" or name.startswith(("user.", "trusted."))


def _xattr_names(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _XATTR_MISSING:
            return []
        raise


def _xattrs(path: str, names: list[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name in names:
        if not _wanted(name):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno in _XATTR_MISSING:
                continue
            raise
        if name == "security.capability" and len(value) >= 20 and value[3] == 3:
            # VFS_CAP_REVISION_3 names a root uid that means nothing outside this user
            # namespace: store revision 2, as docker does
            value = value[:3] + b"\x02" + value[4:20]
        found[name] = value
    return found


def _listdir(path: str) -> dict[str, os.stat_result]:
    with os.scandir(path) as it:
        return {e.name: e.stat(follow_symlinks=False) for e in it}


def _sorted(names: set[str] | dict[str, os.stat_result]) -> list[str]:
    return sorted(names, key=os.fsencode)


def _sendfile_fd(out: BinaryIO) -> int | None:
    """The fd to sendfile(2) to when `out` is a plain file object, else None."""
    if type(out) not in (io.FileIO, io.BufferedWriter):
        return None
    try:
        return out.fileno()
    except (OSError, ValueError):
        return None


class _TarWriter:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buf = bytearray()
        self.links: dict[tuple[int, int], str] = {}
        self.sendfile_fd = _sendfile_fd(out)
        self.scratch = bytearray(CHUNK)

    def _flush(self) -> None:
        if self.buf:
            self.out.write(self.buf)
            self.buf = bytearray()

    def _header(self, h: TarHeader) -> None:
        self.buf += encode_header(h)
        if len(self.buf) >= CHUNK:
            self._flush()

    def whiteout(self, parent: str, name: str, uid: int = 0, gid: int = 0) -> None:
        marker = f".wh.{name}"
        self._header(
            TarHeader(name=f"{parent}/{marker}" if parent else marker, mode=0o600, uid=uid, gid=gid)
        )

    def opaque(self, rel: str, st: os.stat_result) -> None:
        self._header(
            TarHeader(
                name=f"{rel}/.wh..wh..opq",
                mode=stat.S_IMODE(st.st_mode) & 0o777,
                uid=st.st_uid,
                gid=st.st_gid,
            )
        )

    def entry(self, rel: str, path: str, st: os.stat_result, xattrs: dict[str, bytes]) -> None:
        mode = st.st_mode
        h = TarHeader(
            name=rel,
            mode=stat.S_IMODE(mode),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
            xattrs=xattrs,
        )
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                first = self.links.setdefault((st.st_dev, st.st_ino), rel)
                if first != rel:
                    h.type, h.linkname = LNK, first
                    self._header(h)
                    return
            h.size = st.st_size
            self._header(h)
            self._contents(rel, path, st.st_size)
            return
        if stat.S_ISDIR(mode):
            h.type = DIR
        elif stat.S_ISLNK(mode):
            h.type, h.linkname = SYM, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            h.type = CHR if stat.S_ISCHR(mode) else BLK
            h.devmajor, h.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            h.type = FIFO
        else:
            log.warning("not archiving %s: sockets cannot be stored in a tar", rel)
            return
        self._header(h)

    def _contents(self, rel: str, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if size <= _SMALL:
                remaining = size
                while remaining:
                    data = os.read(fd, remaining)
                    if not data:
                        break
                    self.buf += data
                    remaining -= len(data)
            else:
                self._flush()
                remaining = self._stream(fd, size)
        finally:
            os.close(fd)
        if remaining:
            raise DockyardError(f"{rel} shrank while it was archived")
        self.buf += bytes(-size % 512)
        if len(self.buf) >= CHUNK:
            self._flush()

    def _stream(self, fd: int, size: int) -> int:
        """Copy `size` bytes of fd to the output; return how many were missing."""
        remaining = size
        if self.sendfile_fd is not None:
            self.out.flush()
            offset = 0
            while remaining:
                sent = os.sendfile(self.sendfile_fd, fd, offset, min(remaining, 1 << 30))
                if not sent:
                    break
                offset += sent
                remaining -= sent
            return remaining
        view = memoryview(self.scratch)
        while remaining:
            n = os.readv(fd, [view[: min(remaining, CHUNK)]])
            if not n:
                break
            self.out.write(view[:n])
            remaining -= n
        return remaining

    def close(self) -> None:
        self.buf += END_OF_ARCHIVE
        self._flush()
        self.out.flush()


def write_diff_overlay(upper: str, out: BinaryIO) -> None:
    """Write the overlayfs upper dir `upper` as a layer tar to `out`.

    The upper must come from a mount without redirect_dir and metacopy (docker's overlay2
    mounts so): a renamed lower directory or a metadata-only copy-up cannot be written as a
    plain diff, and is refused.
    """
    w = _TarWriter(out)
    stack = [("", upper, iter(_sorted(top := _listdir(upper))), top)]
    while stack:
        rel_dir, abs_dir, names, stats = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            continue
        st = stats[name]
        rel = f"{rel_dir}/{name}" if rel_dir else name
        path = f"{abs_dir}/{name}"
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            w.whiteout(rel_dir, name, st.st_uid, st.st_gid)
            continue
        xnames = _xattr_names(path)
        bad = [n for n in xnames if n in _UNSUPPORTED_XATTRS]
        if bad:
            raise DockyardError(f"cannot diff {path}: overlayfs {bad[0]} is not supported")
        w.entry(rel, path, st, _xattrs(path, xnames))
        if stat.S_ISDIR(st.st_mode):
            if any(
                n in _OPAQUE_XATTRS and os.getxattr(path, n, follow_symlinks=False) == b"y"
                for n in xnames
            ):
                w.opaque(rel, st)
            children = _listdir(path)
            stack.append((rel, path, iter(_sorted(children)), children))
    w.close()


def _same_time(a: int, b: int) -> bool:
    """moby's sameFsTime: equal, or the same second with one side lacking nanoseconds."""
    if a == b:
        return True
    return a // 1_000_000_000 == b // 1_000_000_000 and (
        a % 1_000_000_000 == 0 or b % 1_000_000_000 == 0
    )


def _stat_differs(old: os.stat_result, new: os.stat_result) -> bool:
    if (
        old.st_mode != new.st_mode
        or old.st_uid != new.st_uid
        or old.st_gid != new.st_gid
        or old.st_rdev != new.st_rdev
    ):
        return True
    # a directory's size and mtime say nothing about a change (moby#9874)
    return not stat.S_ISDIR(old.st_mode) and (
        old.st_size != new.st_size or not _same_time(old.st_mtime_ns, new.st_mtime_ns)
    )


@dataclass(slots=True)
class _Frame:
    rel: str
    lower: str | None
    upper: str
    items: list[tuple[str, os.stat_result | None, os.stat_result | None]]
    index: int
    st: os.stat_result | None
    xattrs: dict[str, bytes]
    emitted: bool


def _frame(
    rel: str,
    lower: str | None,
    upper: str,
    st: os.stat_result | None,
    xattrs: dict[str, bytes],
    emitted: bool,
) -> _Frame:
    old = _listdir(lower) if lower is not None else {}
    new = _listdir(upper)
    items = [(n, old.get(n), new.get(n)) for n in _sorted(old.keys() | new.keys())]
    return _Frame(rel, lower, upper, items, 0, st, xattrs, emitted)


def write_diff_trees(lower: str, upper: str, out: BinaryIO) -> None:
    """Write what changed from the full tree `lower` to the full tree `upper` as a layer tar."""
    w = _TarWriter(out)
    frames = [_frame("", lower, upper, None, {}, True)]

    def parents() -> None:  # a change is written after every directory above it
        for f in frames:
            if not f.emitted and f.st is not None:
                w.entry(f.rel, f.upper, f.st, f.xattrs)
                f.emitted = True

    while frames:
        f = frames[-1]
        if f.index == len(f.items):
            frames.pop()
            continue
        name, old, new = f.items[f.index]
        f.index += 1
        rel = f"{f.rel}/{name}" if f.rel else name
        if new is None:
            parents()
            w.whiteout(f.rel, name)
            continue
        if old is not None and (old.st_dev, old.st_ino) == (new.st_dev, new.st_ino):
            continue  # the very same file (moby's walker prunes these)
        path = f"{f.upper}/{name}"
        xattrs = _xattrs(path, _xattr_names(path))
        if old is None:
            changed = True
        else:
            lpath = f"{f.lower}/{name}"
            changed = (
                _stat_differs(old, new)
                or _xattrs(lpath, _xattr_names(lpath)) != xattrs
                or (stat.S_ISLNK(new.st_mode) and os.readlink(lpath) != os.readlink(path))
            )
        if changed:
            parents()
            w.entry(rel, path, new, xattrs)
        if stat.S_ISDIR(new.st_mode):
            below = f"{f.lower}/{name}" if old is not None and stat.S_ISDIR(old.st_mode) else None
            frames.append(_frame(rel, below, path, new, xattrs, changed))
    w.close()
