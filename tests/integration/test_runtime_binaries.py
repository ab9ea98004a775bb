"""`--runtime runc|crun`: the same containers under an installed OCI runtime, driven by the shim
(runtime/oci_binary.py), through the whole lifecycle: output and exit codes, a pty, detached
runs with stop and logs, exec, pause, an OOM kill, and re-adoption after the daemon is killed.
Root only; CI installs runc and crun (.ci/run), so these run there. Each test checks that the
runtime's state and the container's cgroups are gone afterwards."""

from __future__ import annotations

import glob
import json
import os
import pty
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.runtime import oci_binary
from tests.conftest import VENV_BIN, Daemon, needs_root, stop_daemon
from tests.integration.test_api import assert_json_error, call
from tests.integration.test_readoption import Life, launch

RUNTIMES = ["runc", "crun"]
TICKER = 'echo started; trap "echo bye; exit 0" TERM; while true; do sleep 0.1; done'


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    needs_root()
    if not oci_binary.find(request.param):
        pytest.skip(f"{request.param} is not installed (apt-get install {request.param})")
    return str(request.param)


@pytest.fixture
def made(daemon: Daemon) -> Iterator[list[str]]:
    """Containers the test made: removed afterwards, and checked to have left nothing."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        daemon.dockyard("rm", "-f", cid, check=False)
    for cid in ids:
        assert_clean(daemon.exec_root, cid)


def assert_clean(exec_root: Path, cid: str) -> None:
    def leftovers() -> list[str]:
        state = glob.glob(f"{exec_root}/runtime-*/{cid}*")
        cgroups = glob.glob(f"/sys/fs/cgroup/*/dockyard/{cid}")
        return state + cgroups

    wait_until(lambda: not leftovers(), what=lambda: f"leftovers {leftovers()}")


def wait_until(check: Callable[[], bool], timeout: float = 20, what: object = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


def out(daemon: Daemon, *args: str) -> str:
    return daemon.dockyard(*args).stdout.decode()


def inspect(daemon: Daemon, ref: str, template: str) -> str:
    return out(daemon, "inspect", "-f", template, ref).strip()


def create(daemon: Daemon, made: list[str], runtime: str, *args: str) -> str:
    cid = out(daemon, "create", "--runtime", runtime, *args).strip()
    made.append(cid)
    return cid


# -- what the daemon knows -------------------------------------------------------------------------
def test_info_lists_the_runtimes_and_create_refuses_unknown_ones(daemon: Daemon) -> None:
    needs_root()
    reply = call(daemon, "GET", "/info")
    info = reply.json()
    assert isinstance(info, dict)
    assert reply.status == 200 and info["DefaultRuntime"] == "dockyard"
    assert info["Runtimes"]["dockyard"]["path"].endswith("dockyard-runtime")
    for name in RUNTIMES:
        if oci_binary.find(name):
            assert info["Runtimes"][name] == {"path": oci_binary.find(name)}
    body = {"Image": "busybox", "HostConfig": {"Runtime": "nosuch"}}
    reply = call(daemon, "POST", "/containers/create", json.dumps(body).encode())
    assert_json_error(reply, 400, "unknown or invalid runtime name: nosuch")
    result = daemon.dockyard("run", "--rm", "--runtime", "nosuch", "busybox", "true", check=False)
    assert result.returncode == 125
    assert b"unknown or invalid runtime name: nosuch" in result.stderr
    if shutil.which("docker"):
        result = daemon.docker("run", "--rm", "--runtime", "nosuch", "busybox", "true", check=False)
        assert result.returncode == 125
        assert b"unknown or invalid runtime name: nosuch" in result.stderr


def test_the_default_runtime_is_filled_in(daemon: Daemon, made: list[str]) -> None:
    needs_root()
    cid = out(daemon, "create", "busybox", "true").strip()
    made.append(cid)
    assert inspect(daemon, cid, "{{.HostConfig.Runtime}}") == "dockyard"


# -- each runtime ----------------------------------------------------------------------------------
def test_run_output_and_exit_codes(daemon: Daemon, runtime: str) -> None:
    result = daemon.dockyard("run", "--rm", "--runtime", runtime, "busybox", "echo", "hi")
    assert (result.returncode, result.stdout) == (0, b"hi\n")
    for command, code in ((["true"], 0), (["sh", "-c", "exit 3"], 3), (["nosuch"], 127)):
        result = daemon.dockyard(
            "run", "--rm", "--runtime", runtime, "busybox", *command, check=False
        )
        assert result.returncode == code, (command, result.stderr)
    assert b"nosuch" in result.stderr and b"not found" in result.stderr
    if shutil.which("docker"):  # the docker CLI's --runtime too
        args = ("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", "echo hi; exit 3")
        result = daemon.docker(*args, check=False)
        assert (result.returncode, result.stdout) == (3, b"hi\n")
    wait_empty(daemon.exec_root / f"runtime-{runtime}")


def wait_empty(path: Path) -> bool:
    wait_until(lambda: not os.listdir(path), what=lambda: f"{path}: {os.listdir(path)}")
    return True


def test_tty(daemon: Daemon, runtime: str) -> None:
    """`run -t` under a pty: the container's stdio is a terminal the runtime made."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [
            *(str(VENV_BIN / "dockyard"), "run", "--rm", "-t", "--runtime", runtime),
            *("busybox", "sh", "-c", "tty; echo tty-ok"),
        ],
        env=daemon.env(),
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
    )
    os.close(secondary)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if select.select([primary], [], [], 0.5)[0]:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # EIO: the CLI and its terminal are gone
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=30) == 0, output
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = output.replace(b"\r", b"").decode().split("\n")
    assert lines[0] == "/dev/pts/0", output
    assert "tty-ok" in lines, output


def test_detached_stop_and_logs(daemon: Daemon, made: list[str], runtime: str) -> None:
    cid = create(daemon, made, runtime, "busybox", "sh", "-c", TICKER)
    out(daemon, "start", cid)
    state = json.loads(inspect(daemon, cid, "{{json .State}}"))
    assert state["Running"] and state["Pid"] > 0
    wait_until(lambda: out(daemon, "logs", cid) == "started\n", what="output")
    assert inspect(daemon, cid, "{{.HostConfig.Runtime}}") == runtime
    assert os.path.isdir(daemon.exec_root / f"runtime-{runtime}" / cid)  # its own state
    assert out(daemon, "stop", "-t", "5", cid) == f"{cid}\n"
    state = json.loads(inspect(daemon, cid, "{{json .State}}"))
    assert (state["Status"], state["ExitCode"], state["OOMKilled"]) == ("exited", 0, False)
    assert out(daemon, "logs", cid) == "started\nbye\n"
    assert_clean(daemon.exec_root, cid)


def test_exec_and_its_exit_code(daemon: Daemon, made: list[str], runtime: str) -> None:
    cid = create(daemon, made, runtime, "busybox", "sh", "-c", TICKER)
    out(daemon, "start", cid)
    result = daemon.dockyard("exec", cid, "sh", "-c", "echo in-exec; id -u; exit 5", check=False)
    assert (result.returncode, result.stdout) == (5, b"in-exec\n0\n")
    result = daemon.dockyard("exec", "-u", "nobody", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd")
    assert result.stdout == b"65534\n/tmp\n"
    result = daemon.dockyard("exec", "-i", cid, "cat", input=b"through stdin\n")
    assert result.stdout == b"through stdin\n"
    result = daemon.dockyard("exec", cid, "nosuch", check=False)
    assert result.returncode == 127 and b"nosuch" in result.stdout + result.stderr
    assert out(daemon, "top", cid).count("\n") >= 2  # pids from the container's cgroup
    daemon.dockyard("rm", "-f", cid)


def test_pause_and_unpause(daemon: Daemon, made: list[str], runtime: str) -> None:
    script = 'i=0; while true; do i=$((i+1)); echo "$i" > /tmp/counter; sleep 0.05; done'
    cid = create(daemon, made, runtime, "busybox", "sh", "-c", script)
    out(daemon, "start", cid)
    pid = int(inspect(daemon, cid, "{{.State.Pid}}"))
    counter = Path(f"/proc/{pid}/root/tmp/counter")

    def value() -> int:
        text = counter.read_text().strip() if counter.exists() else ""
        return int(text) if text else -1

    wait_until(lambda: value() > 2, what="ticking")
    assert out(daemon, "pause", cid) == f"{cid}\n"
    assert inspect(daemon, cid, "{{.State.Status}} {{.State.Paused}}") == "paused true"
    frozen = value()
    time.sleep(0.5)
    assert value() == frozen
    assert out(daemon, "unpause", cid) == f"{cid}\n"
    wait_until(lambda: value() > frozen + 2, what="ticking again")
    assert inspect(daemon, cid, "{{.State.Status}}") == "running"
    daemon.dockyard("pause", cid)
    assert out(daemon, "stop", "-t", "1", cid) == f"{cid}\n"  # a paused container stops too
    assert inspect(daemon, cid, "{{.State.ExitCode}}") == "137"


def test_memory_limit_oom_kill(daemon: Daemon, made: list[str], runtime: str) -> None:
    hog = 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo ${#x}'
    cid = create(daemon, made, runtime, "--memory", "16m", "busybox", "sh", "-c", hog)
    result = daemon.dockyard("start", "-a", cid, check=False)
    assert result.returncode == 137, result.stderr
    assert inspect(daemon, cid, "{{.State.ExitCode}} {{.State.OOMKilled}}") == "137 true"


# -- a killed daemon -------------------------------------------------------------------------------
@pytest.fixture
def life(busybox_tar: Path) -> Iterator[Life]:
    needs_root()
    base = Path(tempfile.mkdtemp(prefix="dockyard-rt-"))
    life = Life(base, launch(base))
    try:
        life.daemon.dockyard("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield life
    finally:
        try:
            if life.daemon.process.poll() is not None:
                life.restart()  # a new daemon re-adopts what is left and stops it
            stop_daemon(life.daemon)
        finally:
            shutil.rmtree(base, ignore_errors=True)


WAITER = "echo waiting; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo going; exit 7"


def release(pid: int) -> None:
    """Let a WAITER container end: the file it waits for, made through its root."""
    Path(f"/proc/{pid}/root/tmp/go").touch()


def test_readoption_after_the_daemon_is_killed(life: Life, runtime: str) -> None:
    d = life.daemon
    first = out(d, "run", "-d", "--runtime", runtime, "busybox", "sh", "-c", WAITER).strip()
    second = out(d, "run", "-d", "--runtime", runtime, "busybox", "sh", "-c", WAITER).strip()
    pids = {cid: int(inspect(d, cid, "{{.State.Pid}}")) for cid in (first, second)}
    life.kill()
    for pid in pids.values():
        os.kill(pid, 0)  # they outlive the daemon, under their shims
    life.restart()
    d = life.daemon
    for cid in (first, second):  # re-adopted: the same processes
        assert inspect(d, cid, "{{.State.Status}} {{.State.Pid}}") == f"running {pids[cid]}"
    # one ends while the new daemon watches: its exit is recorded
    release(pids[first])
    assert out(d, "wait", first) == "7\n"
    assert inspect(d, first, "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"
    assert out(d, "logs", first) == "waiting\ngoing\n"
    # the other ends while no daemon runs: recorded when the next one starts
    life.kill()
    release(pids[second])
    wait_until(lambda: not os.path.exists(f"/proc/{pids[second]}/root"), what="its exit")
    life.restart()
    d = life.daemon
    assert inspect(d, second, "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"
    assert out(d, "logs", second) == "waiting\ngoing\n"
    for cid in (first, second):
        out(d, "rm", cid)
        assert_clean(d.exec_root, cid)


def test_a_shim_that_dies_leaves_nothing_of_the_runtime(
    daemon: Daemon, made: list[str], runtime: str
) -> None:
    """A shim killed with SIGKILL cannot `delete`: the daemon has the runtime do it."""
    cid = create(daemon, made, runtime, "busybox", "sleep", "100")
    out(daemon, "start", cid)
    pid = int(inspect(daemon, cid, "{{.State.Pid}}"))
    with open(f"/proc/{pid}/stat") as f:
        shim = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{shim}/cmdline", "rb") as f:
        assert b"dockyard.runtime.zygote" in f.read()  # a shim, forked from the zygote
    os.kill(shim, 9)
    wait_until(lambda: inspect(daemon, cid, "{{.State.Status}}") == "exited", what="the exit")
    assert inspect(daemon, cid, "{{.State.ExitCode}}") == "255"
    assert_clean(daemon.exec_root, cid)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}/root"), what="the init's end")
