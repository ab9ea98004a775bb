"""skopeo against what our daemon saves, and our daemon's load against what skopeo writes.

The sources are made offline: an archive saved through our daemon is the input of every skopeo
copy, so the round trip is ours → skopeo → ours.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Daemon

from .conftest import inspect, layer_tar

SKOPEO = shutil.which("skopeo")
pytestmark = pytest.mark.skipif(
    SKOPEO is None, reason="skopeo not installed (apt-get install skopeo)"
)


def skopeo(*args: str) -> bytes:
    result = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)}: {result.stderr.decode()}")
    return result.stdout


@pytest.fixture
def saved(cleanup: Daemon, uid: str, tmp_path: Path) -> tuple[Daemon, Path, str, dict]:
    """An image of our own (one layer, a label, a command) saved through our daemon:
    (daemon, archive, tag, docker inspect of the image)."""
    d = cleanup
    tag = f"e2e-{uid}/skopeo:v1"
    layer = tmp_path / "layer.tar"
    layer.write_bytes(layer_tar({"etc/motd": uid.encode()}))
    d.docker("import", "-c", "LABEL e2e=skopeo", "-c", 'CMD ["sh"]', str(layer), tag)
    archive = tmp_path / "saved.tar"
    d.docker("save", "-o", str(archive), tag)
    return d, archive, tag, inspect(d, tag)


def test_skopeo_inspects_our_save(saved):
    _, archive, _, image = saved
    info = json.loads(skopeo("inspect", f"docker-archive:{archive}"))
    assert info["Layers"] == image["RootFS"]["Layers"]
    assert info["Labels"] == {"e2e": "skopeo"}
    assert info["Os"] == "linux"
    assert info["Architecture"] == image["Architecture"]
    raw_config = skopeo("inspect", "--config", "--raw", f"docker-archive:{archive}")
    assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == image["Id"]
    config = json.loads(raw_config)
    assert config["rootfs"]["diff_ids"] == image["RootFS"]["Layers"]
    assert config["config"]["Cmd"] == ["sh"]
    # The OCI layout view of the same archive, as `oci-archive:`.
    raw_manifest = json.loads(skopeo("inspect", "--raw", f"oci-archive:{archive}"))
    assert raw_manifest["config"]["digest"] == image["Id"]
    assert [layer["size"] > 0 for layer in raw_manifest["layers"]] == [True]


@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_load_what_skopeo_writes(saved, uid, tmp_path, transport):
    d, archive, _, image = saved
    target = f"e2e-{uid}/copied:{transport}"
    copy = tmp_path / f"copy-{transport}.tar"
    skopeo("copy", "-q", f"docker-archive:{archive}", f"{transport}:{copy}:{target}")
    out = d.docker("load", "-i", str(copy)).stdout.decode()
    assert out == f"Loaded image: {target}\n"
    loaded = inspect(d, target)
    assert loaded["RootFS"] == image["RootFS"]
    assert loaded["Config"]["Labels"] == {"e2e": "skopeo"}
    assert loaded["Config"]["Cmd"] == ["sh"]
    if transport == "docker-archive":
        # The config is copied byte for byte: the same image.
        assert loaded["Id"] == image["Id"]
    # The loaded image saves again and skopeo reads that too.
    again = tmp_path / "again.tar"
    d.docker("save", "-o", str(again), target)
    info = json.loads(skopeo("inspect", f"docker-archive:{again}"))
    assert info["Layers"] == image["RootFS"]["Layers"]


def test_load_gzip_oci_archive_without_a_name(saved, tmp_path):
    """skopeo compresses layers for OCI (gzip); an index entry with no name loads by ID."""
    d, archive, _, image = saved
    copy = tmp_path / "noname.tar"
    skopeo("copy", "-q", f"docker-archive:{archive}", f"oci-archive:{copy}")
    out = d.docker("load", "-i", str(copy)).stdout.decode()
    assert out.startswith("Loaded image ID: sha256:")
    loaded_id = out.strip().removeprefix("Loaded image ID: ")
    loaded = inspect(d, loaded_id)
    assert loaded["RepoTags"] == []
    assert loaded["RootFS"] == image["RootFS"]
