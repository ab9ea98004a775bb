"""The real `docker` CLI (DOCKER_HOST=unix://…) against our daemon: images, tag, rmi, inspect,
history, import, save, load, prune, system df, version, info.

Expected outputs are docker's, as the CLI prints them from a dockerd answer (messages checked
against moby's image service and tarexport).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import select
import signal
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Daemon

from .conftest import failed, human_size, image_state, inspect, layer_tar, store_files, table

ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def import_image(d: Daemon, path: Path, ref: str = "", *flags: str) -> str:
    out = d.docker("import", *flags, str(path), *([ref] if ref else [])).stdout.decode()
    assert ID.match(out.strip()), out
    return out.strip()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def layer_diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- version, info, system df -------------------------------------------------------------------
def test_version(daemon):
    info = json.loads(daemon.docker("version", "--format", "{{json .}}").stdout)
    assert info["Server"]["Platform"]["Name"] == "Dockyard"
    assert info["Server"]["ApiVersion"] == "1.47"
    assert info["Server"]["MinAPIVersion"] == "1.24"
    assert info["Server"]["Os"] == "linux"
    # The client (API 1.50) negotiated down to what we speak.
    assert info["Client"]["ApiVersion"] == "1.47"
    text = daemon.docker("version").stdout.decode()
    assert "Server: Dockyard" in text
    assert re.search(r"API version:\s+1\.47 \(minimum version 1\.24\)", text)


def test_info(daemon):
    info = json.loads(daemon.docker("info", "--format", "{{json .}}").stdout)
    count = len(daemon.docker("images", "-a", "-q", "--no-trunc").stdout.split())
    assert info["Images"] == count >= 1
    assert info["Containers"] == 0
    assert info["OSType"] == "linux"
    assert info["DockerRootDir"] == str(daemon.data_root)
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    result = daemon.docker("info")
    text = result.stdout.decode()
    assert result.stderr == b""
    assert f" Images: {count}\n" in text
    assert f" Docker Root Dir: {daemon.data_root}\n" in text
    assert f" Storage Driver: {info['Driver']}\n" in text
    # An inactive swarm is one line; without it the CLI prints empty swarm node details.
    assert " Swarm: inactive\n" in text
    assert "NodeID" not in text


def test_system_df(fresh_daemon, busybox_tar):
    d = fresh_daemon
    rows = table(d.docker("system", "df").stdout)
    assert rows[0] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert rows[1] == ["Images", "0", "0", "0B", "0B"]
    assert rows[2] == ["Containers", "0", "0", "0B", "0B"]
    import_image(d, busybox_tar, "busybox:latest")
    size = inspect(d, "busybox")["Size"]
    rows = table(d.docker("system", "df").stdout)
    assert rows[1] == ["Images", "1", "0", human_size(size, 4), f"{human_size(size, 4)} (100%)"]
    # A second image on the same layer: the layer is counted once, and shared.
    import_image(d, busybox_tar, "other:latest", "-m", "again")
    rows = table(d.docker("system", "df").stdout)
    assert rows[1] == ["Images", "2", "0", human_size(size, 4), f"{human_size(size, 4)} (100%)"]
    verbose = d.docker("system", "df", "-v", "--format", "{{json .}}").stdout
    images = json.loads(verbose)["Images"]
    assert {(i["Repository"], i["SharedSize"], i["UniqueSize"]) for i in images} == {
        ("busybox", human_size(size, 4), "0B"),
        ("other", human_size(size, 4), "0B"),
    }


# -- images --------------------------------------------------------------------------------------
def test_images_table(daemon):
    image = inspect(daemon, "busybox")
    out = daemon.docker("images", "busybox").stdout
    rows = table(out)
    assert rows[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert len(rows) == 2
    repo, tag, short, created, size = rows[1]
    assert (repo, tag, short) == ("busybox", "latest", image["Id"][7:19])
    assert re.fullmatch(
        r"(Less than a second|\d+ seconds?|About a minute|\d+ minutes) ago", created
    )
    assert size == human_size(image["Size"], 3)
    assert daemon.docker("images", "-q", "busybox").stdout.decode() == image["Id"][7:19] + "\n"
    no_trunc = daemon.docker("images", "-q", "--no-trunc", "busybox").stdout.decode()
    assert no_trunc == image["Id"] + "\n"
    digests = table(daemon.docker("images", "--digests", "busybox").stdout)
    assert digests[0][:3] == ["REPOSITORY", "TAG", "DIGEST"]
    assert digests[1][:4] == ["busybox", "latest", "<none>", image["Id"][7:19]]
    assert daemon.docker("images", "nosuch").stdout.decode().splitlines()[1:] == []


def test_images_filters(fresh_daemon, tmp_path):
    d = fresh_daemon
    ids = {}
    for name, label in [("e2e/a:1", "web"), ("e2e/b:2", "db"), ("other/c:3", "web")]:
        layer = write(tmp_path / "l.tar", layer_tar({"f": name.encode()}))
        ids[name] = import_image(d, layer, name, "-c", f"LABEL tier={label}", "-c", "LABEL e2e=1")
    # other/c:3 again: the first one loses its tag and becomes dangling.
    old_c = ids["other/c:3"]
    ids["other/c:3"] = import_image(
        d, write(tmp_path / "l.tar", layer_tar({"f": b"new"})), "other/c:3"
    )

    def listed(*args: str) -> set[str]:
        out = d.docker("images", *args, "--format", "{{.Repository}}:{{.Tag}}").stdout
        return set(out.decode().split())

    assert listed() == {"e2e/a:1", "e2e/b:2", "other/c:3", "<none>:<none>"}
    assert listed("e2e/*") == {"e2e/a:1", "e2e/b:2"}
    assert listed("--filter", "reference=*/c") == {"other/c:3"}
    assert listed("--filter", "reference=e2e/*:2") == {"e2e/b:2"}
    assert listed("--filter", "label=tier=web") == {"e2e/a:1", "<none>:<none>"}
    assert listed("--filter", "label=tier") == {"e2e/a:1", "e2e/b:2", "<none>:<none>"}
    assert listed("--filter", "label=tier=web", "e2e/*") == {"e2e/a:1"}
    assert listed("--filter", "before=e2e/b:2") == {"e2e/a:1"}
    assert listed("--filter", "since=e2e/b:2") == {"other/c:3", "<none>:<none>"}
    assert listed("--filter", f"since={ids['e2e/a:1'][7:19]}", "--filter", "before=other/c:3") == {
        "e2e/b:2",
        "<none>:<none>",
    }
    assert listed("--filter", "dangling=true") == {"<none>:<none>"}
    assert listed("--filter", "dangling=false") == {"e2e/a:1", "e2e/b:2", "other/c:3"}
    dangling = d.docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout
    assert dangling.decode().split() == [old_c]

    err = failed(d.docker("images", "--filter", "bogus=1", check=False))
    assert err == "Error response from daemon: invalid filter 'bogus'\n"
    err = failed(d.docker("images", "--filter", "dangling=maybe", check=False))
    assert err == "Error response from daemon: invalid filter 'dangling=[maybe]'\n"
    err = failed(d.docker("images", "--filter", "since=nosuch", check=False))
    assert err == "Error response from daemon: No such image: nosuch:latest\n"


# -- tag and rmi ---------------------------------------------------------------------------------
def test_tag(cleanup, uid):
    d = cleanup
    busybox = inspect(d, "busybox")["Id"]
    repo = f"e2e-{uid}/tagged"
    assert d.docker("tag", "busybox", f"{repo}:v1").stdout == b""
    d.docker("tag", busybox[7:19], repo)  # by short ID, default tag latest
    d.docker("tag", busybox, f"localhost:5000/{repo}:v2")  # by full ID, with a registry
    assert d.docker("images", "-q", repo).stdout.decode().split() == [busybox[7:19]] * 2
    tags = set(inspect(d, f"{repo}:v1")["RepoTags"])
    assert tags >= {f"{repo}:v1", f"{repo}:latest", f"localhost:5000/{repo}:v2", "busybox:latest"}

    err = failed(d.docker("tag", "nosuch", f"{repo}:x", check=False))
    assert err == "Error response from daemon: No such image: nosuch:latest\n"
    err = failed(d.docker("tag", "busybox:nosuchtag", f"{repo}:x", check=False))
    assert err == "Error response from daemon: No such image: busybox:nosuchtag\n"
    err = failed(d.docker("tag", "busybox", f"E2E-{uid}:x", check=False))
    assert "must be lowercase" in err
    assert f"{repo}:x" not in inspect(d, "busybox")["RepoTags"]


def test_tag_moves_to_the_new_image(cleanup, uid, tmp_path):
    d = cleanup
    name = f"e2e-{uid}:moving"
    first = import_image(d, write(tmp_path / "a.tar", layer_tar({"a": b"1"})), name)
    second = import_image(d, write(tmp_path / "b.tar", layer_tar({"b": b"2"})), name)
    assert inspect(d, name)["Id"] == second
    assert inspect(d, first)["RepoTags"] == []
    dangling = d.docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout
    assert first in dangling.decode().split()


def test_rmi_untag_then_delete(cleanup, uid, tmp_path):
    d = cleanup
    data = layer_tar({"hello.txt": b"hello\n"})
    one, two = f"e2e-{uid}:one", f"e2e-{uid}:two"
    image_id = import_image(d, write(tmp_path / "l.tar", data), one)
    d.docker("tag", one, two)
    # Two tags: removing one only untags.
    assert d.docker("rmi", one).stdout.decode() == f"Untagged: {one}\n"
    assert inspect(d, image_id)["RepoTags"] == [two]
    # The last tag: untag, then the image and its layer go.
    out = d.docker("rmi", two).stdout.decode()
    assert out == f"Untagged: {two}\nDeleted: {image_id}\nDeleted: {layer_diff_id(data)}\n"
    err = failed(d.docker("image", "inspect", image_id, check=False))
    assert err == f"Error response from daemon: No such image: {image_id}\n"
    err = failed(d.docker("rmi", two, check=False))
    assert err == f"Error response from daemon: No such image: {two}\n"


def test_rmi_by_id(cleanup, uid, tmp_path):
    d = cleanup
    data = layer_tar({"x": uid.encode()})
    one, two = f"e2e-{uid}/x:one", f"e2e-{uid}/y:two"
    image_id = import_image(d, write(tmp_path / "l.tar", data), one)
    short = image_id[7:19]
    d.docker("tag", one, two)
    # By ID with tags in several repositories: a conflict unless forced; nothing changes.
    err = failed(d.docker("rmi", short, check=False))
    assert err == (
        f"Error response from daemon: conflict: unable to delete {short} (must be forced) - "
        "image is referenced in multiple repositories\n"
    )
    assert sorted(inspect(d, image_id)["RepoTags"]) == [one, two]
    out = d.docker("rmi", "-f", short).stdout.decode()
    assert out == (
        f"Untagged: {one}\nUntagged: {two}\nDeleted: {image_id}\nDeleted: {layer_diff_id(data)}\n"
    )
    assert d.docker("images", "-q", "--no-trunc", "-a").stdout.decode().split().count(image_id) == 0

    # By ID with a single tag: untagged and deleted without force.
    image_id = import_image(d, write(tmp_path / "l.tar", data), one)
    out = d.docker("rmi", image_id).stdout.decode()
    assert out == f"Untagged: {one}\nDeleted: {image_id}\nDeleted: {layer_diff_id(data)}\n"

    # A dangling image by ID prefix.
    image_id = import_image(d, write(tmp_path / "l.tar", data))
    assert d.docker("rmi", image_id[7:15]).stdout.decode() == (
        f"Deleted: {image_id}\nDeleted: {layer_diff_id(data)}\n"
    )


def test_rmi_keeps_a_shared_layer(cleanup, uid, busybox_tar):
    d = cleanup
    name = f"e2e-{uid}:shared"
    image_id = import_image(d, busybox_tar, name, "-m", f"same layer as busybox {uid}")
    busybox = inspect(d, "busybox")
    assert inspect(d, name)["RootFS"] == busybox["RootFS"]
    # The layer is busybox's too: only the image goes.
    assert d.docker("rmi", name).stdout.decode() == f"Untagged: {name}\nDeleted: {image_id}\n"
    assert inspect(d, "busybox") == busybox
    saved = d.docker("save", "busybox").stdout  # the layer's content is still there
    assert _manifest(saved)[0]["RepoTags"] == ["busybox:latest"]


def test_rmi_errors(daemon):
    before = image_state(daemon)
    err = failed(daemon.docker("rmi", "nosuch", check=False))
    assert err == "Error response from daemon: No such image: nosuch:latest\n"
    err = failed(daemon.docker("rmi", "busybox:nosuchtag", check=False))
    assert err == "Error response from daemon: No such image: busybox:nosuchtag\n"
    err = failed(daemon.docker("rmi", "Busybox", check=False))
    assert err == (
        "Error response from daemon: invalid reference format: "
        "repository name (library/Busybox) must be lowercase\n"
    )
    err = failed(daemon.docker("rmi", "0123456789ab", check=False))
    assert err == "Error response from daemon: No such image: 0123456789ab:latest\n"
    missing = "sha256:" + "0123456789abcdef" * 4
    err = failed(daemon.docker("rmi", missing, check=False))
    assert err == f"Error response from daemon: No such image: {missing}\n"
    assert image_state(daemon) == before


def test_rmi_several_with_a_failure(cleanup, uid):
    d = cleanup
    d.docker("tag", "busybox", f"e2e-{uid}:a")
    result = d.docker("rmi", "nosuch1", f"e2e-{uid}:a", "nosuch2", check=False)
    err = failed(result)
    assert result.stdout.decode() == f"Untagged: e2e-{uid}:a\n"
    assert err == (
        "Error response from daemon: No such image: nosuch1:latest\n"
        "Error response from daemon: No such image: nosuch2:latest\n"
    )


# -- inspect and history -------------------------------------------------------------------------
def test_image_inspect(daemon, busybox_tar):
    image = inspect(daemon, "busybox")
    assert ID.match(image["Id"])
    assert image["RepoTags"] == ["busybox:latest"]
    assert image["RepoDigests"] == []
    assert image["Config"]["Cmd"] == ["sh"]
    assert image["Os"] == "linux"
    assert image["RootFS"] == {
        "Type": "layers",
        "Layers": [layer_diff_id(Path(busybox_tar).read_bytes())],
    }
    assert image["Size"] > 1_000_000
    # Gone in API 1.44 and 1.45: VirtualSize, Container, ContainerConfig.
    assert not {"VirtualSize", "Container", "ContainerConfig"} & set(image)
    by_id = inspect(daemon, image["Id"][7:19])
    assert by_id == image
    fmt = daemon.docker("image", "inspect", "--format", "{{.Id}} {{.Os}}", "busybox").stdout
    assert fmt.decode() == f"{image['Id']} linux\n"

    result = daemon.docker("image", "inspect", "nosuch", check=False)
    assert failed(result) == "Error response from daemon: No such image: nosuch:latest\n"
    assert result.stdout == b"[]\n"
    result = daemon.docker("image", "inspect", "busybox", "nosuch", check=False)
    failed(result)
    assert [i["Id"] for i in json.loads(result.stdout)] == [image["Id"]]
    err = failed(daemon.docker("image", "inspect", "Busybox", check=False))
    assert "invalid reference format: repository name (library/Busybox) must be lowercase" in err


def test_history(cleanup, uid, tmp_path):
    d = cleanup
    data = layer_tar({"a": b"12345"})
    name = f"e2e-{uid}:hist"
    image_id = import_image(d, write(tmp_path / "l.tar", data), name, "-m", "a message")
    out = d.docker(
        "history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", name
    ).stdout.decode()
    size = inspect(d, name)["Size"]
    assert out == f"{image_id}||{human_size(size, 3)}|a message\n"
    rows = d.docker("history", name).stdout.decode().splitlines()
    assert rows[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert rows[1].startswith(image_id[7:19] + "   ")
    assert rows[1].endswith("a message")
    assert d.docker("history", "-q", name).stdout.decode() == image_id[7:19] + "\n"
    # busybox, imported without -m: docker's default comment.
    comment = d.docker("history", "--format", "{{.Comment}}", "busybox").stdout.decode()
    assert comment == "Imported from -\n"
    err = failed(d.docker("history", "nosuch", check=False))
    assert err == "Error response from daemon: No such image: nosuch:latest\n"


# -- import --------------------------------------------------------------------------------------
def test_import_variants(cleanup, uid, tmp_path):
    d = cleanup
    data = layer_tar({"etc/hello": b"hi\n", "bin/tool": b"#!/bin/sh\n"})
    path = write(tmp_path / "l.tar", data)
    changes = [
        "ENV A=1 B=two",
        'CMD ["/bin/tool", "x"]',
        "LABEL k=v",
        "WORKDIR /w",
        "EXPOSE 80/tcp",
        "USER nobody",
        'ENTRYPOINT ["/bin/sh", "-c"]',
        'VOLUME ["/data"]',
    ]
    flags = [arg for change in changes for arg in ("-c", change)]
    image_id = import_image(d, path, f"e2e-{uid}:full", *flags, "-m", "with changes")
    image = inspect(d, image_id)
    assert image["RepoTags"] == [f"e2e-{uid}:full"]
    assert image["Comment"] == "with changes"
    assert image["RootFS"]["Layers"] == [layer_diff_id(data)]
    config = image["Config"]
    assert config["Env"] == ["A=1", "B=two"]
    assert config["Cmd"] == ["/bin/tool", "x"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert config["Labels"] == {"k": "v"}
    assert config["WorkingDir"] == "/w"
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert config["User"] == "nobody"
    assert config["Volumes"] == {"/data": {}}

    # From stdin, gzip-compressed: the same layer (diffID of the uncompressed tar).
    out = d.docker("import", "-", f"e2e-{uid}:stdin", input=gzip.compress(data)).stdout
    image = inspect(d, out.decode().strip())
    assert image["RootFS"]["Layers"] == [layer_diff_id(data)]
    assert image["Comment"] == "Imported from -"
    assert image["RepoTags"] == [f"e2e-{uid}:stdin"]

    # Without a name: a dangling image.
    dangling = import_image(d, path)
    assert inspect(d, dangling)["RepoTags"] == []
    listed = d.docker("images", "--no-trunc", "--filter", "dangling=true", "--format", "{{.ID}}")
    assert dangling in listed.stdout.decode().split()


def test_import_bad_input_stores_nothing(fresh_daemon, busybox_tar, tmp_path):
    d = fresh_daemon
    import_image(d, busybox_tar, "busybox:latest")
    before, files = image_state(d), store_files(d)
    garbage = write(tmp_path / "garbage", bytes(range(256)) * 40)
    err = failed(d.docker("import", str(garbage), "bad:garbage", check=False))
    assert err.startswith("Error response from daemon: ") and "tar" in err
    truncated = write(tmp_path / "trunc.tar", Path(busybox_tar).read_bytes()[:700_000])
    err = failed(d.docker("import", str(truncated), "bad:trunc", check=False))
    assert err.startswith("Error response from daemon: ")
    bad_gzip = write(tmp_path / "bad.tar.gz", gzip.compress(Path(busybox_tar).read_bytes())[:-100])
    err = failed(d.docker("import", str(bad_gzip), "bad:gzip", check=False))
    assert err.startswith("Error response from daemon: ")
    layer = write(tmp_path / "ok.tar", layer_tar({"f": b"ok"}))
    err = failed(d.docker("import", "-c", "BOGUS x", str(layer), "bad:change", check=False))
    # Current moby names the instruction as written (dockerd 20.10 lowercased it).
    assert err == "Error response from daemon: BOGUS is not a valid change command\n"
    err = failed(d.docker("import", "-c", "RUN echo hi", str(layer), "bad:change", check=False))
    assert err == "Error response from daemon: RUN is not a valid change command\n"
    err = failed(d.docker("import", "-c", "ENV", str(layer), "bad:change", check=False))
    assert err == "Error response from daemon: ENV requires at least one argument\n"
    result = d.docker("import", "--platform", "windows/amd64", str(layer), "bad:os", check=False)
    assert failed(result) == "Error response from daemon: operating system is not supported\n"
    assert image_state(d) == before
    assert store_files(d) == files


# -- save and load -------------------------------------------------------------------------------
def test_save_load_into_a_second_daemon(cleanup, fresh_daemon, uid, tmp_path):
    src, dst = cleanup, fresh_daemon
    data = layer_tar({"app/x": uid.encode()})
    a, b = f"e2e-{uid}/app:a", f"e2e-{uid}/app:b"
    app_id = import_image(src, write(tmp_path / "l.tar", data), a, "-c", 'CMD ["/app/x"]')
    src.docker("tag", a, b)
    archive = tmp_path / "save.tar"
    src.docker("save", "-o", str(archive), "busybox", f"e2e-{uid}/app")
    out = dst.docker("load", "-i", str(archive)).stdout.decode()
    assert sorted(out.splitlines()) == sorted(
        ["Loaded image: busybox:latest", f"Loaded image: {a}", f"Loaded image: {b}"]
    )
    for name in ("busybox:latest", a, b):
        here, there = inspect(src, name), inspect(dst, name)
        for key in ("Id", "Created", "Config", "RootFS", "Size", "Os", "Architecture", "Comment"):
            assert there[key] == here[key], key
    assert inspect(dst, a)["Id"] == app_id
    assert sorted(inspect(dst, a)["RepoTags"]) == [a, b]
    assert inspect(dst, "busybox")["RepoTags"] == ["busybox:latest"]
    history = ("history", "--no-trunc", "--format", "{{.ID}} {{.Size}} {{.Comment}}", a)
    assert dst.docker(*history).stdout == src.docker(*history).stdout

    # Loading the same archive again (from stdin) changes nothing.
    state = image_state(dst)
    out = dst.docker("load", input=archive.read_bytes()).stdout.decode()
    assert sorted(out.splitlines()) == sorted(
        ["Loaded image: busybox:latest", f"Loaded image: {a}", f"Loaded image: {b}"]
    )
    assert image_state(dst) == state
    # `docker save` to stdout writes the same images.
    piped = src.docker("save", a).stdout
    manifest = _manifest(piped)
    assert [m["RepoTags"] for m in manifest] == [[a]]
    assert manifest[0]["Config"].endswith(app_id.removeprefix("sha256:"))


def test_save_errors(daemon, tmp_path):
    out = tmp_path / "x.tar"
    err = failed(daemon.docker("save", "-o", str(out), "nosuch", check=False))
    assert err == "Error response from daemon: No such image: nosuch\n"
    err = failed(daemon.docker("save", "-o", str(out), "busybox:nosuchtag", check=False))
    assert err == "Error response from daemon: reference does not exist\n"
    err = failed(daemon.docker("save", "-o", str(out), "busybox", "nosuch", check=False))
    assert err == "Error response from daemon: No such image: nosuch\n"
    assert not out.exists()


def test_load_untagged_and_renamed(fresh_daemon, tmp_path):
    d = fresh_daemon
    first = import_image(d, write(tmp_path / "a.tar", layer_tar({"a": b"1"})), "app:1")
    d.docker("save", "-o", str(tmp_path / "first.tar"), "app:1")
    d.docker("save", "-o", str(tmp_path / "by-id.tar"), first)
    second = import_image(d, write(tmp_path / "b.tar", layer_tar({"b": b"2"})), "app:1")
    # The archive's tag is taken; the image that held it is left dangling.
    out = d.docker("load", "-i", str(tmp_path / "first.tar")).stdout.decode()
    assert out == (
        f"The image app:1 already exists, renaming the old one with ID {second} to empty string\n"
        "Loaded image: app:1\n"
    )
    assert inspect(d, "app:1")["Id"] == first
    assert inspect(d, second)["RepoTags"] == []
    # An archive saved by ID holds no tag: the ID is reported.
    d.docker("rmi", "app:1")
    assert d.docker("images", "-q", "--no-trunc", "-a").stdout.decode().split() == [second]
    out = d.docker("load", "-i", str(tmp_path / "by-id.tar")).stdout.decode()
    assert out == f"Loaded image ID: {first}\n"
    assert inspect(d, first)["RepoTags"] == []


def _rewrite(archive: bytes, edit: Callable[[str, bytes], bytes | None]) -> bytes:
    """A copy of a tar with each regular file's content passed through `edit` (None drops it)."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as src,
        tarfile.open(fileobj=out, mode="w") as dst,
    ):
        for member in src.getmembers():
            if not member.isfile():
                dst.addfile(member)
                continue
            data = edit(member.name, src.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
    return out.getvalue()


def _flip_a_content_byte(layer: bytes) -> bytes:
    """The layer with one byte of its first file's content flipped (headers intact, so only the
    content hash can tell)."""
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        offset = next(m.offset_data for m in tar.getmembers() if m.isfile() and m.size)
    return layer[:offset] + bytes([layer[offset] ^ 0xFF]) + layer[offset + 1 :]


def _corrupt_layer(archive: bytes, image: int = 0) -> bytes:
    target = _manifest(archive)[image]["Layers"][0]
    return _rewrite(
        archive, lambda name, data: _flip_a_content_byte(data) if name == target else data
    )


def _without(archive: bytes, drop: str) -> bytes:
    return _rewrite(archive, lambda name, data: None if name == drop else data)


def _manifest(archive: bytes) -> list[dict]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return json.load(tar.extractfile("manifest.json"))


def test_load_bad_archives_store_nothing(fresh_daemon, busybox_tar, tmp_path):
    d = fresh_daemon
    d.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    app, other = layer_tar({"f": b"content of app"}), layer_tar({"g": b"content of other"})
    import_image(d, write(tmp_path / "a.tar", app), "app:v1")
    import_image(d, write(tmp_path / "o.tar", other), "other:v1")
    good = d.docker("save", "app:v1").stdout
    two = d.docker("save", "app:v1", "other:v1").stdout
    # The archives' images are removed, so that loading them would add them back.
    d.docker("rmi", "app:v1", "other:v1")
    before, files = image_state(d), store_files(d)

    def load_fails(archive: bytes) -> str:
        result = d.docker("load", input=archive, check=False)
        err = failed(result)
        assert b"Loaded image" not in result.stdout
        assert image_state(d) == before
        assert store_files(d) == files
        return err

    assert load_fails(bytes(range(256)) * 40)  # not a tar
    assert load_fails(good[: len(good) // 2])  # truncated
    err = load_fails(b"")
    assert err == "invalid archive: does not contain a manifest.json\n"
    # Without manifest.json our save's OCI layout view still loads; without either view:
    bare = good
    for name in ("manifest.json", "index.json", "oci-layout"):
        bare = _without(bare, name)
    err = load_fails(bare)
    assert err == "invalid archive: does not contain a manifest.json\n"
    err = load_fails(_corrupt_layer(good))
    assert err.startswith(f'invalid diffID for layer 0: expected "{layer_diff_id(app)}", got ')
    # Two images, the second one corrupt: nothing of the first is kept either.
    second = [m["RepoTags"] for m in _manifest(two)].index(["other:v1"])
    err = load_fails(_corrupt_layer(two, second))
    assert err.startswith(f'invalid diffID for layer 0: expected "{layer_diff_id(other)}", got ')
    # A good archive still loads afterwards.
    out = d.docker("load", input=two).stdout.decode()
    assert sorted(out.splitlines()) == ["Loaded image: app:v1", "Loaded image: other:v1"]
    assert inspect(d, "app:v1")["RootFS"]["Layers"] == [layer_diff_id(app)]


def _chain_archive(tag: str, parent_step: str = "") -> tuple[bytes, str, str, list[bytes]]:
    """A docker-archive as a legacy `docker build` leaves it saved with its intermediate image:
    the child's manifest entry names its parent. Returns (archive, parent ID, child ID, layers).
    `parent_step` replaces the parent's own history entry (so it is no longer the child's)."""
    layers = [layer_tar({"base": b"base"}), layer_tar({"top": b"2"})]
    history = [
        {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
        {"created": "2024-01-01T00:00:01Z", "created_by": "/bin/sh -c echo 2 > /top"},
    ]

    def config(n: int, steps: list[dict]) -> bytes:
        return json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": steps[n - 1]["created"],
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": [layer_diff_id(x) for x in layers[:n]]},
                "history": steps[:n],
            }
        ).encode()

    own = [{**history[0], "created_by": parent_step}] if parent_step else history
    parent, child = config(1, own), config(2, history)
    parent_id, child_id = layer_diff_id(parent), layer_diff_id(child)
    manifest = [
        {"Config": f"{parent_id[7:]}.json", "RepoTags": None, "Layers": ["l1/layer.tar"]},
        {
            "Config": f"{child_id[7:]}.json",
            "RepoTags": [tag],
            "Layers": ["l1/layer.tar", "l2/layer.tar"],
            "Parent": parent_id,
        },
    ]
    files = {
        f"{parent_id[7:]}.json": parent,
        f"{child_id[7:]}.json": child,
        "l1/layer.tar": layers[0],
        "l2/layer.tar": layers[1],
        "manifest.json": json.dumps(manifest).encode(),
    }
    return layer_tar(files), parent_id, child_id, layers


def test_load_keeps_parent_links(fresh_daemon, tmp_path):
    d = fresh_daemon
    archive, parent, child, layers = _chain_archive("chain:child")
    out = d.docker("load", input=archive).stdout.decode()
    assert out.splitlines()[-1] == "Loaded image: chain:child"
    assert inspect(d, "chain:child")["Parent"] == parent
    # The parent is an intermediate image: hidden unless -a, and not dangling.
    assert d.docker("images", "-q", "--no-trunc").stdout.decode().split() == [child]
    assert sorted(d.docker("images", "-aq", "--no-trunc").stdout.decode().split()) == sorted(
        [child, parent]
    )
    assert d.docker("images", "-q", "--filter", "dangling=true").stdout == b""
    history = d.docker("history", "-q", "--no-trunc", "chain:child").stdout.decode().split()
    assert history == [child, parent]
    for force in ([], ["-f"]):
        err = failed(d.docker("rmi", *force, parent[7:19], check=False))
        assert err == (
            f"Error response from daemon: conflict: unable to delete {parent[7:19]} "
            "(cannot be forced) - image has dependent child images\n"
        )
    # Saving both keeps the link; loading that elsewhere restores it.
    resaved = d.docker("save", "chain:child", parent).stdout
    by_config = {m["Config"].rsplit("/", 1)[-1]: m for m in _manifest(resaved)}
    assert by_config[child[7:]]["Parent"] == parent
    assert "Parent" not in by_config[parent[7:]]
    # Removing the child prunes the parent, layer by layer, as docker reports it.
    top_chain = layer_diff_id(f"{layer_diff_id(layers[0])} {layer_diff_id(layers[1])}".encode())
    assert d.docker("rmi", "chain:child").stdout.decode() == (
        f"Untagged: chain:child\nDeleted: {child}\nDeleted: {top_chain}\n"
        f"Deleted: {parent}\nDeleted: {layer_diff_id(layers[0])}\n"
    )
    assert image_state(d) == ([], [])
    d.docker("load", input=resaved)
    assert inspect(d, "chain:child")["Parent"] == parent


def test_load_rejects_an_invalid_parent(fresh_daemon):
    d = fresh_daemon
    archive, parent, child, _ = _chain_archive("chain:child", parent_step="something else")
    err = failed(d.docker("load", input=archive, check=False))
    assert err == f"image {parent} is not a valid parent for {child}\n"
    assert image_state(d) == ([], [])
    assert store_files(d)["snapshots"] == []


# -- prune ---------------------------------------------------------------------------------------
def test_image_prune(fresh_daemon, tmp_path):
    d = fresh_daemon
    out = d.docker("image", "prune", "-f").stdout.decode()
    assert out == "Total reclaimed space: 0B\n"
    data = [layer_tar({"f": str(i).encode() * 100}) for i in range(3)]
    old = import_image(d, write(tmp_path / "0.tar", data[0]), "app:v1")
    keep = import_image(d, write(tmp_path / "1.tar", data[1]), "app:v1")
    labeled = import_image(d, write(tmp_path / "2.tar", data[2]), "tool:v1", "-c", "LABEL x=y")
    # Dangling only by default.
    out = d.docker("image", "prune", "-f").stdout.decode()
    assert out == (
        f"Deleted Images:\ndeleted: {old}\ndeleted: {layer_diff_id(data[0])}\n\n"
        f"Total reclaimed space: {human_size(len(b'0') * 100, 4)}\n"
    )
    assert image_state(d) == (sorted([keep, labeled]), ["app:v1", "tool:v1"])
    # -a with a label filter: unused tagged images that match.
    out = d.docker("image", "prune", "-a", "-f", "--filter", "label=x=y").stdout.decode()
    assert out == (
        f"Deleted Images:\nuntagged: tool:v1\ndeleted: {labeled}\n"
        f"deleted: {layer_diff_id(data[2])}\n\nTotal reclaimed space: 100B\n"
    )
    assert image_state(d) == ([keep], ["app:v1"])
    err = failed(d.docker("image", "prune", "-f", "--filter", "bogus=1", check=False))
    assert err == "Error response from daemon: invalid filter 'bogus'\n"
    out = d.docker("image", "prune", "-a", "-f").stdout.decode()
    assert out.startswith(f"Deleted Images:\nuntagged: app:v1\ndeleted: {keep}\n")
    assert image_state(d) == ([], [])
    assert store_files(d)["blobs"] == []
    assert store_files(d)["snapshots"] == []


def _save_and_hang_up(d: Daemon, name: str, timeout: float = 20) -> None:
    """`docker save NAME | head -c 1000`: the CLI dies after the first bytes, the daemon's
    writes then fail. Fails if the daemon stops answering."""
    save = subprocess.Popen(
        ["docker", "save", name], env=d.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        ready, _, _ = select.select([save.stdout], [], [], timeout)
        assert ready, "docker save got no data: the daemon stopped answering"
        assert os.read(save.stdout.fileno(), 1000)
        save.stdout.close()
        save.wait(timeout=timeout)
    finally:
        if save.poll() is None:
            save.kill()
            save.wait()


def test_a_client_leaving_mid_save_does_not_wedge_the_daemon(fresh_daemon, tmp_path):
    d = fresh_daemon
    big = write(tmp_path / "big.tar", layer_tar({"blob": os.urandom(24 << 20)}))
    import_image(d, big, "big:latest")
    # Where the daemon's writes fail varies; a few rounds once wedged its event loop.
    for _ in range(20):
        _save_and_hang_up(d, "big:latest")
    assert d.docker("images", "-q", "big").stdout.decode().strip()
    assert len(d.docker("save", "big:latest").stdout) > 24 << 20
    # And it still stops on SIGTERM.
    d.process.send_signal(signal.SIGTERM)
    assert d.process.wait(timeout=20) == 0
