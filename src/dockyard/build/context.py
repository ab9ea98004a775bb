"""The build context: the request body's tar, indexed once, read in place.

The body (plain, gzip, bzip2, xz or zstd) is spooled to memory, or to a file under the
daemon's tmp directory when it is large, while its headers are indexed; files are later read
back by offset. Nothing is extracted: COPY reads a source straight from the spool, so a fully
cached rebuild costs one pass over the body plus hashing what COPY names.

Hostile input: names are cleaned with the layer rules (absolute names and names that climb out
are refused), symlinks are resolved inside the context root only, hardlinks must point at an
earlier regular file, and the index is bounded (entries, extended headers by TarReader).
"""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.errors import InvalidArchive, InvalidParameter
from dockyard.image import compression
from dockyard.image.tarsafe import MAX_SYMLINKS, member_path, resolve_in_root
from dockyard.image.tarstream import DIR, LNK, REG, SYM, TarReader

__all__ = ["BuildContext", "ContextEntry", "open_context"]

SPOOL_IN_MEMORY = 32 << 20
MAX_ENTRIES = 1_000_000
CHUNK = 1 << 20


@dataclass(slots=True)
class ContextEntry:
    path: str  # cleaned, relative ("" is the root)
    type: str  # REG, DIR, SYM (hardlinks become REG sharing the target's data)
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    offset: int = 0  # of the data in the spool
    linkname: str = ""


class BuildContext:
    """A read-only tree of the context's entries. Paths are relative, without `./`."""

    def __init__(self, spool: BinaryIO, entries: dict[str, ContextEntry]) -> None:
        self._spool = spool
        self.entries = entries
        self.children: dict[str, list[str]] = {}
        for path in entries:
            if path:
                self.children.setdefault(posixpath.dirname(path), []).append(path)
        for names in self.children.values():
            names.sort()

    def close(self) -> None:
        self._spool.close()

    def read(self, entry: ContextEntry) -> bytes:
        self._spool.seek(entry.offset)
        return self._spool.read(entry.size)

    def chunks(self, entry: ContextEntry) -> Iterator[bytes]:
        left, pos = entry.size, entry.offset
        while left:
            self._spool.seek(pos)
            data = self._spool.read(min(left, CHUNK))
            if not data:
                raise InvalidArchive(f"build context: short data for {entry.path!r}")
            pos += len(data)
            left -= len(data)
            yield data

    def _readlink(self, path: str) -> str | None:
        entry = self.entries.get(path)
        return entry.linkname if entry is not None and entry.type == SYM else None

    def resolve(self, path: str, follow: bool = True) -> str:
        """`path` (relative to the context root, `..` stops at the root) with its symlinks
        resolved inside the context; the last component too when `follow`."""
        parent, _, base = path.strip("/").rpartition("/")
        resolved = resolve_in_root(parent, self._readlink)
        joined = posixpath.join(resolved, base) if base not in ("", ".", "..") else resolved
        if base == "..":
            joined = posixpath.dirname(resolved)
        if not follow:
            return joined
        for _ in range(MAX_SYMLINKS):
            target = self._readlink(joined)
            if target is None:
                return joined
            start = "" if target.startswith("/") else posixpath.dirname(joined)
            joined = resolve_in_root(posixpath.join(start, target), self._readlink)
        raise InvalidParameter(f"too many levels of symbolic links: {path}")

    def lookup(self, path: str) -> ContextEntry | None:
        return self.entries.get(self.resolve(path))

    def remove(self, path: str) -> None:
        """Drop an entry (and what is below it) from the tree."""
        if path not in self.entries or not path:
            return
        for entry in list(self.walk(path)):
            self.entries.pop(entry.path, None)
            self.children.pop(entry.path, None)
        self.entries.pop(path)
        self.children.pop(path, None)
        siblings = self.children.get(posixpath.dirname(path), [])
        if path in siblings:
            siblings.remove(path)

    def all_paths(self) -> Iterator[str]:
        return (p for p in self.entries if p)

    def walk(self, top: str) -> Iterator[ContextEntry]:
        """Everything below directory `top` (not itself), parents before children."""
        stack = list(reversed(self.children.get(top, [])))
        while stack:
            path = stack.pop()
            entry = self.entries[path]
            yield entry
            if entry.type == DIR:
                stack.extend(reversed(self.children.get(path, [])))


def _decompressed(stream: BinaryIO) -> BinaryIO:
    head = stream.read(6) if not hasattr(stream, "peek") else stream.peek(6)[:6]  # type: ignore[attr-defined]
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(_Prefix(head, stream))  # type: ignore[arg-type]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream)  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(stream)  # type: ignore[return-value]
    return compression.open_decompressed(stream, threaded=False)


class _Prefix(io.RawIOBase):
    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def _ensure_parents(entries: dict[str, ContextEntry], path: str) -> None:
    parent = posixpath.dirname(path)
    while parent and parent not in entries:
        entries[parent] = ContextEntry(parent, DIR, 0o755, 0, 0, 0)
        parent = posixpath.dirname(parent)


def open_context(stream: BinaryIO, tmp_dir: str | None = None) -> BuildContext:
    """Read a context tar (any of the compressions docker accepts) into a BuildContext."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=tmp_dir)  # noqa: SIM115
    try:
        entries: dict[str, ContextEntry] = {"": ContextEntry("", DIR, 0o755, 0, 0, 0)}
        try:
            reader = TarReader(_decompressed(stream), CHUNK)
            while (h := reader.next()) is not None:
                path = member_path(h.name.lstrip("/")) if h.name.strip("/") else None
                if path is None:
                    continue
                if len(entries) > MAX_ENTRIES:
                    raise InvalidArchive(f"build context has more than {MAX_ENTRIES} entries")
                entry = ContextEntry(path, h.type, h.mode & 0o7777, h.uid, h.gid, h.mtime_ns)
                if h.type == REG:
                    entry.offset = spool.tell()
                    while chunk := reader.read(CHUNK):
                        spool.write(chunk)
                    entry.size = spool.tell() - entry.offset
                elif h.type == SYM:
                    entry.linkname = h.linkname
                elif h.type == LNK:
                    target = entries.get(member_path(h.linkname.lstrip("/")) or "")
                    if target is None or target.type != REG:
                        raise InvalidArchive(
                            f"invalid hardlink {h.name!r} -> {h.linkname!r} in the build context"
                        )
                    entry.type, entry.offset, entry.size = REG, target.offset, target.size
                elif h.type != DIR:
                    continue  # devices and fifos are not sent by clients; COPY skips them
                existing = entries.get(path)
                if existing is not None and existing.type == DIR and entry.type == DIR:
                    existing.mode, existing.uid, existing.gid = entry.mode, entry.uid, entry.gid
                    existing.mtime_ns = entry.mtime_ns
                    continue
                _ensure_parents(entries, path)
                entries[path] = entry
        except (EOFError, OSError, lzma.LZMAError) as e:
            if isinstance(e, InvalidArchive):
                raise
            raise InvalidArchive(f"failed to read the build context: {e}") from None
        return BuildContext(spool, entries)  # type: ignore[arg-type]
    except BaseException:
        spool.close()
        raise
