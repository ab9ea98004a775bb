"""A blob on its way from a registry into the content store, readable while it arrives.

The download writes (and hashes) into an ingest file; a reader on another thread follows the
file as it grows, so that unpacking overlaps the download. The reader sees the end only after
the blob was verified against its digest and published; a mismatch or a failed download
reaches it as an error instead, and nothing is published.
"""

from __future__ import annotations

import io
import os
import threading
import weakref

from dockyard.content.blobs import BlobStore, Ingest

SYNC_EVERY = 16 << 20


class Spool:
    def __init__(self, blobs: BlobStore, digest: str, size: int) -> None:
        self.digest = digest
        self.size = size
        self._ingest: Ingest = blobs.writer(expected=digest)
        # Readers read through this fd, not the ingest's path: a small blob may be verified
        # and published (renamed away) before its reader is made.
        self._read_fd = os.open(self._ingest.path, os.O_RDONLY | os.O_CLOEXEC)
        weakref.finalize(self, os.close, self._read_fd)
        self._cond = threading.Condition()
        self.written = 0
        self.done = False
        self.error: BaseException | None = None
        # Write-back starts while the download runs (fdatasync on a helper thread every
        # SYNC_EVERY bytes), so the fsync that publishing needs has little left to do.
        self._synced = 0
        self._sync_wanted = threading.Event()
        self._syncer: threading.Thread | None = None
        self._closing = False

    @property
    def path(self) -> str:
        return self._ingest.path

    def write(self, data: bytes) -> None:
        self._ingest.write(data)
        self._ingest.flush()  # the follower reads the file, not our buffer
        with self._cond:
            self.written += len(data)
            self._cond.notify_all()
        if self.written - self._synced >= SYNC_EVERY:
            self._synced = self.written
            if self._syncer is None:
                self._syncer = threading.Thread(target=self._sync_loop, daemon=True)
                self._syncer.start()
            self._sync_wanted.set()

    def _sync_loop(self) -> None:
        fd = os.dup(self._ingest._file.fileno())
        try:
            while True:
                self._sync_wanted.wait()
                self._sync_wanted.clear()
                if self._closing:
                    return
                os.fdatasync(fd)
        except OSError:
            return
        finally:
            os.close(fd)

    def _stop_syncer(self) -> None:
        if self._syncer is not None:
            self._closing = True
            self._sync_wanted.set()
            self._syncer.join()
            self._syncer = None

    def finish(self) -> None:
        """Verify, fsync and publish (raises DigestMismatch); then the follower sees the end."""
        self._stop_syncer()
        try:
            if self.written != self.size:
                raise ValueError(f"blob {self.digest}: {self.written} of {self.size} bytes")
            self._ingest.commit()
        except BaseException as exc:
            self.fail(exc)
            raise
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        self._stop_syncer()
        self._ingest.abort()
        with self._cond:
            if self.error is None:
                self.error = exc
            self._cond.notify_all()

    def reader(self) -> SpoolReader:
        return SpoolReader(self)


class SpoolReader(io.RawIOBase):
    """The spool's bytes, blocking for more until the download ends (see Spool)."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._fd = os.dup(spool._read_fd)
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        spool = self._spool
        with spool._cond:
            while self.position >= spool.written and not spool.done and spool.error is None:
                spool._cond.wait()
            if spool.error is not None:
                raise spool.error
            available = spool.written - self.position
        if available <= 0:
            return 0
        n = os.preadv(self._fd, [memoryview(buffer)[: min(len(buffer), available)]], self.position)
        self.position += n
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
