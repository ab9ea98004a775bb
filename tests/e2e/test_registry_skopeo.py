"""skopeo (containers/image) against our registry server: push, pull, inspect, copy between
repositories (cross-repository mount), delete, and auth with an htpasswd file.

Sources are written offline: an OCI image layout and a docker-archive built here in Python.
Each test starts its own server (tests/registry_server.py) and stops it by its process."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.registry_server import registry_server

SKOPEO = shutil.which("skopeo")
pytestmark = pytest.mark.skipif(
    SKOPEO is None, reason="skopeo not installed (apt-get install skopeo)"
)


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert SKOPEO is not None
    result = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)}: {result.stderr}")
    return result


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_oci_layout(path: Path, tag: str, layers: list[bytes]) -> dict:
    """An OCI image layout with gzip layers; returns the manifest."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    compressed = [gzip.compress(layer, mtime=0) for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": [_sha(layer) for layer in layers]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": put(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": put(c),
                "size": len(c),
            }
            for c in compressed
        ],
    }
    data = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(data),
                "size": len(data),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return manifest


def write_docker_archive(path: Path, ref: str, layers: list[bytes]) -> None:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_sha(layer) for layer in layers]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members = {config_name: config}
    names = []
    for layer in layers:
        name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
        members[name] = layer
        names.append(name)
    members["manifest.json"] = json.dumps(
        [{"Config": config_name, "RepoTags": [ref], "Layers": names}]
    ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_push_pull_round_trip(tmp_path: Path) -> None:
    layers = [_layer({"hello.txt": b"hello\n"}), _layer({"data.bin": os.urandom(200_000)})]
    manifest = write_oci_layout(tmp_path / "src", "v1", layers)
    with registry_server() as srv:
        dest = f"docker://{srv.address}/e2e/app:v1"
        skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest)
        inspected = json.loads(skopeo("inspect", "--tls-verify=false", dest).stdout)
        assert inspected["Layers"] == [layer["digest"] for layer in manifest["layers"]]
        raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", dest).stdout)
        assert raw == manifest
        tags = json.loads(
            skopeo("list-tags", "--tls-verify=false", f"docker://{srv.address}/e2e/app").stdout
        )
        assert tags["Tags"] == ["v1"]
        # Pull it back: the same bytes, blob for blob.
        skopeo("copy", "--src-tls-verify=false", dest, f"oci:{tmp_path / 'back'}:v1")
        for layer in manifest["layers"]:
            hexpart = layer["digest"].split(":")[1]
            got = (tmp_path / "back" / "blobs" / "sha256" / hexpart).read_bytes()
            assert got == (tmp_path / "src" / "blobs" / "sha256" / hexpart).read_bytes()
        # A second push sends no layer: skopeo HEADs each blob and finds it (an upload of a
        # blob already stored would refresh its mtime).
        stored = srv.root / "blobs" / "sha256"
        before = {p.name: p.stat().st_mtime_ns for p in stored.iterdir()}
        skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest)
        for layer in manifest["layers"]:
            hexpart = layer["digest"].split(":")[1]
            assert (stored / hexpart).stat().st_mtime_ns == before[hexpart]
        assert list((srv.root / "uploads").iterdir()) == []


def test_docker_archive_copy_between_repositories_and_delete(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    write_docker_archive(archive, "example/archive:latest", [_layer({"a": b"a" * 5000})])
    with registry_server() as srv:
        first = f"docker://{srv.address}/one/image:latest"
        second = f"docker://{srv.address}/two/image:copied"
        skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", first)
        skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", first, second)
        a = json.loads(skopeo("inspect", "--tls-verify=false", first).stdout)
        b = json.loads(skopeo("inspect", "--tls-verify=false", second).stdout)
        assert a["Layers"] == b["Layers"] and a["Digest"] == b["Digest"]
        # The blobs are stored once, shared by both repositories.
        stored = list((srv.root / "blobs" / "sha256").iterdir())
        assert len(stored) == 3  # layer, config, manifest
        skopeo("delete", "--tls-verify=false", second)
        gone = skopeo("inspect", "--tls-verify=false", second, check=False)
        assert gone.returncode != 0
        assert json.loads(skopeo("inspect", "--tls-verify=false", first).stdout)["Digest"]


def test_htpasswd_auth(tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "htpasswd").write_text(f"carol:{hashed}\n")
    write_oci_layout(tmp_path / "src", "v1", [_layer({"f": b"secret"})])
    with registry_server("--htpasswd", str(tmp_path / "htpasswd")) as srv:
        dest = f"docker://{srv.address}/private/app:v1"
        denied = skopeo(
            "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest, check=False
        )
        assert denied.returncode != 0
        assert "unauthorized" in denied.stderr.lower() or "401" in denied.stderr
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "carol:pw",
            f"oci:{tmp_path / 'src'}:v1",
            dest,
        )
        out = skopeo("inspect", "--tls-verify=false", "--creds", "carol:pw", dest)
        assert json.loads(out.stdout)["Digest"].startswith("sha256:")
