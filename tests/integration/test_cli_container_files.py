"""Our CLI's cp, export, diff, commit, top, stats and container prune against our daemon.

The client side of `cp` is checked as the daemon side is: what the daemon sends is extracted
inside the destination only, whatever its names and symlinks say.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import pty
import re
import socketserver
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, Daemon


def unique() -> str:
    return uuid.uuid4().hex[:10]


def out(daemon: Daemon, *args: str, input: bytes | None = None) -> str:
    return daemon.dockyard(*args, input=input).stdout.decode()


def failed(result: subprocess.CompletedProcess[bytes], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stderr.decode()


def rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]


@pytest.fixture
def containers(daemon: Daemon) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    if names:
        daemon.dockyard("rm", "-f", *names, check=False)


@pytest.fixture
def images(daemon: Daemon) -> Iterator[list[str]]:
    refs: list[str] = []
    yield refs
    for ref in reversed(refs):
        daemon.dockyard("rmi", ref, check=False)


def start(daemon: Daemon, names: list[str], script: str = "", *flags: str) -> str:
    """A running busybox container (sleeping) that ran `script` first."""
    name = "cfi-" + unique()
    names.append(name)
    marker = f"/dev/shm/.ready-{name}"  # a tmpfs: no change of the container's root
    command = f"touch {marker}; sleep 1000"
    daemon.dockyard(
        "run", "-d", "--name", name, *flags, "busybox", "sh", "-c",
        f"{script}; {command}" if script else command,
    )  # fmt: skip
    wait = f"i=0; while [ ! -e {marker} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
    daemon.dockyard("exec", name, "sh", "-c", wait)
    return name


def test_cp_both_ways(daemon: Daemon, containers: list[str], tmp_path: Path) -> None:
    c = start(daemon, containers, "mkdir -p /d/sub; echo f > /d/f; echo s > /d/sub/s; ln -s f /d/l")
    result = daemon.dockyard("cp", f"{c}:/d", str(tmp_path / "d"))
    assert result.stdout == b"" and result.stderr == b""
    assert (tmp_path / "d" / "sub" / "s").read_text() == "s\n"
    assert os.readlink(tmp_path / "d" / "l") == "f"
    daemon.dockyard("cp", f"{c}:/d/.", str(tmp_path / "dot"))
    assert sorted(os.listdir(tmp_path / "dot")) == ["f", "l", "sub"]
    daemon.dockyard("cp", f"{c}:/d/f", str(tmp_path / "f-renamed"))
    assert (tmp_path / "f-renamed").read_text() == "f\n"
    with tarfile.open(fileobj=io.BytesIO(daemon.dockyard("cp", f"{c}:/d", "-").stdout)) as tar:
        assert tar.getnames() == ["d", "d/f", "d/l", "d/sub", "d/sub/s"]
    # -L: the link's target, under the link's name
    daemon.dockyard("cp", "-L", f"{c}:/d/l", str(tmp_path / "followed"))
    assert (tmp_path / "followed").read_text() == "f\n"
    daemon.dockyard("cp", f"{c}:/d/l", str(tmp_path / "link"))
    assert os.readlink(tmp_path / "link") == "f"

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("a\n")
    (src / "sub" / "b").write_text("b\n")
    daemon.dockyard("cp", str(src), f"{c}:/new")
    daemon.dockyard("cp", str(src / "a"), f"{c}:/tmp/renamed")
    daemon.dockyard("cp", f"{src}/.", f"{c}:/d")
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        info = tarfile.TarInfo("stdin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"in\n"))
    daemon.dockyard("cp", "-", f"{c}:/tmp", input=stream.getvalue())
    text = out(
        daemon, "exec", c, "cat", "/new/a", "/new/sub/b", "/tmp/renamed", "/d/a", "/tmp/stdin"
    )
    assert text == "a\nb\na\na\nin\n"


def test_cp_errors_and_usage(daemon: Daemon, containers: list[str], tmp_path: Path) -> None:
    c = start(daemon, containers, "mkdir /d; echo f > /d/f")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    err = failed(daemon.dockyard("cp", f"{c}:/nosuch", str(tmp_path), check=False))
    assert err == f"Error response from daemon: Could not find the file /nosuch in container {c}\n"
    err = failed(daemon.dockyard("cp", str(tmp_path / "file"), f"{c}:/d/f/x", check=False))
    assert err == "Error response from daemon: extraction point is not a directory\n"
    err = failed(daemon.dockyard("cp", str(tmp_path / "dir"), f"{c}:/d/f", check=False))
    assert err == "cannot copy directory\n"
    err = failed(daemon.dockyard("cp", str(tmp_path / "file"), f"{c}:/nosuch/", check=False))
    assert err == "no such directory\n"
    err = failed(daemon.dockyard("cp", "-", f"{c}:/d/f", check=False))
    assert err == f'destination "{c}:/d/f" must be a directory\n'
    err = failed(daemon.dockyard("cp", f"{c}:/d/f", str(tmp_path / "none" / "x"), check=False))
    assert err == f'invalid output path: directory "{tmp_path / "none"}" does not exist\n'
    assert failed(daemon.dockyard("cp", "a", "b", check=False)) == (
        "must specify at least one container source\n"
    )
    assert failed(daemon.dockyard("cp", "x:/a", "y:/b", check=False)) == (
        "copying between containers is not supported\n"
    )
    err = failed(daemon.dockyard("cp", "only-one", check=False), 1)
    assert err.startswith("dockyard: 'dockyard cp' requires 2 arguments\n")


def test_cp_into_a_destination_holding_a_link_to_the_host(
    daemon: Daemon, containers: list[str], tmp_path: Path
) -> None:
    """A directory of the archive meeting a symlink in the destination is refused (docker's
    NoOverwriteDirNonDir): nothing is written where the link points."""
    host = tmp_path / "host"
    host.mkdir()
    c = start(daemon, containers, "mkdir -p /d/x; echo pwn > /d/x/file")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(host), dest / "x")
    err = failed(daemon.dockyard("cp", f"{c}:/d/.", str(dest), check=False))
    assert err == f'cannot overwrite non-directory "x" with directory "{dest}"\n'
    assert os.listdir(host) == []


class _FakeDaemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _hostile_tar(host: Path) -> bytes:
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w") as tar:
        top = tarfile.TarInfo("x")
        top.type = tarfile.DIRTYPE
        tar.addfile(top)
        link = tarfile.TarInfo("x/link")
        link.type, link.linkname = tarfile.SYMTYPE, str(host)
        tar.addfile(link)
        for name in ("x/link/pwned", "x/../../../../../../" + str(host).lstrip("/") + "/up"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"pwn\n"))
    return stream.getvalue()


def test_cp_extracts_a_hostile_answer_inside_the_destination(tmp_path: Path) -> None:
    """What a daemon sends cannot write outside the destination: a symlink to a host path
    is followed inside the destination, a name climbing out is refused."""
    host = tmp_path / "host"
    host.mkdir()
    body = _hostile_tar(host)
    stat = base64.b64encode(
        json.dumps(
            {"name": "x", "size": 0, "mode": 2147484141, "mtime": "", "linkTarget": ""}
        ).encode()
    ).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self) -> str:
            return "fake"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("X-Docker-Container-Path-Stat", stat)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    socket_path = tmp_path / "fake.sock"
    server = _FakeDaemon(str(socket_path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dest = tmp_path / "dest"
        dest.mkdir()
        env = dict(os.environ, DOCKYARD_HOST=f"unix://{socket_path}")
        result = subprocess.run(
            [str(VENV_BIN / "dockyard"), "cp", "c:/x", str(dest)],
            env=env,
            capture_output=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1
    assert b"invalid entry name" in result.stderr
    assert os.listdir(host) == []
    assert (dest / str(host).lstrip("/") / "pwned").read_bytes() == b"pwn\n"  # in dest


def test_export_diff_and_terminal_refusal(
    daemon: Daemon, containers: list[str], tmp_path: Path
) -> None:
    c = start(daemon, containers, "echo hi > /exported; rm /etc/group; mkdir /newdir")
    exported = daemon.dockyard("export", c).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        names = tar.getnames()
    assert "exported" in names and "bin/busybox" in names and "etc/group" not in names
    daemon.dockyard("export", "-o", str(tmp_path / "fs.tar"), c)
    assert (tmp_path / "fs.tar").stat().st_size == len(exported)
    assert out(daemon, "diff", c).splitlines() == [
        "C /etc",
        "D /etc/group",
        "A /exported",
        "A /newdir",
    ]
    # stdout a terminal: refused, as docker does
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(daemon.env())
        os.execv(str(VENV_BIN / "dockyard"), ["dockyard", "export", c])
    output = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        output += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"cowardly refusing to save to a terminal. Use the -o flag or redirect" in output


def test_commit_and_history(daemon: Daemon, containers: list[str], images: list[str]) -> None:
    c = start(daemon, containers, "echo committed > /committed")
    ref = f"cfi-{unique()}:v1"
    images.append(ref)
    image_id = out(daemon, "commit", "-a", "Ann", "-m", "msg", "-c", "ENV X=1", c, ref).strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    assert (
        out(daemon, "run", "--rm", ref, "sh", "-c", "cat /committed; echo $X") == "committed\n1\n"
    )
    history = rows(out(daemon, "history", ref))
    assert history[1][0] == image_id[7:19] and history[1][-1] == "msg"
    assert history[1][2].startswith("sh -c echo committed > /committed")
    info = json.loads(out(daemon, "image", "inspect", ref))[0]
    assert (info["Author"], info["Comment"]) == ("Ann", "msg")
    err = failed(daemon.dockyard("commit", c, "Bad:Ref", check=False))
    assert "invalid reference format" in err
    err = failed(daemon.dockyard("commit", "nosuch-container", check=False))
    assert err == "Error response from daemon: No such container: nosuch-container\n"
    second = out(daemon, "commit", "-p=false", c).strip()
    images.append(second)
    assert out(daemon, "inspect", "-f", "{{.State.Status}}", c) == "running\n"


def test_top_and_stats(daemon: Daemon, containers: list[str]) -> None:
    c = start(daemon, containers)
    table = rows(out(daemon, "top", c))
    assert table[0] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert table[1][-1] == "sleep 1000"
    assert rows(out(daemon, "top", c, "-o", "pid,comm"))[1][1] == "sleep"
    stats = rows(out(daemon, "stats", "--no-stream", c))
    assert stats[0] == [
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O",
        "PIDS",
    ]  # fmt: skip
    assert stats[1][1] == c and stats[1][-1] == "1"
    row = json.loads(out(daemon, "stats", "--no-stream", "--format", "{{json .}}", c))
    assert row["Name"] == c and row["PIDs"] == "1"
    err = failed(daemon.dockyard("stats", "--no-stream", "nosuch-container", check=False))
    assert err == "Error response from daemon: No such container: nosuch-container\n"
    name = "cfi-" + unique()
    containers.append(name)
    cid = out(daemon, "create", "--name", name, "busybox").strip()
    err = failed(daemon.dockyard("top", name, check=False))
    assert err == f"Error response from daemon: container {cid} is not running\n"


def test_container_prune(daemon: Daemon, containers: list[str]) -> None:
    label = f"cfi-prune={unique()}"
    ids = []
    for _ in range(2):
        name = "cfi-" + unique()
        containers.append(name)
        ids.append(out(daemon, "create", "--name", name, "--label", label, "busybox").strip())
    answer = daemon.dockyard("container", "prune", "--filter", f"label={label}", input=b"n\n")
    assert answer.stdout == (
        b"WARNING! This will remove all stopped containers.\n"
        b"Are you sure you want to continue? [y/N] "
    )
    text = out(daemon, "container", "prune", "-f", "--filter", f"label={label}")
    lines = text.splitlines()
    assert lines[0] == "Deleted Containers:" and sorted(lines[1:3]) == sorted(ids)
    assert lines[3:] == ["", "Total reclaimed space: 0B"]
    assert out(daemon, "container", "prune", "-f", "--filter", f"label={label}") == (
        "Total reclaimed space: 0B\n"
    )
    err = failed(daemon.dockyard("container", "prune", "-f", "--filter", "nope=1", check=False))
    assert err == "Error response from daemon: invalid filter 'nope'\n"


def test_commit_keeps_a_symlink_that_climbs_above_the_root(daemon: Daemon) -> None:
    """A container may make `../../etc/passwd`-style links; docker commits them (they are
    resolved inside the root anyway), so we do too."""
    name, image = unique(), f"climb/{unique()}:1"
    out(daemon, "run", "--name", name, "busybox", "ln", "-s", "../../etc/passwd", "/tmp/pw")
    try:
        out(daemon, "commit", name, image)
        assert out(daemon, "run", "--rm", image, "readlink", "/tmp/pw") == "../../etc/passwd\n"
        assert out(daemon, "run", "--rm", image, "head", "-c", "5", "/tmp/pw") == "root:"
    finally:
        daemon.dockyard("rm", "-f", name, check=False)
        daemon.dockyard("rmi", image, check=False)
