"""The snapshot drivers' pure parts, over real temp directories, without mounting anything:
mount descriptions, mountinfo parsing, `docker diff` changes (trees and overlay uppers), the vfs
copy, usage, and the driver choice of `Snapshotter.open` (its probe is a parameter)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.content.db import Database
from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.layer import apply_layer
from dockyard.snapshot import mounts
from dockyard.snapshot.changes import Change, lookup, overlay_changes, tree_changes
from dockyard.snapshot.mounts import Mount, bind_mount, classic_overlay_data, overlay_mount
from dockyard.snapshot.snapshotter import TRANSIENT, Snapshotter, StorageDriverError
from dockyard.snapshot.usage import Usage, tree_counts
from dockyard.snapshot.vfs import VfsDriver, copy_tree
from tests.unit.test_hostile_tars import (
    dir_,
    inode_groups,
    reg,
    require_root,
    snapshot,
    sym,
    tar_of,
    write_file,
)

T0 = 1_600_000_000_000_000_000


def ch(text: str) -> list[Change]:
    """'A /a, C /b' -> [Change('A', '/a'), Change('C', '/b')]"""
    return [Change(p.split()[0], p.split()[1]) for p in text.split(",") if p.strip()]  # type: ignore[arg-type]


# -- mounts -------------------------------------------------------------------------------------


def test_overlay_mount_description() -> None:
    m = overlay_mount(["/l/top", "/l/bottom"], "/u", "/w")
    assert m.type == "overlay" and m.source == "overlay" and not m.readonly
    assert m.lowerdirs == ["/l/top", "/l/bottom"]
    assert m.option("upperdir") == "/u" and m.option("workdir") == "/w"
    assert {"index=off", "redirect_dir=off", "metacopy=off"} <= set(m.options)
    assert classic_overlay_data(m) == (
        "index=off,redirect_dir=off,metacopy=off,lowerdir=/l/top:/l/bottom,upperdir=/u,workdir=/w"
    )
    assert classic_overlay_data(m, ["/proc/self/fd/5", "/proc/self/fd/6"]).count("fd/") == 2
    view = overlay_mount(["/a", "/b"])
    assert view.readonly and view.option("upperdir") is None
    assert "ro" not in classic_overlay_data(view).split(",")  # MS_RDONLY, not an option


def test_overlay_mount_refuses_what_cannot_be_said() -> None:
    with pytest.raises(ValueError, match="at least one"):
        overlay_mount([])
    with pytest.raises(ValueError, match="':'"):
        overlay_mount(["/a:b"], "/u", "/w")
    with pytest.raises(ValueError, match="work dir"):
        overlay_mount(["/a"], "/u")


def test_bind_mount_description() -> None:
    assert bind_mount("/x", readonly=True) == Mount("bind", "/x", ("rbind", "ro"))
    assert not bind_mount("/x", readonly=False).readonly


@pytest.mark.parametrize(
    ("release", "new_api"),
    [("6.18.44-fc-v769", True), ("6.8.0", True), ("6.7.12", False), ("5.15.0-91", False)],
)
def test_lowerdir_plus_needs_linux_6_8(release: str, new_api: bool) -> None:
    assert mounts._kernel_has_lowerdir_plus(release) is new_api


def test_mountinfo_parsing(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "48 27 0:40 / /data/with\\040space rw - overlay overlay rw,lowerdir+=/l\n"
        "49 48 0:41 / /data/with\\040space/sub rw - tmpfs tmpfs rw\n"
    )
    points = list(mounts.mount_points(str(info)))
    assert points == ["/proc", "/data/with space", "/data/with space/sub"]


def test_unmount_of_nothing_is_fine(tmp_path: Path) -> None:
    mounts.unmount(str(tmp_path))  # not a mount point
    mounts.unmount(str(tmp_path / "missing"))
    assert mounts.mounts_under(str(tmp_path)) == []


# -- changes between full trees (vfs) -----------------------------------------------------------


def make_tree(root: Path) -> None:
    write_file(str(root / "keep"), b"k", mtime_ns=T0)
    write_file(str(root / "mod"), b"m", mtime_ns=T0)
    write_file(str(root / "gone"), b"g", mtime_ns=T0)
    write_file(str(root / "d" / "x"), b"x", mtime_ns=T0)
    write_file(str(root / "deep" / "a" / "b" / "f"), b"f", mtime_ns=T0)
    write_file(str(root / "f2d"), b"", mtime_ns=T0)
    write_file(str(root / "d2f" / "in"), b"", mtime_ns=T0)
    write_file(str(root / "olddir" / "sub" / "y"), b"y", mtime_ns=T0)


def test_tree_changes_follow_moby(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    make_tree(old)
    os.mkdir(new)
    copy_tree(str(old), str(new))
    assert tree_changes(str(old), str(new)) == []
    write_file(str(new / "mod"), b"changed")
    os.unlink(new / "gone")
    write_file(str(new / "deep" / "a" / "b" / "new"), b"n")
    os.unlink(new / "f2d")
    write_file(str(new / "f2d" / "in"), b"")
    for name in os.listdir(new / "d2f"):
        os.unlink(new / "d2f" / name)
    os.rmdir(new / "d2f")
    write_file(str(new / "d2f"), b"")
    os.chmod(new / "d", 0o700)
    for sub in ("sub/y", "sub"):
        (new / "olddir" / sub).unlink() if "y" in sub else os.rmdir(new / "olddir" / sub)
    write_file(str(new / "added" / "inner" / "f"), b"")
    assert tree_changes(str(old), str(new)) == ch(
        "A /added, A /added/inner, A /added/inner/f, C /d, C /d2f, C /deep, C /deep/a,"
        "C /deep/a/b, A /deep/a/b/new, C /f2d, A /f2d/in, D /gone, C /mod, C /olddir,"
        "D /olddir/sub"
    )


def test_tree_changes_from_nothing(tmp_path: Path) -> None:
    write_file(str(tmp_path / "t" / "d" / "f"), b"1")
    assert tree_changes(None, str(tmp_path / "t")) == ch("A /d, A /d/f")


def test_same_second_without_nanoseconds_is_no_change(tmp_path: Path) -> None:
    write_file(str(tmp_path / "a" / "f"), b"1", mtime_ns=T0 + 123)
    write_file(str(tmp_path / "b" / "f"), b"1", mtime_ns=T0)  # as a tar without ns sets it
    os.utime(tmp_path / "b", ns=(T0, T0))
    assert tree_changes(str(tmp_path / "a"), str(tmp_path / "b")) == []
    os.utime(tmp_path / "b" / "f", ns=(T0 + 5, T0 + 5))
    assert tree_changes(str(tmp_path / "a"), str(tmp_path / "b")) == ch("C /f")


def test_tree_changes_walk_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.mkdir()
    fd = os.open(new, os.O_RDONLY)
    for _ in range(1200):  # os.makedirs would recurse too
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)
    changes = tree_changes(None, str(new))
    assert len(changes) == 1200 and changes[-1].path == "/d" * 1200
    for depth in range(1200, 0, -1):  # shutil.rmtree recurses: pytest could not remove it
        os.rmdir(str(new) + "/d" * depth)


# -- changes read off an overlay upper ----------------------------------------------------------


def opaque(path: Path) -> None:
    name = "trusted.overlay.opaque" if os.geteuid() == 0 else "user.overlay.opaque"
    os.setxattr(path, name, b"y")


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, 0)


def test_lookup_merges_lower_layers(tmp_path: Path) -> None:
    top, mid, bottom = tmp_path / "top", tmp_path / "mid", tmp_path / "bottom"
    write_file(str(bottom / "d" / "b"), b"")
    write_file(str(mid / "d" / "m"), b"")
    write_file(str(top / "d" / "t"), b"")
    write_file(str(bottom / "file"), b"bottom")
    write_file(str(top / "file"), b"top!")
    dirs = (str(top), str(mid), str(bottom))
    entry = lookup(dirs, "d")
    assert entry is not None and entry.dirs == (str(top / "d"), str(mid / "d"), str(bottom / "d"))
    opaque(mid / "d")
    entry = lookup(dirs, "d")
    assert entry is not None and entry.dirs == (str(top / "d"), str(mid / "d"))
    entry = lookup(dirs, "file")
    assert entry is not None and entry.st.st_size == 4 and entry.dirs == ()
    assert lookup(dirs, "missing") is None


def test_overlay_changes_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    require_root("whiteouts are 0/0 character devices")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    write_file(str(lower / "data" / "del"), b"", mtime_ns=T0)
    write_file(str(lower / "data" / "opq" / "keep"), b"k", mtime_ns=T0)
    write_file(str(lower / "data" / "opq" / "gone"), b"g", mtime_ns=T0)
    write_file(str(lower / "data" / "mod"), b"m", mtime_ns=T0)
    write_file(str(lower / "data" / "same"), b"s", mtime_ns=T0)
    (upper / "data" / "opq").mkdir(parents=True)
    whiteout(upper / "data" / "del")
    opaque(upper / "data" / "opq")
    write_file(str(upper / "data" / "opq" / "keep"), b"k", mtime_ns=T0 + 2 * 10**9)
    write_file(str(upper / "data" / "mod"), b"mm", mtime_ns=T0)
    write_file(str(upper / "data" / "same"), b"s", mtime_ns=T0)  # copied up, unchanged
    write_file(str(upper / "data" / "new"), b"")
    for d in ("data", "data/opq"):
        st = os.stat(lower / d)
        os.chmod(upper / d, stat.S_IMODE(st.st_mode))
    assert overlay_changes([str(lower)], str(upper)) == ch(
        "C /data, D /data/del, C /data/mod, A /data/new, C /data/opq, D /data/opq/gone,"
        "C /data/opq/keep"
    )


# -- vfs copy -----------------------------------------------------------------------------------


def test_copy_tree_keeps_what_a_layer_holds(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_file(str(src / "bin" / "tool"), b"#!", mode=0o4755, mtime_ns=T0 + 1)
    os.link(src / "bin" / "tool", src / "bin" / "alias")
    os.symlink("tool", src / "bin" / "sym")
    os.mkfifo(src / "fifo", 0o640)
    write_file(str(src / "big"), os.urandom(3 << 20))
    write_file(str(src / "empty"), b"")
    os.setxattr(src / "big", "user.note", b"hello")
    (src / "locked").mkdir(mode=0o500)
    os.chmod(src / "bin", 0o751)
    os.utime(src / "bin", ns=(T0, T0 + 9))
    if os.geteuid() == 0:
        os.chown(src / "empty", 1234, 5678)
        os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    dst.mkdir()
    copy_tree(str(src), str(dst))
    assert snapshot(str(dst)) == snapshot(str(src))
    assert inode_groups(str(dst)) == {frozenset({"bin/tool", "bin/alias"})}
    assert os.lstat(dst / "bin" / "tool").st_ino != os.lstat(src / "bin" / "tool").st_ino


# -- usage --------------------------------------------------------------------------------------


def test_usage_is_an_int_with_inodes(tmp_path: Path) -> None:
    write_file(str(tmp_path / "d" / "f"), b"12345")
    os.link(tmp_path / "d" / "f", tmp_path / "hard")
    usage = tree_counts(str(tmp_path))
    assert usage == 5 and usage.size == 5 and usage.inodes == 2  # d, f (once)
    assert isinstance(usage, int) and repr(usage) == "Usage(size=5, inodes=2)"
    assert Usage(7, 1) + 1 == 8


# -- the driver choice --------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(str(tmp_path / "dockyard.db"))
    yield database
    database.close()


def no_overlay(root: str) -> str:
    return "overlay cannot be mounted here (simulated)"


def overlay_ok(root: str) -> None:
    return None


def test_auto_picks_overlay2_when_the_probe_mounts(tmp_path: Path, db: Database) -> None:
    snaps = Snapshotter.open(str(tmp_path / "s"), db, None, probe=overlay_ok)
    assert snaps.driver == "overlay2" and snaps.whiteouts == "overlay"


def test_auto_falls_back_to_vfs_and_remembers(tmp_path: Path, db: Database) -> None:
    snaps = Snapshotter.open(str(tmp_path / "s"), db, None, probe=no_overlay)
    assert snaps.driver == "vfs" and snaps.whiteouts == "delete"
    # the choice sticks, even where overlay could now be mounted
    assert Snapshotter.open(str(tmp_path / "s"), db, None, probe=overlay_ok).driver == "vfs"
    assert Snapshotter.open(str(tmp_path / "s"), db, "vfs", probe=overlay_ok).driver == "vfs"
    with pytest.raises(StorageDriverError, match="created with storage driver 'vfs'"):
        Snapshotter.open(str(tmp_path / "s"), db, "overlay2", probe=overlay_ok)


def test_a_named_driver_is_kept(tmp_path: Path, db: Database) -> None:
    assert Snapshotter.open(str(tmp_path / "s"), db, "overlay2", probe=overlay_ok).driver == (
        "overlay2"
    )
    with pytest.raises(StorageDriverError, match="cannot be opened with 'vfs'"):
        Snapshotter.open(str(tmp_path / "s"), db, "vfs", probe=overlay_ok)
    with pytest.raises(StorageDriverError, match=r"overlay2 is not usable.*simulated"):
        Snapshotter.open(str(tmp_path / "s"), db, None, probe=no_overlay)


def test_vfs_never_probes(tmp_path: Path, db: Database) -> None:
    def probe(root: str) -> None:
        raise AssertionError("probed")

    assert Snapshotter.open(str(tmp_path / "s"), db, "vfs", probe=probe).driver == "vfs"


def test_unknown_driver(tmp_path: Path, db: Database) -> None:
    with pytest.raises(InvalidParameter, match="unknown storage driver 'aufs'"):
        Snapshotter.open(str(tmp_path / "s"), db, "aufs", probe=overlay_ok)


def test_a_data_root_from_before_the_choice_is_overlay2(tmp_path: Path, db: Database) -> None:
    old = Snapshotter(str(tmp_path / "s"), db)  # how the engine opened it before
    old.prepare_dir("sha256:l", None)
    with pytest.raises(StorageDriverError, match="created with storage driver 'overlay2'"):
        Snapshotter.open(str(tmp_path / "s"), db, "vfs", probe=overlay_ok)
    assert Snapshotter.open(str(tmp_path / "s"), db, None, probe=overlay_ok).driver == "overlay2"


# -- the vfs lifecycle, which needs no mount for its files --------------------------------------


@pytest.fixture
def vfs(tmp_path: Path, db: Database) -> Snapshotter:
    return Snapshotter(str(tmp_path / "snapshots"), db, VfsDriver())


def layer(snaps: Snapshotter, chain: str, parent: str | None, data: bytes) -> None:
    key = TRANSIENT + chain
    apply_layer(io.BytesIO(data), snaps.prepare_dir(key, parent), whiteouts=snaps.whiteouts)
    assert snaps.commit(chain, key)


def test_vfs_layers_are_full_trees(vfs: Snapshotter) -> None:
    layer(vfs, "l1", None, tar_of(dir_("etc"), reg("etc/a", b"1"), reg("etc/b", b"22")))
    layer(vfs, "l2", "l1", tar_of(reg("etc/.wh.a"), reg("etc/c", b"333"), sym("ln", "etc/c")))
    assert sorted(os.listdir(os.path.join(vfs.path("l2"), "etc"))) == ["b", "c"]
    assert sorted(os.listdir(os.path.join(vfs.path("l1"), "etc"))) == ["a", "b"]
    assert vfs.usage("l1") == 3 and vfs.usage("l1").inodes == 3
    assert vfs.usage("l2") == 3 + len("etc/c")  # its own: etc/c and the symlink
    assert vfs.changes("l2") == ch("C /etc, D /etc/a, A /etc/c, A /ln")
    out = io.BytesIO()
    vfs.diff("l2", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        assert tf.getnames() == ["etc", "etc/.wh.a", "etc/c", "ln"]
    out = io.BytesIO()
    vfs.diff("l1", out)  # no parent: everything
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        assert tf.getnames() == ["etc", "etc/a", "etc/b"]
    assert vfs.driver_data("l2") == {"SourceDir": vfs.path("l2")}
    assert vfs.status() == []


def test_views_and_what_they_refuse(vfs: Snapshotter) -> None:
    layer(vfs, "l1", None, tar_of(reg("f", b"1")))
    mounts_ = vfs.view("v", "l1")
    assert mounts_ == [bind_mount(vfs.path("l1"), readonly=True)]
    assert os.listdir(vfs.path("v")) == []  # a view copies nothing
    assert vfs.stat("v").kind == "view" and vfs.stat("l1").kind == "committed"
    with pytest.raises(InvalidParameter, match="is a view"):
        vfs.commit("x", "v")
    with pytest.raises(InvalidParameter, match="is committed"):
        vfs.mounts("l1")
    assert [i.key for i in vfs.walk()] == ["l1", "v"]
    vfs.remove("v")
    with pytest.raises(NotFound):
        vfs.stat("v")


def test_prepare_returns_mounts(vfs: Snapshotter) -> None:
    layer(vfs, "l1", None, tar_of(reg("f", b"1")))
    assert vfs.prepare("container/c", "l1") == [bind_mount(vfs.path("container/c"), readonly=False)]
    assert os.listdir(vfs.path("container/c")) == ["f"]
    assert vfs.mounts("container/c") == [bind_mount(vfs.path("container/c"), readonly=False)]


def test_a_failed_prepare_leaves_nothing(vfs: Snapshotter, monkeypatch: pytest.MonkeyPatch) -> None:
    layer(vfs, "l1", None, tar_of(reg("f", b"1")))

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "simulated copy failure")

    monkeypatch.setattr(vfs.backend, "create", broken)
    with pytest.raises(OSError, match="simulated"):
        vfs.prepare("container/c", "l1")
    assert not vfs.exists("container/c")
    assert os.listdir(vfs.root) == [os.path.basename(os.path.dirname(vfs.path("l1")))]
    vfs.remove("l1")  # no child row was left behind either


# -- overlay2 mounts, described (mounting them is tests/integration/test_snapshots.py) ----------


@pytest.fixture
def overlay(tmp_path: Path, db: Database) -> Snapshotter:
    return Snapshotter(str(tmp_path / "snapshots"), db)


def test_overlay2_mounts(overlay: Snapshotter) -> None:
    layer(overlay, "l1", None, tar_of(reg("a", b"1")))
    layer(overlay, "l2", "l1", tar_of(reg("b", b"2")))
    l1, l2 = overlay.path("l1"), overlay.path("l2")
    assert os.listdir(os.path.dirname(l2)) == ["fs"]  # an imported layer has no work dir
    assert overlay.prepare("c0", None) == [bind_mount(overlay.path("c0"), readonly=False)]
    (m,) = overlay.prepare("container/c", "l2")
    own = os.path.dirname(overlay.path("container/c"))
    assert m == overlay_mount([l2, l1], f"{own}/fs", f"{own}/work")
    assert os.path.isdir(f"{own}/work")
    assert overlay.mounts("container/c") == [m]
    assert overlay.view("v1", "l1") == [bind_mount(l1, readonly=True)]
    assert overlay.view("v2", "l2") == [overlay_mount([l2, l1])]
    assert overlay.view("v0", None) == [bind_mount(overlay.path("v0"), readonly=True)]
    assert overlay.commit("l3", "container/c")
    assert os.listdir(own) == ["fs"]  # the work dir goes with the commit


def test_overlay2_driver_data_and_status(overlay: Snapshotter) -> None:
    layer(overlay, "l1", None, tar_of(reg("a", b"1")))
    layer(overlay, "l2", "l1", tar_of(reg("b", b"2")))
    base = os.path.dirname(overlay.path("l2"))
    assert overlay.driver_data("l2") == {
        "UpperDir": f"{base}/fs",
        "WorkDir": f"{base}/work",
        "LowerDir": overlay.path("l1"),
    }
    assert "LowerDir" not in (overlay.driver_data("l1") or {})
    assert (overlay.driver_data("l2", merged="/m") or {})["MergedDir"] == "/m"
    status = dict(overlay.status())
    assert status["Backing Filesystem"] in ("extfs", "xfs", "btrfs", "tmpfs", "overlayfs", "zfs")
    assert status["Native Overlay Diff"] == "true"
