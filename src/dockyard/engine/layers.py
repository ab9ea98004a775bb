"""Layers in and out of the store.

Ingest reads a layer tar once: the same bytes are hashed (the diffID), gzip-compressed into
the content store (the blob) and unpacked into a new snapshot (hostile tars are refused there),
so a layer costs one pass over its data. Nothing becomes visible until all three succeeded.
"""

from __future__ import annotations

import hashlib
import io
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


class _Tee(io.RawIOBase):
    """Hands the tar reader its bytes while hashing them and feeding the compressor."""

    def __init__(self, source: BinaryIO, sink: BinaryIO) -> None:
        self._source = source
        self._sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        if not data:
            return 0
        n = len(data)
        buffer[:n] = data
        self.hash.update(data)
        self._sink.write(data)
        self.size += n
        return n

    def drain(self) -> None:
        while self.readinto(memoryview(bytearray(CHUNK))):
            pass


class LayerStore:
    def __init__(
        self, db: Database, blobs: BlobStore, snapshots: Snapshotter, images: ImageStore
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.snapshots = snapshots
        self.images = images

    def ingest(
        self,
        stream: BinaryIO,
        parent: str | None,
        expected_diff_id: str | None = None,
        index: int = 0,
    ) -> LayerRecord:
        """Store one layer (plain, gzip or zstd tar) on top of chain `parent`; `index` is its
        position in the image, for the error when its content is not `expected_diff_id`."""
        key = TRANSIENT + uuid.uuid4().hex
        root = self.snapshots.prepare(key, parent)
        blob: Ingest = self.blobs.writer()
        try:
            with (
                compression.compressing_writer(blob) as gz,
                compression.open_decompressed(stream) as plain,
            ):
                tee = _Tee(plain, gz)
                reader = io.BufferedReader(tee, CHUNK)
                apply_layer(reader, root, whiteouts="overlay")
                while reader.read(CHUNK):
                    pass
            diff_id = "sha256:" + tee.hash.hexdigest()
            if expected_diff_id is not None and diff_id != expected_diff_id:
                raise InvalidArchive(
                    f'invalid diffID for layer {index}: expected "{expected_diff_id}", '
                    f'got "{diff_id}"'
                )
            blob_digest = blob.commit()
            chain_id = diff_id if parent is None else sha256_digest(f"{parent} {diff_id}".encode())
            record = LayerRecord(
                chain_id=chain_id,
                diff_id=diff_id,
                parent=parent,
                blob=blob_digest,
                blob_size=blob.size,
                media_type=DOCKER_LAYER_GZIP,
                tar_size=tee.size,
                size=self.snapshots.usage(key),
            )
            self.snapshots.commit(chain_id, key)
        except BaseException:
            blob.abort()
            self.snapshots.remove(key)
            raise
        with self.db.tx() as tx:
            ImageStore.add_layer(tx, record)
        return self.images.layer(chain_id) or record

    @contextmanager
    def open_tar(self, chain_id: str) -> Iterator[BinaryIO]:
        """The layer's uncompressed tar, streamed from its blob."""
        record = self.images.layer(chain_id)
        if record is None:
            raise InvalidArchive(f"layer {chain_id} does not exist")
        with self.blobs.open(record.blob) as raw:
            with compression.open_decompressed(raw) as plain:
                yield plain

    def driver_data(self, chain_id: str) -> dict[str, str]:
        """GraphDriver.Data as docker's overlay2 reports it for an image's top layer."""
        data = {"UpperDir": self.snapshots.path(chain_id)}
        lowers = []
        parent = self.images.layer(chain_id)
        while parent is not None and parent.parent is not None:
            lowers.append(self.snapshots.path(parent.parent))
            parent = self.images.layer(parent.parent)
        if lowers:
            data["LowerDir"] = ":".join(lowers)
        return data

    def release(self, records: list[LayerRecord]) -> None:
        """Remove the snapshots and blobs of layers whose rows are already gone."""
        for record in records:
            self.snapshots.remove(record.chain_id)
            with self.db.tx() as tx:
                in_use = ImageStore.blob_in_use(tx, record.blob)
            if not in_use:
                self.blobs.delete(record.blob)
