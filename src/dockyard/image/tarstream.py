"""Sequential tar reading and header writing for layer tars (no filesystem access).

Why not `tarfile`: on the Python we run (3.11.7) its PAX parser backtracks quadratically on
hostile headers (CVE-2024-6232), a corrupt or truncated header after the first member ends the
archive silently, every member is kept in a list, PAX times become floats (nanoseconds lost) and
global headers rename later members. This reader follows Go's archive/tar (what docker uses):
PAX, GNU and ustar headers, base-256 numbers, header-only types carry no data, a corrupt header
or a short read is an error, extended headers are capped (1 MiB), PAX global headers are
ignored. It never seeks: it reads the stream once, in big chunks, handing out views of them.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.errors import InvalidArchive

BLOCK = 512
CHUNK = 1 << 20
MAX_EXTENDED = 1 << 20  # bytes of PAX/GNU extended headers allowed for one entry
ZERO_BLOCK = bytes(BLOCK)

REG, LNK, SYM, CHR, BLK, DIR, FIFO = "0", "1", "2", "3", "4", "5", "6"
_HEADER_ONLY = frozenset((LNK, SYM, CHR, BLK, DIR, FIFO))
# name, mode, uid, gid, size, mtime, checksum, type, linkname, magic+version
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s")
_DECIMAL = re.compile(rb"[0-9]+")
XATTR_PREFIX = "SCHILY.xattr."


@dataclass(slots=True)
class TarHeader:
    """One tar entry (extended headers already merged). Names are str, surrogateescape."""

    name: str
    type: str = REG
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int = 0
    atime_ns: int | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def _byte_sum(data: bytes) -> int:
    """sum(data), fast: adler32's low half is 1 + the byte sum mod 65521, exact for
    256-byte pieces (at most 65280)."""
    total = 0
    for start in range(0, len(data), 256):
        total += (zlib.adler32(data[start : start + 256]) & 0xFFFF) - 1
    return total


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstr(raw: bytes) -> bytes:
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


def _number(raw: bytes, what: str, offset: int) -> int:
    if raw[0] & 0x80:  # base-256, two's complement
        value = int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
        if raw[0] & 0x40:
            value -= 1 << (len(raw) * 8 - 1)
        return value
    digits = raw.strip(b" \x00")
    if digits.isdigit():  # ASCII digits only: no sign, "_" or "0o" that int() would take
        try:
            return int(digits, 8)
        except ValueError:
            pass
    elif not digits:
        return 0
    raise InvalidArchive(f"invalid tar header at offset {offset}: bad {what} field")


def _pax_time(value: bytes) -> int:
    """PAX `[-]secs[.frac]` to nanoseconds."""
    neg = value.startswith(b"-")
    secs, _, frac = (value[1:] if neg else value).partition(b".")
    if not _DECIMAL.fullmatch(secs) or (frac and not _DECIMAL.fullmatch(frac)):
        raise ValueError(value)
    ns = int(secs) * 1_000_000_000 + int((frac + b"000000000")[:9])
    return -ns if neg else ns


def _parse_pax(data: bytes, offset: int) -> dict[str, bytes]:
    """PAX records `"%d %s=%s\\n"`, parsed linearly (the length covers the whole record)."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0 and data.count(0, pos) == len(data) - pos:
            break  # NUL padding written by some tools
        space = data.find(b" ", pos, pos + 21)
        length_field = data[pos:space] if space > pos else b""
        if not _DECIMAL.fullmatch(length_field):
            raise InvalidArchive(f"invalid PAX header at offset {offset}: bad record length")
        end = pos + int(length_field)
        if end > len(data) or end <= space + 1 or data[end - 1] != 0x0A:
            raise InvalidArchive(f"invalid PAX header at offset {offset}: bad record")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key:
            raise InvalidArchive(f"invalid PAX header at offset {offset}: record without key")
        records[_decode(key)] = value
        pos = end
    return records


class TarReader:
    """Reads a tar stream header by header; `read()` hands out the current entry's data.

    `bytes_read` counts every byte taken from the stream; `finish()` reads it to EOF.
    """

    def __init__(self, stream: BinaryIO, chunk: int = CHUNK) -> None:
        self._stream = stream
        self._chunk = chunk
        self._view = memoryview(b"")
        self._pos = 0
        self.bytes_read = 0
        self._remaining = 0  # data bytes of the current entry not yet read
        self._padding = 0
        self._offset = 0  # archive offset of the next header (for messages)
        self._entry = ""
        self._done = False
        self.stream_error: BaseException | None = None

    # -- buffer -----------------------------------------------------------------------------
    def _fill(self) -> bool:
        try:
            data = self._stream.read(self._chunk)
        except BaseException as e:
            self.stream_error = e  # the stream's own failure, not the archive's
            raise
        if not data:
            return False
        self.bytes_read += len(data)
        self._view = memoryview(data)
        self._pos = 0
        return True

    def _take(self, n: int) -> memoryview:
        """Up to n buffered bytes (refilling when empty); empty only at EOF."""
        if self._pos >= len(self._view) and not self._fill():
            return memoryview(b"")
        view = self._view[self._pos : self._pos + n]
        self._pos += len(view)
        return view

    def _read_exact(self, n: int) -> bytes:
        first = self._take(n)
        if len(first) == n or not first:
            return first.tobytes()
        parts = [first.tobytes()]
        got = len(first)
        while got < n:
            more = self._take(n - got)
            if not more:
                break
            parts.append(more.tobytes())
            got += len(more)
        return b"".join(parts)

    def _skip(self, n: int) -> bool:
        while n:
            got = len(self._take(n))
            if not got:
                return False
            n -= got
        return True

    # -- entries ----------------------------------------------------------------------------
    def read(self, n: int = CHUNK) -> memoryview:
        """Up to n bytes of the current entry's data; empty when it is all read."""
        if not self._remaining:
            return memoryview(b"")
        view = self._take(min(n, self._remaining))
        if not view:
            raise InvalidArchive(f"unexpected end of archive in the data of {self._entry!r}")
        self._remaining -= len(view)
        return view

    def _truncated(self) -> InvalidArchive:
        return InvalidArchive(f"unexpected end of archive at offset {self._offset}")

    def _block(self) -> bytes | None:
        block = self._read_exact(BLOCK)
        if not block:
            return None
        if len(block) != BLOCK:
            if self._offset == 0:
                raise InvalidArchive(
                    f"invalid tar header at offset 0: {len(block)} bytes, not a tar archive"
                )
            raise self._truncated()
        return block

    def next(self) -> TarHeader | None:
        """The next entry, or None at the end of the archive."""
        if self._done:
            return None
        if not self._skip(self._remaining + self._padding):
            raise InvalidArchive(f"unexpected end of archive in the data of {self._entry!r}")
        self._remaining = self._padding = 0
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        extended = 0
        while True:
            offset = self._offset
            block = self._block()
            if block is None:
                if extended:
                    raise self._truncated()
                self._done = True  # EOF on a header boundary: accepted, as Go does
                return None
            self._offset += BLOCK
            if block == ZERO_BLOCK:
                second = self._block()
                if second is not None and second != ZERO_BLOCK:
                    raise InvalidArchive(f"invalid tar header at offset {offset + BLOCK}")
                if extended:
                    raise InvalidArchive(f"extended header at offset {offset} has no entry")
                self._done = True
                return None
            hdr, size = self._parse_block(block, offset)
            kind = hdr.type
            if kind in ("x", "g", "L", "K"):
                extended += size
                if size < 0 or extended > MAX_EXTENDED:
                    raise InvalidArchive(
                        f"extended tar header at offset {offset} is larger than "
                        f"{MAX_EXTENDED} bytes"
                    )
                data = self._read_exact(size)
                if len(data) != size or not self._skip(-size % BLOCK):
                    raise self._truncated()
                self._offset += size + (-size % BLOCK)
                if kind == "x":
                    pax.update(_parse_pax(data, offset))
                elif kind == "g":
                    _parse_pax(data, offset)  # validated, then ignored (as docker does)
                elif kind == "L":
                    long_name = _cstr(data)
                else:
                    long_link = _cstr(data)
                continue
            if long_name is not None:
                hdr.name = _decode(long_name)
            if long_link is not None:
                hdr.linkname = _decode(long_link)
            if pax:
                self._apply_pax(hdr, pax, offset)
            if kind in ("\x00", "7"):
                kind = hdr.type = DIR if kind == "\x00" and hdr.name.endswith("/") else REG
            if kind not in _HEADER_ONLY and kind != REG:
                raise InvalidArchive(
                    f"unsupported tar entry type {kind!r} for {hdr.name!r} at offset {offset}"
                )
            if hdr.size < 0 or not (0 <= hdr.uid < 1 << 32 and 0 <= hdr.gid < 1 << 32):
                raise InvalidArchive(f"invalid size or owner for {hdr.name!r} at offset {offset}")
            data_size = 0 if kind in _HEADER_ONLY else hdr.size
            self._entry = hdr.name
            self._remaining = data_size
            self._padding = -data_size % BLOCK
            self._offset += data_size + self._padding
            return hdr

    def _parse_block(self, block: bytes, offset: int) -> tuple[TarHeader, int]:
        (name, mode, uid, gid, size, mtime, checksum, kind, link, magic) = _USTAR.unpack_from(block)
        try:  # the common case, in one go; anything odd takes the careful path
            values = [
                int(f.strip(b" \x00") or b"0", 8) for f in (checksum, mode, uid, gid, mtime, size)
            ]
        except ValueError:
            values = [
                _number(f, what, offset)
                for f, what in (
                    (checksum, "checksum"),
                    (mode, "mode"),
                    (uid, "uid"),
                    (gid, "gid"),
                    (mtime, "mtime"),
                    (size, "size"),
                )
            ]
        stored = values[0]
        unsigned = _byte_sum(block) - sum(checksum) + 256
        if stored != unsigned:  # some old tars summed signed chars
            high = sum(1 for b in block[:148] + block[156:] if b > 127)
            if stored != unsigned - 256 * high:
                raise InvalidArchive(f"invalid tar header at offset {offset}: checksum mismatch")
        hdr = TarHeader(
            name="",
            type=kind.decode("latin-1"),
            mode=values[1] & 0o7777,
            uid=values[2],
            gid=values[3],
            mtime_ns=values[4] * 1_000_000_000,
            linkname=_decode(_cstr(link)) if link[0] else "",
        )
        name = _cstr(name)
        if magic[:6] in (b"ustar\x00", b"ustar "):
            if kind in (b"3", b"4"):
                hdr.devmajor = _number(block[329:337], "devmajor", offset)
                hdr.devminor = _number(block[337:345], "devminor", offset)
            if magic == b"ustar\x0000":
                if block[345]:
                    name = _cstr(block[345:500]) + b"/" + name
            elif block[345]:  # GNU: atime where ustar has the prefix
                atime = _number(block[345:357], "atime", offset)
                if atime:
                    hdr.atime_ns = atime * 1_000_000_000
        hdr.name = _decode(name)
        hdr.size = values[5]
        return hdr, values[5]

    @staticmethod
    def _apply_pax(hdr: TarHeader, pax: dict[str, bytes], offset: int) -> None:
        try:
            for key, value in pax.items():
                if key == "path":
                    hdr.name = _decode(value)
                elif key == "linkpath":
                    hdr.linkname = _decode(value)
                elif key in ("size", "uid", "gid"):
                    if not _DECIMAL.fullmatch(value):
                        raise ValueError(value)
                    setattr(hdr, key, int(value))
                elif key == "mtime":
                    hdr.mtime_ns = _pax_time(value)
                elif key == "atime":
                    hdr.atime_ns = _pax_time(value)
                elif key.startswith(XATTR_PREFIX):
                    if "\x00" in key or key == XATTR_PREFIX:
                        raise ValueError(key)
                    hdr.xattrs[key[len(XATTR_PREFIX) :]] = value
                elif key.startswith("GNU.sparse."):
                    raise InvalidArchive(f"sparse tar entry {hdr.name!r} is not supported")
        except ValueError:
            raise InvalidArchive(
                f"invalid PAX header at offset {offset}: bad value for {key!r}"
            ) from None
        if "\x00" in hdr.name or "\x00" in hdr.linkname:
            raise InvalidArchive(f"invalid tar entry name {hdr.name!r}: contains NUL")

    def finish(self) -> int:
        """Read the stream to EOF (trailer, padding); return the total bytes read."""
        while self._take(self._chunk):
            pass
        return self.bytes_read


# -- writing --------------------------------------------------------------------------------


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _format_ns(ns: int) -> bytes:
    sign = b"-" if ns < 0 else b""
    secs, frac = divmod(abs(ns), 1_000_000_000)
    if not frac:
        return sign + b"%d" % secs
    return sign + (b"%d.%09d" % (secs, frac)).rstrip(b"0")


def _ustar(
    name: bytes,
    kind: str,
    *,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    link: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    head = b"%s%07o\x00%07o\x00%07o\x00%011o\x00%011o\x00" % (
        name[:100].ljust(100, b"\x00"),
        mode & 0o7777,
        uid,
        gid,
        size,
        mtime,
    )
    tail = b"%s%sustar\x0000%s%07o\x00%07o\x00%s" % (
        kind.encode("latin-1"),
        link[:100].ljust(100, b"\x00"),
        _EMPTY_OWNER_NAMES,
        devmajor,
        devminor,
        _EMPTY_PREFIX,
    )
    checksum = _byte_sum(head) + _byte_sum(tail) + 256  # the checksum field counts as 8 spaces
    return head + b"%06o\x00 " % checksum + tail


_EMPTY_OWNER_NAMES = bytes(64)
_EMPTY_PREFIX = bytes(167)  # prefix (155) and padding (12)


def encode_header(h: TarHeader) -> bytes:
    """The header blocks (PAX extended header when needed, then ustar) for one entry.

    Directories get a trailing "/", uname/gname stay empty, sub-second mtimes, long or
    non-ASCII names, big ids and sizes go to PAX records, xattrs to `SCHILY.xattr.*`.
    """
    name = h.name.encode("utf-8", "surrogateescape")
    if h.type == DIR and not name.endswith(b"/"):
        name += b"/"
    link = h.linkname.encode("utf-8", "surrogateescape")
    size = h.size if h.type == REG else 0
    records: list[bytes] = []
    if len(name) > 100 or not name.isascii():
        records.append(_pax_record("path", name))
    if len(link) > 100 or not link.isascii():
        records.append(_pax_record("linkpath", link))
    if size >= 8**11:
        records.append(_pax_record("size", b"%d" % size))
        size = 0
    uid, gid = h.uid, h.gid
    if uid >= 8**7:
        records.append(_pax_record("uid", b"%d" % uid))
        uid = 0
    if gid >= 8**7:
        records.append(_pax_record("gid", b"%d" % gid))
        gid = 0
    secs, frac = divmod(h.mtime_ns, 1_000_000_000)
    if frac or not 0 <= secs < 8**11:
        records.append(_pax_record("mtime", _format_ns(h.mtime_ns)))
        secs = secs if 0 <= secs < 8**11 else 0
    for key in sorted(h.xattrs):
        records.append(_pax_record(XATTR_PREFIX + key, h.xattrs[key]))
    main = _ustar(
        name,
        h.type,
        mode=h.mode,
        uid=uid,
        gid=gid,
        size=size,
        mtime=secs,
        link=link,
        devmajor=h.devmajor,
        devminor=h.devminor,
    )
    if not records:
        return main
    data = b"".join(records)
    pax = _ustar(b"././@PaxHeader", "x", size=len(data))
    return pax + data + bytes(-len(data) % BLOCK) + main


END_OF_ARCHIVE = bytes(2 * BLOCK)
