"""docker save archives: the exact layout we write, and round trips through our reader."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errors import DigestMismatch, DockyardError
from dockyard.image import archive_save
from dockyard.image.archive import SaveImage, plan_save_archive, read_archive, write_save_archive
from dockyard.image.archive_save import full_name, split_tag
from dockyard.image.model import OCI_INDEX, OCI_MANIFEST, sha256_digest
from tests.unit.archive_fixtures import (
    BASE,
    CREATED_TS,
    TOP,
    Img,
    extract,
    hexof,
    make_layer,
    member_data,
    members,
    save_bytes,
)

# --- writing -------------------------------------------------------------------------------


def test_layout_entries_modes_and_mtimes():
    base, app = Img([BASE], created="2020-01-01T00:00:00Z"), Img([BASE, TOP])
    data = save_bytes([base.save("base:1"), app.save("app:latest")], [BASE, TOP])
    entries = members(data)
    names = [m.name for m in entries]
    blobs = [n for n in names if n.startswith("blobs/sha256/") and n != "blobs/sha256"]
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert blobs == sorted(blobs)
    assert names[2 + len(blobs) :] == ["index.json", "manifest.json", "oci-layout", "repositories"]
    # shared base layer once; per image: config + manifest + one legacy v1 JSON per layer
    assert len(blobs) == 2 + 2 * 2 + 1 + 2
    assert names.count("blobs/sha256/" + hexof(base.diff_ids[0])) == 1
    by_name = {m.name: m for m in entries}
    for m in entries:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() else 0o644)
    assert by_name["blobs"].mtime == CREATED_TS  # the last image's created time
    assert by_name["blobs/sha256"].mtime == 0
    assert by_name["blobs/sha256/" + hexof(base.diff_ids[0])].mtime == 1577836800  # first saver
    assert by_name["blobs/sha256/" + hexof(app.diff_ids[1])].mtime == CREATED_TS
    assert by_name["blobs/sha256/" + hexof(app.id)].mtime == CREATED_TS
    for name in ("index.json", "manifest.json", "oci-layout", "repositories"):
        assert by_name[name].mtime == 0
    # Go's tar.Writer: ustar headers, two zero blocks at the end, no record padding
    # header fields exactly as Go writes them (no type bits in the mode, empty user names,
    # device numbers as octal zeros, checksum "%06o\0 ")
    assert data[:512] == (
        b"blobs/".ljust(100, b"\0")
        + b"0000755\x000000000\x000000000\x0000000000000\x00%011o\x00" % CREATED_TS
        + b"%06o\x00 " % sum(data[:148] + b" " * 8 + data[156:512])
        + b"5".ljust(101, b"\0")
        + b"ustar\x0000"
        + bytes(64)
        + b"0000000\x00" * 2
        + bytes(167)
    )
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0
    assert data[-1536:-1024] != bytes(512)


def test_json_documents_exact():
    img = Img([BASE, TOP])
    data = save_bytes([img.save("busybox:latest", "localhost:5000/x/y:v1")], [BASE, TOP])
    layers = [(d, len(x)) for d, x in zip(img.diff_ids, img.layers, strict=True)]
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{img.id}",'
        f'"size":{len(img.config)}}},"layers":['
        + ",".join(
            f'{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{s}}}'
            for d, s in layers
        )
        + "]}"
    ).encode()
    mdigest = sha256_digest(manifest)
    assert member_data(data, "blobs/sha256/" + hexof(mdigest)) == manifest
    assert member_data(data, "blobs/sha256/" + hexof(img.id)) == img.config
    desc = f'{{"mediaType":"{OCI_MANIFEST}","digest":"{mdigest}","size":{len(manifest)}'
    assert member_data(data, "index.json").decode() == (
        f'{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":['
        f'{desc},"annotations":{{"io.containerd.image.name":"docker.io/library/busybox:latest",'
        '"org.opencontainers.image.ref.name":"latest"}},'
        f'{desc},"annotations":{{"io.containerd.image.name":"localhost:5000/x/y:v1",'
        '"org.opencontainers.image.ref.name":"v1"}}]}'
    )
    sources = ",".join(
        f'"{d}":{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":{s},"digest":"{d}"}}'
        for d, s in sorted(layers)
    )
    assert member_data(data, "manifest.json").decode() == (
        f'[{{"Config":"blobs/sha256/{hexof(img.id)}",'
        '"RepoTags":["busybox:latest","localhost:5000/x/y:v1"],'
        f'"Layers":["blobs/sha256/{hexof(layers[0][0])}","blobs/sha256/{hexof(layers[1][0])}"],'
        f'"LayerSources":{{{sources}}}}}]\n'
    )
    top = hexof(img.diff_ids[-1])
    assert member_data(data, "repositories").decode() == (
        f'{{"busybox":{{"latest":"{top}"}},"localhost:5000/x/y":{{"v1":"{top}"}}}}\n'
    )
    assert member_data(data, "oci-layout") == b'{"imageLayoutVersion": "1.0.0"}'


def test_untagged_image_and_parent():
    base, app = Img([BASE]), Img([BASE, TOP])
    data = save_bytes([base.save(), app.save("app:1", parent=base.id)], [BASE, TOP])
    items = json.loads(member_data(data, "manifest.json"))
    assert items[0]["RepoTags"] is None and "Parent" not in items[0]
    assert items[1]["Parent"] == base.id
    index = json.loads(member_data(data, "index.json"))
    assert [m.get("annotations") for m in index["manifests"]] == [
        None,
        {
            "io.containerd.image.name": "docker.io/library/app:1",
            "org.opencontainers.image.ref.name": "1",
        },
    ]
    # a parent that is not saved is not written
    alone = save_bytes([app.save(parent=base.id)], [BASE, TOP])
    assert "Parent" not in json.loads(member_data(alone, "manifest.json"))[0]
    assert "repositories" not in [m.name for m in members(alone)]


def test_duplicate_images_merge_tags():
    img = Img([BASE])
    plan = plan_save_archive([img.save("a:1"), img.save("a:1", "b:2")])
    manifest = next(e for e in plan if e.name == "manifest.json")
    assert json.loads(manifest.data or b"")[0]["RepoTags"] == ["a:1", "b:2"]


@pytest.mark.parametrize(
    ("ref", "name", "tag", "full"),
    [
        ("busybox:latest", "busybox", "latest", "docker.io/library/busybox"),
        ("busybox", "busybox", "latest", "docker.io/library/busybox"),
        ("docker.io/library/busybox:1", "busybox", "1", "docker.io/library/busybox"),
        ("user/app:v2", "user/app", "v2", "docker.io/user/app"),
        ("docker.io/user/app:v2", "user/app", "v2", "docker.io/user/app"),
        ("localhost:5000/app:v2", "localhost:5000/app", "v2", "localhost:5000/app"),
        ("localhost/app", "localhost/app", "latest", "localhost/app"),
        ("quay.io/a/b:c", "quay.io/a/b", "c", "quay.io/a/b"),
    ],
)
def test_reference_names(ref, name, tag, full):
    assert split_tag(ref) == (name, tag)
    assert full_name(name) == full


def test_layer_stream_is_checked():
    img = Img([BASE])
    for bad in (BASE[:-1], BASE + b"x", BASE[:-1] + b"!"):

        @contextlib.contextmanager
        def open_layer(_: str, bad: bytes = bad) -> Iterator[io.BytesIO]:
            yield io.BytesIO(bad)

        with pytest.raises(DigestMismatch):
            write_save_archive(io.BytesIO(), [img.save("x:1")], open_layer)


def test_refuses_empty_or_inconsistent_images():
    with pytest.raises(DockyardError, match="empty export"):
        plan_save_archive([Img([]).save("x:1")])
    img = Img([BASE])
    with pytest.raises(DockyardError, match="diff_ids"):
        plan_save_archive([SaveImage(img.config, [], [])])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-06T07:08:09Z", (1714979289, "2024-05-06T07:08:09Z")),
        ("2024-05-06T07:08:09.500Z", (1714979289, "2024-05-06T07:08:09.5Z")),
        ("2024-05-06T07:08:09.000000000Z", (1714979289, "2024-05-06T07:08:09Z")),
        ("2024-05-06T09:08:09+02:00", (1714979289, "2024-05-06T09:08:09+02:00")),
        ("2024-05-06T07:08:09+00:00", (1714979289, "2024-05-06T07:08:09Z")),
        ("0001-01-01T00:00:00Z", (0, "0001-01-01T00:00:00Z")),  # clamped like moby's Chtimes
        ("yesterday", None),
        (None, None),
    ],
)
def test_go_time(value, expected):
    assert archive_save._parse_go_time(value) == expected


# Captured from dockerd 20.10's `docker save` of an image imported from a tarball: the legacy v1
# JSON and its ID (the layer directory name) must come out byte for byte. 20.10's
# container.Config had OnBuild without omitempty; today's moby (what we emulate) has it.
_EMPTY_CC = (
    '{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,'
    '"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,'
    '"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,%s"Labels":null}'
)
_BUSYBOX_CONFIG = (
    '{"architecture":"amd64","comment":"Imported from -","config":CC,"container_config":CC,'
    '"created":"2026-11-22T09:50:22.850442094Z","docker_version":"20.10.24+dfsg1","history":'
    '[{"created":"2026-11-22T09:50:22.850442094Z","comment":"Imported from -"}],"os":"linux",'
    '"rootfs":{"type":"layers","diff_ids":'
    '["sha256:b345188aac2034ad18993fb60f6f7e635ab9f64fd6725c356f025e0602afd7a8"]}}'
)
_BUSYBOX_V1 = (
    '{"id":"a8f022d946161d4176192519b82bf28ebee8bc1fe97103db9a20b24a0b53e88e",'
    '"comment":"Imported from -","created":"2026-11-22T09:50:22.850442094Z",'
    '"container_config":CC,"docker_version":"20.10.24+dfsg1","config":CC,'
    '"architecture":"amd64","os":"linux"}'
)


@pytest.mark.parametrize("old", [True, False])
def test_legacy_v1_json_matches_docker(monkeypatch, old):
    cc = _EMPTY_CC % ('"OnBuild":null,' if old else "")
    if old:
        fields = tuple(
            (n, k, False if n == "OnBuild" else o) for n, k, o in archive_save._CONTAINER_CONFIG
        )
        monkeypatch.setattr(archive_save, "_CONTAINER_CONFIG", fields)
    config = json.loads(_BUSYBOX_CONFIG.replace("CC", _EMPTY_CC % '"OnBuild":null,'))
    (top,) = archive_save._legacy_v1_blobs(config, config["rootfs"]["diff_ids"])
    if old:
        assert top == _BUSYBOX_V1.replace("CC", cc).encode()
    else:
        assert json.loads(top)["config"] == json.loads(cc)
        assert b"OnBuild" not in top
    # a base layer's v1 JSON: epoch created, empty container_config, its ID chains on
    base, _ = archive_save._legacy_v1_blobs(
        config, [*config["rootfs"]["diff_ids"], "sha256:" + "0" * 64]
    )
    doc = json.loads(base)
    assert doc["created"] == "1970-01-01T00:00:00Z" and doc["os"] == "linux"
    assert list(doc) == ["id", "created", "container_config", "os"]
    if old:
        assert doc["id"] == "3af3e211c82d05f0a72188e8e2f352d1c199173c92b3bc8d1307c306b468dcc8"


def test_legacy_v1_reencodes_like_go():
    cfg = {
        "created": "2024-01-01T00:00:00+00:00",
        "Author": "<me> & co",
        "config": {
            "ExposedPorts": {"80": {}, "53/UDP": {}},
            "Env": [],
            "Labels": {"b": "1", "a": "2"},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 0, "Retries": 3},
            "StopTimeout": 0,
            "Unknown": True,
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    }
    (blob,) = archive_save._legacy_v1_blobs(cfg, cfg["rootfs"]["diff_ids"])
    text = blob.decode()
    assert '"author":"\\u003cme\\u003e \\u0026 co"' in text
    assert '"created":"2024-01-01T00:00:00Z"' in text
    config = json.loads(blob)["config"]
    assert list(config["ExposedPorts"]) == ["53/udp", "80/tcp"]
    assert config["Env"] == [] and list(config["Labels"]) == ["a", "b"]
    assert config["Healthcheck"] == {"Test": ["CMD", "true"], "Retries": 3}
    assert config["StopTimeout"] == 0 and "Unknown" not in config


# --- round trips ---------------------------------------------------------------------------


def test_round_trip(tmp_path):
    base, app = Img([BASE]), Img([BASE, TOP], config={"Cmd": ["sh"]})
    data = save_bytes([base.save("base:1"), app.save("app:latest", "app:v1")], [BASE, TOP])
    dest = extract(data, str(tmp_path / "d"))
    loaded = read_archive(dest)
    assert [(i.config, i.repo_tags) for i in loaded] == [
        (base.config, ["base:1"]),
        (app.config, ["app:latest", "app:v1"]),
    ]
    assert [i.image_id for i in loaded] == [base.id, app.id]
    for image, want in zip(loaded, (base, app), strict=True):
        assert [layer.diff_id for layer in image.layers] == want.diff_ids
        for layer, content in zip(image.layers, want.layers, strict=True):
            assert Path(layer.path).read_bytes() == content
            assert layer.digest is None and layer.media_type is None
    # the same directory read as an OCI layout (as containerd would): full names
    os.unlink(os.path.join(dest, "manifest.json"))
    oci = read_archive(dest)
    assert [(i.config, i.repo_tags) for i in oci] == [
        (base.config, ["docker.io/library/base:1"]),
        (app.config, ["docker.io/library/app:latest", "docker.io/library/app:v1"]),
    ]
    assert {layer.media_type for i in oci for layer in i.layers} == {
        "application/vnd.oci.image.layer.v1.tar"
    }


_TAG_NAME = st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8})?", fullmatch=True)
_TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.tuples(_TAG_NAME, _TAG), max_size=4), min_size=1, max_size=3))
def test_tag_sets_round_trip(tag_sets):
    images = [Img([make_layer({f"f{i}": b"%d" % i})]) for i in range(len(tag_sets))]
    saves, seen = [], set()
    for img, tags in zip(images, tag_sets, strict=True):
        # a tag names one image only
        refs = [f"{n}:{t}" for n, t in tags if (n, t) not in seen and not seen.add((n, t))]
        saves.append(img.save(*refs))
    data = save_bytes(saves, [layer for img in images for layer in img.layers])
    with tempfile.TemporaryDirectory() as tmp:
        loaded = read_archive(extract(data, tmp + "/d"))
        assert [i.repo_tags for i in loaded] == [list(dict.fromkeys(s.repo_tags)) for s in saves]
        os.unlink(tmp + "/d/manifest.json")
        by_config = {i.config: i.repo_tags for i in read_archive(tmp + "/d")}
        for s in saves:
            names = [f"{full_name(split_tag(t)[0])}:{split_tag(t)[1]}" for t in s.repo_tags]
            assert by_config[s.config] == list(dict.fromkeys(names))
