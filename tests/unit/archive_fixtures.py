"""Tiny layers, images and archives built in memory, shared by the archive tests."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterator

from dockyard.image.archive import SaveImage, extract_archive, write_save_archive
from dockyard.image.model import OCI_LAYER_GZIP, OCI_MANIFEST, sha256_digest

CREATED = "2024-05-06T07:08:09.123456789Z"
CREATED_TS = 1714979289


# --- fixtures: tiny layers and images built in memory --------------------------------------


def make_layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Img:
    """An image: its layers (bytes) and config; `save` turns it into a SaveImage."""

    def __init__(self, layers: list[bytes], created: str | None = CREATED, **extra: object):
        self.layers = layers
        doc: dict[str, object] = {"architecture": "amd64", "os": "linux"}
        if created is not None:
            doc["created"] = created
        doc.update(extra)
        doc["rootfs"] = {"type": "layers", "diff_ids": [sha256_digest(x) for x in layers]}
        self.config = json.dumps(doc, separators=(",", ":")).encode()
        self.id = sha256_digest(self.config)
        self.diff_ids = [sha256_digest(x) for x in layers]

    def save(self, *tags: str, parent: str | None = None) -> SaveImage:
        return SaveImage(
            self.config, list(tags), [(sha256_digest(x), len(x)) for x in self.layers], parent
        )


BASE = make_layer({"bin/sh": b"#!shell\n", "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"})
TOP = make_layer({"app/hello.txt": b"hello\n"})


def save_bytes(images: list[SaveImage], layers: list[bytes]) -> bytes:
    by_id = {sha256_digest(x): x for x in layers}

    @contextlib.contextmanager
    def open_layer(diff_id: str) -> Iterator[io.BytesIO]:
        yield io.BytesIO(by_id[diff_id])

    out = io.BytesIO()
    write_save_archive(out, images, open_layer)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def member_data(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def extract(data: bytes, dest: str) -> str:
    os.makedirs(dest, exist_ok=True)
    extract_archive(io.BytesIO(data), dest)
    return dest


def hexof(digest: str) -> str:
    return digest.split(":", 1)[1]


def build_tar(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """(name, data, symlink target): data None and target None = directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, target in entries:
            info = tarfile.TarInfo(name)
            if target is not None:
                info.type, info.linkname = tarfile.SYMTYPE, target
            elif data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data or b""))
    return buf.getvalue()


def oci_layout(index_manifests: list[dict], blobs: dict[str, bytes]) -> bytes:
    index = {"schemaVersion": 2, "manifests": index_manifests}
    entries: list[tuple[str, bytes | None, str | None]] = [
        ("blobs/", None, None),
        ("blobs/sha256/", None, None),
    ]
    entries += [(f"blobs/sha256/{hexof(d)}", b, None) for d, b in blobs.items()]
    entries += [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None),
        ("index.json", json.dumps(index).encode(), None),
    ]
    return build_tar(entries)


def oci_image(img: Img, blobs: dict[str, bytes]) -> dict:
    """Store img's gzip layers, config and manifest in blobs; return the manifest descriptor."""
    layers = []
    for layer in img.layers:
        gz = gzip.compress(layer, mtime=0)
        blobs[sha256_digest(gz)] = gz
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(gz), "size": len(gz)})
    blobs[img.id] = img.config
    config = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": img.id,
        "size": len(img.config),
    }
    manifest = json.dumps({"schemaVersion": 2, "config": config, "layers": layers}).encode()
    blobs[sha256_digest(manifest)] = manifest
    return {"mediaType": OCI_MANIFEST, "digest": sha256_digest(manifest), "size": len(manifest)}
