"""The pure parts of cp/diff/commit/top/stats: moby's config merge, the init-layer filter,
ps parsing, and the docker CLI's cp path decisions and stats arithmetic."""

from __future__ import annotations

import io
import tarfile

import pytest

from dockyard.cli.commands import container_files as cli
from dockyard.cli.commands import copy as cp
from dockyard.engine.commit import filter_tar, go_config, merge
from dockyard.engine.container_files import is_init_path, without_init_paths
from dockyard.engine.container_stats import empty_stats, parse_ps
from dockyard.engine.container_store import Container, new_state
from dockyard.errors import DockyardError
from dockyard.snapshot.changes import Change


# -- commit ------------------------------------------------------------------------------------
def test_merge_fills_what_the_user_left_empty() -> None:
    user = {"Env": ["A=user"], "Cmd": None, "Labels": None, "ExposedPorts": {"80/tcp": {}}}
    image = {
        "User": "nobody",
        "Env": ["A=image", "B=image"],
        "Cmd": ["sh"],
        "Entrypoint": ["/init"],
        "Labels": {"x": "image", "y": "image"},
        "ExposedPorts": {"443/tcp": {}},
        "WorkingDir": "/w",
        "StopSignal": "SIGINT",
        "Healthcheck": {"Test": ["CMD", "true"], "Retries": 3},
    }
    merge(user, image)
    assert user["User"] == "nobody"
    assert user["Env"] == ["A=user", "B=image"]
    assert (user["Cmd"], user["Entrypoint"]) == (["sh"], ["/init"])
    assert user["Labels"] == {"x": "image", "y": "image"}
    assert user["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert (user["WorkingDir"], user["StopSignal"]) == ("/w", "SIGINT")
    assert user["Healthcheck"] == {"Test": ["CMD", "true"], "Retries": 3}
    user = {"Entrypoint": ["/mine"], "Labels": {"x": "user"}}
    merge(user, image)
    assert (user["Entrypoint"], user.get("Cmd")) == (["/mine"], None)  # no image Cmd then
    assert user["Labels"] == {"x": "user", "y": "image"}


def test_go_config_has_go_s_fields_in_order() -> None:
    config = go_config({"Cmd": ["sh"], "Labels": {}, "StopTimeout": 0, "Image": "busybox"})
    assert list(config) == [
        "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
        "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes", "WorkingDir",
        "Entrypoint", "OnBuild", "Labels", "StopTimeout",
    ]  # fmt: skip
    assert config["Env"] is None and config["StopTimeout"] == 0


def _layer(*names: str) -> bytes:
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(name)
                tar.addfile(info, io.BytesIO(name.encode()))
    return stream.getvalue()


@pytest.mark.parametrize(
    ("names", "kept"),
    [
        (["etc/", "etc/hostname", "etc/hosts", "etc/resolv.conf"], []),
        (["etc/", "etc/hosts", "etc/new", "tmp/", "tmp/x"], ["etc", "etc/new", "tmp", "tmp/x"]),
        (["dev/", "dev/console", "dev/pts/", "etc/", "etc/a"], ["etc", "etc/a"]),
        ([".dockerenv", "proc/", "sys/", "x"], ["x"]),
    ],
)
def test_filter_tar_leaves_the_init_layer_out(names: list[str], kept: list[str]) -> None:
    out = io.BytesIO()
    filter_tar(io.BytesIO(_layer(*names)), out, is_init_path)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getnames() == kept
        for member in tar:
            if member.isfile():
                assert tar.extractfile(member).read() == member.name.encode()  # type: ignore[union-attr]


def test_without_init_paths() -> None:
    changes = [
        Change("C", "/etc"),
        Change("A", "/etc/hostname"),
        Change("A", "/etc/hosts"),
        Change("A", "/new"),
    ]
    assert without_init_paths(changes) == [Change("A", "/new")]
    changes.append(Change("A", "/etc/new"))
    assert without_init_paths(changes) == [
        Change("C", "/etc"),
        Change("A", "/new"),
        Change("A", "/etc/new"),
    ]
    assert without_init_paths([Change("D", "/etc/hosts")]) == []


# -- top, stats --------------------------------------------------------------------------------
PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 09:50 ?        00:00:01 /sbin/init
root         500     400  0 12:12 ?        00:00:00 sleep 1000
root         501     500  0 12:12 ?        00:00:00 sh -c echo a  b
"""


def test_parse_ps_keeps_the_container_s_processes() -> None:
    result = parse_ps(PS, [500, 501])
    assert result["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert result["Processes"] == [
        ["root", "500", "400", "0", "12:12", "?", "00:00:00", "sleep 1000"],
        ["root", "501", "500", "0", "12:12", "?", "00:00:00", "sh -c echo a b"],
    ]
    threads = "PID TID CMD\n500 - sleep\n- 7 x\n1 - init\n- 8 y\n"
    assert parse_ps(threads, [500])["Processes"] == [["500", "-", "sleep"], ["-", "7", "x"]]
    with pytest.raises(DockyardError, match="Couldn't find PID field in ps output"):
        parse_ps("USER CMD\nroot x\n", [1])


def _container(name: str = "c1") -> Container:
    return Container("a" * 64, name, "sha256:" + "b" * 64, "2026-01-01T00:00:00Z",
                     {"State": new_state(), "Config": {}, "HostConfig": {}})  # fmt: skip


def test_empty_stats_are_docker_s() -> None:
    doc = empty_stats(_container())
    assert list(doc) == [
        "read", "preread", "pids_stats", "blkio_stats", "num_procs", "storage_stats",
        "cpu_stats", "precpu_stats", "memory_stats", "name", "id",
    ]  # fmt: skip
    assert doc["read"] == "0001-01-01T00:00:00Z" and doc["name"] == "/c1"
    assert doc["blkio_stats"]["io_service_bytes_recursive"] is None


def test_stats_row() -> None:
    doc = {
        "id": "f" * 64,
        "name": "/web",
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000,
                      "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000},
        "memory_stats": {"usage": 10 << 20, "limit": 100 << 20,
                         "stats": {"total_inactive_file": 2 << 20}},
        "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096},
                                                       {"op": "Write", "value": 8192}]},
        "pids_stats": {"current": 3},
    }  # fmt: skip
    assert cli.stats_row("web", doc, trunc=True) == {
        "Container": "web",
        "Name": "web",
        "ID": "f" * 12,
        "CPUPerc": "40.00%",
        "MemUsage": "8MiB / 100MiB",
        "MemPerc": "8.00%",
        "NetIO": "1.5kB / 500B",
        "BlockIO": "4.1kB / 8.19kB",
        "PIDs": "3",
    }
    empty = cli.stats_row("x", empty_stats(_container("x")), trunc=True)
    assert (empty["MemUsage"], empty["CPUPerc"], empty["PIDs"]) == ("0B / 0B", "0.00%", "0")


# -- the CLI's cp decisions --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("c:/etc", ("c", "/etc")),
        ("/abs:x", ("", "/abs:x")),
        ("./file:x", ("", "./file:x")),
        ("file", ("", "file")),
        ("c:", ("c", "")),
    ],
)
def test_split_cp_arg(arg: str, expected: tuple[str, str]) -> None:
    assert cp.split_cp_arg(arg) == expected


def test_prepare_archive_copy() -> None:
    src_dir = cp.CopyInfo("/src/d", True, True)
    src_file = cp.CopyInfo("/src/f", True, False)
    assert cp.prepare_archive_copy(src_file, cp.CopyInfo("/dst", True, True)) == ("/dst", None)
    assert cp.prepare_archive_copy(src_file, cp.CopyInfo("/dst/g", True)) == ("/dst", "g")
    assert cp.prepare_archive_copy(src_dir, cp.CopyInfo("/dst/new")) == ("/dst", "new")
    assert cp.prepare_archive_copy(src_file, cp.CopyInfo("/dst/new")) == ("/dst", "new")
    with pytest.raises(cp.CLIError, match="cannot copy directory"):
        cp.prepare_archive_copy(src_dir, cp.CopyInfo("/dst/g", True))
    with pytest.raises(cp.CLIError, match="no such directory"):
        cp.prepare_archive_copy(src_file, cp.CopyInfo("/dst/new/"))


def test_get_rebase_name() -> None:
    assert cp.get_rebase_name("/a/link", "/etc") == ("/etc", "link")
    assert cp.get_rebase_name("/a/link/", "/etc") == ("/etc/", "link")
    assert cp.get_rebase_name("/a/link/.", "/etc") == ("/etc/.", "")
    assert cp.get_rebase_name("/a/etc", "/etc") == ("/etc", "")
