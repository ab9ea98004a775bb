"""Layer compression: magic detection, streaming decompression (also from pipes), isal gzip."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import threading

import pytest
import zstandard

from dockyard.errors import InvalidArchive
from dockyard.image.compression import (
    DEFAULT_GZIP_LEVEL,
    GzipWriter,
    compressing_writer,
    detect,
    open_decompressed,
)

DATA = os.urandom(200_000) + b"layer " * 100_000 + bytes(300_000)


class Trickle(io.RawIOBase):
    """A non-seekable stream that hands out at most `step` bytes per read."""

    def __init__(self, data: bytes, step: int = 3) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def read_all(f: io.RawIOBase | io.BufferedIOBase, size: int = 65536) -> bytes:
    parts = []
    while chunk := f.read(size):
        parts.append(chunk)
    return b"".join(parts)


def zstd(data: bytes, **kw: object) -> bytes:
    return zstandard.ZstdCompressor(**kw).compress(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x50\x2a\x4d\x18", "zstd"),  # a skippable frame first
        (b"etc/", "none"),
        (b"BZh9", "none"),
        (b"\x1f", "none"),
        (b"", "none"),
    ],
)
def test_detect(head, kind):
    assert detect(head) == kind


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(gzip.compress(DATA), id="gzip"),
        pytest.param(gzip.compress(DATA[:1000]) + gzip.compress(DATA[1000:]), id="gzip-2-members"),
        pytest.param(gzip.compress(DATA) + bytes(100), id="gzip-zero-padding"),
        pytest.param(zstd(DATA), id="zstd"),
        pytest.param(zstd(DATA[:7]) + zstd(DATA[7:], write_checksum=True), id="zstd-2-frames"),
        pytest.param(zstd(DATA, write_content_size=False), id="zstd-no-size"),
        pytest.param(b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc" + zstd(DATA), id="zstd-skippable"),
        pytest.param(DATA, id="plain"),
    ],
)
@pytest.mark.parametrize("step", [1 << 20, 3])
@pytest.mark.parametrize("threaded", [True, False])
def test_open_decompressed_round_trip(blob, step, threaded):
    with open_decompressed(Trickle(blob, step), threaded=threaded) as reader:  # type: ignore[arg-type]
        assert read_all(reader, 10_000) == DATA
        assert reader.read(10) == b""


class Broken(Trickle):
    """A connection that drops after some bytes."""

    def read(self, n: int = -1) -> bytes:
        if self.pos > 50_000:
            raise ConnectionResetError("peer went away")
        return super().read(n)


@pytest.mark.parametrize("threaded", [True, False])
@pytest.mark.parametrize("blob", [gzip.compress(DATA), zstd(DATA)], ids=["gzip", "zstd"])
def test_errors_of_the_source_are_not_called_corrupt_data(blob, threaded):
    reader = open_decompressed(Broken(blob, 4096), threaded=threaded)  # type: ignore[arg-type]
    with pytest.raises(ConnectionResetError, match="peer went away"):
        read_all(reader)
    reader.close()


def _wait_for_threads(count: int) -> int:
    for _ in range(200):
        if threading.active_count() == count:
            break
        threading.Event().wait(0.02)
    return threading.active_count()


def test_an_abandoned_reader_stops_its_thread():
    before = threading.active_count()
    reader = open_decompressed(Trickle(gzip.compress(DATA * 20), 1 << 16))  # type: ignore[arg-type]
    reader.read(10)
    del reader  # never closed: collecting it stops the thread
    assert _wait_for_threads(before) == before


def test_closing_early_stops_the_helper_thread():
    source = Trickle(gzip.compress(DATA * 20), 1 << 16)
    before = threading.active_count()
    reader = open_decompressed(source)  # type: ignore[arg-type]
    assert reader.read(100) == DATA[:100]
    reader.close()
    assert _wait_for_threads(before) == before
    assert source.pos < len(source.data)  # it stopped reading


def test_open_decompressed_from_a_pipe():
    rfd, wfd = os.pipe()
    blob = gzip.compress(DATA)

    def feed() -> None:
        with os.fdopen(wfd, "wb") as w:
            w.write(blob)

    thread = threading.Thread(target=feed)
    thread.start()
    with os.fdopen(rfd, "rb", buffering=0) as r:
        assert read_all(open_decompressed(r)) == DATA  # type: ignore[arg-type]
    thread.join()


def test_short_plain_input():
    assert read_all(open_decompressed(io.BytesIO(b"ab"))) == b"ab"  # type: ignore[arg-type]
    assert read_all(open_decompressed(io.BytesIO(b""))) == b""  # type: ignore[arg-type]


def _window_too_big() -> bytes:
    # a frame asking for a 1 GiB window (Window_Descriptor 0xA0: 2**(10+20)), one raw block
    return b"\x28\xb5\x2f\xfd" + b"\x00\xa0" + b"\x09\x00\x00" + b"x"


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        pytest.param(gzip.compress(DATA)[:-10], "invalid gzip", id="gzip-truncated"),
        pytest.param(gzip.compress(DATA)[:100], "invalid gzip", id="gzip-truncated-early"),
        pytest.param(b"\x1f\x8b" + b"x" * 100, "invalid gzip", id="gzip-garbage"),
        pytest.param(
            gzip.compress(DATA)[:20] + b"\xff" * 20 + gzip.compress(DATA)[40:],
            "invalid gzip",
            id="gzip-corrupt-deflate",
        ),
        pytest.param(gzip.compress(DATA) + b"trailing", "invalid gzip", id="gzip-trailing"),
        pytest.param(zstd(DATA)[:-10], "invalid zstd", id="zstd-truncated"),
        pytest.param(zstd(DATA)[:6], "invalid zstd", id="zstd-truncated-header"),
        pytest.param(zstd(DATA) + b"garbage!", "invalid zstd", id="zstd-trailing"),
        pytest.param(b"\x28\xb5\x2f\xfd" + b"\xff" * 64, "invalid zstd", id="zstd-garbage"),
        pytest.param(_window_too_big(), "invalid zstd", id="zstd-window-too-big"),
    ],
)
@pytest.mark.parametrize("threaded", [True, False])
def test_corrupt_streams_raise_invalid_archive(blob, message, threaded):
    with (
        pytest.raises(InvalidArchive, match=message),
        open_decompressed(io.BytesIO(blob), threaded=threaded) as reader,  # type: ignore[arg-type]
    ):
        read_all(reader)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_gzip_writer_is_ordinary_gzip(level):
    out = io.BytesIO()
    with compressing_writer(out, level) as w:
        for i in range(0, len(DATA), 77_777):
            w.write(memoryview(DATA)[i : i + 77_777])
    blob = out.getvalue()
    assert not out.closed
    assert gzip.decompress(blob) == DATA
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([4 if level == 0 else 0, 255])
    assert read_all(open_decompressed(io.BytesIO(blob))) == DATA  # type: ignore[arg-type]


def test_gzip_writer_is_deterministic_and_gzip_t_accepts_it(tmp_path):
    blobs = []
    for _ in range(2):
        out = io.BytesIO()
        w = GzipWriter(out)
        w.write(DATA)
        w.close()
        w.close()  # idempotent
        blobs.append(out.getvalue())
    assert blobs[0] == blobs[1]
    gz = shutil.which("gzip")
    if gz:
        (tmp_path / "x.gz").write_bytes(blobs[0])
        subprocess.run([gz, "-t", str(tmp_path / "x.gz")], check=True)


def test_gzip_writer_rejects_bad_levels_and_writes_after_close():
    with pytest.raises(ValueError, match=r"0\.\.3"):
        GzipWriter(io.BytesIO(), 9)
    w = GzipWriter(io.BytesIO(), DEFAULT_GZIP_LEVEL)
    w.close()
    with pytest.raises(ValueError):
        w.write(b"x")
