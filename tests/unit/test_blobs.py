"""The blob store (dockyard.content.blobs): content becomes visible only verified, fsynced and
renamed; a failed write leaves nothing behind."""

from __future__ import annotations

import array
import hashlib
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.content.blobs import BlobStore
from dockyard.errors import DigestMismatch, NotFound


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "content"))


def test_layout(store: BlobStore, tmp_path: Path) -> None:
    assert sorted(os.listdir(tmp_path / "content")) == ["blobs", "ingest"]
    assert os.path.isdir(tmp_path / "content" / "blobs" / "sha256")
    # Opening an existing store again is fine.
    BlobStore(str(tmp_path / "content"))


def test_put_stores_under_the_sha256(store: BlobStore, tmp_path: Path) -> None:
    data = b"hello blob"
    digest = store.put(data)
    assert digest == digest_of(data)
    path = tmp_path / "content" / "blobs" / "sha256" / digest.removeprefix("sha256:")
    assert path.read_bytes() == data
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    assert store.read(digest) == data
    with store.open(digest) as f:
        assert f.read() == data
    assert list(store.digests()) == [digest]
    assert os.listdir(store.ingest_dir) == []


def test_known_digest_of_empty_blob(store: BlobStore) -> None:
    assert store.put(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_put_with_the_right_expected_digest(store: BlobStore) -> None:
    data = b"x" * 1000
    assert store.put(data, expected=digest_of(data)) == digest_of(data)


def test_mismatch_stores_nothing_and_leaves_ingest_empty(store: BlobStore) -> None:
    wrong = digest_of(b"something else")
    with pytest.raises(DigestMismatch) as info:
        store.put(b"actual", expected=wrong)
    assert info.value.status == 400
    assert wrong in info.value.message and digest_of(b"actual") in info.value.message
    assert list(store.digests()) == []
    assert os.listdir(store.ingest_dir) == []
    assert not store.exists(digest_of(b"actual"))


def test_streamed_write(store: BlobStore) -> None:
    chunks = [b"a" * 10, bytearray(b"b" * 20), memoryview(b"c" * 30)]
    data = b"".join(bytes(c) for c in chunks)
    with store.writer(digest_of(data)) as w:
        assert os.listdir(store.ingest_dir) == [os.path.basename(w.path)]
        for chunk in chunks:
            w.write(chunk)
        assert w.size == 60
        assert store.digests() is not None and list(store.digests()) == []  # not visible yet
        digest = w.commit()
    assert w.digest == digest == digest_of(data)
    assert store.read(digest) == data
    assert os.listdir(store.ingest_dir) == []


def test_write_counts_bytes_of_a_wide_memoryview(store: BlobStore) -> None:
    items = array.array("I", range(10))  # 10 items of 4 bytes each
    with store.writer() as w:
        assert w.write(memoryview(items)) == 40
        assert w.size == 40
        digest = w.commit()
    assert store.size(digest) == 40
    assert store.read(digest) == items.tobytes()


def test_abandoned_writer_is_removed(store: BlobStore) -> None:
    with store.writer() as w:
        w.write(b"partial")
    assert w.digest is None
    assert os.listdir(store.ingest_dir) == []
    assert list(store.digests()) == []


def test_exception_inside_writer_is_removed(store: BlobStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"partial")
        raise RuntimeError("client went away")
    assert os.listdir(store.ingest_dir) == []


def test_streamed_mismatch_cleans_up(store: BlobStore) -> None:
    with store.writer(digest_of(b"other")) as w:
        w.write(b"data")
        with pytest.raises(DigestMismatch):
            w.commit()
    assert os.listdir(store.ingest_dir) == []
    assert list(store.digests()) == []


def test_same_content_twice_is_one_blob(store: BlobStore) -> None:
    assert store.put(b"same") == store.put(b"same")
    assert list(store.digests()) == [digest_of(b"same")]
    assert os.listdir(store.ingest_dir) == []


def test_concurrent_writers_of_the_same_content(store: BlobStore) -> None:
    data = os.urandom(256 * 1024)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with store.writer(digest_of(data)) as w:
                for i in range(0, len(data), 4096):
                    w.write(data[i : i + 4096])
                barrier.wait()
                results.append(w.commit())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [digest_of(data)] * 8
    assert store.read(digest_of(data)) == data
    assert list(store.digests()) == [digest_of(data)]
    assert os.listdir(store.ingest_dir) == []


def test_concurrent_writers_of_different_content(store: BlobStore) -> None:
    blobs = [os.urandom(1000 + i) for i in range(8)]
    threads = [threading.Thread(target=store.put, args=(b,)) for b in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.digests()) == sorted(digest_of(b) for b in blobs)
    for b in blobs:
        assert store.read(digest_of(b)) == b


def test_missing_blob(store: BlobStore) -> None:
    missing = digest_of(b"never stored")
    assert not store.exists(missing)
    for call in (store.size, store.open, store.read):
        with pytest.raises(NotFound, match="not found"):
            call(missing)
    store.delete(missing)  # deleting what is not there is fine


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "a" * 64,
        "sha256:../../../../etc/passwd",
        "sha256:" + "g" * 64,
    ],
)
def test_invalid_digests_never_touch_the_filesystem(store: BlobStore, digest: str) -> None:
    with pytest.raises(NotFound, match="invalid digest"):
        store.path(digest)
    with pytest.raises(NotFound):
        store.read(digest)


def test_delete(store: BlobStore) -> None:
    digest = store.put(b"bye")
    store.delete(digest)
    assert not store.exists(digest)
    assert list(store.digests()) == []


def test_clean_ingest_removes_leftovers(store: BlobStore) -> None:
    for name in ("a", "b", "c"):
        Path(store.ingest_dir, name).write_bytes(b"half")
    digest = store.put(b"kept")
    assert store.clean_ingest() == 3
    assert os.listdir(store.ingest_dir) == []
    assert store.read(digest) == b"kept"
    assert store.clean_ingest() == 0


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4096), st.integers(1, 512))
def test_any_chunking_gives_the_same_digest(store: BlobStore, data: bytes, step: int) -> None:
    with store.writer() as w:
        for i in range(0, len(data), step):
            w.write(data[i : i + step])
        digest = w.commit()
    assert digest == digest_of(data)
    assert store.read(digest) == data
    assert os.listdir(store.ingest_dir) == []
