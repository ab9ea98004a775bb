"""Snapshots on the real kernel, for both drivers: layers imported as the engine does (prepare_dir
→ apply_layer → commit), container roots mounted, written, diffed, listed and removed.

Every test runs in a temp dir of its own; the fixture's finalizer checks /proc/self/mountinfo
for anything a test left mounted there (and fails the test if so), then removes the dir.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dockyard.content.db import Database
from dockyard.image.layer import apply_layer
from dockyard.snapshot import mounts
from dockyard.snapshot.mounts import is_mounted, mount_all, mounts_under
from dockyard.snapshot.overlay import probe_overlay
from dockyard.snapshot.snapshotter import CONTAINER, TRANSIENT, Snapshotter
from tests.conftest import needs_root
from tests.unit.test_hostile_tars import dir_, link, node, reg, snapshot, sym, tar_of

T = 1_600_000_000


@pytest.fixture
def area() -> Iterator[Path]:
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="dockyard-snap-"))
    try:
        yield base
    finally:
        left = mounts_under(str(base))
        for point in left:
            mounts.unmount(point)
        shutil.rmtree(base)
        assert not left, f"the test left mounts behind: {left}"


def open_snapshotter(area: Path, driver: str | None, **kw: object) -> tuple[Snapshotter, Database]:
    db = Database(str(area / "dockyard.db"))
    return Snapshotter.open(str(area / "snapshots"), db, driver, **kw), db  # type: ignore[arg-type]


@pytest.fixture(params=["overlay2", "vfs"])
def snaps(area: Path, request: pytest.FixtureRequest) -> Iterator[Snapshotter]:
    s, db = open_snapshotter(area, request.param)
    assert s.driver == request.param
    yield s
    db.close()


def import_layer(snaps: Snapshotter, parent: str | None, data: bytes) -> str:
    """As engine/layers.py ingests a layer: prepare_dir → apply_layer → commit(chain ID)."""
    key = TRANSIENT + os.urandom(8).hex()
    root = snaps.prepare_dir(key, parent)
    apply_layer(io.BytesIO(data), root, whiteouts=snaps.whiteouts)
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    chain = (
        diff_id
        if parent is None
        else f"sha256:{hashlib.sha256(f'{parent} {diff_id}'.encode()).hexdigest()}"
    )
    snaps.commit(chain, key)
    return chain


def import_image(snaps: Snapshotter, layers: list[bytes]) -> str:
    top = None
    for data in layers:
        top = import_layer(snaps, top, data)
    assert top is not None
    return top


@contextmanager
def mounted(snaps: Snapshotter, key: str, target: Path) -> Iterator[Path]:
    target.mkdir(exist_ok=True)
    snaps.mount(key, str(target))
    try:
        assert is_mounted(str(target))
        yield target
    finally:
        snaps.unmount(str(target))
    assert not is_mounted(str(target))


def reference_tree(area: Path, layers: list[bytes]) -> Path:
    """The layers applied one on the other into a plain directory: what a root must show."""
    ref = Path(tempfile.mkdtemp(dir=area, prefix="ref-"))
    for data in layers:
        apply_layer(io.BytesIO(data), str(ref), whiteouts="delete")
    return ref


L1 = tar_of(
    dir_("etc"),
    reg("etc/a", b"a1", mtime=T),
    reg("etc/b", b"b1", mtime=T),
    dir_("d"),
    reg("d/x", b"x", mtime=T),
    reg("d/y", b"y", mtime=T),
    dir_("opq"),
    reg("opq/1", b"1"),
    reg("opq/2", b"2"),
    dir_("dev"),
    node("dev/null", b"3", 1, 3, mode=0o666),
    reg("bin/tool", b"#!tool", mode=0o755),
    link("bin/tool-link", "bin/tool"),  # a hardlink entry sets the inode's mode: 0644
    reg("bin/owned", b"", uid=1000, gid=1000),
)
L2 = tar_of(
    reg("etc/.wh.a"),
    reg("d/.wh.x"),
    dir_("opq"),
    reg("opq/.wh..wh..opq"),
    reg("opq/3", b"3"),
    reg("etc/b", b"b2-longer", mtime=T + 5),
    sym("etc/link", "b"),
)
L3 = tar_of(dir_("d", mode=0o700), reg("d/z", b"z"), reg("top", b"top", xattrs={"user.k": "v"}))
IMAGE = [L1, L2, L3]


def layer_state(snaps: Snapshotter, chains: list[str]) -> dict[str, object]:
    return {c: snapshot(snaps.path(c)) for c in chains}


def chains_of(snaps: Snapshotter, top: str) -> list[str]:
    out: list[str] = []
    key: str | None = top
    while key is not None:
        out.append(key)
        key = snaps.stat(key).parent
    return out


# -- a container's root ---------------------------------------------------------------------------


def test_container_root_is_the_union_of_the_layers(snaps: Snapshotter, area: Path) -> None:
    top = import_image(snaps, IMAGE)
    snaps.prepare(CONTAINER + "c1", top)
    with mounted(snaps, CONTAINER + "c1", area / "root") as root:
        assert sorted(os.listdir(root / "etc")) == ["b", "link"]
        assert sorted(os.listdir(root / "d")) == ["y", "z"]
        assert sorted(os.listdir(root / "opq")) == ["3"]
        assert (root / "etc" / "b").read_bytes() == b"b2-longer"
        assert stat.S_IMODE(os.stat(root / "d").st_mode) == 0o700
        assert os.stat(root / "bin" / "owned").st_uid == 1000
        assert os.stat(root / "bin" / "tool").st_ino == os.stat(root / "bin" / "tool-link").st_ino
        assert os.getxattr(root / "top", "user.k") == b"v"
        assert snapshot(str(root), dir_mtimes=False) == snapshot(
            str(reference_tree(area, IMAGE)), dir_mtimes=False
        )


def test_writes_land_only_in_the_containers_layer(snaps: Snapshotter, area: Path) -> None:
    top = import_image(snaps, IMAGE)
    layers = chains_of(snaps, top)
    before = layer_state(snaps, layers)
    snaps.prepare(CONTAINER + "c1", top)
    with mounted(snaps, CONTAINER + "c1", area / "root") as root:
        (root / "new").write_bytes(b"new")
        (root / "etc" / "b").write_bytes(b"changed")
        os.unlink(root / "d" / "y")
        shutil.rmtree(root / "opq")
        os.chmod(root / "bin" / "tool", 0o700)
        os.chown(root / "top", 5, 5)
        with open(root / "bin" / "tool-link", "ab") as f:
            f.write(b"more")
    assert layer_state(snaps, layers) == before
    own = Path(snaps.path(CONTAINER + "c1"))
    assert (own / "new").read_bytes() == b"new"
    assert (own / "etc" / "b").read_bytes() == b"changed"
    if snaps.driver == "overlay2":
        assert sorted(os.listdir(own)) == ["bin", "d", "etc", "new", "opq", "top"]


def test_two_containers_of_one_image_do_not_see_each_other(snaps: Snapshotter, area: Path) -> None:
    top = import_image(snaps, IMAGE)
    snaps.prepare(CONTAINER + "a", top)
    snaps.prepare(CONTAINER + "b", top)
    with (
        mounted(snaps, CONTAINER + "a", area / "ra") as ra,
        mounted(snaps, CONTAINER + "b", area / "rb") as rb,
    ):
        (ra / "only-a").write_bytes(b"a")
        os.unlink(rb / "etc" / "b")
        assert not (rb / "only-a").exists()
        assert (ra / "etc" / "b").read_bytes() == b"b2-longer"
    assert [str(c) for c in snaps.changes(CONTAINER + "a")] == ["A /only-a"]
    assert [str(c) for c in snaps.changes(CONTAINER + "b")] == ["C /etc", "D /etc/b"]


def test_a_view_is_read_only(snaps: Snapshotter, area: Path) -> None:
    one = import_layer(snaps, None, L1)
    top = import_image(snaps, IMAGE)
    for key, parent in (("view/one", one), ("view/top", top), ("view/empty", None)):
        snaps.view(key, parent)
        with mounted(snaps, key, area / "v") as root:
            with pytest.raises(OSError) as e:
                (root / "new").write_bytes(b"x")
            assert e.value.errno == errno.EROFS
            if parent == top:
                assert sorted(os.listdir(root / "etc")) == ["b", "link"]
        snaps.remove(key)


def test_mount_and_unmount_are_idempotent_where_they_should_be(
    snaps: Snapshotter, area: Path
) -> None:
    top = import_image(snaps, IMAGE)
    snaps.prepare(CONTAINER + "c1", top)
    target = area / "root"
    with mounted(snaps, CONTAINER + "c1", target):
        pass
    snaps.unmount(str(target))  # nothing mounted: fine
    snaps.unmount(str(area / "missing"))
    # two mounts stacked on one target (a crash can leave such stacks) come off at once
    snaps.mount(CONTAINER + "c1", str(target))
    mount_all(snaps.view("view/v", top), str(target))
    assert sum(p == str(target) for p in mounts.mount_points()) == 2
    snaps.unmount(str(target))
    assert not is_mounted(str(target))


# -- diff, changes, usage -------------------------------------------------------------------------

# The image and the commands of a scenario run in a container by docker 20.10 (overlay2), and the
# `docker diff` it printed (sorted). vfs lists the same by comparing trees.
DATA = tar_of(
    dir_("data"),
    *(reg(f"data/{n}", b"x\n", mtime=T) for n in ("modfile", "delfile", "touched", "f2d")),
    *(reg(f"data/{n}", b"x\n", mtime=T) for n in ("readonly_file", "chowned")),
    dir_("data/deldir"),
    reg("data/deldir/a", b"x\n"),
    dir_("data/deldir/sub"),
    reg("data/deldir/sub/b", b"x\n"),
    dir_("data/opq"),
    reg("data/opq/keep", b"x\n", mtime=T),
    reg("data/opq/gone", b"x\n"),
    dir_("data/chm"),
    reg("data/chm/in", b"x\n"),
    dir_("data/d2f"),
    reg("data/d2f/x", b"x\n"),
    dir_("data/deep/a/b/c"),
    dir_("data/untouched"),
    reg("data/untouched/z", b"x\n"),
)
DOCKER_DIFF = """\
A /data/deep/a/b/c/file
A /data/f2d/in
A /data/hard
A /data/newdir
A /data/newdir/sub
A /data/newdir/sub/f
A /data/newfile
C /data
C /data/chm
C /data/chowned
C /data/d2f
C /data/deep
C /data/deep/a
C /data/deep/a/b
C /data/deep/a/b/c
C /data/f2d
C /data/modfile
C /data/opq
C /data/opq/keep
C /data/touched
D /data/deldir
D /data/delfile
D /data/opq/gone
""".splitlines()


def scenario(root: Path) -> None:
    d = root / "data"
    (d / "newfile").write_bytes(b"new\n")
    with open(d / "modfile", "ab") as f:
        f.write(b"mod\n")
    os.unlink(d / "delfile")
    shutil.rmtree(d / "deldir")
    shutil.rmtree(d / "opq")
    (d / "opq").mkdir()
    (d / "opq" / "keep").write_bytes(b"x\n")
    os.chmod(d / "chm", 0o700)
    os.utime(d / "touched")
    (d / "newdir" / "sub").mkdir(parents=True)
    (d / "newdir" / "sub" / "f").write_bytes(b"a\n")
    os.unlink(d / "f2d")
    (d / "f2d").mkdir()
    (d / "f2d" / "in").write_bytes(b"z\n")
    shutil.rmtree(d / "d2f")
    (d / "d2f").write_bytes(b"f\n")
    os.link(d / "newfile", d / "hard")
    (d / "deep" / "a" / "b" / "c" / "file").write_bytes(b"deep\n")
    (d / "readonly_file").read_bytes()
    os.chown(d / "chowned", 1, 1)


def test_changes_are_what_docker_diff_lists(snaps: Snapshotter, area: Path) -> None:
    top = import_layer(snaps, None, DATA)
    snaps.prepare(CONTAINER + "c1", top)
    with mounted(snaps, CONTAINER + "c1", area / "root") as root:
        scenario(root)
        while_running = snaps.changes(CONTAINER + "c1")
    changes = snaps.changes(CONTAINER + "c1")
    assert changes == while_running
    assert sorted(str(c) for c in changes) == DOCKER_DIFF
    paths = [c.path for c in changes]
    for i, path in enumerate(paths):  # a directory comes before what is in it
        parent = os.path.dirname(path)
        assert parent == "/" or paths.index(parent) < i
    assert changes[0].to_api() == {"Path": "/data", "Kind": 0}


def test_diff_applied_again_reproduces_the_container(snaps: Snapshotter, area: Path) -> None:
    top = import_image(snaps, [*IMAGE, DATA])
    snaps.prepare(CONTAINER + "c1", top)
    with mounted(snaps, CONTAINER + "c1", area / "root") as root:
        scenario(root)
        os.symlink("../etc/b", root / "data" / "sym")
        os.mknod(root / "data" / "fifo", stat.S_IFIFO | 0o600)
        os.setxattr(root / "data" / "newfile", "user.note", b"kept")
        os.unlink(root / "top")
        view = snapshot(str(root), dir_mtimes=False)
    out = io.BytesIO()
    snaps.diff(CONTAINER + "c1", out)
    committed = import_layer(snaps, top, out.getvalue())  # as `docker commit` stores it
    snaps.prepare(CONTAINER + "c2", committed)
    with mounted(snaps, CONTAINER + "c2", area / "root2") as root2:
        assert snapshot(str(root2), dir_mtimes=False) == view
    assert snaps.changes(CONTAINER + "c2") == []


def test_usage_counts_only_the_containers_own_bytes(snaps: Snapshotter, area: Path) -> None:
    top = import_image(snaps, IMAGE)
    snaps.prepare(CONTAINER + "c1", top)
    assert snaps.usage(CONTAINER + "c1") == 0
    with mounted(snaps, CONTAINER + "c1", area / "root") as root:
        (root / "new").write_bytes(b"n" * 1000)
        (root / "etc" / "b").write_bytes(b"b" * 20)
        os.unlink(root / "d" / "y")
        usage = snaps.usage(CONTAINER + "c1")
    assert usage == 1020 and usage.inodes >= 3
    assert snaps.usage(top) == len("z") + len("top")


def test_remove(snaps: Snapshotter, area: Path) -> None:
    top = import_image(snaps, IMAGE)
    snaps.prepare(CONTAINER + "c1", top)
    own = os.path.dirname(snaps.path(CONTAINER + "c1"))
    with mounted(snaps, CONTAINER + "c1", area / "root") as root:
        (root / "new").write_bytes(b"n")
    with pytest.raises(Exception, match="has children"):
        snaps.remove(top)
    snaps.remove(CONTAINER + "c1")
    assert not os.path.exists(own) and not snaps.exists(CONTAINER + "c1")
    for chain in chains_of(snaps, top):
        snaps.remove(chain)
    assert os.listdir(snaps.root) == []


# -- overlay2: deep images ------------------------------------------------------------------------


def deep_image(snaps: Snapshotter, n: int) -> str:
    top = None
    for i in range(n):
        data = tar_of(reg(f"layer{i:03}", b"%d" % i), reg(f"shadow/{i % 7}", b"%d" % i))
        top = import_layer(snaps, top, data)
    assert top is not None
    return top


@pytest.mark.parametrize("new_api", [True, False], ids=["fsconfig", "classic-mount"])
def test_130_layers_mount_on_overlay2(
    area: Path, new_api: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    snaps, db = open_snapshotter(area, "overlay2")
    try:
        top = deep_image(snaps, 130)
        (m,) = snaps.prepare(CONTAINER + "c1", top)
        assert len(m.lowerdirs) == 130
        assert len(",".join(m.options)) > os.sysconf("SC_PAGESIZE")  # too long for mount(2)
        if not new_api:
            if not mounts._new_api:
                pytest.skip("this kernel has no fsconfig lowerdir+: classic mount is the default")
            monkeypatch.setattr(mounts, "_new_api", False)  # the path older kernels take
        with mounted(snaps, CONTAINER + "c1", area / "root") as root:
            assert len([n for n in os.listdir(root) if n.startswith("layer")]) == 130
            assert (root / "shadow" / "0").read_bytes() == b"126"  # the topmost layer wins
            assert (root / "layer000").read_bytes() == b"0"
            (root / "written").write_bytes(b"w")
        assert os.listdir(snaps.path(CONTAINER + "c1")) == ["written"]
    finally:
        db.close()


# -- the driver choice and crash recovery ---------------------------------------------------------


def test_the_probe_mounts_overlay_here_and_leaves_nothing(area: Path) -> None:
    root = area / "snapshots"
    assert probe_overlay(str(root)) is None
    assert os.listdir(root) == []
    snaps, db = open_snapshotter(area, None)
    assert snaps.driver == "overlay2"
    db.close()


def test_vfs_is_picked_when_overlay_cannot_be_mounted(area: Path) -> None:
    snaps, db = open_snapshotter(area, None, probe=lambda root: "overlay refused (simulated)")
    try:
        assert snaps.driver == "vfs"
        top = import_image(snaps, IMAGE)
        snaps.prepare(CONTAINER + "c1", top)
        with mounted(snaps, CONTAINER + "c1", area / "root") as root:
            assert sorted(os.listdir(root / "etc")) == ["b", "link"]
    finally:
        db.close()
    again, db = open_snapshotter(area, None)  # the real probe would say overlay2: vfs stays
    assert again.driver == "vfs"
    with pytest.raises(Exception, match="created with storage driver 'vfs'"):
        Snapshotter.open(str(area / "snapshots"), db, "overlay2")
    db.close()


def test_clean_after_a_crash(snaps: Snapshotter, area: Path) -> None:
    top = import_image(snaps, IMAGE)
    snaps.prepare(CONTAINER + "c1", top)
    half = snaps.prepare_dir(TRANSIENT + "import", top)
    Path(half, "partial").write_bytes(b"x")
    # a stray dir (a crashed probe) with a container root mounted, writable, inside it
    stray = Path(snaps.root, ".probe-crashed")
    (stray / "m").mkdir(parents=True)
    mount_all(snaps.mounts(CONTAINER + "c1"), str(stray / "m"))
    layers = layer_state(snaps, chains_of(snaps, top))
    removed = snaps.clean()
    assert sorted(removed) == [".probe-crashed", TRANSIENT + "import"]
    assert not stray.exists() and not os.path.exists(half)
    # nothing was deleted through the mount: not the layers, not the container's files
    assert layer_state(snaps, chains_of(snaps, top)) == layers
    assert snaps.exists(CONTAINER + "c1") and snaps.changes(CONTAINER + "c1") == []
    with mounted(snaps, CONTAINER + "c1", area / "root") as root:
        assert snapshot(str(root), dir_mtimes=False) == snapshot(
            str(reference_tree(area, IMAGE)), dir_mtimes=False
        )
