"""Storing and removing the same layers at once leaves the store consistent.

Runs the engine in-process, so the threads interleave tightly: imports and loads of an image
race against removals of the image that holds the same layer."""

from __future__ import annotations

import io
import os
import random
import threading
import time
from pathlib import Path

import pytest

from dockyard.engine.engine import Engine
from dockyard.errors import NotFound
from tests.conftest import needs_root


def assert_consistent(engine: Engine) -> None:
    layers = engine.image_store.layers()
    snapshots = {r["key"]: r["dir"] for r in engine.db.query("SELECT key, dir FROM snapshots")}
    blobs = set(engine.blobs.digests())
    for chain, layer in layers.items():
        assert chain in snapshots, f"layer {chain} has no snapshot"
        assert os.path.isdir(engine.snapshots.path(chain)), f"snapshot dir of {chain} missing"
        assert layer.blob in blobs, f"blob of layer {chain} missing"
    for image in engine.image_store.all():
        assert image.id in blobs, f"config of {image.id} missing"
        for chain in image.chain_ids:
            assert chain in layers
    used = {layer.blob for layer in layers.values()} | {i.id for i in engine.image_store.all()}
    assert blobs == used, f"unreferenced blobs: {blobs - used}"
    assert set(snapshots) == set(layers), "snapshots without layers"
    assert sorted(os.listdir(engine.snapshots.root)) == sorted(snapshots.values())


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An engine whose snapshot removal is slowed down, which widens the window in which an
    import can meet a removal half done (without it the race needs luck to show)."""
    needs_root()
    e = Engine(str(tmp_path / "data"))
    remove = e.snapshots.remove

    def slow_remove(key: str) -> None:
        time.sleep(0.03)
        remove(key)

    monkeypatch.setattr(e.snapshots, "remove", slow_remove)
    yield e
    e.close()


def assert_image_whole(engine: Engine, name: str) -> None:
    image = engine.images.resolve(name)
    assert engine.blobs.exists(image.id)
    for chain in image.chain_ids:
        layer = engine.image_store.layer(chain)
        assert layer is not None, f"{name}: layer {chain} has no row"
        assert os.path.isdir(engine.snapshots.path(chain)), f"{name}: snapshot of {chain} gone"
        assert engine.blobs.exists(layer.blob), f"{name}: blob of {chain} gone"


def test_import_races_with_remove(engine: Engine, busybox_tar: Path) -> None:
    """Two threads each import an image and remove it again, over and over; both images hold the
    same layer, so one thread's removal of the layer's last user meets the other's import."""
    data = busybox_tar.read_bytes()
    errors: list[BaseException] = []

    def cycle(name: str, seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(15):
                engine.images.import_image(io.BytesIO(data), repo=name, tag="1")
                assert_image_whole(engine, f"{name}:1")
                time.sleep(rng.random() * 0.03)
                engine.images.delete(f"{name}:1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=cycle, args=(name, i)) for i, name in enumerate("ab")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert_consistent(engine)
    assert engine.image_store.all() == []
    assert engine.image_store.layers() == {}


def test_load_of_a_layer_being_removed(engine: Engine, busybox_tar: Path) -> None:
    data = busybox_tar.read_bytes()
    engine.images.import_image(io.BytesIO(data), repo="base", tag="1")
    out = io.BytesIO()
    engine.archives.write_save(engine.archives.plan_save(["base:1"]), out)
    archive = out.getvalue()
    errors: list[BaseException] = []

    def loader() -> None:
        try:
            for _ in range(6):
                engine.archives.load(io.BytesIO(archive))
        except BaseException as exc:
            errors.append(exc)

    def remover() -> None:
        for _ in range(40):
            try:
                engine.images.delete("base:1", force=True)
            except NotFound:
                pass
            time.sleep(0.005)

    threads = [threading.Thread(target=loader), threading.Thread(target=remover)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert_consistent(engine)
