"""Layers in and out of the store.

Ingest reads a layer tar once: the same bytes are hashed (the diffID), gzip-compressed into
the content store (the blob) and unpacked into a new snapshot (hostile tars are refused there),
so a layer costs one pass over its data. Nothing becomes visible until all three succeeded.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from dockyard.content.blobs import BlobStore, Ingest
from dockyard.content.db import Database
from dockyard.errors import InvalidArchive
from dockyard.image import compression
from dockyard.image.layer import apply_layer
from dockyard.image.model import DOCKER_LAYER_GZIP, sha256_digest
from dockyard.image.store import ImageStore, LayerRecord
from dockyard.snapshot.snapshotter import TRANSIENT, Snapshotter

CHUNK = 1 << 20


class _BlobWriter:
    """Hashes a layer's bytes (its diffID) and compresses them into the blob on a thread of its
    own, so that this CPU work overlaps unpacking, which waits on the file system (isal and
    hashlib release the GIL). Measured on the 539 MB bench root filesystem: see bench/."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self.hash = hashlib.sha256()
        self.size = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="layer-blob", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep taking chunks so that the producer never blocks
            try:
                self.hash.update(chunk)
                self._sink.write(chunk)
            except BaseException as exc:
                self._error = exc

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self.size += len(data)
        self._queue.put(data)

    def close(self) -> None:
        """Wait for the thread; raises what it met."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Tee(io.RawIOBase):
    """Hands the tar reader its bytes and a copy of each to the blob writer."""

    def __init__(self, source: BinaryIO, sink: _BlobWriter) -> None:
        self._source = source
        self._sink = sink

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        if not data:
            return 0
        n = len(data)
        buffer[:n] = data
        self._sink.write(data)
        return n


class _Discard(io.RawIOBase):
    """Where the plain bytes go when the blob is stored already: only their hash is kept."""

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return memoryview(data).nbytes


class LayerStore:
    """Layers and their files. `lock` orders the two things that race: storing a layer (or
    reusing a stored one) and removing layers no image uses. A layer an operation has stored or
    reused is leased until that operation records its image (see `session`), and removal skips
    leased layers."""

    def __init__(
        self, db: Database, blobs: BlobStore, snapshots: Snapshotter, images: ImageStore
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.snapshots = snapshots
        self.images = images
        self.lock = threading.RLock()
        self._leases: dict[str, int] = {}

    @contextmanager
    def session(self) -> Iterator[LayerSession]:
        """Layers stored or reused within stay until the block ends; on an error, the ones it
        stored that no image uses are removed again."""
        session = LayerSession(self)
        try:
            yield session
        except BaseException:
            session.close(failed=True)
            raise
        session.close(failed=False)

    def leased(self) -> set[str]:
        with self.lock:
            return set(self._leases)

    def _lease(self, chain_id: str) -> None:
        self._leases[chain_id] = self._leases.get(chain_id, 0) + 1

    def _unlease(self, chain_id: str) -> None:
        left = self._leases.get(chain_id, 0) - 1
        if left > 0:
            self._leases[chain_id] = left
        else:
            self._leases.pop(chain_id, None)

    def _ingest(
        self,
        stream: BinaryIO,
        parent: str | None,
        expected_diff_id: str | None,
        index: int,
        escaping_symlinks: bool = False,
        stored_blob: tuple[str, str] | None = None,
    ) -> tuple[LayerRecord, bool]:
        """Store one layer and lease it; True when it was not stored before. `stored_blob`:
        (digest, media type) of a blob already in the content store (a pull's, committed
        before `stream` ends) whose bytes `stream` is: it becomes the layer's blob as it is."""
        key = TRANSIENT + uuid.uuid4().hex
        root = self.snapshots.prepare_dir(key, parent)
        blob: Ingest | None = None if stored_blob else self.blobs.writer()
        try:
            with (
                compression.compressing_writer(blob) if blob else _Discard() as gz,
                compression.open_decompressed(stream) as plain,
            ):
                writer = _BlobWriter(gz)
                try:
                    reader = io.BufferedReader(_Tee(plain, writer), CHUNK)
                    apply_layer(
                        reader,
                        root,
                        whiteouts=self.snapshots.whiteouts,
                        escaping_symlinks=escaping_symlinks,
                    )
                    while reader.read(CHUNK):
                        pass
                finally:
                    writer.close()
            diff_id = "sha256:" + writer.hash.hexdigest()
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise InvalidArchive(
                    f'invalid diffID for layer {index}: expected "{expected_diff_id}", '
                    f'got "{diff_id}"'
                )
            if blob:
                blob.sync()  # the slow part of publishing, outside the lock
            chain_id = diff_id if parent is None else sha256_digest(f"{parent} {diff_id}".encode())
            size = int(self.snapshots.usage(key))
            with self.lock:
                if blob:
                    blob_digest, blob_size, media_type = blob.commit(), blob.size, DOCKER_LAYER_GZIP
                else:
                    assert stored_blob is not None
                    blob_digest, media_type = stored_blob
                    blob_size = self.blobs.size(blob_digest)
                record = LayerRecord(
                    chain_id=chain_id,
                    diff_id=diff_id,
                    parent=parent,
                    blob=blob_digest,
                    blob_size=blob_size,
                    media_type=media_type,
                    tar_size=writer.size,
                    size=size,
                )
                self.snapshots.commit(chain_id, key)
                with self.db.tx() as tx:
                    new = ImageStore.add_layer(tx, record)
                self._lease(chain_id)
        except BaseException:
            if blob:
                blob.abort()
            self.snapshots.remove(key)
            raise
        return (self.images.layer(chain_id) or record), new

    def _existing(self, chain_id: str) -> LayerRecord | None:
        with self.lock:
            record = self.images.layer(chain_id)
            if record is not None:
                self._lease(chain_id)
            return record

    def remove_unused(self, candidates: list[LayerRecord]) -> None:
        """Delete the rows of candidates no image, child layer or lease uses, then their
        files (top first)."""
        with self.lock:
            removed = []
            with self.db.tx() as tx:
                for record in reversed(candidates):
                    if record.chain_id not in self._leases and ImageStore.delete_layer_if_unused(
                        tx, record.chain_id
                    ):
                        removed.append(record)
            self.remove_files(removed)

    @contextmanager
    def open_tar(self, chain_id: str) -> Iterator[BinaryIO]:
        """The layer's uncompressed tar, streamed from its blob."""
        record = self.images.layer(chain_id)
        if record is None:
            raise InvalidArchive(f"layer {chain_id} does not exist")
        with self.blobs.open(record.blob) as raw, compression.open_decompressed(raw) as plain:
            yield plain

    def driver_data(self, chain_id: str) -> dict[str, str] | None:
        """GraphDriver.Data as docker's driver reports it for an image's top layer."""
        return self.snapshots.driver_data(chain_id)

    def remove_files(self, records: list[LayerRecord]) -> None:
        """Remove the snapshots and blobs of layers whose rows are already gone (call with
        `lock` held, in the same critical section that deleted the rows)."""
        for record in records:
            self.snapshots.remove(record.chain_id)
            with self.db.tx() as tx:
                in_use = ImageStore.blob_in_use(tx, record.blob)
            if not in_use:
                self.blobs.delete(record.blob)


class LayerSession:
    """The layers one operation (an import, a load) stores or reuses. See LayerStore.session."""

    def __init__(self, store: LayerStore) -> None:
        self._store = store
        self._leased: list[str] = []
        self._added: list[LayerRecord] = []

    def ingest(
        self,
        stream: BinaryIO,
        parent: str | None,
        expected_diff_id: str | None = None,
        index: int = 0,
        escaping_symlinks: bool = False,
        stored_blob: tuple[str, str] | None = None,
    ) -> LayerRecord:
        """Store one layer (plain, gzip or zstd tar) on top of chain `parent`; `index` is its
        position in the image, for the error when its content is not `expected_diff_id`.
        `escaping_symlinks`: see apply_layer (for a container's own changes); `stored_blob`:
        see LayerStore._ingest (a pulled blob kept as it came)."""
        record, new = self._store._ingest(
            stream, parent, expected_diff_id, index, escaping_symlinks, stored_blob
        )
        self._leased.append(record.chain_id)
        if new:
            self._added.append(record)
        return record

    def existing(self, chain_id: str) -> LayerRecord | None:
        """The stored layer with this chain ID, leased; None when there is none."""
        record = self._store._existing(chain_id)
        if record is not None:
            self._leased.append(chain_id)
        return record

    def close(self, *, failed: bool) -> None:
        with self._store.lock:
            for chain_id in self._leased:
                self._store._unlease(chain_id)
            self._leased.clear()
            if failed:
                self._store.remove_unused(self._added)
            self._added.clear()
