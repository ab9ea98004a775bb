"""Hostile and corrupt layer tars: refused with a clear InvalidArchive, nothing left behind.

Also here: the pure path rules (tarsafe), and the helpers both layer test files use to build
tars with the stdlib's tarfile and to snapshot trees.

Every refused case applies into an empty root next to a sentinel directory, and checks that the
root is empty again and the sentinel untouched. The contained cases are tars that write through
symlinks: they succeed, but everything they write lands inside the root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import stat
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.errors import InvalidArchive
from dockyard.image.layer import apply_layer
from dockyard.image.tarsafe import member_path, resolve_in_root

MiB = 1 << 20

# -- helpers (shared with test_layer) ----------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes | None]


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")


def _info(name: str, kind: bytes, mode: int, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = kw.pop("mtime", 1_600_000_000)  # type: ignore[assignment]
    info.uid = kw.pop("uid", 0)  # type: ignore[assignment]
    info.gid = kw.pop("gid", 0)  # type: ignore[assignment]
    pax = dict(kw.pop("pax", {}))  # type: ignore[call-overload]
    for key, value in dict(kw.pop("xattrs", {})).items():  # type: ignore[call-overload]
        pax["SCHILY.xattr." + key] = value
    info.pax_headers = pax
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def reg(name: str, data: bytes = b"", mode: int = 0o644, **kw: object) -> Member:
    info = _info(name, tarfile.REGTYPE, mode, **kw)
    info.size = len(data)
    return info, data


def dir_(name: str, mode: int = 0o755, **kw: object) -> Member:
    return _info(name, tarfile.DIRTYPE, mode, **kw), None


def sym(name: str, target: str, **kw: object) -> Member:
    return _info(name, tarfile.SYMTYPE, 0o777, linkname=target, **kw), None


def link(name: str, target: str, **kw: object) -> Member:
    return _info(name, tarfile.LNKTYPE, 0o644, linkname=target, **kw), None


def node(name: str, kind: bytes, major: int = 0, minor: int = 0, mode: int = 0o600) -> Member:
    return _info(name, kind, mode, devmajor=major, devminor=minor), None


def tar_of(*members: Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()


def names(data: bytes) -> list[str]:
    return [m.name + ("/" if m.isdir() else "") for m in members(data)]


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {
        k: os.getxattr(path, k, follow_symlinks=False)
        for k in keys
        if not k.startswith(("security.selinux", "system."))
    }


def snapshot(root: str, *, dir_mtimes: bool = True) -> dict[str, tuple[object, ...]]:
    """Everything a layer preserves, per root-relative path."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            extra: object = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            mtime = st.st_mtime_ns
            if stat.S_ISDIR(st.st_mode) and not dir_mtimes:
                mtime = None
            out[os.path.relpath(path, root)] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                mtime,
                extra,
                tuple(sorted(_xattrs(path).items())),
            )
    return out


def inode_groups(root: str) -> set[frozenset[str]]:
    """Sets of paths sharing an inode (hardlinks)."""
    groups: dict[int, set[str]] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault(st.st_ino, set()).add(os.path.relpath(path, root))
    return {frozenset(g) for g in groups.values()}


def listing(root: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs
    )


def write_file(
    path: str, data: bytes = b"", mode: int = 0o644, mtime_ns: int | None = None
) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def chunks(data: bytes, size: int) -> Iterable[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


# -- the resolver (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("links", "path", "expected"),
    [
        ({}, "a/b/c", "a/b/c"),
        ({"a": "/etc"}, "a/passwd", "etc/passwd"),
        ({"a": "../../.."}, "a/x", "x"),
        ({"a": "b/c", "b/c": "/d"}, "a/e", "d/e"),
        ({"a": "."}, "a/a/a/x", "x"),
        ({}, "../../x/./y//z/..", "x/y"),
        ({"usr/lib64": "lib", "lib64": "usr/lib64"}, "lib64/ld.so", "usr/lib/ld.so"),
        ({"a": "/"}, "a", ""),
    ],
)
def test_resolve_in_root_examples(links, path, expected):
    assert resolve_in_root(path, links.get) == expected


def test_resolve_in_root_loops():
    with pytest.raises(InvalidArchive, match="too many levels"):
        resolve_in_root("a/x", {"a": "b", "b": "a"}.get)


_component = st.sampled_from(["a", "b", "c", "..", ".", ""])
_rel_path = st.lists(_component, min_size=1, max_size=6).map("/".join)
_target = st.builds(lambda abs_, p: ("/" if abs_ else "") + p, st.booleans(), _rel_path)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "a/b", "b/c", "c/a"]), _target, max_size=4),
    _rel_path,
)
@settings(max_examples=400)
def test_resolve_in_root_stays_inside(links, path):
    try:
        got = resolve_in_root(path, links.get)
    except InvalidArchive:
        return
    parts = got.split("/") if got else []
    assert all(p not in ("", ".", "..") for p in parts)
    assert not got.startswith("/")
    # no prefix of the result is a symlink: it was resolved
    assert all("/".join(parts[: i + 1]) not in links for i in range(len(parts)))


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a/b", "a/b"),
        ("./a/", "a"),
        ("a/../b", "b"),
        ("./", None),
        ("", None),
        ("../a", False),
        ("a/../../b", False),
        ("/etc/passwd", False),
        ("a\x00b", False),
    ],
)
def test_member_path(name, ok):
    if ok is False:
        with pytest.raises(InvalidArchive):
            member_path(name)
    else:
        assert member_path(name) == ok


# -- the hostile corpus ----------------------------------------------------------------------


def raw_header(name: str = "x", kind: bytes = b"0", size: int = 0, **fields: bytes) -> bytes:
    """One ustar header block; `fields` overwrite raw byte ranges (e.g. size=b"...")."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape"))
    offsets = {"size_field": (124, 136), "name_field": (0, 100)}
    for key, value in fields.items():
        start, end = offsets[key]
        block[start:end] = value.ljust(end - start, b"\x00")
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def pax_entry(records: bytes, then: bytes) -> bytes:
    return (
        raw_header("pax", b"x", len(records))
        + records.ljust(-(-len(records) // 512) * 512, b"\0")
        + then
    )


def _corrupt_second_header() -> bytes:
    data = bytearray(tar_of(reg("a", b"x"), reg("b", b"y")))
    data[1024 + 10] ^= 0x55  # inside the second header's name
    return bytes(data)


def _pax_chain() -> bytes:
    """Two extended headers of 600 KiB each before one entry: 1.2 MiB in all."""
    body = b" SCHILY.xattr.user.big=" + b"v" * (600 << 10) + b"\n"
    length = len(body) + 6
    record = b"%d" % length + body
    assert len(record) == length
    return pax_entry(record, b"") + pax_entry(record, raw_header("f"))


HOSTILE: list[tuple[str, Callable[[], bytes], str]] = [
    ("absolute-name", lambda: tar_of(reg("/etc/passwd", b"x")), "absolute path"),
    ("dotdot", lambda: tar_of(reg("../outside/secret", b"x")), "escapes the layer root"),
    ("dotdot-nested", lambda: tar_of(reg("a/../../outside/secret")), "escapes the layer root"),
    (
        "dotdot-after-good-entries",
        lambda: tar_of(reg("ok", b"1"), dir_("d"), reg("d/f", b"2"), reg("d/../../x")),
        "escapes the layer root",
    ),
    ("whiteout-escape", lambda: tar_of(reg("../.wh.outside")), "escapes the layer root"),
    ("hardlink-escape", lambda: tar_of(link("h", "../outside/secret")), "invalid hardlink"),
    ("hardlink-abs-escape", lambda: tar_of(link("h", "/../outside/secret")), "invalid hardlink"),
    ("hardlink-missing", lambda: tar_of(link("h", "nope")), "target does not exist"),
    ("hardlink-to-dir", lambda: tar_of(dir_("d"), link("h", "d")), "target is a directory"),
    ("hardlink-to-itself", lambda: tar_of(link("h", "h")), "links itself"),
    ("symlink-escape", lambda: tar_of(sym("evil", "../outside")), "invalid symlink"),
    (
        "symlink-escape-deep",
        lambda: tar_of(dir_("a"), sym("a/b", "../../outside/secret")),
        "invalid symlink",
    ),
    (
        "symlink-then-write-through",
        lambda: tar_of(sym("evil", "../../../.."), reg("evil/tmp/x", b"x")),
        "invalid symlink",
    ),
    ("symlink-loop", lambda: tar_of(sym("a", "b"), sym("b", "a"), reg("a/x")), "too many levels"),
    ("nul-in-name", lambda: tar_of(reg("x", pax={"path": "a\x00b"})), "NUL"),
    ("nul-in-linkname", lambda: tar_of(sym("s", "x", pax={"linkpath": "a\x00b"})), "NUL"),
    (
        "pax-header-bomb",
        lambda: raw_header("pax", b"x", 2 * MiB) + bytes(2 * MiB),
        "larger than 1048576 bytes",
    ),
    (
        "gnu-longname-bomb",
        lambda: raw_header("././@LongLink", b"L", 2 * MiB) + b"a" * (2 * MiB),
        "larger than 1048576 bytes",
    ),
    ("pax-header-chain", _pax_chain, "larger than 1048576 bytes"),
    ("pax-bad-record-length", lambda: pax_entry(b"99 path=x\n", raw_header("f")), "PAX header"),
    ("pax-bad-number", lambda: pax_entry(b"11 size=-5\n", raw_header("f")), "PAX header"),
    ("pax-record-without-key", lambda: pax_entry(b"6 =ab\n", raw_header("f")), "PAX header"),
    ("pax-sparse", lambda: tar_of(reg("s", pax={"GNU.sparse.major": "1"})), "sparse"),
    ("pax-header-without-entry", lambda: pax_entry(b"10 path=x\n", bytes(1024)), "no entry"),
    ("truncated-in-data", lambda: tar_of(reg("f", b"x" * 5000))[:2048], "unexpected end"),
    (
        "truncated-in-header",
        lambda: tar_of(reg("a", b"x"), reg("b", b"y"))[: 1024 + 100],
        "unexpected end",
    ),
    ("truncated-in-pax", lambda: pax_entry(b"x" * 1000, b"")[:1024], "unexpected end"),
    ("garbage", lambda: random.Random(0).randbytes(8192), "invalid tar header at offset 0"),
    ("gzip-not-a-tar", lambda: gzip.compress(tar_of(reg("a", b"x"))), "invalid tar header"),
    ("corrupt-second-header", _corrupt_second_header, "checksum mismatch"),
    (
        "data-after-one-zero-block",
        lambda: tar_of(reg("a", b"x"))[:1024] + bytes(512) + raw_header("b"),
        "invalid tar header at offset",
    ),
    ("bad-octal", lambda: raw_header("f", size_field=b"12x4"), "bad size field"),
    ("negative-size", lambda: raw_header("f", size_field=b"\xff" * 12), "invalid size"),
    ("sparse-type", lambda: raw_header("s", b"S"), "unsupported tar entry type"),
    ("volume-type", lambda: raw_header("v", b"V"), "unsupported tar entry type"),
    ("whiteout-empty-name", lambda: tar_of(reg(".wh.")), "invalid whiteout"),
    ("whiteout-dot", lambda: tar_of(dir_("d"), reg("d/.wh..")), "invalid whiteout"),
    ("whiteout-dotdot", lambda: tar_of(dir_("d"), reg("d/.wh...")), "invalid whiteout"),
    ("parent-is-a-file", lambda: tar_of(reg("f", b"x"), reg("f/x", b"y")), "not a directory"),
]


@pytest.fixture
def arena(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"sentinel")
    return root, outside


def _assert_untouched(tmp_path: Path, root: Path, outside: Path, before: object) -> None:
    assert listing(str(root)) == []
    assert snapshot(str(outside)) == before
    assert sorted(os.listdir(tmp_path)) == ["outside", "root"]


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
@pytest.mark.parametrize("whiteouts", ["delete", "overlay"])
def test_hostile_tar_is_refused(tmp_path, arena, make, message, whiteouts):
    root, outside = arena
    before = snapshot(str(outside))
    with pytest.raises(InvalidArchive, match=message):
        apply_layer(io.BytesIO(make()), str(root), whiteouts=whiteouts)
    _assert_untouched(tmp_path, root, outside, before)


class EndlessZeros(io.RawIOBase):
    """A header claiming a huge extended header, then zeros forever: must not be read."""

    def __init__(self, header: bytes) -> None:
        self.header, self.served = header, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = MiB if n < 0 else n
        if self.header:
            out, self.header = self.header, b""
        else:
            out = bytes(n)
        self.served += len(out)
        return out


def test_pax_bomb_is_not_read_into_memory(arena):
    root, _ = arena
    stream = EndlessZeros(raw_header("pax", b"x", size_field=b"77777777777"))  # 8 GiB
    with pytest.raises(InvalidArchive, match="larger than"):
        apply_layer(stream, str(root))  # type: ignore[arg-type]
    assert stream.served < 4 * MiB


def test_rollback_keeps_what_was_there(tmp_path):
    root = tmp_path / "root"
    (root / "lower").mkdir(parents=True)
    (root / "lower/file").write_bytes(b"lower")
    before = snapshot(str(root))
    data = tar_of(
        reg("new", b"1"), dir_("newdir"), reg("newdir/x"), reg("lower/added"), reg("../escape")
    )
    with pytest.raises(InvalidArchive, match="escapes"):
        apply_layer(io.BytesIO(data), str(root))
    after = snapshot(str(root))
    assert after.keys() == before.keys()
    assert (root / "lower/file").read_bytes() == b"lower"


# -- contained: writes through symlinks succeed but stay inside the root ----------------------

Contained = Callable[[Path, Path], bytes]  # (root, outside) -> tar, after preparing root


def _abs_symlink_parent(root: Path, outside: Path) -> bytes:
    return tar_of(sym("etc", str(outside)), reg("etc/secret", b"pwned"))


def _dir_replaced_by_symlink(root: Path, outside: Path) -> bytes:
    return tar_of(dir_("d"), reg("d/f"), sym("d", str(outside)), reg("d/secret", b"pwned"))


def _symlink_to_root_parent(root: Path, outside: Path) -> bytes:
    return tar_of(sym("up", "/"), reg(f"up{outside}/secret", b"pwned"))


def _lower_escaping_symlink(root: Path, outside: Path) -> bytes:
    os.symlink("../" * 30, root / "esc")  # a lower layer's link that climbs out
    return tar_of(reg(f"esc{outside}/secret", b"pwned"), reg(f"esc{outside}/.wh.gone"))


def _symlink_replaced_by_dir(root: Path, outside: Path) -> bytes:
    return tar_of(sym("d", str(outside)), dir_("d"), reg("d/secret", b"inside"))


def _final_component_symlink(root: Path, outside: Path) -> bytes:
    os.symlink(outside / "secret", root / "f")
    return tar_of(reg("f", b"pwned"))


def _dir_over_symlink(root: Path, outside: Path) -> bytes:
    os.symlink(outside, root / "l")
    return tar_of(dir_("l", 0o700), reg("l/new", b"n"))


def _hardlink_to_symlink(root: Path, outside: Path) -> bytes:
    os.symlink(outside / "secret", root / "s")
    return tar_of(link("h", "s"))


def _whiteout_through_symlink(root: Path, outside: Path) -> bytes:
    os.symlink(outside, root / "l")
    return tar_of(reg("l/.wh.secret"), reg("l/.wh..wh..opq"))


def _hardlink_through_symlink(root: Path, outside: Path) -> bytes:
    os.symlink(outside, root / "l")
    (root / "real").mkdir()
    (root / "real/secret").write_bytes(b"inside")
    return tar_of(sym("m", "/real"), link("h", "m/secret"), link("h2", "l/secret"))


CONTAINED: list[tuple[str, Contained]] = [
    ("absolute-symlink-parent", _abs_symlink_parent),
    ("dir-replaced-by-symlink", _dir_replaced_by_symlink),
    ("symlink-to-slash", _symlink_to_root_parent),
    ("lower-escaping-symlink", _lower_escaping_symlink),
    ("symlink-replaced-by-dir", _symlink_replaced_by_dir),
    ("final-component-symlink", _final_component_symlink),
    ("dir-over-symlink", _dir_over_symlink),
    ("hardlink-to-symlink", _hardlink_to_symlink),
    ("whiteout-through-symlink", _whiteout_through_symlink),
]


@pytest.mark.parametrize("prepare", [c[1] for c in CONTAINED], ids=[c[0] for c in CONTAINED])
def test_writes_through_symlinks_stay_inside(arena, prepare):
    root, outside = arena
    before = snapshot(str(outside))
    apply_layer(io.BytesIO(prepare(root, outside)), str(root))
    assert snapshot(str(outside)) == before
    assert os.stat(outside / "secret").st_nlink == 1
    pwned = root / str(outside).lstrip("/") / "secret"
    if pwned.exists():  # where an absolute path inside the container leads
        assert pwned.read_bytes() == b"pwned"


def test_hardlink_targets_resolve_inside(arena):
    root, outside = arena
    before = snapshot(str(outside))
    with pytest.raises(InvalidArchive, match="target does not exist"):
        apply_layer(io.BytesIO(_hardlink_through_symlink(root, outside)), str(root))
    assert snapshot(str(outside)) == before
    assert os.stat(outside / "secret").st_nlink == 1
    assert sorted(os.listdir(root)) == ["l", "real"]  # the root's own content stays


@pytest.mark.root
def test_overlay_opaque_through_symlink_stays_inside(arena):
    require_root("trusted.overlay.opaque")
    root, outside = arena
    os.symlink(outside, root / "l")
    apply_layer(
        io.BytesIO(tar_of(reg("l/.wh..wh..opq"), reg("l/.wh.secret"))),
        str(root),
        whiteouts="overlay",
    )
    assert os.listxattr(outside) == []
    assert (outside / "secret").read_bytes() == b"sentinel"
    inside = root / str(outside).lstrip("/")
    assert os.getxattr(inside, "trusted.overlay.opaque") == b"y"
