"""The blob store: immutable content addressed by sha256.

A blob becomes visible only after its bytes were hashed, fsynced and renamed into
`blobs/sha256/<hex>`; partial writes live in `ingest/` and are never read as content.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import BinaryIO

from dockyard.errors import DigestMismatch, NotFound


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Ingest:
    """One blob being written: hashes as it goes, becomes visible only on commit()."""

    def __init__(self, store: BlobStore, expected: str | None) -> None:
        self._store = store
        self._expected = expected
        self.path = os.path.join(store.ingest_dir, uuid.uuid4().hex)
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._file.write(data)
        self._hash.update(data)
        n = memoryview(data).nbytes  # len() of a memoryview counts items, not bytes
        self.size += n
        return n

    def flush(self) -> None:
        self._file.flush()

    def sync(self) -> None:
        """Flush and fsync now, so that commit() has little left to do."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def commit(self) -> str:
        """Verify, fsync and publish the blob; returns its digest."""
        digest = "sha256:" + self._hash.hexdigest()
        try:
            if self._expected is not None and digest != self._expected:
                raise DigestMismatch(
                    f"digest mismatch: expected {self._expected}, got {digest} ({self.size} bytes)"
                )
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target = self._store.path(digest)
            if os.path.exists(target):
                os.unlink(self.path)
            else:
                os.rename(self.path, target)
                _fsync_dir(os.path.dirname(target))
        except BaseException:
            self.abort()
            raise
        self.digest = digest
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self.digest is None:
            self.abort()


class BlobStore:
    """`<root>/blobs/sha256/<hex>` for content, `<root>/ingest/` for writes in progress."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        self.ingest_dir = os.path.join(root, "ingest")
        os.makedirs(self.blob_dir, exist_ok=True)
        os.makedirs(self.ingest_dir, exist_ok=True)

    def path(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        if (
            algo != "sha256"
            or len(hexpart) != 64
            or not all(c in "0123456789abcdef" for c in hexpart)
        ):
            raise NotFound(f"invalid digest: {digest}")
        return os.path.join(self.blob_dir, hexpart)

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def writer(self, expected: str | None = None) -> Ingest:
        return Ingest(self, expected)

    def put(self, data: bytes, expected: str | None = None) -> str:
        with self.writer(expected) as w:
            w.write(data)
            return w.commit()

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def digests(self) -> Iterator[str]:
        for name in os.listdir(self.blob_dir):
            yield "sha256:" + name

    def clean_ingest(self) -> int:
        """Remove writes a crash left half-done; returns how many."""
        removed = 0
        for name in os.listdir(self.ingest_dir):
            os.unlink(os.path.join(self.ingest_dir, name))
            removed += 1
        return removed
