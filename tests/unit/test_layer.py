"""The diff service: layer tars applied onto directories and directories diffed into tars.

Tars going in are built with the stdlib's tarfile (an independent writer, helpers in
test_hostile_tars); tars coming out are read back with tarfile and GNU tar.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errors import DockyardError
from dockyard.image import layer as layer_module
from dockyard.image.layer import apply_layer, write_diff_overlay, write_diff_trees
from dockyard.image.layer_writer import WritePool
from dockyard.image.tarstream import DIR, END_OF_ARCHIVE, REG, TarHeader, encode_header
from tests.unit.test_hostile_tars import (
    Member,
    chunks,
    dir_,
    inode_groups,
    link,
    listing,
    members,
    names,
    node,
    reg,
    require_root,
    snapshot,
    sym,
    tar_of,
    write_file,
)

# -- helpers for the tests below ------------------------------------------------------------


class HashingReader(io.RawIOBase):
    """Hands out a byte string in small reads, hashing what it hands out (like a digester)."""

    def __init__(self, data: bytes, step: int = 7000) -> None:
        self.data, self.pos, self.step = data, 0, step
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.step if n < 0 else min(n, self.step)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        self.sha.update(out)
        return out


def apply_bytes(data: bytes, root: str, **kw: object) -> int:
    return apply_layer(io.BytesIO(data), root, **kw)  # type: ignore[arg-type]


def overlay_tar(tree: str) -> bytes:
    out = io.BytesIO()
    write_diff_overlay(tree, out)
    return out.getvalue()


def trees_tar(lower: str, upper: str) -> bytes:
    out = io.BytesIO()
    write_diff_trees(lower, upper, out)
    return out.getvalue()


NS = 1_700_000_000_123_456_789


def make_sample_tree(root: str) -> None:
    """Files, dirs, symlinks, hardlinks, a fifo, special mode bits, ns mtimes, user xattrs."""
    write_file(f"{root}/etc/hostname", b"box\n", 0o644, NS)
    write_file(f"{root}/bin/busybox", b"\x7fELF" + bytes(300_000), 0o755, NS + 1)
    write_file(f"{root}/bin/su", b"su", 0o4755, NS + 2)
    write_file(f"{root}/usr/share/big", os.urandom(3 << 20), 0o600, NS + 3)
    write_file(f"{root}/usr/share/{'l' * 150}", b"long name", 0o644, NS + 6)
    os.symlink("/bin/busybox", f"{root}/bin/sh")
    os.symlink("t" * 200, f"{root}/usr/long-target")
    os.symlink("../etc", f"{root}/bin/etc-link")
    os.link(f"{root}/bin/busybox", f"{root}/bin/ls")
    os.mkfifo(f"{root}/etc/fifo", 0o640)
    os.makedirs(f"{root}/tmp")
    os.chmod(f"{root}/tmp", 0o1777)
    os.makedirs(f"{root}/empty/deep/er")
    os.setxattr(f"{root}/etc/hostname", "user.note", b"\x00binary\xff")
    os.utime(f"{root}/bin/sh", ns=(NS + 4, NS + 4), follow_symlinks=False)
    for d in ("etc", "bin", "usr/share", "usr", "tmp", "empty/deep/er", "empty/deep", "empty"):
        os.utime(f"{root}/{d}", ns=(NS + 5, NS + 5))


# -- round trips ----------------------------------------------------------------------------


def test_overlay_diff_then_apply_reproduces_the_tree(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    os.makedirs(src)
    os.makedirs(dst)
    make_sample_tree(src)
    data = overlay_tar(src)
    reader = HashingReader(data)
    assert apply_layer(reader, dst) == len(data)  # type: ignore[arg-type]
    assert reader.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert snapshot(dst) == snapshot(src)
    assert inode_groups(dst) == {frozenset({"bin/busybox", "bin/ls"})}


def test_tar_format(tmp_path):
    src = str(tmp_path / "src")
    os.makedirs(src)
    make_sample_tree(src)
    data = overlay_tar(src)
    assert data == overlay_tar(src)  # deterministic
    got = names(data)
    assert got == [
        "bin/",
        "bin/busybox",
        "bin/etc-link",
        "bin/ls",
        "bin/sh",
        "bin/su",
        "empty/",
        "empty/deep/",
        "empty/deep/er/",
        "etc/",
        "etc/fifo",
        "etc/hostname",
        "tmp/",
        "usr/",
        "usr/long-target",
        "usr/share/",
        "usr/share/big",
        "usr/share/" + "l" * 150,
    ]
    by_name = {m.name: m for m in members(data)}
    assert by_name["bin/ls"].islnk() and by_name["bin/ls"].linkname == "bin/busybox"
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "/bin/busybox"
    assert by_name["bin/su"].mode == 0o4755 and by_name["tmp"].mode == 0o1777
    assert by_name["etc/fifo"].isfifo()
    hostname = by_name["etc/hostname"]
    assert hostname.pax_headers["mtime"] == "1700000000.123456789"
    assert hostname.uname == "" and hostname.gname == ""
    assert hostname.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == (
        b"\x00binary\xff"
    )
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))


def test_gnu_tar_reads_our_tars(tmp_path):
    gnu = shutil.which("tar")
    if gnu is None:
        pytest.skip("GNU tar not installed")
    src = str(tmp_path / "src")
    os.makedirs(src)
    make_sample_tree(src)
    (tmp_path / "layer.tar").write_bytes(overlay_tar(src))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([gnu, "-xf", str(tmp_path / "layer.tar"), "-C", str(out)], check=True)
    assert sorted(listing(str(out))) == sorted(listing(src))
    assert (out / "usr/share/big").read_bytes() == (tmp_path / "src/usr/share/big").read_bytes()


def test_apply_reads_stream_to_eof_and_counts_every_byte(tmp_path):
    data = tar_of(reg("a", b"x")) + bytes(8192)  # tarfile pads to 10 KiB, plus extra zeros
    reader = HashingReader(data, step=100)
    root = tmp_path / "root"
    root.mkdir()
    assert apply_layer(reader, str(root)) == len(data)  # type: ignore[arg-type]
    assert reader.pos == len(data)
    assert reader.sha.hexdigest() == hashlib.sha256(data).hexdigest()


def test_apply_from_a_pipe(tmp_path):
    src = str(tmp_path / "src")
    os.makedirs(src)
    make_sample_tree(src)
    data = overlay_tar(src)
    rfd, wfd = os.pipe()

    def feed() -> None:
        with os.fdopen(wfd, "wb") as w:
            for piece in chunks(data, 4099):
                w.write(piece)

    thread = threading.Thread(target=feed)
    thread.start()
    dst = tmp_path / "dst"
    dst.mkdir()
    with os.fdopen(rfd, "rb", buffering=0) as r:
        assert apply_layer(r, str(dst)) == len(data)
    thread.join()
    assert snapshot(str(dst)) == snapshot(src)


def test_a_failing_stream_keeps_its_error(tmp_path):
    class Dropped(HashingReader):
        def read(self, n: int = -1) -> bytes:
            if self.pos >= 2048:
                raise ConnectionResetError("peer went away")
            return super().read(n)

    data = tar_of(reg("a", b"x"), reg("b", b"y" * 5000))
    with pytest.raises(ConnectionResetError):
        apply_layer(Dropped(data, 1024), str(tmp_path))  # type: ignore[arg-type]
    assert listing(str(tmp_path)) == []


def test_many_entries(tmp_path):
    parts = [encode_header(TarHeader(name=f"d{i}", type=DIR, mode=0o755)) for i in range(50)]
    parts += [
        encode_header(TarHeader(name=f"d{i % 50}/f{i}", type=REG, mode=0o644))
        for i in range(30_000)
    ]
    data = b"".join(parts) + END_OF_ARCHIVE
    assert apply_bytes(data, str(tmp_path)) == len(data)
    assert sum(len(os.listdir(tmp_path / f"d{i}")) for i in range(50)) == 30_000


def test_empty_stream_and_empty_tar(tmp_path):
    assert apply_bytes(b"", str(tmp_path)) == 0
    assert apply_bytes(bytes(1024), str(tmp_path)) == 1024
    assert listing(str(tmp_path)) == []


# -- metadata --------------------------------------------------------------------------------


def test_modes_times_and_implied_parents(tmp_path):
    data = tar_of(
        dir_("d", 0o2750, pax={"mtime": "1600000000.5", "atime": "1600000100.25"}),
        reg("d/f", b"hi", 0o4711, pax={"mtime": "1600000001.000000001"}),
        sym("d/s", "f", pax={"mtime": "1600000002.2"}),
        reg("x/y/z", b"implied"),
        reg("t", b"", 0o644, pax={"mtime": "1600000003.7", "atime": "1500000000"}),
    )
    apply_bytes(data, str(tmp_path))
    d, f, s = (os.lstat(tmp_path / p) for p in ("d", "d/f", "d/s"))
    assert stat.S_IMODE(d.st_mode) == 0o2750 and stat.S_IMODE(f.st_mode) == 0o4711
    assert d.st_mtime_ns == 1_600_000_000_500_000_000  # set after d/f and d/s were written
    assert d.st_atime_ns == 1_600_000_100_250_000_000
    assert f.st_mtime_ns == 1_600_000_001_000_000_001
    assert s.st_mtime_ns == 1_600_000_002_200_000_000 and os.readlink(tmp_path / "d/s") == "f"
    t = os.lstat(tmp_path / "t")
    assert t.st_atime_ns == t.st_mtime_ns == 1_600_000_003_700_000_000  # atime >= mtime (moby)
    assert stat.S_IMODE(os.lstat(tmp_path / "x").st_mode) == 0o755
    assert (tmp_path / "x/y/z").read_bytes() == b"implied"


def test_user_xattrs_applied(tmp_path):
    apply_bytes(
        tar_of(reg("f", b"1", xattrs={"user.a": "b"}), dir_("d", xattrs={"user.c": "d"})),
        str(tmp_path),
    )
    assert os.getxattr(tmp_path / "f", "user.a") == b"b"
    assert os.getxattr(tmp_path / "d", "user.c") == b"d"


def test_overlay_internal_xattrs_are_never_taken_from_a_tar(tmp_path):
    apply_bytes(
        tar_of(dir_("d", xattrs={"user.overlay.opaque": "y", "user.ok": "1"})), str(tmp_path)
    )
    assert os.listxattr(tmp_path / "d") == ["user.ok"]


@pytest.mark.root
def test_owners_devices_and_privileged_xattrs(tmp_path):
    require_root("chown, mknod and trusted.*/security.* xattrs")
    cap = b"\x01\x00\x00\x02" + bytes(16)  # VFS_CAP_REVISION_2, nothing set
    data = tar_of(
        dir_("d", uid=1000, gid=1001),
        reg(
            "d/f",
            b"x",
            0o4755,
            uid=1234,
            gid=5678,
            xattrs={"security.capability": cap.decode("latin-1"), "trusted.t": "v"},
        ),
        sym("d/l", "f", uid=42, gid=43),
        node("dev/null", tarfile.CHRTYPE, 1, 3, 0o666),
        reg("big-ids", b"", uid=5_000_000, gid=4_000_000),
        node("dev/loop0", tarfile.BLKTYPE, 7, 0, 0o660),
    )
    root = str(tmp_path / "root")
    os.mkdir(root)
    apply_bytes(data, root)
    st = os.lstat(f"{root}/d/f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)
    assert os.getxattr(f"{root}/d/f", "security.capability") == cap
    assert os.getxattr(f"{root}/d/f", "trusted.t") == b"v"
    assert os.lstat(f"{root}/d/l").st_uid == 42
    assert os.lstat(f"{root}/d").st_uid == 1000
    null = os.lstat(f"{root}/dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(f"{root}/dev/loop0").st_mode)
    assert os.lstat(f"{root}/big-ids").st_uid == 5_000_000
    # and back out: a diff of that tree carries it all
    again = tmp_path / "again"
    again.mkdir()
    apply_bytes(overlay_tar(root), str(again))
    assert snapshot(str(again)) == snapshot(root)


# -- replacing, hardlinks ---------------------------------------------------------------------


def test_later_entries_replace_earlier_ones(tmp_path):
    data = tar_of(
        reg("f", b"first"),
        reg("f", b"second"),
        dir_("d"),
        reg("d/keep", b"k"),
        dir_("d", 0o700),  # a dir over a dir merges
        reg("x", b"file"),
        dir_("x"),  # a dir replaces a file
        dir_("y"),
        reg("y/inner", b"i"),
        reg("y", b"now a file"),  # a file replaces a dir and all under it
        reg("target", b"t"),
        sym("s", "target"),
        reg("s", b"not through the link"),  # never writes through the final component
    )
    apply_bytes(data, str(tmp_path))
    assert (tmp_path / "f").read_bytes() == b"second"
    assert (tmp_path / "d/keep").read_bytes() == b"k"
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o700
    assert (tmp_path / "x").is_dir() and (tmp_path / "y").read_bytes() == b"now a file"
    assert (tmp_path / "target").read_bytes() == b"t"
    assert (
        not (tmp_path / "s").is_symlink()
        and (tmp_path / "s").read_bytes() == b"not through the link"
    )


def test_hardlinks(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "existing").write_bytes(b"lower")
    os.symlink("existing", root / "sl")
    data = tar_of(
        reg("a/f", b"data", 0o640),
        link("a/g", "a/f"),
        link("h", "/a/f"),  # an absolute target is relative to the layer root (kaniko)
        link("e", "existing"),
        link("hl", "sl"),  # a hardlink to a symlink is a second name of the symlink
    )
    apply_bytes(data, str(root))
    assert (
        os.lstat(root / "a/g").st_ino
        == os.lstat(root / "a/f").st_ino
        == os.lstat(root / "h").st_ino
    )
    assert os.lstat(root / "a/f").st_nlink == 3
    assert os.lstat(root / "e").st_ino == os.lstat(root / "existing").st_ino
    assert (
        os.path.islink(root / "hl") and os.lstat(root / "hl").st_ino == os.lstat(root / "sl").st_ino
    )


def test_gnu_and_ustar_formats_and_long_names(tmp_path):
    long_name = "d/" + "n" * 150 + "/" + "f" * 120
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        root = tmp_path / str(fmt)
        root.mkdir()
        apply_bytes(tar_of(reg(long_name, b"x"), sym("l" * 120, "t" * 150), fmt=fmt), str(root))
        assert (root / long_name).read_bytes() == b"x"
        assert os.readlink(root / ("l" * 120)) == "t" * 150
    root = tmp_path / "ustar"
    root.mkdir()
    apply_bytes(tar_of(reg("p" * 90 + "/" + "q" * 90, b"u"), fmt=tarfile.USTAR_FORMAT), str(root))
    assert (root / ("p" * 90) / ("q" * 90)).read_bytes() == b"u"


def test_non_utf8_names_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    weird = os.fsdecode(b"caf\xe9-\xff")
    (src / weird).write_bytes(b"latin1 name")
    (src / "ünïcödé").write_bytes(b"utf8 name")
    dst = tmp_path / "dst"
    dst.mkdir()
    apply_bytes(overlay_tar(str(src)), str(dst))
    assert sorted(os.listdir(dst)) == sorted(os.listdir(src))


# -- whiteouts --------------------------------------------------------------------------------


def lower_tree(root: Path) -> None:
    for rel in ("keep", "gone", "dir/a", "dir/sub/b", "opq/old1", "opq/sub/old2", "opq2/old"):
        write_file(str(root / rel), rel.encode())


def test_whiteouts_delete(tmp_path):
    lower_tree(tmp_path)
    data = tar_of(
        reg(".wh.gone"),
        reg("dir/.wh.sub"),
        reg(".wh.missing"),  # nothing to delete: fine
        dir_("opq"),
        reg("opq/.wh..wh..opq"),
        reg("opq/new", b"n"),
        dir_("opq2"),
        reg("opq2/-early", b"e"),  # sorts before the marker: written first, must survive
        dir_("opq2/sub"),
        reg("opq2/sub/x", b"x"),
        reg("opq2/.wh..wh..opq"),
    )
    apply_bytes(data, str(tmp_path))
    assert listing(str(tmp_path)) == [
        "dir",
        "dir/a",
        "keep",
        "opq",
        "opq/new",
        "opq2",
        "opq2/-early",
        "opq2/sub",
        "opq2/sub/x",
    ]


def test_whiteout_never_hides_its_own_layer(tmp_path):
    lower_tree(tmp_path)
    data = tar_of(
        reg("added", b"a"),
        reg(".wh.added"),
        dir_("dir"),
        reg("dir/mine", b"m"),
        reg(".wh.dir"),  # lower content of dir goes, this layer's dir/mine stays
    )
    apply_bytes(data, str(tmp_path))
    assert (tmp_path / "added").read_bytes() == b"a"
    assert sorted(os.listdir(tmp_path / "dir")) == ["mine"]


def test_opaque_at_top_level_and_aufs_metadata_skipped(tmp_path):
    lower_tree(tmp_path)
    apply_bytes(
        tar_of(reg("new"), reg(".wh..wh..opq"), dir_(".wh..wh.plnk"), reg(".wh..wh.plnk/1")),
        str(tmp_path),
    )
    assert listing(str(tmp_path)) == ["new"]


@pytest.mark.root
def test_overlay_whiteouts_recorded_not_applied(tmp_path):
    require_root("mknod of whiteouts and trusted.overlay.opaque")
    data = tar_of(
        reg(".wh.gone", uid=7, gid=8),
        dir_("opq"),
        reg("opq/.wh..wh..opq"),
        reg("opq/new", b"n"),
        reg("d/.wh.x"),
        reg("mine", b"m"),
        reg(".wh.mine"),  # its own entry: stays a file
    )
    root = tmp_path / "layer"
    root.mkdir()
    apply_bytes(data, str(root), whiteouts="overlay")
    gone = os.lstat(root / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0 and (gone.st_uid, gone.st_gid) == (7, 8)
    assert stat.S_ISCHR(os.lstat(root / "d/x").st_mode)
    assert os.getxattr(root / "opq", "trusted.overlay.opaque") == b"y"
    assert (root / "mine").read_bytes() == b"m"
    assert not [p for p in listing(str(root)) if ".wh." in p]
    # and written back out, the same whiteouts come back
    out = names(overlay_tar(str(root)))
    assert out == ["d/", "d/.wh.x", ".wh.gone", "mine", "opq/", "opq/.wh..wh..opq", "opq/new"]


@pytest.mark.root
def test_overlay_upper_to_tar(tmp_path):
    require_root("mknod of whiteouts and trusted.overlay.* xattrs")
    upper = tmp_path / "upper"
    (upper / "etc/opaque").mkdir(parents=True)
    os.setxattr(upper / "etc/opaque", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "etc", "trusted.overlay.impure", b"y")
    os.mknod(upper / "etc/removed", stat.S_IFCHR | 0o600, 0)
    os.mknod(upper / "etc/real-dev", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    (upper / "etc/opaque/new").write_bytes(b"n")
    data = overlay_tar(str(upper))
    assert names(data) == [
        "etc/",
        "etc/opaque/",
        "etc/opaque/.wh..wh..opq",
        "etc/opaque/new",
        "etc/real-dev",
        "etc/.wh.removed",
    ]
    for m in members(data):
        assert not [k for k in m.pax_headers if "overlay" in k]
    os.setxattr(upper / "etc", "trusted.overlay.redirect", b"/elsewhere")
    with pytest.raises(DockyardError, match="redirect"):
        overlay_tar(str(upper))


# -- diff of two trees -----------------------------------------------------------------------


def test_write_diff_trees_follows_moby_rules(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    files = {
        "same": b"s",
        "changed": b"old",
        "chmod": b"c",
        "deleted": b"d",
        "deldir/a": b"a",
        "deldir/sub/b": b"b",
        "quiet/x": b"x",
        "nest/deep/file": b"f",
        "typechange": b"t",
        "link-target-a": b"1",
    }
    for root in (lower, upper):
        for rel, data in files.items():
            write_file(str(root / rel), data, 0o644, NS)
        os.symlink("link-target-a", root / "sym")
        os.utime(root / "sym", ns=(NS, NS), follow_symlinks=False)
        for d in ("deldir/sub", "deldir", "quiet", "nest/deep", "nest"):
            os.utime(root / d, ns=(NS, NS))
    write_file(str(upper / "changed"), b"new", 0o644, NS + 1000)
    os.chmod(upper / "chmod", 0o600)
    os.remove(upper / "deleted")
    shutil.rmtree(upper / "deldir")
    write_file(str(upper / "nest/deep/added/new"), b"new")
    os.remove(upper / "typechange")
    (upper / "typechange").mkdir()
    (upper / "typechange/inner").write_bytes(b"i")
    os.remove(upper / "sym")
    os.symlink("link-target-b", upper / "sym")  # same length, same mtime: target compared
    os.utime(upper / "sym", ns=(NS, NS), follow_symlinks=False)
    os.utime(upper / "quiet", ns=(NS + 999, NS + 999))  # a dir's mtime alone is no change
    data = trees_tar(str(lower), str(upper))
    assert names(data) == [
        "changed",
        "chmod",
        ".wh.deldir",
        ".wh.deleted",
        "nest/",
        "nest/deep/",
        "nest/deep/added/",
        "nest/deep/added/new",
        "sym",
        "typechange/",
        "typechange/inner",
    ]
    applied = tmp_path / "applied"
    applied.mkdir()
    apply_bytes(overlay_tar(str(lower)), str(applied))
    apply_bytes(data, str(applied))
    assert snapshot(str(applied), dir_mtimes=False) == snapshot(str(upper), dir_mtimes=False)


def test_write_diff_trees_hardlinks_and_identical_trees(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    upper.mkdir()
    write_file(str(upper / "a"), b"same inode")
    os.link(upper / "a", upper / "b")
    data = trees_tar(str(lower), str(upper))
    assert [(m.name, m.type) for m in members(data)] == [
        ("a", tarfile.REGTYPE),
        ("b", tarfile.LNKTYPE),
    ]
    assert trees_tar(str(upper), str(upper)) == bytes(1024)


def test_write_to_a_real_file_uses_the_same_bytes(tmp_path):
    src = str(tmp_path / "src")
    os.makedirs(src)
    make_sample_tree(src)
    with open(tmp_path / "out.tar", "wb") as f:  # the sendfile path
        f.write(b"prefix")
        write_diff_overlay(src, f)
        f.write(b"suffix")
    assert (tmp_path / "out.tar").read_bytes() == b"prefix" + overlay_tar(src) + b"suffix"


# -- property: diff then apply reproduces the upper tree --------------------------------------

_names = st.sampled_from(["a", "b", "c", ".hidden", "dée"])
_leaf = st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=64), st.sampled_from([0o644, 0o755, 0o600])),
    st.tuples(st.just("link"), st.sampled_from(["a", "./b", "/abs/x", "c/d"]), st.just(0)),
)
_tree = st.recursive(
    _leaf,
    lambda children: st.tuples(
        st.just("dir"),
        st.dictionaries(_names, children, max_size=4),
        st.sampled_from([0o755, 0o700]),
    ),
    max_leaves=12,
)
_root_tree = st.dictionaries(_names, _tree, max_size=5)


def _materialize(root: str, tree: dict) -> None:  # type: ignore[type-arg]
    for name, (kind, body, mode) in tree.items():
        path = os.path.join(root, name)
        if kind == "file":
            # same content <=> same mtime, so moby's metadata rules see every content change
            write_file(path, body, mode, 1_600_000_000 * 10**9 + zlib.crc32(body) * 1000 + 1)
        elif kind == "link":
            os.symlink(body, path)
        else:
            os.mkdir(path)
            _materialize(path, body)
            os.chmod(path, mode)


@given(_root_tree, _root_tree)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_diff_then_apply_reproduces_upper(lower_spec, upper_spec):
    with tempfile.TemporaryDirectory() as tmp:
        lower, upper, result = (os.path.join(tmp, n) for n in ("lower", "upper", "result"))
        for d in (lower, upper, result):
            os.mkdir(d)
        _materialize(lower, lower_spec)
        _materialize(upper, upper_spec)
        apply_bytes(overlay_tar(lower), result)
        apply_bytes(trees_tar(lower, upper), result)
        assert snapshot(result, dir_mtimes=False) == snapshot(upper, dir_mtimes=False)
        assert trees_tar(result, upper) == bytes(1024)  # nothing left to diff


# -- concurrent creation: the same results as the sequential reference (WORKERS = 0) ----------


@contextlib.contextmanager
def pool_settings(workers: int, **limits: int) -> Iterator[None]:
    """Run apply_layer with `workers` threads from the first task (0: sequential), and other
    layer.py limits."""
    names_ = {"workers": "WORKERS", "small": "SMALL_FILE", "tasks": "MAX_TASKS_IN_FLIGHT"}
    names_["bytes"] = "MAX_BYTES_IN_FLIGHT"
    values = {"WORKERS": workers, "SLOW_TASK": 0, **{names_[k]: v for k, v in limits.items()}}
    saved = {name: getattr(layer_module, name) for name in values}
    for name, value in values.items():
        setattr(layer_module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(layer_module, name, value)


def outcome(
    data: bytes, root: Path, prepare: Callable[[Path], None] | None, whiteouts: str
) -> tuple[object, ...]:
    """Apply `data` onto a fresh `root` (prepared with lower content); what is there after."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    if prepare is not None:
        prepare(root)
    try:
        apply_bytes(data, str(root), whiteouts=whiteouts)
        error = None
    except DockyardError as e:
        error = (type(e).__name__, str(e).replace(str(root), "<root>"))
    tree = snapshot(str(root), dir_mtimes=False)
    for path, (mode, uid, gid, _, rdev, xattrs) in tree.items():
        if stat.S_ISCHR(mode) and rdev == 0:  # an overlay whiteout: made now, in every mode
            tree[path] = (mode, uid, gid, None, rdev, xattrs)
    return error, tree, inode_groups(str(root))


def same_as_sequential(
    tmp: Path,
    data: bytes,
    prepare: Callable[[Path], None] | None = None,
    whiteouts: str = "delete",
) -> tuple[object, ...]:
    with pool_settings(0):
        expected = outcome(data, tmp / "sequential", prepare, whiteouts)
    with pool_settings(8):
        assert outcome(data, tmp / "threads", prepare, whiteouts) == expected
    with pool_settings(3, small=40, tasks=4, bytes=100):  # full pool, big files inline
        assert outcome(data, tmp / "throttled", prepare, whiteouts) == expected
    return expected


def small_files(directory: str, n: int = 40, tag: str = "f") -> list[Member]:
    return [reg(f"{directory}/{tag}{i}", b"%d" % i * (i % 5)) for i in range(n)]


def test_many_small_files_then_replace_link_and_whiteout_one(tmp_path):
    def lower(root: Path) -> None:
        write_file(str(root / "d/old"), b"lower")
        write_file(str(root / "gone/x"), b"lower")

    data = tar_of(
        *small_files("d"),
        *small_files("gone"),
        reg("d/f7", b"replaced"),  # replaces a file a worker may still be writing
        link("d/h", "d/f9"),  # a hardlink to one
        link("d/f11", "d/f12"),  # a hardlink replacing one
        reg("d/.wh.old"),
        reg(".wh.gone"),  # an implied dir: this layer's files in it go too (as sequentially)
        *small_files("e"),
        sym("e", "d"),  # a symlink replacing a directory full of queued files
        reg("e/through", b"t"),  # written through it, into d
        *small_files("p/q"),
        reg("p/q", b"a file over a dir"),
    )
    assert same_as_sequential(tmp_path, data, lower)[0] is None
    root = tmp_path / "threads"
    assert (root / "d/f7").read_bytes() == b"replaced"
    assert os.lstat(root / "d/h").st_ino == os.lstat(root / "d/f9").st_ino
    assert os.lstat(root / "d/f11").st_ino == os.lstat(root / "d/f12").st_ino
    assert not (root / "d/old").exists() and not (root / "gone").exists()
    assert os.readlink(root / "e") == "d" and (root / "d/through").read_bytes() == b"t"
    assert (root / "p/q").read_bytes() == b"a file over a dir"
    assert len(os.listdir(root / "d")) == 42


def test_paths_through_queued_symlinks_and_files(tmp_path):
    data = tar_of(
        *small_files("d", 200),
        sym("l", "d"),  # still queued behind 200 files when the next entry resolves it
        reg("l/through", b"t"),
        sym("s", "d/f1"),
        link("hs", "s"),  # a hardlink to a queued symlink
    )
    assert same_as_sequential(tmp_path, data)[0] is None
    root = tmp_path / "threads"
    assert (root / "d/through").read_bytes() == b"t" and os.readlink(root / "hs") == "d/f1"
    data = tar_of(*small_files("d", 200), reg("d/file"), reg("d/file/x"))
    error = same_as_sequential(tmp_path, data)[0]
    assert error == (
        "InvalidArchive",
        "tar entry 'd/file/x': parent 'd/file' is not a directory",
    )


def test_entries_over_what_this_layer_made_after_a_directory_went(tmp_path):
    data = tar_of(
        reg("keep/x"),  # implies keep
        reg("a/b/x"),  # implies a and a/b
        *small_files("d"),
        dir_("gone"),
        reg("gone", b"a file over a dir: what is known about directories is forgotten"),
        reg("keep", b"a file over an implied dir"),
        reg("a/b/y", b"y"),  # an implied dir, used again
    )
    assert same_as_sequential(tmp_path, data)[0] is None
    root = tmp_path / "threads"
    assert (root / "keep").read_bytes() == b"a file over an implied dir"
    assert sorted(os.listdir(root / "a/b")) == ["x", "y"]


@pytest.mark.root
def test_entries_over_overlay_whiteouts(tmp_path):
    require_root("mknod of overlay whiteouts")
    data = tar_of(reg(".wh.x"), reg("d/.wh.y"), *small_files("d"), reg("x", b"x"), dir_("d/y"))
    assert same_as_sequential(tmp_path, data, whiteouts="overlay")[0] is None
    root = tmp_path / "threads"
    assert (root / "x").read_bytes() == b"x" and (root / "d/y").is_dir()


def test_opaque_directory_after_many_queued_files(tmp_path):
    def lower(root: Path) -> None:
        write_file(str(root / "o/lower"), b"l")
        write_file(str(root / "o/sub/lower"), b"l")

    data = tar_of(
        dir_("o"), *small_files("o"), *small_files("o/sub"), reg("o/.wh..wh..opq"), reg("o/z")
    )
    error, tree, _ = same_as_sequential(tmp_path, data, lower)
    assert error is None
    assert "o/lower" not in tree and "o/f3" in tree and "o/z" in tree
    assert "o/sub" not in tree  # implied by this layer, not written by it: hidden (as moby)


def test_directory_times_and_modes_are_set_after_queued_files(tmp_path):
    mtime = {"mtime": "1500000000.25"}
    data = tar_of(
        dir_("d", 0o750, pax=mtime),
        *small_files("d", 200),
        dir_("d/sub", 0o700, pax=mtime),
        *small_files("d/sub", 200),
        sym("d/link", "sub", pax=mtime),
    )
    with pool_settings(8):
        apply_bytes(data, str(tmp_path))
    for rel, mode in (("d", 0o750), ("d/sub", 0o700)):
        st_ = os.lstat(tmp_path / rel)
        assert st_.st_mtime_ns == 1_500_000_000_250_000_000 and stat.S_IMODE(st_.st_mode) == mode
    assert os.lstat(tmp_path / "d/link").st_mtime_ns == 1_500_000_000_250_000_000
    assert len(os.listdir(tmp_path / "d/sub")) == 200


def _bad_xattr(name: str) -> Member:
    return reg(name, b"x", xattrs={"bogus.namespace": "v"})  # EOPNOTSUPP in the worker


def test_a_worker_error_stops_the_apply_and_rolls_back(tmp_path):
    data = tar_of(*small_files("a", 300), _bad_xattr("a/bad"), *small_files("b", 300))
    error, tree, _ = same_as_sequential(tmp_path, data)
    assert error is not None and error[0] == "DockyardError" and "'a/bad'" in error[1]
    assert tree == {}  # the root started empty: it is empty again
    with pool_settings(8), pytest.raises(DockyardError, match="a/bad"):
        apply_layer(HashingReader(data), str(tmp_path / "threads"))  # type: ignore[arg-type]
    assert os.listdir(tmp_path / "threads") == []


def test_the_earliest_failing_entry_is_reported(tmp_path):
    data = tar_of(
        *small_files("a", 100),
        _bad_xattr("a/first"),
        *small_files("b", 100),
        _bad_xattr("b/second"),
        reg("c/" + "n" * 300, b"x"),  # ENAMETOOLONG, on the reading thread
        reg("../escape"),
    )
    for _ in range(5):
        error, tree, _ = same_as_sequential(tmp_path, data)
        assert error is not None and "'a/first'" in str(error[1]) and tree == {}


def test_rollback_after_a_worker_error_keeps_the_lower_layers(tmp_path):
    def lower(root: Path) -> None:
        write_file(str(root / "lower/file"), b"lower", 0o644, NS)

    data = tar_of(*small_files("lower", 100), *small_files("new", 100), _bad_xattr("new/bad"))
    error, tree, _ = same_as_sequential(tmp_path, data, lower)
    assert error is not None and sorted(tree) == ["lower", "lower/file"]


@pytest.mark.root
def test_owners_and_xattrs_of_files_created_by_workers(tmp_path):
    require_root("chown and trusted.* xattrs")
    members_ = [
        reg(f"d/f{i}", b"x", 0o640, uid=1000 + i, gid=2000 + i, xattrs={"trusted.i": str(i)})
        for i in range(100)
    ]
    data = tar_of(dir_("d", uid=7, gid=8), *members_, sym("d/s", "f1", uid=9, gid=10))
    assert same_as_sequential(tmp_path, data)[0] is None
    st_ = os.lstat(tmp_path / "threads/d/f42")
    assert (st_.st_uid, st_.st_gid, stat.S_IMODE(st_.st_mode)) == (1042, 2042, 0o640)
    assert os.getxattr(tmp_path / "threads/d/f42", "trusted.i") == b"42"
    assert os.lstat(tmp_path / "threads/d/s").st_uid == 9


# random layers over a small namespace, with runs of small files to keep the pool busy
_paths = st.sampled_from(["a", "a/b", "a/b/c", "d", "d/e", "f", "ls/x", "low/y"])
_entry = st.one_of(
    st.builds(lambda p, n: reg(p, b"z" * n), _paths, st.sampled_from([0, 3, 60])),
    st.builds(lambda p: dir_(p, 0o750), _paths),
    st.builds(sym, _paths, st.sampled_from(["a", "/d", "b", "../d/e", "/low"])),
    st.builds(link, _paths, _paths),
    st.builds(
        lambda p: reg(p),
        st.sampled_from([".wh.a", "a/.wh.b", ".wh.low", "d/.wh..wh..opq", ".wh..wh..opq"]),
    ),
    st.builds(lambda p, n: small_files(p, n, "fill"), _paths, st.integers(1, 30)),
)


def _lower(root: Path) -> None:
    write_file(str(root / "a/b/old"), b"old", 0o644, NS)
    write_file(str(root / "d/e"), b"e", 0o600, NS)
    write_file(str(root / "low/z"), b"z", 0o644, NS)
    os.symlink("d", root / "ls")
    os.utime(root / "ls", ns=(NS, NS), follow_symlinks=False)


@given(
    st.lists(_entry, max_size=25),
    st.booleans(),
    st.sampled_from(["delete", "overlay"] if os.geteuid() == 0 else ["delete"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_threads_give_the_sequential_result(entries, with_lower, whiteouts):
    flat: list[Member] = []
    for entry in entries:
        flat.extend(entry if isinstance(entry, list) else [entry])
    prepare = _lower if with_lower and whiteouts == "delete" else None
    with tempfile.TemporaryDirectory() as tmp:
        same_as_sequential(Path(tmp), tar_of(*flat), prepare, whiteouts)


# -- the pool on its own ----------------------------------------------------------------------


def test_pool_bounds_what_is_in_flight():
    release = threading.Event()
    pool = WritePool(2, max_bytes=100, max_tasks=3, slow=0)
    pool.submit("a", release.wait, cost=60)
    pool.submit("b", release.wait, cost=30)
    third = threading.Thread(target=lambda: pool.submit("c", lambda: None, cost=20))
    third.start()
    third.join(0.2)
    assert third.is_alive()  # 60 + 30 + 20 > 100: it waits for room
    release.set()
    third.join(5)
    assert not third.is_alive()
    pool.drain()
    assert pool.close() is None


def test_pool_runs_a_task_after_its_parent_and_reports_the_earliest_failure():
    order: list[str] = []
    parent_may_finish = threading.Event()
    pool = WritePool(4, max_bytes=1 << 20, max_tasks=100, slow=0)

    def fail(what: str, gate: threading.Event | None = None) -> Callable[[], None]:
        def run() -> None:
            if gate is not None:
                gate.wait()
            order.append(what)
            raise ValueError(what)

        return run

    def slow_parent() -> None:
        parent_may_finish.wait()
        order.append("p")

    pool.submit("p", slow_parent, cost=0)
    pool.submit("p/child", lambda: order.append("p/child"), cost=0, after="p")
    first_may_fail = threading.Event()
    # (different `after`s, never pending: not one batch, so they run on different threads)
    pool.submit("x", fail("x", first_may_fail), cost=0, after="x-dir")
    pool.submit("y", fail("y"), cost=0, after="y-dir")  # fails first in time, but comes later
    deadline = time.monotonic() + 10
    while not order and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order == ["y"]  # the parent and x wait for their events; p/child for p
    parent_may_finish.set()
    first_may_fail.set()
    with pytest.raises(ValueError, match="x"):
        pool.drain()
    assert order.index("p") < order.index("p/child")
    error = pool.close()
    assert isinstance(error, ValueError) and str(error) == "x"


def test_pool_starts_threads_only_once_tasks_are_slow():
    ran_in: list[str] = []

    def task(seconds: float) -> Callable[[], None]:
        def run() -> None:
            time.sleep(seconds)
            ran_in.append(threading.current_thread().name)

        return run

    pool = WritePool(2, max_bytes=1 << 20, max_tasks=10, slow=0.01)
    for i in range(20):
        pool.submit(f"fast{i}", task(0), cost=0)
    assert set(ran_in) == {threading.current_thread().name}  # fast: run in submit
    for i in range(20):
        pool.submit(f"slow{i}", task(0.03), cost=0)
    pool.drain()
    assert ran_in[-1].startswith("layer-writer-")  # slow: handed to the threads
    assert pool.close() is None
