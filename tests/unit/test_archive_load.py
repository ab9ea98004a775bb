"""docker load: reading old docker, skopeo and OCI layouts, and refusing invalid ones."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from dockyard.errors import InvalidArchive
from dockyard.image import archive_load
from dockyard.image.archive import read_archive
from dockyard.image.model import OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, sha256_digest
from tests.unit.archive_fixtures import (
    BASE,
    TOP,
    Img,
    build_tar,
    extract,
    hexof,
    oci_image,
    oci_layout,
    save_bytes,
)

# --- reading other writers' layouts --------------------------------------------------------


def test_reads_old_docker_format(tmp_path):
    base, app = Img([BASE]), Img([BASE, TOP])
    v1 = ["a" * 64, "b" * 64, "c" * 64]
    manifest = [
        {
            "Config": f"{hexof(base.id)}.json",
            "RepoTags": ["base:1"],
            "Layers": [f"{v1[0]}/layer.tar"],
        },
        {
            "Config": f"{hexof(app.id)}.json",
            "RepoTags": None,
            "Layers": [f"{v1[1]}/layer.tar", f"{v1[2]}/layer.tar"],
        },
    ]
    data = build_tar(
        [
            (f"{v1[0]}/", None, None),
            (f"{v1[0]}/VERSION", b"1.0", None),
            (f"{v1[0]}/layer.tar", BASE, None),
            (f"{v1[1]}/", None, None),
            (f"{v1[1]}/layer.tar", None, f"../{v1[0]}/layer.tar"),  # docker links shared layers
            (f"{v1[2]}/layer.tar", TOP, None),
            (f"{hexof(base.id)}.json", base.config, None),
            (f"{hexof(app.id)}.json", app.config, None),
            ("manifest.json", json.dumps(manifest).encode(), None),
            ("repositories", b'{"base":{"1":"' + v1[0].encode() + b'"}}', None),
        ]
    )
    loaded = read_archive(extract(data, str(tmp_path / "d")))
    assert [(i.config, i.repo_tags) for i in loaded] == [
        (base.config, ["base:1"]),
        (app.config, []),
    ]
    assert [Path(layer.path).read_bytes() for layer in loaded[1].layers] == [BASE, TOP]
    assert all(
        layer.path.startswith(str(tmp_path / "d") + "/") for i in loaded for layer in i.layers
    )


def test_reads_skopeo_docker_archive(tmp_path):
    img = Img([BASE])
    layer_name = hexof(img.diff_ids[0]) + ".tar"
    manifest = [
        {
            "Config": hexof(img.id) + ".json",
            "RepoTags": ["docker.io/library/x:1"],
            "Layers": [layer_name],
        }
    ]
    data = build_tar(
        [
            (layer_name, BASE, None),
            (hexof(img.id) + ".json", img.config, None),
            ("d" * 64 + "/layer.tar", None, "../" + layer_name),
            ("manifest.json", json.dumps(manifest).encode(), None),
        ]
    )
    (loaded,) = read_archive(extract(data, str(tmp_path / "d")))
    assert loaded.repo_tags == ["docker.io/library/x:1"] and loaded.config == img.config


def test_reads_oci_layout_with_nested_platform_index(tmp_path):
    amd, arm = Img([BASE, TOP]), Img([TOP], architecture="arm64")
    blobs: dict[str, bytes] = {}
    children = [
        oci_image(arm, blobs)
        | {"platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        oci_image(amd, blobs) | {"platform": {"os": "linux", "architecture": "amd64"}},
        {
            "mediaType": OCI_MANIFEST,
            "digest": "sha256:" + "e" * 64,
            "size": 1,
            "platform": {"os": "unknown", "architecture": "unknown"},
        },
    ]
    nested = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    ).encode()
    blobs[sha256_digest(nested)] = nested
    top = {"mediaType": OCI_INDEX, "digest": sha256_digest(nested), "size": len(nested)}
    data = oci_layout(
        [top | {"annotations": {"org.opencontainers.image.ref.name": "example.com/app:2"}}], blobs
    )
    dest = extract(data, str(tmp_path / "d"))
    (loaded,) = read_archive(dest, "linux/amd64")
    assert loaded.config == amd.config and loaded.repo_tags == ["example.com/app:2"]
    for layer, content in zip(loaded.layers, amd.layers, strict=True):
        assert layer.media_type == OCI_LAYER_GZIP
        assert gzip.decompress(Path(layer.path).read_bytes()) == content
        assert hashlib.sha256(Path(layer.path).read_bytes()).hexdigest() == hexof(
            layer.digest or ""
        )
    (on_arm,) = read_archive(dest, "linux/arm64")
    assert on_arm.config == arm.config
    with pytest.raises(InvalidArchive, match="no matching manifest for linux/s390x"):
        read_archive(dest, "linux/s390x")


def test_oci_names_prefer_containerd_annotation(tmp_path):
    img = Img([BASE])
    blobs: dict[str, bytes] = {}
    desc = oci_image(img, blobs)
    names = {
        "io.containerd.image.name": "docker.io/library/x:1",
        "org.opencontainers.image.ref.name": "1",
    }
    data = oci_layout([desc | {"annotations": names}, desc], blobs)
    (loaded,) = read_archive(extract(data, str(tmp_path / "d")))
    assert loaded.repo_tags == ["docker.io/library/x:1"]


# --- invalid archives: read_archive --------------------------------------------------------


def _docker_archive(tmp_path, manifest, files=None) -> str:
    dest = str(tmp_path / "bad")
    os.makedirs(dest, exist_ok=True)
    for name, data in {"manifest.json": json.dumps(manifest).encode(), **(files or {})}.items():
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        with open(os.path.join(dest, name), "wb") as f:
            f.write(data)
    return dest


_IMG = Img([BASE])
_CFG = hexof(_IMG.id) + ".json"


@pytest.mark.parametrize(
    ("manifest", "files", "message"),
    [
        (None, {}, "manifest cannot be null"),
        ({"a": 1}, {}, "failed to decode manifest.json"),
        ([{"Layers": []}], {}, "has no Config"),
        ([{"Config": _CFG, "Layers": ["l.tar"]}], {}, f"open {_CFG}: no such file or directory"),
        (
            [{"Config": _CFG, "Layers": []}],
            {_CFG: _IMG.config},
            "layers length mismatch: expected 0, got 1",
        ),
        ([{"Config": _CFG, "Layers": ["l.tar"]}], {_CFG: _IMG.config}, "open l.tar: no such file"),
        ([{"Config": "c.json", "Layers": []}], {"c.json": b"{}"}, "no RootFS key"),
        ([{"Config": "c.json", "Layers": []}], {"c.json": b"[1]"}, "not a JSON dict"),
        (
            [{"Config": _CFG, "Layers": ["l.tar"]}],
            {_CFG: _IMG.config + b" ", "l.tar": b""},
            "content has digest",
        ),
        ([{"Config": "../../etc/passwd", "Layers": []}], {}, "leads outside the archive"),
        (
            [{"Config": "w.json", "Layers": []}],
            {"w.json": b'{"os":"windows","rootfs":{"type":"layers","diff_ids":[]}}'},
            "cannot load windows image on linux",
        ),
    ],
)
def test_invalid_docker_archives(tmp_path, manifest, files, message):
    with pytest.raises(InvalidArchive, match=message):
        read_archive(_docker_archive(tmp_path, manifest, files))


def test_symlinked_config_outside_is_refused(tmp_path):
    (tmp_path / "secret.json").write_bytes(_IMG.config)
    dest = _docker_archive(tmp_path, [{"Config": "c.json", "Layers": []}])
    os.symlink(str(tmp_path / "secret.json"), os.path.join(dest, "c.json"))
    with pytest.raises(InvalidArchive, match="outside"):
        read_archive(dest)


def test_no_manifest(tmp_path):
    with pytest.raises(InvalidArchive, match=r"does not contain a manifest\.json"):
        read_archive(str(tmp_path))


def append(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


@pytest.mark.parametrize(
    "case", ["digest", "size", "media", "layout", "index", "layer-size", "schema"]
)
def test_invalid_oci_layouts(tmp_path, case):
    blobs: dict[str, bytes] = {}
    desc = oci_image(_IMG, blobs)
    dest = extract(oci_layout([desc], blobs), str(tmp_path / "d"))
    manifest_path = os.path.join(dest, "blobs/sha256", hexof(desc["digest"]))
    manifest = json.loads(Path(manifest_path).read_bytes())
    layer = manifest["layers"][0]
    layer_path = os.path.join(dest, "blobs/sha256", hexof(layer["digest"]))

    def rewrite_index(**changes: object) -> None:
        with open(os.path.join(dest, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [desc | changes]}, f)

    if case == "digest":
        append(manifest_path, b" ")
        rewrite_index(size=desc["size"] + 1)
        message = "content has digest"
    elif case == "size":
        rewrite_index(size=desc["size"] + 1)
        message = "expected .* and size"
    elif case == "media":
        manifest["layers"][0]["mediaType"] = "application/x-weird"
        data = json.dumps(manifest).encode()
        Path(dest, "blobs/sha256", hexof(sha256_digest(data))).write_bytes(data)
        rewrite_index(digest=sha256_digest(data), size=len(data))
        message = "unsupported media type"
    elif case == "layout":
        Path(dest, "oci-layout").write_text('{"imageLayoutVersion":"2.0.0"}')
        message = "unsupported OCI version 2.0.0"
    elif case == "index":
        os.unlink(os.path.join(dest, "index.json"))
        message = "missing index.json"
    elif case == "layer-size":
        append(layer_path, b"x")
        message = "size"
    else:
        Path(dest, "index.json").write_text('{"schemaVersion":1,"manifests":[]}')
        message = "schemaVersion must be 2"
    with pytest.raises(InvalidArchive, match=message):
        read_archive(dest)


def test_archive_with_both_formats_uses_manifest_json(tmp_path):
    img = Img([BASE])
    data = save_bytes([img.save("a:1")], [BASE])
    dest = extract(data, str(tmp_path / "d"))
    shutil.rmtree(os.path.join(dest, "blobs", "sha256"), ignore_errors=False)
    with pytest.raises(InvalidArchive, match="no such file or directory"):
        read_archive(dest)


def test_each_file_read_once_within_a_budget(tmp_path, monkeypatch):
    img = Img([BASE])
    item = {"Config": "c.json", "RepoTags": ["a:1"], "Layers": ["l.tar"]}
    dest = _docker_archive(tmp_path, [item] * 500, {"c.json": img.config, "l.tar": BASE})
    manifest_size = Path(dest, "manifest.json").stat().st_size
    monkeypatch.setattr(archive_load, "MAX_METADATA", manifest_size + len(img.config))
    loaded = read_archive(dest)  # the config is listed 500 times, counted once
    assert len(loaded) == 500 and loaded[0].config is loaded[-1].config
    monkeypatch.setattr(archive_load, "MAX_METADATA", manifest_size + len(img.config) - 1)
    with pytest.raises(InvalidArchive, match="MiB of manifests and configs"):
        read_archive(dest)


def test_parent_is_read(tmp_path):
    base, app = Img([BASE]), Img([BASE, TOP])
    data = save_bytes([base.save("b:1"), app.save("a:1", parent=base.id)], [BASE, TOP])
    loaded = read_archive(extract(data, str(tmp_path / "d")))
    assert [i.parent for i in loaded] == [None, base.id]
