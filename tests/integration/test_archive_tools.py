"""Our save archives against the real tools, and the real tools' archives against our reader.

skopeo reads both views of what we write (docker-archive: manifest.json; oci-archive:
index.json), a private dockerd (tests/dockerd.py; Debian's is 20.10: it reads manifest.json) loads it, and
what skopeo and dockerd write is read back by read_archive.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.image.archive import SaveImage, extract_archive, read_archive, write_save_archive
from dockyard.image.model import sha256_digest
from tests.conftest import needs_root
from tests.dockerd import PrivateDockerd, private_dockerd

SKOPEO = shutil.which("skopeo")

needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed")


@pytest.fixture(scope="module")
def dockerd() -> Iterator[PrivateDockerd]:
    needs_root()
    with private_dockerd() as peer:
        yield peer


def run(*args: str) -> bytes:
    result = subprocess.run(args, capture_output=True, timeout=180)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
        )
    return result.stdout


def layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class TinyImage:
    """Two layers (the base shared between images) and a config unique to this test run, so
    loading it into a shared dockerd cannot collide with anything there."""

    BASE = layer({"etc/os-release": b"NAME=tiny\n"})

    def __init__(self, nonce: str, top: bytes) -> None:
        self.layers = [self.BASE, top]
        self.diff_ids = [sha256_digest(x) for x in self.layers]
        self.config = json.dumps(
            {
                "architecture": "amd64",
                "config": {"Cmd": ["/hello"], "Labels": {"dockyard.test": nonce}},
                "created": "2024-05-06T07:08:09Z",
                "history": [{"created": "2024-05-06T07:08:09Z"}] * 2,
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            },
            separators=(",", ":"),
        ).encode()
        self.id = sha256_digest(self.config)

    def save(self, *tags: str) -> SaveImage:
        return SaveImage(self.config, list(tags), [(sha256_digest(x), len(x)) for x in self.layers])


@pytest.fixture
def nonce() -> str:
    return uuid.uuid4().hex[:12]


def write_archive(path: Path, images: list[TinyImage], tags: list[list[str]]) -> None:
    by_id = {d: x for img in images for d, x in zip(img.diff_ids, img.layers, strict=True)}

    @contextlib.contextmanager
    def open_layer(diff_id: str) -> Iterator[io.BytesIO]:
        yield io.BytesIO(by_id[diff_id])

    with open(path, "wb") as out:
        write_save_archive(out, [i.save(*t) for i, t in zip(images, tags, strict=True)], open_layer)


def two_images(tmp_path: Path, nonce: str) -> tuple[Path, TinyImage, TinyImage, str, str]:
    first = TinyImage(nonce, layer({"hello": b"one\n"}))
    second = TinyImage(nonce, layer({"hello": b"two\n"}))
    tag1, tag2 = f"dockyard-archive-test:{nonce}", f"localhost:5000/dockyard/archive-test:{nonce}-b"
    path = tmp_path / "ours.tar"
    write_archive(path, [first, second], [[tag1], [tag2]])
    return path, first, second, tag1, tag2


@needs_skopeo
def test_skopeo_reads_docker_archive_view(tmp_path, nonce):
    path, first, second, _, tag2 = two_images(tmp_path, nonce)
    for ref, image in ((f"{path}:@0", first), (f"{path}:{tag2}", second)):
        info = json.loads(run("skopeo", "inspect", f"docker-archive:{ref}"))
        assert info["Layers"] == image.diff_ids
        assert info["Labels"] == {"dockyard.test": nonce}
        config = run("skopeo", "inspect", "--config", "--raw", f"docker-archive:{ref}")
        assert config == image.config


@needs_skopeo
def test_skopeo_reads_oci_archive_view(tmp_path, nonce):
    path, _, second, _, _ = two_images(tmp_path, nonce)
    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    # docker's ref.name is the tag alone: skopeo picks the image by it
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{path}:{nonce}-b"))
    assert info["Digest"] == index["manifests"][1]["digest"]
    assert info["Layers"] == second.diff_ids
    single = tmp_path / "single.tar"
    write_archive(single, [second], [[f"single:{nonce}"]])
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{single}"))
    assert info["Layers"] == second.diff_ids
    assert run("skopeo", "inspect", "--config", "--raw", f"oci-archive:{single}") == second.config


def test_docker_loads_our_archive(tmp_path, nonce, dockerd):
    path, first, second, tag1, tag2 = two_images(tmp_path, nonce)
    out = dockerd.docker("load", "-i", str(path)).decode()
    assert f"Loaded image: {tag1}" in out and f"Loaded image: {tag2}" in out
    for tag, image in ((tag1, first), (tag2, second)):
        inspect = json.loads(dockerd.docker("image", "inspect", tag))[0]
        assert inspect["Id"] == image.id
        assert inspect["RootFS"]["Layers"] == image.diff_ids


@needs_skopeo
@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_read_skopeo_copies(tmp_path, nonce, transport):
    image = TinyImage(nonce, layer({"hello": b"copied\n"}))
    ours = tmp_path / "ours.tar"
    write_archive(ours, [image], [[f"src:{nonce}"]])
    copy = tmp_path / "copy.tar"
    flags = ["--dest-compress"] if transport == "oci-archive" else []
    run(
        "skopeo", "copy", "-q", *flags, f"docker-archive:{ours}", f"{transport}:{copy}:copy:{nonce}"
    )
    dest = tmp_path / "x"
    dest.mkdir()
    with open(copy, "rb") as f:
        extract_archive(f, str(dest))
    (loaded,) = read_archive(str(dest))
    if transport == "docker-archive":
        assert loaded.config == image.config
        assert loaded.repo_tags == [f"docker.io/library/copy:{nonce}"]
    else:
        # skopeo converts the config to OCI's schema on the way: same image, other bytes
        config = json.loads(loaded.config)
        assert config["rootfs"]["diff_ids"] == image.diff_ids
        assert config["config"]["Labels"] == {"dockyard.test": nonce}
        assert loaded.repo_tags == [f"copy:{nonce}"]  # skopeo's ref.name: the reference given
    for got, want in zip(loaded.layers, image.layers, strict=True):
        data = Path(got.path).read_bytes()
        if transport == "oci-archive":
            assert got.media_type is not None and got.media_type.endswith("+gzip")
            assert "sha256:" + hashlib.sha256(data).hexdigest() == got.digest
            data = gzip.decompress(data)
        assert data == want and sha256_digest(data) == got.diff_id


def test_read_docker_save_output(tmp_path, nonce, dockerd):
    """dockerd 20.10 writes the old layout (<v1 id>/layer.tar, <id>.json); newer ones add the
    OCI layout. Either way read_archive finds the image dockerd made."""
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(layer({"hello": b"imported\n", "etc/motd": nonce.encode()}))
    image_id = dockerd.docker("import", str(rootfs), f"imported:{nonce}").decode().strip()
    path = tmp_path / "saved.tar"
    dockerd.docker("save", "-o", str(path), f"imported:{nonce}")
    dest = tmp_path / "x"
    dest.mkdir()
    with open(path, "rb") as f:
        extract_archive(f, str(dest))
    (loaded,) = read_archive(str(dest))
    assert loaded.image_id == image_id
    diff_ids = json.loads(loaded.config)["rootfs"]["diff_ids"]
    assert [x.diff_id for x in loaded.layers] == diff_ids
    top = loaded.layers[-1]
    with open(top.path, "rb") as f:
        assert "sha256:" + hashlib.file_digest(f, "sha256").hexdigest() == top.diff_id
