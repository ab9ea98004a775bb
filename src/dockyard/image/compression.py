"""Layer compression: detect gzip/zstd by magic, decompress streams, gzip with isal.

Everything here is sequential and works on sockets and pipes: the magic bytes are peeked by
reading them and handing them back in front of the rest of the stream, never by seeking.
Decompression errors surface as InvalidArchive.
"""

from __future__ import annotations

import io
import queue
import struct
import threading
import zlib
from typing import BinaryIO, Literal

import zstandard
from isal import igzip, isal_zlib

from dockyard.errors import InvalidArchive

Compression = Literal["gzip", "zstd", "none"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAGIC_LEN = 4
ZSTD_MAX_WINDOW = 1 << 27  # 128 MiB, zstd's own default limit: bounds memory per stream
CHUNK = 1 << 20
# isal level 1: as fast as level 0 here, and a ratio close to gzip -6's (numbers in
# the module's tests / report); level 0 gives much bigger blobs
DEFAULT_GZIP_LEVEL = 1


def _is_zstd_skippable(head: bytes) -> bool:
    return len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50


def detect(head: bytes) -> Compression:
    """The compression of a stream starting with `head` (at least 4 bytes when available)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC) or _is_zstd_skippable(head):
        return "zstd"
    return "none"


class _Prefixed(io.RawIOBase):
    """`head` followed by the rest of `stream`: a peek without seek."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(b))
        if not data:
            return 0
        b[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self._head:  # a short read: the caller reads again for the rest
            n = len(self._head) if size < 0 else min(size, len(self._head))
            head, self._head = bytes(self._head[:n]), self._head[n:]
            return head
        return self._stream.read(size)


_DECOMPRESS_ERRORS = (OSError, EOFError, ValueError, zlib.error, zstandard.ZstdError)


def _invalid(kind: str, e: BaseException) -> InvalidArchive:
    if isinstance(e, InvalidArchive):
        return e
    return InvalidArchive(f"invalid {kind} stream: {e or type(e).__name__}")


class _Checked(io.RawIOBase):
    """Turns the decompressor's errors into InvalidArchive."""

    def __init__(self, inner: BinaryIO, kind: str) -> None:
        self._inner = inner
        self._kind = kind

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except _DECOMPRESS_ERRORS as e:
            raise _invalid(self._kind, e) from e

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class _ReadAhead(io.RawIOBase):
    """Decompresses on a helper thread, `depth` chunks ahead of the reader, so inflating and
    the reader's own work (tar parsing, file writes: both drop the GIL) overlap. Memory stays
    bounded at about (depth + 2) chunks. Closing stops the thread."""

    def __init__(self, inner: BinaryIO, kind: str, depth: int = 2) -> None:
        self._inner = inner
        self._kind = kind
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._view = memoryview(b"")
        self._item = b""
        self._done = False
        self._thread = threading.Thread(target=self._run, name=f"{kind}-readahead", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._inner.read(CHUNK)
                if not self._put(data) or not data:
                    return
        except BaseException as e:  # handed to the reader, raised there
            self._put(e)
        finally:
            if self._stop.is_set():
                self._inner.close()

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(self, size: int = -1) -> bytes:
        if not self._view:
            if self._done:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise _invalid(self._kind, item) from item
            if not item:
                self._done = True
                return b""
            self._item, self._view = item, memoryview(item)
        if (size < 0 or size >= len(self._view)) and len(self._view) == len(self._item):
            self._view = memoryview(b"")
            return self._item  # the whole chunk: no copy
        n = len(self._view) if size < 0 else min(size, len(self._view))
        out, self._view = self._view[:n].tobytes(), self._view[n:]
        return out

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        self._stop.set()
        while True:  # unblock a worker waiting to put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if not self._thread.is_alive():
            self._inner.close()
        # else the worker closes `inner` when its current read returns
        super().close()


class _ZstdFraming:
    """Follows zstd frame and block headers over the compressed bytes, so that a stream cut
    short is an error (python-zstandard's readers end quietly on a truncated frame)."""

    def __init__(self) -> None:
        self._state = "magic"
        self._want = 4
        self._head = bytearray()
        self._skip = 0
        self._checksum = False

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._want - len(self._head), end - pos)
            self._head += data[pos : pos + take]
            pos += take
            if len(self._head) == self._want:
                self._advance(bytes(self._head))
                self._head.clear()

    def _advance(self, head: bytes) -> None:
        if self._state == "magic":
            if head == ZSTD_MAGIC:
                self._state, self._want = "frame", 1
            elif _is_zstd_skippable(head):
                self._state, self._want = "skippable", 4
            else:
                raise InvalidArchive("invalid zstd stream: data after the last frame")
        elif self._state == "skippable":
            self._skip = int.from_bytes(head, "little")
            self._state, self._want = "magic", 4
        elif self._state == "frame":
            fhd = head[0]
            single_segment = fhd >> 5 & 1
            self._checksum = bool(fhd >> 2 & 1)
            content_size = (single_segment, 2, 4, 8)[fhd >> 6]
            self._skip = (1 - single_segment) + (0, 1, 2, 4)[fhd & 3] + content_size
            self._state, self._want = "block", 3
        else:
            header = int.from_bytes(head, "little")
            kind = header >> 1 & 3
            if kind == 3:
                raise InvalidArchive("invalid zstd stream: reserved block type")
            self._skip = 1 if kind == 1 else header >> 3  # RLE blocks hold one byte
            if header & 1:  # last block of the frame
                self._skip += 4 if self._checksum else 0
                self._state, self._want = "magic", 4

    def complete(self) -> bool:
        return self._state == "magic" and not self._head and not self._skip


class _ZstdSource(io.RawIOBase):
    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._framing = _ZstdFraming()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._framing.feed(data)
        elif not self._framing.complete():
            raise InvalidArchive("invalid zstd stream: unexpected end of data")
        return data


def _peek(f: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = f.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def open_decompressed(f: BinaryIO, *, threaded: bool = True) -> BinaryIO:
    """A sequential reader of `f` decompressed: gzip (multi-member), zstd (multi-frame,
    window bounded to 128 MiB) or plain, told apart by the first bytes.

    With `threaded` (the default) a compressed `f` is read and inflated on a helper thread a
    few MiB ahead of the caller; close the result (or use `with`) when done with it, also on
    errors. Closing the result never closes `f`.
    """
    head = _peek(f, MAGIC_LEN)
    kind = detect(head)
    source = _Prefixed(head, f)
    if kind == "gzip":
        inner: BinaryIO = igzip.IGzipFile(fileobj=source, mode="rb")  # type: ignore[assignment]
    elif kind == "zstd":
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        inner = dctx.stream_reader(  # type: ignore[assignment]
            _ZstdSource(source), read_size=CHUNK, read_across_frames=True, closefd=False
        )
    else:
        return source  # type: ignore[return-value]
    if threaded:
        return _ReadAhead(inner, kind)  # type: ignore[return-value]
    return _Checked(inner, kind)  # type: ignore[return-value]


class GzipWriter(io.RawIOBase):
    """Streams gzip (RFC 1952) to `out` with isal: mtime 0, no file name, so the same input
    gives the same blob. `close()` writes the trailer and flushes, but leaves `out` open."""

    def __init__(self, out: BinaryIO, level: int = DEFAULT_GZIP_LEVEL) -> None:
        if not isal_zlib.ISAL_BEST_SPEED <= level <= isal_zlib.ISAL_BEST_COMPRESSION:
            raise ValueError(f"gzip level must be 0..3 (isal), got {level}")
        self._out = out
        self._crc = 0
        self._size = 0
        self._compress = isal_zlib.compressobj(
            level, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS, isal_zlib.DEF_MEM_LEVEL, 0
        )
        xfl = 4 if level == 0 else 0
        out.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + bytes([xfl, 255]))

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed GzipWriter")
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        if n:
            self._crc = isal_zlib.crc32(data, self._crc)
            self._size += n
            out = self._compress.compress(data)
            if out:
                self._out.write(out)
        return n

    def close(self) -> None:
        if self.closed:
            return
        self._out.write(self._compress.flush())
        self._out.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        self._out.flush()
        super().close()


def compressing_writer(out: BinaryIO, level: int = DEFAULT_GZIP_LEVEL) -> GzipWriter:
    """A gzip writer onto `out` (see GzipWriter)."""
    return GzipWriter(out, level)
