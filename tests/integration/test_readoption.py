"""Containers outlive the daemon (DESIGN principle 5): a daemon killed with SIGKILL leaves its
containers running under their shims, their logs growing; a new daemon on the same data-root
and exec-root re-adopts them (same PIDs, no log line lost), records what exited while it was
away, keeps supervising restart policies, and starts what their policies say when it starts.
Also the vfs storage driver through a whole lifecycle, mounts and all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import (
    VENV_BIN,
    Daemon,
    mounts_under,
    needs_root,
    processes_under,
    start_daemon,
    stop_daemon,
)

TICKER = 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'


def pinged(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def launch(base: Path, *extra: str) -> Daemon:
    """start_daemon, with extra daemon flags, and ready only once it answers (a killed
    daemon leaves its socket file behind)."""
    stale = base / "exec" / "dockyard.sock"
    if stale.exists() and not pinged(stale):
        stale.unlink()
    if not extra:
        daemon = start_daemon(base)
    else:
        data_root, exec_root = base / "data", base / "exec"
        log = open(base / "dockyardd.log", "ab")  # noqa: SIM115 - lives as long as the daemon
        args = ["--data-root", str(data_root), "--exec-root", str(exec_root)]
        process = subprocess.Popen(
            [str(VENV_BIN / "dockyardd"), *args, "-H", f"unix://{stale}", *extra],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        daemon = Daemon(base, data_root, exec_root, stale, process)
    deadline = time.monotonic() + 30
    while not pinged(daemon.socket):
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            daemon.process.kill()
            raise AssertionError((base / "dockyardd.log").read_text())
        time.sleep(0.02)
    return daemon


@dataclass
class Life:
    """The daemons of one test on one data-root: `kill` one, `restart` the next."""

    base: Path
    daemon: Daemon
    flags: tuple[str, ...] = ()

    def kill(self) -> None:
        os.kill(self.daemon.process.pid, signal.SIGKILL)
        self.daemon.process.wait()

    def restart(self) -> None:
        self.daemon = launch(self.base, *self.flags)

    def graceful_restart(self) -> None:
        stop_daemon(self.daemon)  # and nothing it started is left
        self.restart()


def _life(busybox_tar: Path, *flags: str) -> Iterator[Life]:
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="dockyard-readopt-"))
    life = Life(base, launch(base, *flags), flags)
    try:
        life.daemon.dockyard("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield life
    finally:
        try:
            if life.daemon.process.poll() is not None and (
                processes_under(base) or mounts_under(base)
            ):
                life.restart()  # killed with containers left: a new daemon re-adopts and ends them
            stop_daemon(life.daemon)
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def life(busybox_tar: Path) -> Iterator[Life]:
    yield from _life(busybox_tar)


@pytest.fixture
def vfs_life(busybox_tar: Path) -> Iterator[Life]:
    yield from _life(busybox_tar, "--storage-driver", "vfs")


def out(daemon: Daemon, *args: str) -> str:
    return daemon.dockyard(*args).stdout.decode()


def state(daemon: Daemon, ref: str) -> dict:
    return json.loads(out(daemon, "inspect", "-f", "{{json .State}}", ref))


def restart_count(daemon: Daemon, ref: str) -> int:
    return int(out(daemon, "inspect", "-f", "{{.RestartCount}}", ref))


def wait_until(check: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def parent_cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def log_lines(path: str) -> int:
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def ticks(daemon: Daemon, ref: str) -> list[int]:
    return [int(line.split()[1]) for line in out(daemon, "logs", ref).splitlines()]


def parse_time(stamp: str) -> datetime:
    """RFC 3339 with up to nanoseconds (fromisoformat takes at most microseconds)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6].ljust(6, '0')}+00:00")


def container_mounts(base: Path, cid: str) -> list[str]:
    return [m for m in mounts_under(base) if cid in m]


# -- a killed daemon, then a new one ---------------------------------------------------------------
def test_running_containers_outlive_a_killed_daemon_and_are_readopted(life: Life) -> None:
    d = life.daemon
    ids = [out(d, "run", "-d", "busybox", "sh", "-c", TICKER).strip() for _ in range(2)]
    pids = {cid: state(d, cid)["Pid"] for cid in ids}
    paths = {cid: out(d, "inspect", "-f", "{{.LogPath}}", cid).strip() for cid in ids}
    wait_until(lambda: all(log_lines(paths[c]) >= 3 for c in ids), what="first ticks")

    life.kill()
    for cid in ids:
        assert alive(pids[cid]), "a container died with the daemon"
        assert "dockyard.runtime.zygote" in parent_cmdline(pids[cid])  # its shim holds it
        assert container_mounts(life.base, cid)
    before = {cid: log_lines(paths[cid]) for cid in ids}
    time.sleep(1.2)
    for cid in ids:
        assert log_lines(paths[cid]) >= before[cid] + 3, "the log stopped with the daemon"

    life.restart()
    d = life.daemon
    listed = out(d, "ps", "--no-trunc", "--format", "{{.ID}} {{.Status}}").splitlines()
    assert sorted(line.split()[0] for line in listed) == sorted(ids)
    assert all(line.split()[1] == "Up" for line in listed), listed
    for cid in ids:
        st = state(d, cid)
        assert (st["Status"], st["Running"], st["Pid"]) == ("running", True, pids[cid])
        got = ticks(d, cid)
        assert got == list(range(len(got))), "log lines were lost or repeated"
        assert len(got) >= before[cid] + 3
    # The new daemon follows them: stop stops them and it learns of their exits.
    assert out(d, "stop", "-t", "1", *ids).split() == ids
    for cid in ids:
        st = state(d, cid)
        assert (st["Status"], st["Running"], st["ExitCode"]) == ("exited", False, 137)
        assert not alive(pids[cid])
        assert not container_mounts(life.base, cid), "the rootfs stayed mounted"
        got = ticks(d, cid)
        assert got == list(range(len(got)))
    out(d, "rm", *ids)


def test_a_container_that_exits_while_the_daemon_is_down(life: Life) -> None:
    d = life.daemon
    script = "echo started; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo bye; exit 7"
    cid = out(d, "run", "-d", "busybox", "sh", "-c", script).strip()
    pid = state(d, cid)["Pid"]
    wait_until(lambda: "started" in out(d, "logs", cid), what="started")
    started_at = parse_time(state(d, cid)["StartedAt"])

    life.kill()
    before_exit = datetime.now(UTC)
    Path(f"/proc/{pid}/root/tmp/go").touch()  # let it exit now, with no daemon to see it
    wait_until(lambda: not alive(pid), what="the exit")
    after_exit = datetime.now(UTC)
    time.sleep(0.5)

    restarted_at = datetime.now(UTC)
    life.restart()
    d = life.daemon
    st = state(d, cid)
    assert (st["Status"], st["Running"], st["Pid"], st["ExitCode"]) == ("exited", False, 0, 7)
    finished = parse_time(st["FinishedAt"])
    # When it exited (recorded by its shim as it reaped it), not when the new daemon noticed
    # (the shim may stamp it a moment after the process is gone from /proc).
    assert before_exit <= finished <= after_exit + timedelta(seconds=0.3), (finished, after_exit)
    assert finished < restarted_at
    assert parse_time(st["StartedAt"]) == started_at
    assert not container_mounts(life.base, cid), "the rootfs of an exited container is mounted"
    assert not (life.base / "exec" / "containers" / cid).exists()  # the shim's leftovers went
    assert out(d, "wait", cid) == "7\n"
    assert out(d, "logs", cid) == "started\nbye\n"
    assert "Exited (7)" in out(d, "ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}")
    # It starts again as any exited container does (the file it made is still in its layer).
    out(d, "start", cid)
    assert out(d, "wait", cid) == "7\n"
    assert out(d, "logs", cid) == "started\nbye\nstarted\nbye\n"
    out(d, "rm", cid)
    assert not container_mounts(life.base, cid)


def test_restart_always_containers_stay_supervised(life: Life) -> None:
    d = life.daemon
    # Exits (3) whenever /tmp/stop appears, removing it first, so each run waits anew.
    script = "echo run; while [ ! -e /tmp/stop ]; do sleep 0.05; done; rm /tmp/stop; exit 3"
    flaky = out(d, "run", "-d", "--restart", "always", "busybox", "sh", "-c", script).strip()
    steady = out(d, "run", "-d", "--restart", "always", "busybox", "sh", "-c", TICKER).strip()
    flaky_pid = state(d, flaky)["Pid"]
    steady_pid = state(d, steady)["Pid"]
    wait_until(lambda: "run" in out(d, "logs", flaky), what="first run")

    life.kill()
    Path(f"/proc/{flaky_pid}/root/tmp/stop").touch()
    wait_until(lambda: not alive(flaky_pid), what="exit while down")
    time.sleep(0.5)  # nobody restarts it while there is no daemon
    assert alive(steady_pid)

    life.restart()
    d = life.daemon
    # What exited while the daemon was down is restarted by its policy...
    wait_until(lambda: state(d, flaky)["Running"], what="flaky restarted")
    assert restart_count(d, flaky) >= 1
    new_pid = state(d, flaky)["Pid"]
    assert new_pid != flaky_pid
    # ...and what was re-adopted is supervised too: its death is seen and it is restarted.
    assert state(d, steady)["Pid"] == steady_pid and restart_count(d, steady) == 0
    os.kill(steady_pid, signal.SIGKILL)
    wait_until(
        lambda: restart_count(d, steady) == 1 and state(d, steady)["Running"],
        what="steady restarted",
    )
    assert state(d, steady)["Pid"] != steady_pid
    count = restart_count(d, flaky)
    wait_until(lambda: "run" in out(d, "logs", flaky).split("\n", count)[-1], what="new run")
    Path(f"/proc/{new_pid}/root/tmp/stop").touch()
    wait_until(
        lambda: restart_count(d, flaky) == count + 1 and state(d, flaky)["Running"],
        what="flaky restarted again",
    )
    # A user's stop still stops them for good.
    out(d, "stop", "-t", "1", flaky, steady)
    time.sleep(1)
    for cid in (flaky, steady):
        assert state(d, cid)["Status"] == "exited"
    out(d, "rm", flaky, steady)


def test_restart_policies_when_the_daemon_starts(life: Life) -> None:
    """docker's restore: containers that ran are started again when their policy says so."""
    d = life.daemon
    run = ["run", "-d", "--stop-timeout", "1", "--name"]
    for name, policy in [
        ("always-up", "always"),
        ("always-stopped", "always"),
        ("unless-up", "unless-stopped"),
        ("unless-stopped", "unless-stopped"),
        ("onfail-up", "on-failure:3"),
        ("no-up", "no"),
    ]:
        out(d, *run, name, "--restart", policy, "busybox", "sleep", "1000")
    out(d, *run, "always-failing", "--restart", "always", "busybox", "sh", "-c", "exit 1")
    out(d, "create", "--name", "never-started", "--restart", "always", "busybox")
    out(d, "stop", "-t", "1", "always-stopped", "unless-stopped")
    wait_until(lambda: restart_count(d, "always-failing") >= 2, what="back-off")

    life.graceful_restart()  # stops them all: no process or mount may be left
    d = life.daemon
    expected_up = {"always-up", "always-stopped", "unless-up", "onfail-up"}
    wait_until(lambda: all(state(d, n)["Running"] for n in expected_up), what="policy starts")
    wait_until(lambda: restart_count(d, "always-failing") >= 3, what="always-failing again")
    for name in ("unless-stopped", "no-up"):
        assert state(d, name)["Status"] == "exited", name
    assert state(d, "never-started")["Status"] == "created"
    # A user's stop of an unless-stopped container is remembered across a second restart too,
    # and a start clears it.
    out(d, "start", "unless-stopped")
    out(d, "stop", "-t", "1", "unless-up")
    life.graceful_restart()
    d = life.daemon
    wait_until(lambda: state(d, "unless-stopped")["Running"], what="unless-stopped started")
    assert state(d, "unless-up")["Status"] == "exited"
    # The daemon's final stop (the fixture's) must leave nothing, back-off included.


# -- the vfs driver --------------------------------------------------------------------------------
def test_vfs_driver_lifecycle_and_readoption(vfs_life: Life) -> None:
    life = vfs_life
    d = life.daemon
    assert "Storage Driver: vfs" in out(d, "info")
    cid = out(d, "run", "-d", "busybox", "sh", "-c", "echo data > /kept; " + TICKER).strip()
    assert out(d, "inspect", "-f", "{{.Driver}}", cid) == "vfs\n"
    pid = state(d, cid)["Pid"]
    wait_until(lambda: Path(f"/proc/{pid}/root/kept").exists(), what="file written")
    assert out(d, "ps", "-s", "--filter", f"id={cid}", "--format", "{{.Size}}").startswith("5B ")
    out(d, "stop", "-t", "1", cid)
    assert not container_mounts(life.base, cid)
    out(d, "start", cid)
    assert state(d, cid)["Running"]
    cat = out(d, "run", "--rm", "busybox", "sh", "-c", "cat /kept 2>&1; true")
    assert "No such file" in cat  # another container does not see it

    pid = state(d, cid)["Pid"]

    life.kill()  # re-adoption works the same on vfs
    assert alive(pid)
    life.restart()
    d = life.daemon
    st = state(d, cid)
    assert (st["Running"], st["Pid"]) == (True, pid)
    assert Path(f"/proc/{pid}/root/kept").read_text() == "data\n"
    out(d, "stop", "-t", "1", cid)
    assert not container_mounts(life.base, cid)
    out(d, "run", "--rm", "busybox", "true")
    snapshots = sorted(os.listdir(life.base / "data" / "snapshots"))
    out(d, "rm", cid)
    assert len(os.listdir(life.base / "data" / "snapshots")) == len(snapshots) - 1
    assert not mounts_under(life.base)
