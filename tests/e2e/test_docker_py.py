"""docker-py (the `docker` SDK) against our daemon: the high-level client and its APIClient."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator

import docker
import pytest
from docker.errors import APIError, ImageLoadError, ImageNotFound, NotFound

from tests.conftest import Daemon

from .conftest import layer_tar


@pytest.fixture
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=daemon.host)
    try:
        yield c
    finally:
        c.close()


def diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def import_id(output: str) -> str:
    """The image ID from import_image's answer (JSON lines, the last one {"status": ID})."""
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines and "error" not in lines[-1], output
    image_id = lines[-1]["status"]
    assert image_id.startswith("sha256:") and len(image_id) == 71
    return image_id


def test_ping_version_info(client):
    assert client.ping() is True
    version = client.version()
    assert version["ApiVersion"] == "1.47"
    assert version["MinAPIVersion"] == "1.24"
    assert version["Os"] == "linux"
    assert {c["Name"] for c in version["Components"]} == {"Engine"}
    assert client.api.api_version == "1.47"  # negotiated ("auto")
    info = client.info()
    assert info["Images"] == len(client.images.list(all=True)) >= 1
    assert info["OSType"] == "linux"
    assert info["Swarm"]["LocalNodeState"] == "inactive"


def test_get_list_tag_remove(cleanup, client, uid):
    busybox = client.images.get("busybox")
    assert busybox.tags == ["busybox:latest"]
    assert busybox.id.startswith("sha256:")
    assert busybox.short_id == busybox.id[:19]
    assert busybox.labels == {}
    assert busybox.attrs["Config"]["Cmd"] == ["sh"]
    assert client.images.get(busybox.id[7:19]).id == busybox.id
    assert busybox.id in {image.id for image in client.images.list()}

    repo = f"e2e-{uid}/py"
    assert busybox.tag(repo, "v1") is True
    assert busybox.tag(repo) is True  # latest
    busybox.reload()
    assert set(busybox.tags) == {"busybox:latest", f"{repo}:v1", f"{repo}:latest"}
    assert [i.id for i in client.images.list(name=repo)] == [busybox.id]
    assert [i.id for i in client.images.list(filters={"reference": f"{repo}:v1"})] == [busybox.id]
    assert client.images.list(name=f"e2e-{uid}/nothing") == []

    client.images.remove(f"{repo}:v1")
    with pytest.raises(ImageNotFound):
        client.images.get(f"{repo}:v1")
    assert set(client.images.get(busybox.id).tags) == {"busybox:latest", f"{repo}:latest"}
    # By ID with two repositories' tags: docker's conflict (409) unless forced.
    with pytest.raises(APIError) as info:
        client.images.remove(busybox.id)
    assert info.value.status_code == 409
    assert "(must be forced) - image is referenced in multiple repositories" in str(info.value)
    client.images.remove(f"{repo}:latest")
    assert client.images.get("busybox").tags == ["busybox:latest"]


def test_list_filters(cleanup, client, uid):
    api = client.api
    ids = {}
    for name, tier in [("a", "web"), ("b", "db")]:
        out = api.import_image_from_data(
            layer_tar({"f": f"{uid}{name}".encode()}),
            repository=f"e2e-{uid}/{name}",
            tag="v1",
            changes=[f"LABEL tier={tier}", f"LABEL run={uid}"],
        )
        ids[name] = import_id(out)
    # Tagging b's tag onto a new image leaves the old b dangling.
    new_b = import_id(
        api.import_image_from_data(
            layer_tar({"f": b"new"}), repository=f"e2e-{uid}/b", tag="v1", changes=["LABEL x=y"]
        )
    )

    def listed(**kwargs: object) -> set[str]:
        return {image.id for image in client.images.list(**kwargs)}

    assert listed(filters={"label": f"run={uid}"}) == {ids["a"], ids["b"]}
    assert listed(filters={"label": [f"run={uid}", "tier=web"]}) == {ids["a"]}
    assert listed(filters={"dangling": True}) >= {ids["b"]}
    assert ids["b"] not in listed(filters={"dangling": False})
    assert listed(name=f"e2e-{uid}/*") == {ids["a"], new_b}
    assert listed(filters={"reference": f"e2e-{uid}/*", "since": f"e2e-{uid}/a:v1"}) == {new_b}
    assert listed(filters={"reference": f"e2e-{uid}/*", "before": f"e2e-{uid}/b:v1"}) == {ids["a"]}
    summary = api.images(name=f"e2e-{uid}/a")
    assert [s["RepoTags"] for s in summary] == [[f"e2e-{uid}/a:v1"]]
    assert summary[0]["Labels"] == {"tier": "web", "run": uid}
    assert api.images(name=f"e2e-{uid}/a", quiet=True) == [ids["a"]]
    with pytest.raises(APIError) as info:
        client.images.list(filters={"bogus": "1"})
    assert info.value.status_code == 400
    assert info.value.explanation == "invalid filter 'bogus'"


def test_errors(daemon, client):
    for call in (
        lambda: client.images.get("nosuch"),
        lambda: client.images.remove("nosuch"),
        lambda: client.api.history("nosuch"),
        lambda: client.api.tag("nosuch", "e2e-x"),
        lambda: client.api.inspect_image("busybox:nosuchtag"),
    ):
        with pytest.raises(ImageNotFound) as info:
            call()
        assert info.value.status_code == 404
        assert info.value.explanation.startswith("No such image: ")
    with pytest.raises(NotFound) as info:
        client.images.get("nosuch")
    assert info.value.explanation == "No such image: nosuch:latest"

    upper = "invalid reference format: repository name (library/Nosuch) must be lowercase"
    for call in (
        lambda: client.images.get("Nosuch"),
        lambda: client.images.remove("Nosuch"),
        lambda: client.api.tag("busybox", "Nosuch"),
    ):
        with pytest.raises(APIError) as info:
            call()
        assert not isinstance(info.value, NotFound)
        assert info.value.status_code == 400
        assert info.value.explanation == upper
    with pytest.raises(APIError) as info:
        client.api.tag("busybox", "e2e-x", tag="bad!tag")
    assert info.value.status_code == 400
    assert client.images.get("busybox").tags == ["busybox:latest"]


def test_import_image(cleanup, client, uid, tmp_path):
    api = client.api
    data = layer_tar({"etc/app.conf": b"x=1\n"})
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    # From a path.
    image_id = import_id(
        api.import_image(
            src=str(path),
            repository=f"e2e-{uid}/imp",
            tag="path",
            changes=["ENV A=1", 'CMD ["/bin/app"]', "LABEL k=v"],
        )
    )
    image = client.images.get(f"e2e-{uid}/imp:path")
    assert image.id == image_id
    assert image.attrs["Config"]["Env"] == ["A=1"]
    assert image.attrs["Config"]["Cmd"] == ["/bin/app"]
    assert image.labels == {"k": "v"}
    assert image.attrs["RootFS"]["Layers"] == [diff_id(data)]
    assert image.attrs["Comment"] == "Imported from -"
    # From bytes, and from the data helper.
    from_bytes = import_id(api.import_image(src=data, repository=f"e2e-{uid}/imp", tag="bytes"))
    assert client.images.get(f"e2e-{uid}/imp:bytes").id == from_bytes
    from_data = import_id(api.import_image_from_data(data, repository=f"e2e-{uid}/imp", tag="d"))
    assert client.images.get(f"e2e-{uid}/imp:d").attrs["RootFS"]["Layers"] == [diff_id(data)]
    assert len({image_id, from_bytes, from_data}) == 3  # each import is a new config
    # Garbage: an APIError, and nothing is tagged.
    with pytest.raises(APIError) as info:
        api.import_image(src=b"\x01" * 5000, repository=f"e2e-{uid}/imp", tag="garbage")
    assert info.value.status_code in (400, 500)
    with pytest.raises(ImageNotFound):
        client.images.get(f"e2e-{uid}/imp:garbage")
    # Invalid changes.
    with pytest.raises(APIError) as info:
        api.import_image(src=data, repository=f"e2e-{uid}/imp", tag="bad", changes=["RUN x"])
    assert info.value.status_code == 400
    assert info.value.explanation == "RUN is not a valid change command"


def test_history(cleanup, client, uid):
    busybox = client.images.get("busybox")
    history = client.api.history("busybox")
    assert history == busybox.history()
    assert len(history) == 1
    entry = history[0]
    assert entry["Id"] == busybox.id
    assert entry["Tags"] == ["busybox:latest"]
    assert entry["Size"] == busybox.attrs["Size"]
    assert entry["Comment"] == "Imported from -"
    assert entry["CreatedBy"] == ""
    assert isinstance(entry["Created"], int) and entry["Created"] > 1_500_000_000

    out = client.api.import_image_from_data(layer_tar({"a": b"1"}), repository=f"e2e-{uid}")
    image_id = import_id(out)
    [entry] = client.api.history(image_id)
    assert entry["Tags"] == [f"e2e-{uid}:latest"]
    assert entry["Comment"] == "Imported from -"


def _archive_tags(archive: bytes) -> list:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return [item["RepoTags"] for item in json.load(tar.extractfile("manifest.json"))]


def test_save_and_load_into_a_fresh_daemon(cleanup, client, fresh_daemon, uid):
    busybox = client.images.get("busybox")
    busybox.tag(f"e2e-{uid}", "saved")
    named = b"".join(busybox.save(named=True))  # by its first tag
    by_id = b"".join(busybox.save())
    both = b"".join(client.images.get(f"e2e-{uid}:saved").save(named=f"e2e-{uid}:saved"))
    assert _archive_tags(named) == [["busybox:latest"]]
    assert _archive_tags(by_id) == [None]
    assert _archive_tags(both) == [[f"e2e-{uid}:saved"]]
    whole_repo = b"".join(client.api.get_image("busybox"))
    assert _archive_tags(whole_repo) == [["busybox:latest"]]

    other = docker.DockerClient(base_url=fresh_daemon.host)
    try:
        assert other.images.list(all=True) == []
        [loaded] = other.images.load(by_id)
        assert loaded.id == busybox.id
        assert loaded.tags == []
        [loaded] = other.images.load(named)
        assert loaded.id == busybox.id
        assert loaded.tags == ["busybox:latest"]
        [loaded] = other.images.load(both)
        assert set(loaded.tags) == {"busybox:latest", f"e2e-{uid}:saved"}
        assert loaded.attrs["RootFS"] == busybox.attrs["RootFS"]
        assert loaded.attrs["Config"] == busybox.attrs["Config"]
        assert [i.id for i in other.images.list(all=True)] == [busybox.id]
        with pytest.raises(ImageLoadError) as info:
            other.images.load(b"\x01" * 5000)
        assert str(info.value)
        with pytest.raises(ImageLoadError) as info:
            other.images.load(named[: len(named) // 2])
        assert [i.id for i in other.images.list(all=True)] == [busybox.id]
    finally:
        other.close()


def test_prune_and_df(fresh_daemon):
    client = docker.DockerClient(base_url=fresh_daemon.host)
    try:
        api = client.api
        assert client.images.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
        first = import_id(api.import_image_from_data(layer_tar({"a": b"1" * 50}), "app", "v1"))
        keep = import_id(api.import_image_from_data(layer_tar({"a": b"2" * 70}), "app", "v1"))
        lone = import_id(
            api.import_image_from_data(
                layer_tar({"b": b"3" * 30}), "tool", "v1", changes=["LABEL x=y"]
            )
        )
        df = client.df()
        assert df["LayersSize"] == 150
        assert {i["Id"]: (i["Size"], i["RepoTags"], i["Containers"]) for i in df["Images"]} == {
            first: (50, [], 0),
            keep: (70, ["app:v1"], 0),
            lone: (30, ["tool:v1"], 0),
        }
        assert df["Containers"] == [] and df["Volumes"] == []

        result = client.images.prune()
        assert result["ImagesDeleted"][0] == {"Deleted": first}
        assert len(result["ImagesDeleted"]) == 2  # the image and its layer
        assert result["SpaceReclaimed"] == 50
        result = client.images.prune(filters={"dangling": False, "label": "x=y"})
        assert result["ImagesDeleted"][:2] == [{"Untagged": "tool:v1"}, {"Deleted": lone}]
        assert result["SpaceReclaimed"] == 30
        assert [i.id for i in client.images.list(all=True)] == [keep]
        with pytest.raises(APIError) as info:
            client.images.prune(filters={"bogus": "1"})
        assert info.value.status_code == 400
        assert client.df()["LayersSize"] == 70
    finally:
        client.close()
