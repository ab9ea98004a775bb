"""Our `dockyard` CLI end to end against a real daemon: the image commands, their output formats,
and docker's exit codes and error texts (flag errors 125, usage errors 1, daemon errors 1)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, Daemon, needs_root, start_daemon, stop_daemon

HEX12 = re.compile(r"[0-9a-f]{12}")
FULL_ID = re.compile(r"sha256:[0-9a-f]{64}")


def make_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unique_tar() -> bytes:
    """A one-file layer no other test shares."""
    return make_tar({"id.txt": uuid.uuid4().hex.encode()})


@pytest.fixture(scope="module")
def d(busybox_tar: Path) -> Iterator[Daemon]:
    """A daemon of this module's own (tests here prune, remove and count images)."""
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="dockyard-cli-"))
    daemon = start_daemon(base)
    try:
        out(daemon, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield daemon
    finally:
        stop_daemon(daemon)
        shutil.rmtree(base, ignore_errors=True)


def run(
    daemon: Daemon, *args: str, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The CLI with a short timeout: a daemon that stops answering fails the test quickly."""
    return subprocess.run(
        [str(VENV_BIN / "dockyard"), *args],
        env=daemon.env(),
        input=input,
        capture_output=True,
        timeout=60,
    )


def out(daemon: Daemon, *args: str, input: bytes | None = None) -> str:
    result = run(daemon, *args, input=input)
    assert result.returncode == 0, f"dockyard {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout.decode()


def fails(daemon: Daemon, *args: str, input: bytes | None = None) -> tuple[int, str, str]:
    result = run(daemon, *args, input=input)
    assert result.returncode != 0, f"dockyard {' '.join(args)} succeeded: {result.stdout!r}"
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def import_image(
    daemon: Daemon, name: str | None = None, *extra: str, data: bytes | None = None
) -> str:
    """Import a fresh one-file layer; returns the full image ID."""
    args = ["import", *extra, "-"] + ([name] if name else [])
    image_id = out(daemon, *args, input=data if data is not None else unique_tar()).strip()
    assert FULL_ID.fullmatch(image_id), image_id
    return image_id


def ids(daemon: Daemon, *args: str) -> list[str]:
    """Image IDs listed, in order, each once (-q prints one line per repository:tag)."""
    return list(dict.fromkeys(out(daemon, "images", "-q", "--no-trunc", *args).split()))


def table(text: str) -> list[list[str]]:
    """Rows of a tab-writer table, split on runs of 2+ spaces (the header included)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


# -- images / image ls ----------------------------------------------------------------------


def test_images_table(d: Daemon) -> None:
    text = out(d, "images")
    rows = table(text)
    assert rows[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    busybox = [r for r in rows if r[0] == "busybox"]
    assert len(busybox) == 1
    _, tag, image_id, created, size = busybox[0]
    assert tag == "latest" and HEX12.fullmatch(image_id)
    assert created.endswith("ago") and re.fullmatch(r"[0-9.]+[kM]?B", size)
    assert out(d, "image", "ls") == text
    assert out(d, "image", "list") == text


def test_images_quiet_and_no_trunc(d: Daemon) -> None:
    image_id = import_image(d, "quiet/one:v1")
    assert out(d, "images", "-q", "quiet/one") == image_id[7:19] + "\n"
    assert out(d, "images", "--quiet", "--no-trunc", "quiet/one:v1") == image_id + "\n"
    rows = table(out(d, "images", "--no-trunc", "quiet/one"))
    assert rows[1][:3] == ["quiet/one", "v1", image_id]


def test_images_all_shows_dangling_and_dangling_filter(d: Daemon) -> None:
    dangling = import_image(d)
    tagged = import_image(d, "dangle/tagged")
    listed = ids(d)
    assert dangling in listed and tagged in listed  # docker lists dangling images too
    assert dangling in ids(d, "-a")
    rows = [r for r in table(out(d, "images", "--no-trunc")) if r[2] == dangling]
    assert rows and rows[0][:2] == ["<none>", "<none>"]
    only_dangling = ids(d, "--filter", "dangling=true")
    assert dangling in only_dangling and tagged not in only_dangling
    not_dangling = ids(d, "-f", "dangling=false")
    assert tagged in not_dangling and dangling not in not_dangling
    out(d, "rmi", dangling)


def test_reference_filter_and_positional(d: Daemon) -> None:
    a = import_image(d, "reffilter/app:1")
    out(d, "tag", "reffilter/app:1", "reffilter/app:2")
    b = import_image(d, "reffilter/tool:1")
    assert set(ids(d, "--filter", "reference=reffilter/*")) == {a, b}
    assert ids(d, "--filter", "reference=reffilter/app") == [a]
    assert ids(d, "--filter", "reference=reffilter/app:2") == [a]
    assert ids(d, "--filter", "reference=*/tool:*") == [b]
    assert ids(d, "reffilter/tool") == [b]
    assert ids(d, "reffilter/none") == []
    rows = table(out(d, "images", "--filter", "reference=reffilter/app"))
    # One row per tag of the image, only tags matching the filter.
    assert sorted(r[:2] for r in rows[1:]) == [["reffilter/app", "1"], ["reffilter/app", "2"]]


def test_label_filter(d: Daemon) -> None:
    labelled = import_image(d, "labels/one", "-c", "LABEL tier=web team=a")
    other = import_image(d, "labels/two", "-c", "LABEL tier=db")
    assert set(ids(d, "--filter", "label=tier", "labels/*")) == {labelled, other}
    assert ids(d, "--filter", "label=tier=web", "labels/*") == [labelled]
    assert ids(d, "--filter", "label=tier=web", "--filter", "label=team=a") == [labelled]
    assert ids(d, "--filter", "label=tier=none", "labels/*") == []
    assert ids(d, "--filter", "label=team", "labels/*") == [labelled]


def test_before_and_since_filters(d: Daemon) -> None:
    first = import_image(d, "order/first")
    middle = import_image(d, "order/middle")
    last = import_image(d, "order/last")
    assert ids(d, "--filter", "before=order/middle", "order/*") == [first]
    assert ids(d, "--filter", "since=order/middle", "order/*") == [last]
    assert ids(d, "--filter", "since=order/first", "--filter", "before=order/last") == [middle]
    # By ID (prefix) too.
    assert set(ids(d, "--filter", f"before={last[7:19]}", "order/*")) == {middle, first}
    code, _, err = fails(d, "images", "--filter", "before=order/nosuch")
    assert code == 1
    assert err == "Error response from daemon: No such image: order/nosuch:latest\n"


def test_format_json_template_and_table(d: Daemon) -> None:
    image_id = import_image(d, "fmt/app:v2")
    lines = out(d, "images", "--format", "json", "fmt/app").splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["Repository"] == "fmt/app" and row["Tag"] == "v2"
    assert row["ID"] == image_id[7:19] and row["Digest"] == "<none>"
    assert {"CreatedAt", "CreatedSince", "Size", "Containers", "SharedSize"} <= row.keys()
    assert out(d, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "fmt/app") == (
        f"fmt/app:v2 {image_id[7:19]}\n"
    )
    assert table(out(d, "images", "--format", "table {{.ID}}\t{{.Tag}}", "fmt/app")) == [
        ["IMAGE ID", "TAG"],
        [image_id[7:19], "v2"],
    ]
    # -q ignores a non-table format? No: docker prints the template when --format is given.
    assert out(d, "images", "-q", "--format", "{{.Tag}}", "fmt/app") == "v2\n"
    code, _, err = fails(d, "images", "--format", "{{.Nope}}", "fmt/app")
    assert (code, err) == (
        1,
        'template parsing error: template: :1:2: executing "" at <.Nope>: '
        "can't evaluate field Nope in type *formatter.imageContext\n",
    )


def test_digests_column(d: Daemon) -> None:
    import_image(d, "dig/app:1")
    rows = table(out(d, "images", "--digests", "dig/app"))
    assert rows[0] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert rows[1][:3] == ["dig/app", "1", "<none>"]


# -- tag and rmi ----------------------------------------------------------------------------


def test_tag_and_untag(d: Daemon) -> None:
    image_id = import_image(d, "tags/src:1")
    out(d, "tag", "tags/src:1", "tags/dst")  # default tag: latest
    out(d, "image", "tag", image_id[7:19], "registry.example:5000/ns/dst:9")
    assert ids(d, "tags/dst:latest") == [image_id]
    assert ids(d, "registry.example:5000/ns/dst:9") == [image_id]
    tags = json.loads(out(d, "image", "inspect", "--format", "{{json .RepoTags}}", image_id))
    assert sorted(tags) == ["registry.example:5000/ns/dst:9", "tags/dst:latest", "tags/src:1"]

    assert out(d, "rmi", "tags/dst") == "Untagged: tags/dst:latest\n"
    assert ids(d, "tags/dst") == []
    assert ids(d, "tags/src:1") == [image_id]  # the image stays while a tag is left


def test_rmi_last_tag_deletes_image_and_layer(d: Daemon) -> None:
    image_id = import_image(d, "rmi/solo:1")
    lines = out(d, "rmi", "rmi/solo:1").splitlines()
    assert lines[0] == "Untagged: rmi/solo:1"
    assert lines[1] == f"Deleted: {image_id}"
    assert len(lines) == 3 and FULL_ID.fullmatch(lines[2].removeprefix("Deleted: "))
    assert image_id not in ids(d, "-a")
    assert fails(d, "image", "inspect", image_id)[2] == (
        f"Error response from daemon: No such image: {image_id}\n"
    )


def test_rmi_by_id_with_several_repositories_needs_force(d: Daemon) -> None:
    image_id = import_image(d, "multi/a:1")
    out(d, "tag", "multi/a:1", "multi/b:1")
    code, _, err = fails(d, "rmi", image_id[7:19])
    assert code == 1
    assert err == (
        f"Error response from daemon: conflict: unable to delete {image_id[7:19]} "
        "(must be forced) - image is referenced in multiple repositories\n"
    )
    assert ids(d, "multi/a") == [image_id]
    lines = out(d, "image", "rm", "-f", image_id[7:19]).splitlines()
    assert sorted(lines[:2]) == ["Untagged: multi/a:1", "Untagged: multi/b:1"]
    assert lines[2] == f"Deleted: {image_id}"
    assert image_id not in ids(d, "-a")


def test_rmi_several_arguments_and_missing_ones(d: Daemon) -> None:
    one = import_image(d, "several/one")
    two = import_image(d, "several/two")
    result = run(d, "rmi", "--no-prune", "several/one", "several/nosuch", "several/two")
    assert result.returncode == 1
    assert (
        result.stderr.decode()
        == "Error response from daemon: No such image: several/nosuch:latest\n"
    )
    stdout = result.stdout.decode()
    assert f"Deleted: {one}" in stdout and f"Deleted: {two}" in stdout
    assert one not in ids(d, "-a") and two not in ids(d, "-a")
    # With -f, images that do not exist are reported but the exit status stays 0.
    three = import_image(d, "several/three")
    result = run(d, "rmi", "-f", "several/nosuch", "several/three")
    assert result.returncode == 0
    assert (
        result.stderr.decode()
        == "Error response from daemon: No such image: several/nosuch:latest\n"
    )
    assert three not in ids(d, "-a")


def test_rmi_tag_that_does_not_exist(d: Daemon) -> None:
    image_id = import_image(d, "notag/app:1")
    code, _, err = fails(d, "rmi", "notag/app:2")
    assert (code, err) == (1, "Error response from daemon: No such image: notag/app:2\n")
    assert ids(d, "notag/app") == [image_id]


# -- inspect and history --------------------------------------------------------------------


def test_image_inspect(d: Daemon) -> None:
    image_id = import_image(d, "insp/app:1", "-c", 'ENTRYPOINT ["/bin/sh", "-c"]', "-c", "ENV A=b")
    docs = json.loads(out(d, "image", "inspect", "insp/app:1"))
    assert len(docs) == 1
    doc = docs[0]
    assert doc["Id"] == image_id and doc["RepoTags"] == ["insp/app:1"]
    assert doc["Config"]["Entrypoint"] == ["/bin/sh", "-c"] and doc["Config"]["Env"] == ["A=b"]
    assert doc["Os"] == "linux" and doc["RootFS"]["Type"] == "layers"
    assert len(doc["RootFS"]["Layers"]) == 1
    assert out(d, "image", "inspect", "--format", "{{.Id}}", "insp/app:1") == image_id + "\n"
    assert out(d, "image", "inspect", "-f", "{{json .Config.Entrypoint}}", image_id[7:15]) == (
        '["/bin/sh","-c"]\n'
    )
    # Several names, one output per image; the top-level `inspect` finds images too.
    two = out(d, "inspect", "--format", "{{.Id}}", "insp/app:1", "busybox").splitlines()
    assert two[0] == image_id and FULL_ID.fullmatch(two[1])
    assert (
        json.loads(out(d, "image", "inspect", "--format", "json", "insp/app:1"))[0]["Id"]
        == image_id
    )


def test_inspect_missing_prints_empty_list_and_fails(d: Daemon) -> None:
    code, stdout, err = fails(d, "image", "inspect", "nosuch")
    assert (code, stdout, err) == (
        1,
        "[]\n",
        "Error response from daemon: No such image: nosuch:latest\n",
    )
    code, stdout, err = fails(d, "inspect", "nosuch")
    assert (code, stdout, err) == (1, "[]\n", "Error: No such object: nosuch\n")
    code, stdout, err = fails(d, "image", "inspect", "--format", "{{.Id}}", "busybox", "nosuch")
    assert code == 1 and FULL_ID.fullmatch(stdout.strip())


def test_inspect_template_errors(d: Daemon) -> None:
    code, _, err = fails(d, "image", "inspect", "--format", "{{.Nope}}", "busybox")
    assert code == 1
    assert 'map has no entry for key "Nope"' in err
    code, _, err = fails(d, "image", "inspect", "--format", "{{", "busybox")
    assert code == 64
    assert err == "template parsing error: template: :1: unclosed action\n"


def test_history(d: Daemon) -> None:
    image_id = import_image(
        d, "hist/app:1", "-m", "hello history", data=make_tar({"f": b"x" * 1000})
    )
    rows = table(out(d, "history", "hist/app:1"))
    assert rows[0] == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert len(rows) == 2
    assert rows[1][0] == image_id[7:19]
    assert rows[1][1].endswith("ago")
    assert rows[1][-2:] == ["1kB", "hello history"]

    raw = table(out(d, "image", "history", "-H=false", "hist/app:1"))
    assert raw[0] == ["IMAGE", "CREATED AT", "CREATED BY", "SIZE", "COMMENT"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", raw[1][1])
    assert raw[1][-2:] == ["1000", "hello history"]

    assert table(out(d, "history", "--no-trunc", "hist/app:1"))[1][0] == image_id
    assert out(d, "history", "-q", "hist/app:1") == image_id[7:19] + "\n"
    assert out(d, "history", "-q", "--no-trunc", "hist/app:1") == image_id + "\n"
    formatted = out(d, "history", "--format", "{{.ID}}|{{.Comment}}", "hist/app:1")
    assert formatted == f"{image_id[7:19]}|hello history\n"
    code, _, err = fails(d, "history", "hist/nosuch")
    assert (code, err) == (1, "Error response from daemon: No such image: hist/nosuch:latest\n")


# -- import -----------------------------------------------------------------------------------


def test_import_from_file_and_stdin(d: Daemon, tmp_path: Path) -> None:
    data = unique_tar()
    path = tmp_path / "layer.tar"
    path.write_bytes(data)
    from_file = out(d, "import", str(path), "imp/file:1").strip()
    from_stdin = out(d, "image", "import", "-", "imp/stdin:1", input=data).strip()
    assert FULL_ID.fullmatch(from_file) and FULL_ID.fullmatch(from_stdin)
    layers = {
        json.dumps(json.loads(out(d, "image", "inspect", "-f", "{{json .RootFS.Layers}}", name)))
        for name in ("imp/file:1", "imp/stdin:1")
    }
    assert len(layers) == 1  # the same tar gives the same layer
    comment = out(d, "image", "inspect", "-f", "{{.Comment}}", "imp/file:1")
    assert comment == "Imported from -\n"
    # A compressed tar is imported as its content.
    gz = tmp_path / "layer.tar.gz"
    gz.write_bytes(gzip.compress(data))
    out(d, "import", str(gz), "imp/gz:1")
    assert out(d, "image", "inspect", "-f", "{{json .RootFS.Layers}}", "imp/gz:1").strip() in layers
    # Without a name the image is dangling.
    untagged = out(d, "import", str(path)).strip()
    assert untagged in ids(d, "-f", "dangling=true")
    out(d, "rmi", untagged)


def test_import_changes_and_message(d: Daemon) -> None:
    import_image(
        d,
        "imp/changes:1",
        "-c", 'CMD ["echo", "hi"]',
        "--change", "ENV A=1 B=two",
        "-c", "WORKDIR /work",
        "-c", "EXPOSE 80/tcp",
        "-c", "USER nobody",
        "-c", "LABEL k=v",
        "-m", "a message",
    )  # fmt: skip
    doc = json.loads(out(d, "image", "inspect", "imp/changes:1"))[0]
    config = doc["Config"]
    assert config["Cmd"] == ["echo", "hi"]
    assert config["Env"] == ["A=1", "B=two"]
    assert config["WorkingDir"] == "/work"
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert config["User"] == "nobody"
    assert config["Labels"] == {"k": "v"}
    assert doc["Comment"] == "a message"
    assert table(out(d, "history", "imp/changes:1"))[1][-1] == "a message"


def test_import_bad_change_stores_nothing(d: Daemon) -> None:
    before = ids(d, "-a")
    code, _, err = fails(d, "import", "-c", "FOO bar", "-", "imp/bad:1", input=unique_tar())
    assert code == 1
    assert err.lower() == "error response from daemon: foo is not a valid change command\n"
    assert ids(d, "-a") == before


def test_import_missing_file(d: Daemon) -> None:
    code, _, err = fails(d, "import", "/nonexistent/x.tar")
    assert (code, err) == (1, "open /nonexistent/x.tar: no such file or directory\n")


# -- save and load --------------------------------------------------------------------------


def _tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def test_save_and_load_round_trip(d: Daemon, tmp_path: Path) -> None:
    one = import_image(d, "saveload/one:1", "-c", "LABEL which=one")
    two = import_image(d, "saveload/two:1")
    archive = tmp_path / "images.tar"
    out(d, "save", "-o", str(archive), "saveload/one:1", "saveload/two:1")
    names = _tar_names(archive.read_bytes())
    assert "manifest.json" in names and "index.json" in names and "oci-layout" in names
    manifest = json.loads(_member(archive.read_bytes(), "manifest.json"))
    assert sorted(tag for m in manifest for tag in m["RepoTags"]) == [
        "saveload/one:1",
        "saveload/two:1",
    ]
    assert not list(tmp_path.glob("*partial*"))

    # To stdout: the same bytes.
    streamed = run(d, "save", "saveload/one:1", "saveload/two:1")
    assert streamed.returncode == 0 and streamed.stdout == archive.read_bytes()

    out(d, "rmi", "saveload/one:1", "saveload/two:1")
    assert one not in ids(d, "-a") and two not in ids(d, "-a")
    loaded = out(d, "load", "-i", str(archive)).splitlines()
    assert sorted(loaded) == ["Loaded image: saveload/one:1", "Loaded image: saveload/two:1"]
    assert ids(d, "saveload/one:1") == [one] and ids(d, "saveload/two:1") == [two]
    labels = out(d, "image", "inspect", "-f", "{{json .Config.Labels}}", "saveload/one:1")
    assert json.loads(labels) == {"which": "one"}

    # Loading again changes nothing and says so the same way.
    again = out(d, "image", "load", input=archive.read_bytes()).splitlines()
    assert sorted(again) == sorted(loaded)
    assert ids(d, "saveload/one:1") == [one]


def _member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def test_load_renames_the_old_image_of_a_tag(d: Daemon, tmp_path: Path) -> None:
    old = import_image(d, "rename/app:1")
    archive = tmp_path / "old.tar"
    out(d, "save", "-o", str(archive), "rename/app:1")
    new = import_image(d, "rename/app:1")
    lines = out(d, "load", "--input", str(archive)).splitlines()
    assert lines == [
        f"The image rename/app:1 already exists, renaming the old one with ID {new} to empty string",
        "Loaded image: rename/app:1",
    ]
    assert ids(d, "rename/app:1") == [old]
    assert new in ids(d, "-f", "dangling=true")


def test_save_by_id_loads_untagged(d: Daemon, tmp_path: Path) -> None:
    image_id = import_image(d, "byid/app:1")
    archive = tmp_path / "byid.tar"
    out(d, "image", "save", "--output", str(archive), image_id[7:19])
    out(d, "rmi", "byid/app:1")
    assert out(d, "load", "-i", str(archive)) == f"Loaded image ID: {image_id}\n"
    assert image_id in ids(d, "-a")
    out(d, "rmi", image_id)


def test_load_reports_ids_only_when_the_last_image_is_untagged(d: Daemon, tmp_path: Path) -> None:
    """moby lists "Loaded image ID" lines (for every image) only when the archive's last
    image has no tag; docker-py counts the loaded images from these lines."""
    untagged = import_image(d, "mixed/untagged:1")
    tagged = import_image(d, "mixed/tagged:1")
    last_tagged, last_untagged = tmp_path / "a.tar", tmp_path / "b.tar"
    out(d, "save", "-o", str(last_tagged), untagged, "mixed/tagged:1")
    out(d, "save", "-o", str(last_untagged), "mixed/tagged:1", untagged)
    out(d, "rmi", "mixed/untagged:1", "mixed/tagged:1")
    assert out(d, "load", "-i", str(last_tagged)) == "Loaded image: mixed/tagged:1\n"
    out(d, "rmi", "mixed/tagged:1", untagged)
    assert out(d, "load", "-i", str(last_untagged)).splitlines() == [
        "Loaded image: mixed/tagged:1",
        f"Loaded image ID: {tagged}",
        f"Loaded image ID: {untagged}",
    ]
    out(d, "rmi", "mixed/tagged:1", untagged)


def test_save_errors(d: Daemon, tmp_path: Path) -> None:
    code, _, err = fails(d, "save", "-o", str(tmp_path / "x.tar"), "busybox", "nosuch")
    assert (code, err) == (1, "Error response from daemon: No such image: nosuch\n")
    assert list(tmp_path.iterdir()) == []
    code, _, err = fails(d, "save", "-o", str(tmp_path / "missing" / "x.tar"), "busybox")
    assert code == 1
    assert err == (
        f'failed to save image: invalid output path: directory "{tmp_path / "missing"}" '
        "does not exist\n"
    )
    code, _, err = fails(d, "save", "-o", str(tmp_path / "x.tar"), "busybox:nosuchtag")
    assert (code, err) == (1, "Error response from daemon: reference does not exist\n")


def test_load_errors(d: Daemon) -> None:
    code, _, err = fails(d, "load", "-i", "/nonexistent.tar")
    assert (code, err) == (1, "open /nonexistent.tar: no such file or directory\n")
    code, _, err = fails(d, "load", input=b"")
    assert (code, err) == (1, "invalid archive: does not contain a manifest.json\n")


# -- prune ----------------------------------------------------------------------------------


def test_prune_dangling(d: Daemon) -> None:
    dangling = import_image(d)
    kept = import_image(d, "prune/kept")
    # Without -f it asks; empty stdin reads as "no".
    result = run(d, "image", "prune", input=b"")
    assert result.returncode == 0
    assert result.stdout.decode() == (
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    )
    assert dangling in ids(d, "-a")
    result = run(d, "image", "prune", input=b"n\n")
    assert result.returncode == 0
    assert dangling in ids(d, "-a")

    lines = out(d, "image", "prune", "-f").splitlines()
    assert lines[0] == "Deleted Images:"
    assert f"deleted: {dangling}" in lines
    assert lines[-2] == ""
    assert re.fullmatch(r"Total reclaimed space: [0-9.]+k?B", lines[-1])
    assert dangling not in ids(d, "-a")
    assert kept in ids(d, "-a")
    # Nothing left to prune.
    assert out(d, "image", "prune", "--force") == "Total reclaimed space: 0B\n"


def test_prune_answer_yes(d: Daemon) -> None:
    dangling = import_image(d)
    result = run(d, "image", "prune", input=b"y\n")
    assert result.returncode == 0
    assert f"deleted: {dangling}" in result.stdout.decode()
    assert dangling not in ids(d, "-a")


def test_prune_all(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    tagged = import_image(d, "pa/one:1")
    dangling = import_image(d)
    result = run(d, "image", "prune", "-a", input=b"")
    assert result.returncode == 0
    assert "remove all images without at least one container" in result.stdout.decode()
    assert set(ids(d, "-a")) == {tagged, dangling}
    lines = out(d, "image", "prune", "-a", "-f").splitlines()
    assert "untagged: pa/one:1" in lines
    assert f"deleted: {tagged}" in lines and f"deleted: {dangling}" in lines
    assert ids(d, "-a") == []
    assert list((d.data_root / "content" / "blobs" / "sha256").iterdir()) == []
    assert list((d.data_root / "snapshots").iterdir()) == []


def test_prune_filter_until_and_label(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    web = import_image(d, None, "-c", "LABEL tier=web")
    db = import_image(d, None, "-c", "LABEL tier=db")
    lines = out(d, "image", "prune", "-f", "--filter", "label=tier=web").splitlines()
    assert f"deleted: {web}" in lines and f"deleted: {db}" not in lines
    assert out(d, "image", "prune", "-f", "--filter", "until=2000-01-01T00:00:00Z") == (
        "Total reclaimed space: 0B\n"
    )
    assert ids(d, "-a") == [db]


# -- system df, version, info ---------------------------------------------------------------


def test_system_df(fresh_daemon: Daemon) -> None:
    d = fresh_daemon
    rows = table(out(d, "system", "df"))
    assert rows[0] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [r[0] for r in rows[1:]] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert rows[1][1:] == ["0", "0", "0B", "0B"]
    import_image(d, "df/one", data=make_tar({"f": b"x" * 2000}))
    import_image(d, "df/two", data=make_tar({"g": b"y" * 3000}))
    rows = table(out(d, "system", "df"))
    assert rows[1] == ["Images", "2", "0", "5kB", "5kB (100%)"]
    formatted = out(d, "system", "df", "--format", "{{.Type}}={{.TotalCount}}").splitlines()
    assert formatted[0] == "Images=2"
    verbose = out(d, "system", "df", "-v")
    assert verbose.startswith("Images space usage:\n")
    assert "df/one" in verbose and "df/two" in verbose


def test_version(d: Daemon) -> None:
    text = out(d, "version")
    assert text.startswith("Client:\n Version:")
    assert " API version:       1.47\n" in text
    assert "\nServer: Dockyard\n Engine:\n" in text
    assert "  API version:      1.47 (minimum version 1.24)\n" in text
    assert out(d, "version", "--format", "{{.Server.ApiVersion}}") == "1.47\n"
    assert out(d, "version", "-f", "{{.Client.Os}}") == "linux\n"


def test_info(d: Daemon) -> None:
    count = len(ids(d, "-a"))
    text = out(d, "info")
    assert f"\n Images: {count}\n" in text
    assert f"\n Dockyard Root Dir: {d.data_root}\n" in text
    assert "\n Storage Driver: overlay2\n" in text
    assert out(d, "info", "--format", "{{.Images}}") == f"{count}\n"
    assert out(d, "system", "info", "-f", "{{.DockerRootDir}}") == f"{d.data_root}\n"


# -- exit codes and usage errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "args,stderr",
    [
        (
            ["images", "--bogus"],
            "unknown flag: --bogus\n\nUsage:  dockyard images [OPTIONS] [REPOSITORY[:TAG]]\n\n"
            "Run 'dockyard images --help' for more information\n",
        ),
        (
            ["image", "ls", "-z"],
            "unknown shorthand flag: 'z' in -z\n\nUsage:  dockyard image ls [OPTIONS] "
            "[REPOSITORY[:TAG]]\n\nRun 'dockyard image ls --help' for more information\n",
        ),
        (
            ["history", "-H=maybe", "busybox"],
            'invalid argument "maybe" for "-H, --human" flag: strconv.ParseBool: parsing '
            '"maybe": invalid syntax\n\nUsage:  dockyard history [OPTIONS] IMAGE\n\n'
            "Run 'dockyard history --help' for more information\n",
        ),
        (
            ["image", "ls", "--filter", "foo"],
            'invalid argument "foo" for "-f, --filter" flag: bad format of filter (expected '
            "name=value)\n\nUsage:  dockyard image ls [OPTIONS] [REPOSITORY[:TAG]]\n\n"
            "Run 'dockyard image ls --help' for more information\n",
        ),
        (
            ["image", "prune", "--filter", "foo"],
            'invalid argument "foo" for "--filter" flag: bad format of filter (expected '
            "name=value)\n\nUsage:  dockyard image prune [OPTIONS]\n\n"
            "Run 'dockyard image prune --help' for more information\n",
        ),
        (
            ["--bogus", "images"],
            "unknown flag: --bogus\n\nUsage:  dockyard [OPTIONS] COMMAND\n\n"
            "Run 'dockyard --help' for more information\n",
        ),
    ],
)
def test_flag_errors_exit_125(d: Daemon, args: list[str], stderr: str) -> None:
    code, stdout, err = fails(d, *args)
    assert (code, stdout, err) == (125, "", stderr)


@pytest.mark.parametrize(
    "args,stderr",
    [
        (
            ["tag", "busybox"],
            "dockyard: 'dockyard tag' requires 2 arguments\n\nUsage:  dockyard tag "
            "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\nRun 'dockyard tag --help' for more information\n",
        ),
        (
            ["rmi"],
            "dockyard: 'dockyard rmi' requires at least 1 argument\n\nUsage:  dockyard rmi "
            "[OPTIONS] IMAGE [IMAGE...]\n\nSee 'dockyard rmi --help' for more information\n",
        ),
        (
            ["images", "a", "b"],
            "dockyard: 'dockyard images' requires at most 1 argument\n\nUsage:  dockyard images "
            "[OPTIONS] [REPOSITORY[:TAG]]\n\nRun 'dockyard images --help' for more information\n",
        ),
        (
            ["image", "prune", "x"],
            "dockyard: 'dockyard image prune' accepts no arguments\n\nUsage:  dockyard image "
            "prune [OPTIONS]\n\nRun 'dockyard image prune --help' for more information\n",
        ),
        (
            ["history"],
            "dockyard: 'dockyard history' requires 1 argument\n\nUsage:  dockyard history "
            "[OPTIONS] IMAGE\n\nRun 'dockyard history --help' for more information\n",
        ),
        (
            ["import"],
            "dockyard: 'dockyard import' requires at least 1 and at most 2 arguments\n\n"
            "Usage:  dockyard import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]\n\n"
            "Run 'dockyard import --help' for more information\n",
        ),
        (
            ["save"],
            "dockyard: 'dockyard save' requires at least 1 argument\n\nUsage:  dockyard save "
            "[OPTIONS] IMAGE [IMAGE...]\n\nSee 'dockyard save --help' for more information\n",
        ),
        (
            ["frobnicate"],
            "dockyard: unknown command: dockyard frobnicate\n\n"
            "Run 'dockyard --help' for more information\n",
        ),
        (
            ["image", "frobnicate"],
            "dockyard: unknown command: dockyard image frobnicate\n\nUsage:  dockyard image\n\n"
            "Run 'dockyard image --help' for more information\n",
        ),
    ],
)
def test_usage_errors_exit_1(d: Daemon, args: list[str], stderr: str) -> None:
    code, stdout, err = fails(d, *args)
    assert (code, stdout, err) == (1, "", stderr)


def test_help_exits_0(d: Daemon) -> None:
    text = out(d, "images", "--help")
    assert text.startswith("Usage:  dockyard images [OPTIONS] [REPOSITORY[:TAG]]\n")
    assert "--no-trunc" in text and "--digests" in text
    assert "Commands:" in out(d, "image")
    assert "Management Commands:" in out(d, "--help")


def test_save_and_load_refuse_a_terminal(d: Daemon) -> None:
    """Archives are not written to a terminal, and a terminal on stdin is not an archive."""
    import pty

    primary, secondary = pty.openpty()
    try:
        save = subprocess.run(
            [str(VENV_BIN / "dockyard"), "save", "busybox"],
            env=d.env(),
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        assert save.returncode == 1
        assert save.stderr.decode() == (
            "cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
        )
        load = subprocess.run(
            [str(VENV_BIN / "dockyard"), "load"],
            env=d.env(),
            stdin=secondary,
            capture_output=True,
            timeout=60,
        )
        assert load.returncode == 1
        assert load.stderr.decode() == "requested load from stdin, but stdin is empty\n"
    finally:
        os.close(primary)
        os.close(secondary)


def test_filter_errors_from_the_daemon(d: Daemon) -> None:
    code, _, err = fails(d, "images", "--filter", "bogus=1")
    assert (code, err) == (1, "Error response from daemon: invalid filter 'bogus'\n")
    code, _, err = fails(d, "images", "--filter", "dangling=maybe")
    assert code == 1 and err.startswith("Error response from daemon: invalid filter 'dangling=")
    code, _, err = fails(d, "image", "prune", "-f", "--filter", "until=1h", "--filter", "until=2h")
    assert (code, err) == (1, "Error response from daemon: more than one until filter specified\n")
    code, _, err = fails(d, "image", "prune", "-f", "--filter", "until=xyz")
    assert code == 1 and "failed to parse value as time or duration" in err
    assert "busybox" in out(d, "images", "--format", "table")
