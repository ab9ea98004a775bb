"""The real docker CLI and docker-py on a container's files and figures through our daemon:
cp (both ways, symlinks that point outside the container), export, diff, commit, top, stats,
container prune, system df and info.

Expected texts are docker's (moby daemon/archive*.go, commit.go, top_unix.go, prune.go; the
docker CLI's cp/commit/top/stats/prune commands), checked against a dockerd peer.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import Daemon

from .conftest import failed, table

ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def unique() -> str:
    return uuid.uuid4().hex[:10]


def out(daemon: Daemon, *args: str) -> str:
    return daemon.docker(*args).stdout.decode()


@pytest.fixture(scope="module")
def passwd(busybox_tar: Path) -> bytes:
    """busybox's /etc/passwd (the container's, as opposed to the host's)."""
    with tarfile.open(busybox_tar) as tar:
        extracted = tar.extractfile("etc/passwd")
        assert extracted is not None
        return extracted.read()


@pytest.fixture
def containers(daemon: Daemon) -> Iterator[list[str]]:
    """Names the test creates containers under; they are removed afterwards."""
    names: list[str] = []
    yield names
    if names:
        daemon.docker("rm", "-f", *names, check=False)


def start(daemon: Daemon, names: list[str], script: str = "", *flags: str) -> str:
    """A running busybox container (sleeping) that ran `script` first."""
    name = "cf-" + unique()
    names.append(name)
    marker = f"/dev/shm/.ready-{name}"  # a tmpfs: no change of the container's root
    command = f"touch {marker}; sleep 1000"
    daemon.docker(
        "run", "-d", "--name", name, *flags, "busybox", "sh", "-c",
        f"{script}; {command}" if script else command,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while daemon.docker("exec", name, "test", "-f", marker, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the container's script did not finish"
        time.sleep(0.05)
    daemon.docker("exec", name, "rm", marker)
    return name


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def member_data(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None
        return extracted.read()


def host_mounts(container_id: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if container_id in line]


# -- cp ----------------------------------------------------------------------------------------
def test_cp_from_container(
    daemon: Daemon, containers: list[str], tmp_path: Path, passwd: bytes
) -> None:
    c = start(daemon, containers, "mkdir -p /d/sub; echo f > /d/f; echo s > /d/sub/s; ln -s f /d/l")
    result = daemon.docker("cp", f"{c}:/etc/passwd", str(tmp_path))
    assert result.stdout == b"" and result.stderr == b""  # quiet: no terminal
    assert (tmp_path / "passwd").read_bytes() == passwd
    daemon.docker("cp", f"{c}:/d", str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "f").read_text() == "f\n"
    assert (tmp_path / "copy" / "sub" / "s").read_text() == "s\n"
    assert os.readlink(tmp_path / "copy" / "l") == "f"
    daemon.docker("cp", f"{c}:/d/.", str(tmp_path / "contents"))
    assert sorted(os.listdir(tmp_path / "contents")) == ["f", "l", "sub"]
    daemon.docker("cp", f"{c}:/d/f", str(tmp_path / "renamed"))
    assert (tmp_path / "renamed").read_text() == "f\n"
    # `-`: the tar as the daemon sends it, named after the path's base name
    names = [m.name for m in members(daemon.docker("cp", f"{c}:/d", "-").stdout)]
    assert names == ["d", "d/f", "d/l", "d/sub", "d/sub/s"]  # Go's WalkDir order
    names = [m.name for m in members(daemon.docker("cp", f"{c}:/d/.", "-").stdout)]
    assert names == [".", "./f", "./l", "./sub", "./sub/s"]
    [member] = members(daemon.docker("cp", f"{c}:/d/f", "-").stdout)
    assert (member.name, member.size, member.uname, member.mode) == ("f", 2, "", 0o644)


def test_cp_to_container(daemon: Daemon, containers: list[str], tmp_path: Path) -> None:
    c = start(daemon, containers)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("a\n")
    (src / "sub" / "b").write_text("b\n")
    os.chown(src / "a", 1234, 5678)
    daemon.docker("cp", str(src), f"{c}:/new")
    daemon.docker("cp", str(src / "a"), f"{c}:/tmp/renamed")
    daemon.docker("cp", f"{src}/.", f"{c}:/tmp")
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        info = tarfile.TarInfo("from-stdin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"in\n"))
    daemon.docker("cp", "-", f"{c}:/tmp", input=stream.getvalue())
    listing = out(
        daemon,
        "exec",
        c,
        "sh",
        "-c",
        "cat /new/a /new/sub/b /tmp/renamed /tmp/a /tmp/sub/b /tmp/from-stdin;"
        " stat -c '%u:%g' /new/a",
    )
    assert listing == "a\nb\na\na\nb\nin\n1234:5678\n"  # owners come from the tar, as docker's


def test_cp_archive_mode_takes_the_container_user(
    daemon: Daemon, containers: list[str], tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("f\n")
    os.chown(tmp_path / "f", 1234, 5678)
    c = start(daemon, containers, "", "--user", "nobody")
    daemon.docker("cp", "-a", str(tmp_path / "f"), f"{c}:/tmp/archived")
    daemon.docker("cp", str(tmp_path / "f"), f"{c}:/tmp/plain")
    owners = out(daemon, "exec", c, "stat", "-c", "%n %u:%g", "/tmp/archived", "/tmp/plain")
    assert owners == "/tmp/archived 65534:65534\n/tmp/plain 1234:5678\n"
    name = "cf-" + unique()
    containers.append(name)
    daemon.docker("create", "--name", name, "--user", "nosuchuser:nosuchgroup", "busybox")
    err = failed(daemon.docker("cp", "-a", str(tmp_path / "f"), f"{name}:/tmp/", check=False))
    assert err == (
        'Error response from daemon: failed to look up user "nosuchuser" in container: '
        "no matching entries in passwd file\n"
    )


def test_cp_errors(daemon: Daemon, containers: list[str], tmp_path: Path) -> None:
    c = start(daemon, containers, "mkdir /d; echo f > /d/f")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    err = failed(daemon.docker("cp", f"{c}:/nosuch", str(tmp_path), check=False))
    assert err == f"Error response from daemon: Could not find the file /nosuch in container {c}\n"
    err = failed(daemon.docker("cp", str(tmp_path / "file"), f"{c}:/d/f/x", check=False))
    assert err == "Error response from daemon: extraction point is not a directory\n"
    err = failed(daemon.docker("cp", str(tmp_path / "dir"), f"{c}:/d/f", check=False))
    assert err.endswith("cannot copy directory\n")
    err = failed(daemon.docker("cp", "-", f"{c}:/d/f", input=b"", check=False))
    assert err == f'destination "{c}:/d/f" must be a directory\n'
    result = daemon.docker("cp", str(tmp_path / "file"), "nosuch-container:/x", check=False)
    assert "No such container: nosuch-container" in failed(result)
    api = docker.APIClient(base_url=daemon.host)
    try:
        with pytest.raises(docker.errors.APIError) as exc:
            api.get_archive(c, "")
        assert exc.value.response.status_code == 400
        assert "bad parameter: path cannot be empty" in exc.value.explanation
    finally:
        api.close()


def test_cp_symlinks_pointing_outside_stay_in_the_container(
    daemon: Daemon, containers: list[str], tmp_path: Path, passwd: bytes
) -> None:
    """Links in the container are followed inside its root: the host's files are neither
    read nor written, whatever the link says (absolute, or climbing with ..)."""
    host = tmp_path / "host"
    host.mkdir()
    secret = host / "secret"
    secret.write_text("host secret\n")
    before = sorted(os.listdir(host)), secret.stat().st_mtime_ns
    c = start(
        daemon,
        containers,
        f"ln -s {host} /hostlink; ln -s /etc /etclink;"
        f" ln -s ../../../../../../{str(host).lstrip('/')} /tmp/up",
    )
    # reading through the links: the container's files or nothing, never the host's
    for path in ("/hostlink/secret", "/tmp/up/secret"):
        err = failed(daemon.docker("cp", f"{c}:{path}", "-", check=False))
        assert f"Could not find the file {path} in container {c}" in err
    assert daemon.docker("cp", "-L", f"{c}:/etclink", str(tmp_path / "etc")).returncode == 0
    assert (tmp_path / "etc" / "passwd").read_bytes() == passwd
    data = daemon.docker("cp", f"{c}:/etclink/passwd", "-").stdout
    assert member_data(data, "passwd") == passwd
    # the stat header reports the link's target resolved inside the container
    api = docker.APIClient(base_url=daemon.host)
    try:
        assert api.get_archive(c, "/tmp/up")[1]["linkTarget"] == str(host)
        stat = api.get_archive(c, "/etclink")[1]
        assert (stat["name"], stat["linkTarget"], stat["mode"] & 0o777) == (
            "etclink",
            "/etc",
            0o777,
        )
        assert stat["mode"] & (1 << 27)  # Go's os.ModeSymlink
        # writing through them: into the container
        (tmp_path / "payload").write_text("payload\n")
        daemon.docker("cp", str(tmp_path / "payload"), f"{c}:/etclink/")
        assert out(daemon, "exec", c, "cat", "/etc/payload") == "payload\n"
        assert not os.path.exists("/etc/payload")
        assert failed(
            daemon.docker("cp", str(tmp_path / "payload"), f"{c}:/hostlink/", check=False)
        )
        # a hostile tar: a link to the host directory, then a file through it; and names
        # that climb out of the destination
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w") as tar:
            link = tarfile.TarInfo("lnk")
            link.type, link.linkname = tarfile.SYMTYPE, str(host)
            tar.addfile(link)
            data = b"pwned\n"
            for name in ("lnk/pwned", "lnk/secret"):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        assert api.put_archive(c, "/tmp", stream.getvalue())
        assert out(daemon, "exec", c, "cat", f"/tmp{host}/pwned") == "pwned\n"
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w") as tar:
            info = tarfile.TarInfo("../../../../../../" + str(secret).lstrip("/"))
            info.size = 3
            tar.addfile(info, io.BytesIO(b"no\n"))
        with pytest.raises(docker.errors.APIError) as exc:
            api.put_archive(c, "/tmp", stream.getvalue())
        assert "invalid entry name" in exc.value.explanation
    finally:
        api.close()
    assert (sorted(os.listdir(host)), secret.stat().st_mtime_ns) == before
    assert secret.read_text() == "host secret\n"


def test_cp_with_a_stopped_container(daemon: Daemon, containers: list[str], tmp_path: Path) -> None:
    """A container that does not run has its root mounted for the copy, and unmounted after."""
    name = "cf-" + unique()
    containers.append(name)
    cid = out(daemon, "create", "--name", name, "busybox", "cat", "/copied").strip()
    (tmp_path / "copied").write_text("copied in\n")
    daemon.docker("cp", str(tmp_path / "copied"), f"{name}:/")
    assert host_mounts(cid) == []
    daemon.docker("cp", f"{name}:/copied", str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "copied in\n"
    assert host_mounts(cid) == []
    assert out(daemon, "start", "-a", name) == "copied in\n"
    assert host_mounts(cid) == []


# -- export, diff ------------------------------------------------------------------------------
def test_export(daemon: Daemon, containers: list[str], tmp_path: Path) -> None:
    c = start(daemon, containers, "echo hi > /exported; rm /etc/group")
    names = (
        subprocess.run(
            f"docker export {c} | tar t",
            shell=True,
            env=daemon.env(),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .splitlines()
    )
    assert "bin/busybox" in names and "exported" in names and "etc/passwd" in names
    assert "etc/group" not in names  # the merged view: what the container sees
    assert not any(n.startswith(("/", "./")) for n in names)
    assert daemon.docker("export", "-o", str(tmp_path / "fs.tar"), c).stdout == b""
    with tarfile.open(tmp_path / "fs.tar") as tar:
        assert tar.extractfile("exported").read() == b"hi\n"  # type: ignore[union-attr]
    assert (tmp_path / "fs.tar").stat().st_mode & 0o777 == 0o600
    err = failed(daemon.docker("export", "nosuch-container", check=False))
    assert err == "Error response from daemon: No such container: nosuch-container\n"


def test_diff(daemon: Daemon, containers: list[str]) -> None:
    c = start(
        daemon,
        containers,
        "mkdir -p /new/sub; echo x > /new/sub/f; rm /etc/group; echo changed >> /etc/passwd",
    )
    lines = out(daemon, "diff", c).splitlines()
    for expected in (
        "A /new",
        "A /new/sub",
        "A /new/sub/f",
        "C /etc",
        "C /etc/passwd",
        "D /etc/group",
    ):
        assert expected in lines
    assert lines.index("A /new") < lines.index("A /new/sub/f")
    api = docker.APIClient(base_url=daemon.host)
    try:
        kinds = {c["Path"]: c["Kind"] for c in api.diff(c)}
        assert (kinds["/etc/passwd"], kinds["/new"], kinds["/etc/group"]) == (0, 1, 2)
    finally:
        api.close()
    name = "cf-" + unique()
    containers.append(name)
    daemon.docker("create", "--name", name, "busybox")
    assert out(daemon, "diff", name) == ""


# -- commit ------------------------------------------------------------------------------------
def test_commit_run_and_history(cleanup: Daemon, containers: list[str]) -> None:
    daemon = cleanup
    c = start(daemon, containers, "echo committed > /committed")
    tag = f"cf-commit-{unique()}:v1"
    image_id = out(
        daemon,
        "commit",
        "-a",
        "Ann <ann@example.com>",
        "-m",
        "the message",
        "-c",
        "ENV GREETING=hello",
        "-c",
        'CMD ["cat", "/committed"]',
        c,
        tag,
    ).strip()
    assert ID.match(image_id)
    assert out(daemon, "run", "--rm", tag) == "committed\n"
    assert out(daemon, "run", "--rm", tag, "sh", "-c", "echo $GREETING") == "hello\n"
    info = json.loads(out(daemon, "image", "inspect", tag))[0]
    busybox = json.loads(out(daemon, "image", "inspect", "busybox"))[0]
    assert info["Id"] == image_id
    assert info["Parent"] == busybox["Id"]
    assert (info["Author"], info["Comment"]) == ("Ann <ann@example.com>", "the message")
    assert info["Config"]["Cmd"] == ["cat", "/committed"]
    assert "GREETING=hello" in info["Config"]["Env"]
    assert info["RootFS"]["Layers"][:-1] == busybox["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == len(busybox["RootFS"]["Layers"]) + 1
    rows = table(daemon.docker("history", "--no-trunc", tag).stdout)
    assert rows[0][:1] == ["IMAGE"]
    assert rows[1][0] == image_id
    assert rows[1][2].startswith("sh -c echo committed > /committed")
    assert rows[1][-1] == "the message"
    assert rows[2][0] == busybox["Id"]
    # a child of the committed image makes it undeletable
    second = f"cf-commit-{unique()}:v2"
    run = "cf-" + unique()
    containers.append(run)
    daemon.docker("run", "-d", "--name", run, tag, "sleep", "1000")
    out(daemon, "commit", run, second)
    err = failed(daemon.docker("rmi", image_id, check=False))
    assert (
        f"unable to delete {image_id[7:19]} (cannot be forced) - image has dependent child" in err
    )


def test_commit_pause_and_empty_changes(cleanup: Daemon, containers: list[str]) -> None:
    daemon = cleanup
    busybox = json.loads(out(daemon, "image", "inspect", "busybox"))[0]
    # a container that only ran changed nothing: the mount points of /etc/hosts… are the
    # init layer's in docker, not the container's
    c = start(daemon, containers)
    assert out(daemon, "diff", c) == ""
    image_id = out(daemon, "commit", "--pause=false", c).strip()
    rows = json.loads(out(daemon, "history", "--format", "{{json .}}", image_id).splitlines()[0])
    assert rows["Size"] == "0B"
    info = json.loads(out(daemon, "image", "inspect", image_id))[0]
    assert info["RootFS"]["Layers"] == busybox["RootFS"]["Layers"]  # an empty layer: none
    assert out(daemon, "inspect", "-f", "{{.State.Status}}", c) == "running\n"
    daemon.docker("exec", c, "touch", "/etc/new")
    assert out(daemon, "diff", c) == "C /etc\nA /etc/new\n"
    daemon.docker("pause", c)
    try:
        image_id = out(daemon, "commit", c).strip()  # a paused container stays paused
        assert out(daemon, "inspect", "-f", "{{.State.Status}}", c) == "paused\n"
    finally:
        daemon.docker("unpause", c)
    saved = daemon.docker("save", image_id).stdout
    manifest = json.loads(member_data(saved, "manifest.json"))
    top = member_data(saved, manifest[0]["Layers"][-1])
    assert [(m.name, m.type) for m in members(top)] == [
        ("etc", tarfile.DIRTYPE),
        ("etc/new", tarfile.REGTYPE),
    ]
    err = failed(daemon.docker("commit", "nosuch-container", check=False))
    assert err == "Error response from daemon: No such container: nosuch-container\n"


# -- top, stats --------------------------------------------------------------------------------
def test_top(daemon: Daemon, containers: list[str]) -> None:
    c = start(daemon, containers)
    rows = table(daemon.docker("top", c).stdout)
    assert rows[0] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert [r[-1] for r in rows[1:]] == ["sleep 1000"]
    pid = out(daemon, "inspect", "-f", "{{.State.Pid}}", c).strip()
    assert rows[1][1] == pid
    rows = table(daemon.docker("top", c, "-o", "pid,comm").stdout)
    assert rows == [["PID", "COMMAND"], [pid, "sleep"]]
    name = "cf-" + unique()
    containers.append(name)
    cid = out(daemon, "create", "--name", name, "busybox").strip()
    err = failed(daemon.docker("top", name, check=False))
    assert err == f"Error response from daemon: container {cid} is not running\n"


def test_stats_no_stream(daemon: Daemon, containers: list[str]) -> None:
    c = start(daemon, containers)
    rows = table(daemon.docker("stats", "--no-stream", c).stdout)
    assert rows[0] == [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]
    cid = out(daemon, "inspect", "-f", "{{.Id}}", c).strip()
    assert rows[1][:2] == [cid[:12], c]
    assert re.match(r"^\d+\.\d\d%$", rows[1][2])
    assert re.match(r"^[\d.]+[KMG]?i?B / [\d.]+[KMG]iB$", rows[1][3])
    assert rows[1][-1] == "1"
    row = json.loads(out(daemon, "stats", "--no-stream", "--format", "{{json .}}", c))
    assert (row["Name"], row["PIDs"], row["NetIO"]) == (c, "1", "0B / 0B")
    api = docker.APIClient(base_url=daemon.host)
    try:
        doc = api.stats(c, stream=False)
        for key in (
            "read",
            "preread",
            "pids_stats",
            "cpu_stats",
            "precpu_stats",
            "memory_stats",
            "blkio_stats",
            "networks",
        ):
            assert key in doc
        assert doc["name"] == "/" + c and doc["id"] == cid
        assert doc["preread"] < doc["read"]
        assert doc["cpu_stats"]["online_cpus"] >= 1
        assert doc["cpu_stats"]["system_cpu_usage"] > doc["precpu_stats"]["system_cpu_usage"]
        assert doc["memory_stats"]["limit"] > 0 and doc["pids_stats"]["current"] == 1
        one = api.stats(c, stream=False, one_shot=True)
        assert one["preread"] == "0001-01-01T00:00:00Z"
        stream = api.stats(c, stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["preread"] == first["read"]
        assert second["precpu_stats"] == first["cpu_stats"]
        stream.close()
    finally:
        api.close()
    name = "cf-" + unique()
    containers.append(name)
    daemon.docker("create", "--name", name, "busybox")
    rows = table(daemon.docker("stats", "--no-stream", name).stdout)
    assert rows[1][1:] == [name, "0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"]
    err = failed(daemon.docker("stats", "--no-stream", "nosuch-container", check=False))
    assert "No such container: nosuch-container" in err


# -- prune, system df, info --------------------------------------------------------------------
def test_container_prune_with_filters(daemon: Daemon, containers: list[str]) -> None:
    label = f"cf-prune={unique()}"
    ids = []
    for _ in range(2):
        name = "cf-" + unique()
        containers.append(name)
        ids.append(out(daemon, "create", "--name", name, "--label", label, "busybox").strip())
    running = start(daemon, containers, "true", "--label", label)
    result = daemon.docker(
        "container", "prune", "-f", "--filter", f"label={label}", "--filter", "until=1h"
    )
    assert result.stdout == b"Total reclaimed space: 0B\n"  # created within the hour
    result = daemon.docker("container", "prune", "-f", "--filter", f"label={label}")
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "Deleted Containers:"
    assert sorted(lines[1:3]) == sorted(ids) and lines[3] == ""
    assert lines[4].startswith("Total reclaimed space: ")
    assert out(daemon, "ps", "-aq", "--filter", f"label={label}").split() == [
        out(daemon, "inspect", "-f", "{{.Id}}", running).strip()[:12]
    ]
    err = failed(daemon.docker("container", "prune", "-f", "--filter", "foo=bar", check=False))
    assert err == "Error response from daemon: invalid filter 'foo'\n"
    err = failed(
        daemon.docker(
            "container", "prune", "-f", "--filter", "until=1h", "--filter", "until=2h", check=False
        )
    )
    assert err == "Error response from daemon: more than one until filter specified\n"
    result = daemon.docker("container", "prune", input=b"n\n")
    assert result.stdout == (
        b"WARNING! This will remove all stopped containers.\n"
        b"Are you sure you want to continue? [y/N] "
    )


def test_prune_df_and_info_on_a_daemon_of_its_own(fresh_daemon: Daemon, busybox_tar: Path) -> None:
    d = fresh_daemon
    d.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    stopped = out(d, "create", "busybox", "sh", "-c", "echo x > /written").strip()
    d.docker("start", "-a", stopped)
    running = out(d, "run", "-d", "busybox", "sleep", "1000").strip()
    info = json.loads(out(d, "info", "--format", "{{json .}}"))
    assert (info["Containers"], info["ContainersRunning"], info["ContainersStopped"]) == (2, 1, 1)
    assert info["ContainersPaused"] == 0
    d.docker("pause", running)
    info = json.loads(out(d, "info", "--format", "{{json .}}"))
    assert (info["ContainersRunning"], info["ContainersPaused"]) == (0, 1)
    d.docker("unpause", running)
    rows = table(d.docker("system", "df").stdout)
    assert rows[1][:3] == ["Images", "1", "1"]
    assert rows[2][:3] == ["Containers", "2", "1"]
    verbose = d.docker("system", "df", "-v").stdout.decode()
    assert stopped[:12] in verbose and running[:12] in verbose
    api = docker.APIClient(base_url=d.host)
    try:
        df = api.df()
        sizes = {c["Id"]: c["SizeRw"] for c in df["Containers"]}
        assert sizes[stopped] > 0 and running in sizes
        assert all("SizeRootFs" in c for c in df["Containers"])
        assert df["Images"][0]["Containers"] == 2
        report = api.prune_containers()
        assert report["ContainersDeleted"] == [stopped]
        assert report["SpaceReclaimed"] == sizes[stopped]
        assert api.prune_containers() == {"ContainersDeleted": None, "SpaceReclaimed": 0}
    finally:
        api.close()
    d.docker("rm", "-f", running)


def test_docker_py_container_files(cleanup: Daemon, containers: list[str]) -> None:
    daemon = cleanup
    c = start(daemon, containers, "echo hi > /hi")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        container = client.containers.get(c)
        bits, stat = container.get_archive("/hi")
        assert stat["name"] == "hi" and stat["size"] == 3 and stat["mode"] == 0o644
        assert member_data(b"".join(bits), "hi") == b"hi\n"
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w") as tar:
            info = tarfile.TarInfo("put")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"put\n"))
        assert container.put_archive("/tmp", stream.getvalue()) is True
        assert container.exec_run("cat /tmp/put").output == b"put\n"
        assert {"Path": "/tmp/put", "Kind": 1} in container.diff()
        assert "bin/busybox" in [m.name for m in members(b"".join(container.export()))]
        assert container.top()["Titles"][:2] == ["UID", "PID"]
        image = container.commit(
            "cf-py-" + unique(),
            "v1",
            message="m",
            author="a",
            changes=["LABEL x=y"],
            conf={"Env": ["Z=1"]},
        )
        assert image.attrs["Config"]["Labels"] == {"x": "y"}
        assert image.attrs["Config"]["Env"] == ["Z=1"]
        assert image.attrs["Comment"] == "m" and image.attrs["Author"] == "a"
        assert client.containers.run(image.id, "cat /hi /tmp/put", remove=True) == b"hi\nput\n"
    finally:
        client.close()
