"""A spool's reader sees the whole blob whenever it is made: during the download, or after the
blob was verified and published (its ingest file renamed away)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from dockyard.content.blobs import BlobStore
from dockyard.distribution.spool import Spool
from dockyard.errors import DigestMismatch


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_a_reader_made_after_publishing_reads_the_blob(tmp_path):
    data = os.urandom(100_000)
    blobs = BlobStore(str(tmp_path))
    spool = Spool(blobs, _digest(data), len(data))
    spool.write(data)
    spool.finish()
    assert os.listdir(blobs.ingest_dir) == []  # published: the ingest path is gone
    with spool.reader() as reader:
        assert reader.read() == data


def test_a_reader_follows_the_download(tmp_path):
    chunks = [os.urandom(50_000) for _ in range(5)]
    data = b"".join(chunks)
    spool = Spool(BlobStore(str(tmp_path)), _digest(data), len(data))
    reader = spool.reader()

    def download() -> None:
        for chunk in chunks:
            spool.write(chunk)
        spool.finish()

    thread = threading.Thread(target=download)
    thread.start()
    with reader:
        assert reader.read() == data
    thread.join()


def test_a_mismatch_reaches_the_reader_and_nothing_is_published(tmp_path):
    blobs = BlobStore(str(tmp_path))
    spool = Spool(blobs, _digest(b"expected"), 8)
    reader = spool.reader()
    spool.write(b"tampered")
    with pytest.raises(DigestMismatch):
        spool.finish()
    with reader, pytest.raises(DigestMismatch):
        reader.read()
    assert os.listdir(blobs.blob_dir) == [] and os.listdir(blobs.ingest_dir) == []
