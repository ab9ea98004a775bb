"""extract_archive: hostile and corrupt outer archives are refused and nothing lands outside."""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import random
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.errors import InvalidArchive
from dockyard.image.archive import extract_archive

Entry = tuple[tarfile.TarInfo, bytes]


def reg(name: str, data: bytes = b"x", **pax: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = dict(pax)
    return info, data


def dirent(name: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, b""


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def special(name: str, kind: bytes) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, b""


def tar_of(*entries: Entry, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def with_typeflag(data: bytes, flag: bytes) -> bytes:
    """The first header's typeflag replaced, checksum recomputed."""
    block = bytearray(data[:512])
    block[156:157] = flag
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block) + data[512:]


def sandbox(tmp: Path) -> tuple[Path, Path]:
    dest, outside = tmp / "dest", tmp / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "keep").write_bytes(b"precious")
    return dest, outside


def assert_contained(tmp: Path) -> None:
    """Nothing written next to dest, the sentinel untouched, every link in dest stays in it."""
    assert sorted(os.listdir(tmp)) == ["dest", "outside"]
    assert os.listdir(tmp / "outside") == ["keep"]
    assert (tmp / "outside" / "keep").read_bytes() == b"precious"
    root = os.path.realpath(tmp / "dest")
    for top, dirs, files in os.walk(tmp / "dest"):
        for name in dirs + files:
            try:
                real = os.path.realpath(os.path.join(top, name), strict=True)
            except FileNotFoundError:  # dangling: where would it lead?
                real = os.path.realpath(os.path.join(top, name))
            except OSError as exc:  # a symlink cycle leads nowhere
                assert exc.errno == errno.ELOOP
                continue
            assert real == root or real.startswith(root + "/"), (name, real)


VALID = tar_of(dirent("d/"), reg("d/f", b"hello" * 100))
GZ = gzip.compress(VALID)
ZST = zstandard.ZstdCompressor().compress(VALID)


def _cases(outside: str) -> dict[str, bytes]:
    rnd = random.Random(7)
    return {
        "dotdot": tar_of(reg("../outside/evil")),
        "dotdot-inside-name": tar_of(reg("a/../../outside/evil")),
        "dotdot-that-stays-inside": tar_of(reg("a/../b")),
        "absolute-name": tar_of(reg(outside + "/evil")),
        "pax-path-dotdot": tar_of(reg("ok", **{"path": "../outside/evil"})),
        "pax-path-nul": tar_of(reg("ok", **{"path": "a\x00b"})),
        "symlink-absolute": tar_of(link("l", outside), reg("l/evil")),
        "symlink-relative-escape": tar_of(link("l", "../outside")),
        "symlink-deep-escape": tar_of(dirent("a/"), link("a/l", "../../outside/keep")),
        "symlink-dotdot-after-link": tar_of(dirent("d/"), link("d/l", ".."), link("m", "d/l/..")),
        "symlink-empty-target": tar_of(link("l", "")),
        "write-through-symlink": tar_of(dirent("d/"), link("l", "d"), reg("l/evil")),
        "write-through-dot-link": tar_of(link("l", "."), reg("l/x")),
        "hardlink-escape": tar_of(link("h", "../outside/keep", tarfile.LNKTYPE)),
        "hardlink-absolute": tar_of(link("h", outside + "/keep", tarfile.LNKTYPE)),
        "hardlink-to-symlink": tar_of(link("s", "x"), link("h", "s", tarfile.LNKTYPE)),
        "hardlink-missing": tar_of(link("h", "nope", tarfile.LNKTYPE)),
        "hardlink-to-directory": tar_of(dirent("d/"), link("h", "d", tarfile.LNKTYPE)),
        "char-device": tar_of(special("null", tarfile.CHRTYPE)),
        "block-device": tar_of(special("sda", tarfile.BLKTYPE)),
        "fifo": tar_of(special("pipe", tarfile.FIFOTYPE)),
        "sparse": with_typeflag(tar_of(reg("s")), b"S"),
        "unknown-type": with_typeflag(tar_of(reg("v")), b"V"),
        "pax-bomb": tar_of(reg("p", comment="x" * ((1 << 20) + 1))),
        "gnu-longname-bomb": tar_of(reg("n" * ((1 << 20) + 1)), fmt=tarfile.GNU_FORMAT),
        "root-as-file": tar_of(reg("./")),
        "file-replaces-dir": tar_of(dirent("a/"), reg("a")),
        "dir-over-file": tar_of(reg("a"), dirent("a/")),
        "garbage": bytes(rnd.getrandbits(8) for _ in range(4096)),
        "text": b"this is not a tar archive\n" * 100,
        "bad-checksum": b"X" + VALID[1:],
        "truncated-data": VALID[: 512 * 3 + 100],
        "truncated-header": VALID[:700],
        "zero-then-header": VALID[:1536] + bytes(512) + VALID[:512],
        "gzip-garbage": b"\x1f\x8b\x08\x00" + bytes(rnd.getrandbits(8) for _ in range(500)),
        "gzip-truncated": GZ[: len(GZ) // 2],
        "zstd-garbage": b"\x28\xb5\x2f\xfd" + bytes(rnd.getrandbits(8) for _ in range(500)),
        "zstd-truncated": ZST[: len(ZST) // 2],
        "xz-garbage": b"\xfd7zXZ\x00" + b"junk" * 50,
        "bzip2-garbage": b"BZh9" + b"junk" * 50,
    }


CASES = sorted(_cases("/abs").keys())


@pytest.mark.parametrize("case", CASES)
def test_hostile_archive_refused(tmp_path, case):
    dest, outside = sandbox(tmp_path)
    data = _cases(str(outside))[case]
    with pytest.raises(InvalidArchive):
        extract_archive(io.BytesIO(data), str(dest))
    assert_contained(tmp_path)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda b: b,
    "gzip": gzip.compress,
    "gzip-multi-member": lambda b: gzip.compress(b[:1000]) + gzip.compress(b[1000:]),
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("codec", sorted(COMPRESSORS))
def test_compressed_archives(tmp_path, codec):
    dest, _ = sandbox(tmp_path)
    extract_archive(io.BytesIO(COMPRESSORS[codec](VALID)), str(dest))
    assert (dest / "d" / "f").read_bytes() == b"hello" * 100


def test_allowed_links_and_layout(tmp_path):
    dest, _ = sandbox(tmp_path)
    data = tar_of(
        dirent("./"),
        reg("./a/./b//c", b"one"),
        reg("a/b/c", b"two"),  # a later entry replaces an earlier one
        link("v1/layer.tar", "../a/b/c"),  # old docker format: layer dirs link to each other
        link("a/up", "../a"),
        link("h", "a/b/c", tarfile.LNKTYPE),
        link("self", "."),
    )
    extract_archive(io.BytesIO(data), str(dest))
    assert (dest / "a/b/c").read_bytes() == b"two"
    assert (dest / "v1/layer.tar").read_bytes() == b"two"
    assert os.readlink(dest / "v1/layer.tar") == "../a/b/c"
    assert (dest / "h").read_bytes() == b"two" and (dest / "h").stat().st_nlink == 2
    assert_contained(tmp_path)


def test_eof_on_a_header_boundary_is_accepted(tmp_path):
    """Go's reader (docker) takes a clean EOF between members as the end; a cut inside a
    member is refused (above), and a missing member surfaces in read_archive."""
    dest, _ = sandbox(tmp_path)
    extract_archive(io.BytesIO(VALID[: 512 * 3 + 512]), str(dest))
    assert (dest / "d" / "f").exists()


def test_streams_without_loading_members(tmp_path):
    """A member bigger than any buffer goes through in chunks from a non-seekable stream."""

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            chunk = self._data.read(min(len(b), 65536))
            b[: len(chunk)] = chunk
            return len(chunk)

    big = os.urandom(3 << 20)
    dest, _ = sandbox(tmp_path)
    extract_archive(io.BufferedReader(Pipe(gzip.compress(tar_of(reg("big", big))))), str(dest))
    assert (dest / "big").read_bytes() == big


_PART = st.sampled_from(["..", ".", "a", "b", "", "outside", "keep"])
_PATH = st.lists(_PART, min_size=1, max_size=5).map("/".join) | st.just("/")


@st.composite
def _entries(draw: st.DrawFn) -> list[Entry]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        name = draw(_PATH)
        kind = draw(st.sampled_from(["file", "dir", "sym", "hard"]))
        if kind == "file":
            out.append(reg(name, b"data"))
        elif kind == "dir":
            out.append(dirent(name))
        else:
            target = draw(_PATH)
            out.append(link(name, target, tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE))
    return out


@settings(max_examples=300, deadline=None)
@given(_entries())
def test_random_names_never_escape(entries):
    with tempfile.TemporaryDirectory() as tmp:
        dest, _ = sandbox(Path(tmp))
        try:
            extract_archive(io.BytesIO(tar_of(*entries)), str(dest))
        except InvalidArchive:
            pass
        assert_contained(Path(tmp))
