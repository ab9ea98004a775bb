"""`docker save` / `docker load` archives: the public API and the safe outer-tar extraction.

Three steps, none of which knows about the database or the content store (the engine glues):

- `write_save_archive` (archive_save.py) streams the archive docker 25+ writes;
- `extract_archive` (here) unpacks an uploaded archive, possibly compressed, into an empty
  staging directory, refusing anything that could write outside it;
- `read_archive` (archive_load.py) parses the staging directory as a docker-archive
  (manifest.json, old and new layouts) or an OCI image layout (index.json) into `LoadImage`s.

The outer archive is hostile input. Unlike a layer tar (whose absolute symlinks point into the
container), nothing in it may point out of the staging directory, because `read_archive` follows
its symlinks: members are regular files, directories, hardlinks to regular files and relative
symlinks whose `..` only lead the target (`../<id>/layer.tar`, as old docker and skopeo write)
and do not climb above the link's own directory. Parents are walked with O_NOFOLLOW, so no
entry is ever written through a symlink.
"""

from __future__ import annotations

import bz2
import errno
import io
import lzma
import os
import stat
from typing import Any, BinaryIO

import zstandard
from isal import igzip_lib

from dockyard.errors import InvalidArchive
from dockyard.image.archive_load import LoadImage, LoadLayer, read_archive
from dockyard.image.archive_save import SaveImage, plan_save_archive, write_save_archive
from dockyard.image.compression import open_decompressed
from dockyard.image.tarstream import DIR, LNK, REG, SYM, TarReader

__all__ = [
    "LoadImage",
    "LoadLayer",
    "SaveImage",
    "extract_archive",
    "plan_save_archive",
    "read_archive",
    "write_save_archive",
]

_CHUNK = 1 << 20
# Errors a hostile name or layout provokes from the kernel; anything else (ENOSPC, EIO) is ours.
_ARCHIVE_ERRNOS = {errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}


def extract_archive(stream: BinaryIO, dest: str) -> None:
    """Unpack the outer archive in `stream` (tar; gzip, zstd, bzip2 or xz compressed too) into
    the existing directory `dest`. Raises InvalidArchive for corrupt or hostile input; what was
    written until then stays inside `dest` for the caller to remove."""
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        reader = TarReader(_Decompressed(stream))
        while (hdr := reader.next()) is not None:
            path = _member_path(hdr.name)
            if path is None:
                if hdr.type != DIR:
                    raise InvalidArchive(f"invalid archive: {hdr.name!r} is not a directory")
                continue
            try:
                _extract_member(root, path, hdr.type, hdr.linkname, reader)
            except OSError as exc:
                if exc.errno not in _ARCHIVE_ERRNOS:
                    raise
                raise InvalidArchive(f"invalid archive: cannot extract {path!r}: {exc}") from None
    finally:
        os.close(root)


def _member_path(name: str) -> str | None:
    """The member's path relative to dest; None for the root itself ("./")."""
    if "\x00" in name:
        raise InvalidArchive(f"invalid archive: entry name {name!r} contains NUL")
    if name.startswith("/"):
        raise InvalidArchive(f"invalid archive: entry {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArchive(f"invalid archive: entry {name!r} contains '..'")
    return "/".join(parts) or None


def _check_symlink(path: str, target: str) -> None:
    """Relative targets whose `..` come first and stay within the link's depth: following such
    a link from a real directory (parents are never symlinks) cannot leave dest, whatever the
    other links are (see the module docstring)."""
    if not target or "\x00" in target or target.startswith("/"):
        raise InvalidArchive(f"invalid archive: symlink {path!r} -> {target!r} is not relative")
    parts = [p for p in target.split("/") if p not in ("", ".")]
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    if ".." in parts[ups:] or ups > path.count("/"):
        raise InvalidArchive(f"invalid archive: symlink {path!r} -> {target!r} leaves the archive")


def _extract_member(root: int, path: str, kind: str, linkname: str, reader: TarReader) -> None:
    parent_path, _, base = path.rpartition("/")
    if kind == REG:
        parent = _open_dir(root, parent_path, create=True)
        try:
            _make_room(parent, base, path)
            fd = os.open(
                base,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=parent,
            )
            with open(fd, "wb") as out:
                while chunk := reader.read(_CHUNK):
                    out.write(chunk)
        finally:
            os.close(parent)
    elif kind == DIR:
        os.close(_open_dir(root, path, create=True))
    elif kind == SYM:
        _check_symlink(path, linkname)
        parent = _open_dir(root, parent_path, create=True)
        try:
            _make_room(parent, base, path)
            os.symlink(linkname, base, dir_fd=parent)
        finally:
            os.close(parent)
    elif kind == LNK:
        _hardlink(root, path, linkname)
    else:
        raise InvalidArchive(f"invalid archive: {path!r}: device nodes and fifos are not allowed")


def _hardlink(root: int, path: str, linkname: str) -> None:
    source = _member_path(linkname)
    if source is None or source == path:
        raise InvalidArchive(f"invalid archive: hardlink {path!r} -> {linkname!r} is invalid")
    src_parent_path, _, src_base = source.rpartition("/")
    src_parent = _open_dir(root, src_parent_path, create=False)
    parent = -1
    try:
        try:
            st = os.stat(src_base, dir_fd=src_parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        # Only regular files: a hardlink to a symlink would carry its relative target to
        # another directory, where it could point elsewhere.
        if st is None or not stat.S_ISREG(st.st_mode):
            raise InvalidArchive(
                f"invalid archive: hardlink {path!r} -> {linkname!r}: no such regular file"
            )
        parent_path, _, base = path.rpartition("/")
        parent = _open_dir(root, parent_path, create=True)
        _make_room(parent, base, path)
        os.link(src_base, base, src_dir_fd=src_parent, dst_dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(src_parent)
        if parent >= 0:
            os.close(parent)


def _make_room(parent: int, base: str, path: str) -> None:
    """A later member replaces an earlier file or link of the same name, never a directory."""
    try:
        st = os.stat(base, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArchive(f"invalid archive: {path!r} would replace a directory")
    os.unlink(base, dir_fd=parent)


def _open_dir(root: int, path: str, *, create: bool) -> int:
    """An fd of dest/path, walking each component with O_NOFOLLOW (creating missing ones)."""
    fd = os.dup(root)
    try:
        walked = ""
        for part in path.split("/") if path else ():
            walked = f"{walked}/{part}" if walked else part
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise InvalidArchive(f"invalid archive: {walked!r} does not exist") from None
                os.mkdir(part, 0o755, dir_fd=fd)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise InvalidArchive(
                        f"invalid archive: cannot write through symlink {walked!r}"
                    )
                if not stat.S_ISDIR(st.st_mode):
                    raise InvalidArchive(f"invalid archive: {walked!r} is not a directory")
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


class _Decompressed:
    """The archive's bytes, decompressed when they start with a gzip or zstd magic (through
    compression.open_decompressed, which also catches truncated zstd frames) or a bzip2 or xz
    one (docker load accepts those too); every decoder error becomes InvalidArchive."""

    _DECODE_ERRORS = (
        OSError,
        EOFError,
        ValueError,
        igzip_lib.IsalError,  # isal's gzip raises its own type for corrupt deflate data
        zstandard.ZstdError,
        lzma.LZMAError,
    )

    def __init__(self, stream: BinaryIO) -> None:
        head = b""
        while len(head) < 6:
            more = stream.read(6 - len(head))
            if not more:
                break
            head += more
        raw = _Prefixed(head, stream)
        # The decoders live as long as the extraction; they hold nothing that needs closing.
        self._reader: Any
        if head.startswith(b"BZh"):
            self._reader = bz2.BZ2File(raw)
        elif head.startswith(b"\xfd7zXZ\x00"):
            self._reader = lzma.LZMAFile(raw)  # noqa: SIM115
        else:
            self._reader = open_decompressed(raw)  # type: ignore[arg-type]
        self._plain = self._reader is raw

    def read(self, n: int = -1) -> bytes:
        if self._plain:  # an OSError here is the connection's, not the archive's
            return self._reader.read(n)
        try:
            return self._reader.read(n)
        except self._DECODE_ERRORS as exc:
            raise InvalidArchive(f"invalid archive: corrupt compressed stream: {exc}") from None


class _Prefixed(io.RawIOBase):
    """`head` (already read to sniff the format) followed by the rest of `stream`."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)
