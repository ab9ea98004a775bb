"""Snapshots (dockyard.snapshot.snapshotter) over a real temp directory and a real Database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.content.db import Database
from dockyard.errors import Conflict, NotFound
from dockyard.snapshot.snapshotter import TRANSIENT, Snapshotter, tree_usage


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(str(tmp_path / "dockyard.db"))
    yield database
    database.close()


@pytest.fixture
def snaps(tmp_path: Path, db: Database) -> Snapshotter:
    return Snapshotter(str(tmp_path / "snapshots"), db)


def kind(db: Database, key: str) -> str | None:
    row = db.one("SELECT kind FROM snapshots WHERE key = ?", (key,))
    return None if row is None else row["kind"]


def layer(snaps: Snapshotter, name: str, parent: str | None, files: dict[str, bytes]) -> str:
    """prepare → write → commit, as importing a layer does."""
    fs = snaps.prepare_dir(TRANSIENT + name, parent)
    for rel, data in files.items():
        Path(fs, rel).parent.mkdir(parents=True, exist_ok=True)
        Path(fs, rel).write_bytes(data)
    assert snaps.commit(name, TRANSIENT + name) is True
    return snaps.path(name)


def test_prepare_makes_an_empty_active_snapshot(snaps: Snapshotter, db: Database) -> None:
    fs = snaps.prepare_dir("c1", None)
    assert os.path.isdir(fs) and os.listdir(fs) == []
    assert os.path.basename(fs) == "fs"
    assert os.path.dirname(os.path.dirname(fs)) == snaps.root
    assert snaps.path("c1") == fs
    assert snaps.exists("c1")
    row = db.one("SELECT * FROM snapshots WHERE key = 'c1'")
    assert row["kind"] == "active" and row["parent"] is None and row["created"]


def test_prepare_on_a_committed_parent(snaps: Snapshotter, db: Database) -> None:
    layer(snaps, "sha256:l1", None, {"a": b"1"})
    snaps.prepare("c1", "sha256:l1")
    assert db.one("SELECT parent FROM snapshots WHERE key = 'c1'")["parent"] == "sha256:l1"


def test_prepare_errors_leave_no_directory(snaps: Snapshotter) -> None:
    with pytest.raises(NotFound, match="parent snapshot missing does not exist"):
        snaps.prepare("c1", "missing")
    assert os.listdir(snaps.root) == []
    snaps.prepare("active", None)
    with pytest.raises(NotFound):  # an active snapshot cannot be a parent
        snaps.prepare("c2", "active")
    with pytest.raises(Conflict, match="snapshot active already exists"):
        snaps.prepare("active", None)
    assert len(os.listdir(snaps.root)) == 1
    assert not snaps.exists("c1") and not snaps.exists("c2")


def test_commit_freezes_under_the_name(snaps: Snapshotter, db: Database) -> None:
    fs = snaps.prepare_dir(TRANSIENT + "x", None)
    Path(fs, "file").write_bytes(b"data")
    assert snaps.commit("sha256:l1", TRANSIENT + "x") is True
    assert not snaps.exists(TRANSIENT + "x")
    assert kind(db, "sha256:l1") == "committed"
    assert snaps.path("sha256:l1") == fs
    assert Path(fs, "file").read_bytes() == b"data"


def test_commit_race_loser_is_discarded(snaps: Snapshotter, db: Database) -> None:
    # Two imports of the same layer: both prepared, the first commit wins.
    first = snaps.prepare_dir(TRANSIENT + "a", None)
    second = snaps.prepare_dir(TRANSIENT + "b", None)
    Path(first, "f").write_bytes(b"first")
    Path(second, "f").write_bytes(b"second")
    assert snaps.commit("sha256:l1", TRANSIENT + "a") is True
    assert snaps.commit("sha256:l1", TRANSIENT + "b") is False
    assert not os.path.exists(os.path.dirname(second))
    assert not snaps.exists(TRANSIENT + "b")
    assert Path(snaps.path("sha256:l1"), "f").read_bytes() == b"first"
    assert len(os.listdir(snaps.root)) == 1
    assert db.one("SELECT count(*) FROM snapshots")[0] == 1


def test_commit_needs_an_active_snapshot(snaps: Snapshotter) -> None:
    with pytest.raises(NotFound, match="active snapshot nope does not exist"):
        snaps.commit("name", "nope")
    layer(snaps, "sha256:l1", None, {})
    with pytest.raises(NotFound):
        snaps.commit("other", "sha256:l1")  # already committed


def test_commit_under_its_own_key_keeps_the_snapshot(snaps: Snapshotter) -> None:
    fs = snaps.prepare_dir("k", None)
    Path(fs, "f").write_bytes(b"keep me")
    with pytest.raises(Conflict):
        snaps.commit("k", "k")
    assert Path(fs, "f").read_bytes() == b"keep me"
    assert snaps.exists("k")


def test_remove(snaps: Snapshotter, db: Database) -> None:
    fs = snaps.prepare_dir("c1", None)
    snaps.remove("c1")
    assert not snaps.exists("c1")
    assert not os.path.exists(os.path.dirname(fs))
    snaps.remove("c1")  # removing what is gone is fine
    with pytest.raises(NotFound):
        snaps.path("c1")


def test_remove_refuses_a_snapshot_with_children(snaps: Snapshotter) -> None:
    parent = layer(snaps, "sha256:l1", None, {"a": b"1"})
    snaps.prepare("c1", "sha256:l1")
    with pytest.raises(Conflict, match="has children"):
        snaps.remove("sha256:l1")
    assert snaps.exists("sha256:l1") and os.path.isdir(parent)
    snaps.remove("c1")
    snaps.remove("sha256:l1")
    assert os.listdir(snaps.root) == []


def test_usage_counts_only_its_own_bytes(snaps: Snapshotter) -> None:
    layer(snaps, "sha256:l1", None, {"big": b"x" * 1000})
    layer(snaps, "sha256:l2", "sha256:l1", {"d/small": b"y" * 10})
    assert snaps.usage("sha256:l1") == 1000
    assert snaps.usage("sha256:l2") == 10
    fs = snaps.prepare_dir("c1", "sha256:l2")
    assert snaps.usage("c1") == 0
    Path(fs, "new").write_bytes(b"z" * 5)
    assert snaps.usage("c1") == 5
    with pytest.raises(NotFound):
        snaps.usage("nope")


def test_clean_after_a_crash(snaps: Snapshotter, db: Database) -> None:
    layer(snaps, "sha256:l1", None, {"a": b"1"})
    container = snaps.prepare_dir("container-1", "sha256:l1")  # not transient: kept
    half = snaps.prepare_dir(TRANSIENT + "import", "sha256:l1")  # transient: removed
    Path(half, "partial").write_bytes(b"x")
    os.makedirs(os.path.join(snaps.root, "orphan", "fs"))  # no row names it
    Path(snaps.root, "stray-file").write_bytes(b"?")
    removed = snaps.clean()
    assert sorted(removed) == sorted([TRANSIENT + "import", "orphan", "stray-file"])
    assert not os.path.exists(os.path.dirname(half))
    assert not snaps.exists(TRANSIENT + "import")
    assert sorted(os.listdir(snaps.root)) == sorted(
        os.path.basename(os.path.dirname(p)) for p in (snaps.path("sha256:l1"), container)
    )
    assert kind(db, "sha256:l1") == "committed"
    assert kind(db, "container-1") == "active"
    assert Path(snaps.path("sha256:l1"), "a").read_bytes() == b"1"
    assert snaps.clean() == []


def test_clean_with_another_prefix(snaps: Snapshotter) -> None:
    snaps.prepare("tmp-1", None)
    snaps.prepare(TRANSIENT + "x", None)
    assert snaps.clean("tmp-") == ["tmp-1"]
    assert snaps.exists(TRANSIENT + "x")


# -- tree_usage --------------------------------------------------------------------------------


def test_tree_usage_counts_hardlinks_once_and_symlink_sizes(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "d" / "e").mkdir(parents=True)
    (root / "file").write_bytes(b"a" * 100)
    (root / "d" / "e" / "deep").write_bytes(b"b" * 7)
    os.link(root / "file", root / "d" / "hardlink")
    os.link(root / "file", root / "d" / "e" / "hardlink2")
    target = "some/where/over/the/rainbow"  # 27 bytes
    os.symlink(target, root / "link")
    os.symlink("/", root / "d" / "to-root")  # never followed
    (root / "empty").write_bytes(b"")
    assert tree_usage(str(root)) == 100 + 7 + len(target) + 1


def test_tree_usage_of_nothing(tmp_path: Path) -> None:
    assert tree_usage(str(tmp_path / "missing")) == 0
    (tmp_path / "only-dirs" / "a" / "b").mkdir(parents=True)
    assert tree_usage(str(tmp_path / "only-dirs")) == 0


def test_tree_usage_counts_apparent_size_of_sparse_files(tmp_path: Path) -> None:
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(10 * 1024 * 1024)
    assert tree_usage(str(tmp_path)) == 10 * 1024 * 1024
