"""Container lifecycle as docker has it: stop/start/kill/rm on each state and their messages and
statuses, restart policies, --rm, wait, pause (the freezer really freezes), rename, rmi of an
image in use, ps filters and sizes, logs options and json-file rotation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, Daemon
from tests.integration.test_api import call

TICKER = 'i=0; while true; do i=$((i+1)); echo "$i" > /tmp/counter; sleep 0.05; done'


def dy(daemon: Daemon, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return daemon.dockyard(*args, check=check)


def out(daemon: Daemon, *args: str) -> str:
    return dy(daemon, *args).stdout.decode()


def err(daemon: Daemon, *args: str, code: int = 1) -> str:
    """Run a command that must fail with `code`; its stderr."""
    result = dy(daemon, *args, check=False)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stderr.decode()


def inspect(daemon: Daemon, ref: str, template: str) -> str:
    return out(daemon, "inspect", "-f", template, ref).strip()


def state(daemon: Daemon, ref: str) -> dict:
    return json.loads(inspect(daemon, ref, "{{json .State}}"))


def wait_until(
    check: Callable[[], bool], timeout: float = 30, what: str | Callable[[], str] = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


@pytest.fixture
def names(daemon: Daemon) -> Iterator[list[str]]:
    """Names the test gives its containers: all removed afterwards, whatever happened."""
    made: list[str] = []
    yield made
    for name in made:
        dy(daemon, "rm", "-f", name, check=False)


def run_d(daemon: Daemon, names: list[str], name: str, *args: str) -> str:
    names.append(name)
    return out(daemon, "run", "-d", "--name", name, *args).strip()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- stop, start, kill, rm -------------------------------------------------------------------------
def test_stop_of_a_stopped_container(daemon: Daemon, names: list[str]) -> None:
    cid = run_d(daemon, names, "lc-stop", "busybox", "sleep", "1000")
    pid = state(daemon, cid)["Pid"]
    assert out(daemon, "stop", "-t", "1", "lc-stop") == "lc-stop\n"
    assert not alive(pid)
    st = state(daemon, cid)
    assert (st["Status"], st["Running"], st["ExitCode"], st["Pid"]) == ("exited", False, 137, 0)
    # Again: nothing to do, still a success that prints the name (the API says 304).
    assert out(daemon, "stop", "-t", "1", "lc-stop") == "lc-stop\n"
    assert call(daemon, "POST", f"/containers/{cid}/stop?t=1").status == 304


def test_stop_sends_the_stop_signal_first(daemon: Daemon, names: list[str]) -> None:
    script = 'trap "echo got TERM; exit 3" TERM; while true; do sleep 0.05; done'
    run_d(daemon, names, "lc-term", "busybox", "sh", "-c", script)
    time.sleep(0.2)
    assert out(daemon, "stop", "-t", "5", "lc-term") == "lc-term\n"
    assert state(daemon, "lc-term")["ExitCode"] == 3
    assert "got TERM" in out(daemon, "logs", "lc-term")


def test_start_of_a_running_container(daemon: Daemon, names: list[str]) -> None:
    cid = run_d(daemon, names, "lc-start", "busybox", "sleep", "1000")
    pid = state(daemon, cid)["Pid"]
    assert out(daemon, "start", "lc-start") == "lc-start\n"
    assert call(daemon, "POST", f"/containers/{cid}/start").status == 304
    assert state(daemon, cid)["Pid"] == pid  # the same process, not a second one
    dy(daemon, "stop", "-t", "1", "lc-start")
    assert out(daemon, "start", "lc-start") == "lc-start\n"
    st = state(daemon, cid)
    assert st["Running"] and st["Pid"] != pid


def test_kill_signals_and_kill_of_a_stopped_container(daemon: Daemon, names: list[str]) -> None:
    script = (
        'trap "echo got USR1" USR1; trap "echo got HUP" HUP; trap "echo got USR2" USR2; '
        "echo ready; while true; do sleep 0.05; done"
    )
    cid = run_d(daemon, names, "lc-kill", "busybox", "sh", "-c", script)
    wait_until(lambda: "ready" in out(daemon, "logs", "lc-kill"), what="ready")
    assert out(daemon, "kill", "-s", "USR1", "lc-kill") == "lc-kill\n"
    assert out(daemon, "kill", "-s", "SIGHUP", "lc-kill") == "lc-kill\n"
    assert out(daemon, "kill", "--signal", "12", "lc-kill") == "lc-kill\n"  # SIGUSR2 by number
    wanted = ("got USR1", "got HUP", "got USR2")
    wait_until(lambda: all(w in out(daemon, "logs", "lc-kill") for w in wanted), what="traps")
    assert state(daemon, cid)["Running"]
    # docker 28 (moby's router wraps all that ContainerKill says; errNotRunning is lowercase)
    assert err(daemon, "kill", "-s", "NOPE", "lc-kill") == (
        "Error response from daemon: cannot kill container: lc-kill: Invalid signal: NOPE\n"
    )
    assert err(daemon, "kill", "-s", "99", "lc-kill") == (
        "Error response from daemon: cannot kill container: lc-kill: the linux daemon does not "
        "support signal 99\n"
    )
    assert call(daemon, "POST", f"/containers/{cid}/kill?signal=99").status == 400
    assert state(daemon, cid)["Running"]
    assert out(daemon, "kill", "lc-kill") == "lc-kill\n"  # SIGKILL
    wait_until(lambda: not state(daemon, cid)["Running"], what="exit")
    assert state(daemon, cid)["ExitCode"] == 137
    message = err(daemon, "kill", "lc-kill")
    assert message == (
        f"Error response from daemon: cannot kill container: lc-kill: container {cid} is not "
        "running\n"
    )
    reply = call(daemon, "POST", f"/containers/{cid}/kill")
    assert reply.status == 409
    assert reply.json() == {
        "message": f"cannot kill container: {cid}: container {cid} is not running"
    }
    assert err(daemon, "kill", "lc-nosuch") == (
        "Error response from daemon: cannot kill container: lc-nosuch: No such container: "
        "lc-nosuch\n"
    )
    assert call(daemon, "POST", "/containers/lc-nosuch/kill").status == 404


def test_rm_of_a_running_container(daemon: Daemon, names: list[str]) -> None:
    cid = run_d(daemon, names, "lc-rm", "busybox", "sleep", "1000")
    pid = state(daemon, cid)["Pid"]
    # docker 28: the name as the client gave it
    assert err(daemon, "rm", "lc-rm") == (
        'Error response from daemon: cannot remove container "lc-rm": container is running: '
        "stop the container before removing or force remove\n"
    )
    assert state(daemon, cid)["Running"] and alive(pid)
    reply = call(daemon, "DELETE", f"/containers/{cid[:10]}")
    assert reply.status == 409
    assert reply.json()["message"].startswith(f'cannot remove container "{cid[:10]}"')
    dy(daemon, "pause", "lc-rm")
    assert err(daemon, "rm", "lc-rm") == (
        'Error response from daemon: cannot remove container "lc-rm": container is paused and '
        "must be unpaused first\n"
    )
    assert out(daemon, "rm", "-f", "lc-rm") == "lc-rm\n"  # even paused
    assert not alive(pid)
    assert err(daemon, "inspect", "lc-rm") == "Error: No such object: lc-rm\n"
    assert not any(cid in m for m in mounts())


def test_restart_keeps_an_auto_remove_container(daemon: Daemon, names: list[str]) -> None:
    """moby's HasBeenManuallyRestarted: `restart` stops a --rm container without removing it,
    and its writable layer (mounted volatile: it goes with the container) mounts again."""
    cid = run_d(daemon, names, "lc-rm-restart", "--rm", "busybox", "sleep", "100")
    root = [line for line in Path("/proc/self/mounts").read_text().splitlines() if cid in line]
    assert len(root) == 1 and "volatile" in root[0], root
    dy(daemon, "exec", cid, "sh", "-c", "echo kept > /kept")
    assert out(daemon, "restart", "-t", "0", cid) == f"{cid}\n"
    assert state(daemon, cid)["Running"]
    assert out(daemon, "exec", cid, "cat", "/kept") == "kept\n"
    dy(daemon, "stop", "-t", "0", cid)  # a stop that is not a restart removes it
    wait_until(lambda: not out(daemon, "ps", "-a", "-q", "--filter", f"id={cid}"), what="removal")
    assert not any(cid in m for m in mounts())


def mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


# -- restart policies ------------------------------------------------------------------------------
def test_restart_on_failure_retries_then_stays_exited(daemon: Daemon, names: list[str]) -> None:
    cid = run_d(
        daemon,
        names,
        "lc-onfail",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 3",
    )

    def settled() -> bool:
        st = state(daemon, cid)
        return st["Status"] == "exited" and inspect(daemon, cid, "{{.RestartCount}}") == "2"

    wait_until(settled, what=lambda: f"two restarts: {out(daemon, 'inspect', cid)}")
    time.sleep(1)  # no third run comes
    st = state(daemon, cid)
    assert (st["Status"], st["Restarting"], st["ExitCode"]) == ("exited", False, 3)
    assert inspect(daemon, cid, "{{.RestartCount}}") == "2"
    assert out(daemon, "logs", cid).split() == ["run"] * 3
    # A success does not restart an on-failure container.
    cid = run_d(daemon, names, "lc-onfail-ok", "--restart", "on-failure", "busybox", "true")
    dy(daemon, "wait", cid)
    time.sleep(0.5)
    assert inspect(daemon, cid, "{{.RestartCount}} {{.State.Status}}") == "0 exited"


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_restart_always_until_stopped(daemon: Daemon, names: list[str], policy: str) -> None:
    name = f"lc-{policy}"
    cid = run_d(
        daemon, names, name, "--restart", policy, "busybox", "sh", "-c", "echo run; sleep 0.3"
    )
    wait_until(lambda: int(inspect(daemon, cid, "{{.RestartCount}}")) >= 2, what="restarts")
    wait_until(lambda: state(daemon, cid)["Running"], what="running again")
    assert out(daemon, "stop", "-t", "1", name) == f"{name}\n"
    count = inspect(daemon, cid, "{{.RestartCount}}")
    time.sleep(1.5)
    st = state(daemon, cid)
    assert (st["Status"], st["Running"], st["Restarting"]) == ("exited", False, False)
    assert inspect(daemon, cid, "{{.RestartCount}}") == count  # stopped for good
    # A start puts it back under its policy.
    dy(daemon, "start", name)
    wait_until(lambda: int(inspect(daemon, cid, "{{.RestartCount}}")) > int(count), what="again")


def test_stop_during_the_restart_back_off(daemon: Daemon, names: list[str]) -> None:
    """A container waiting to be restarted counts as running for stop: stop ends the loop."""
    cid = run_d(daemon, names, "lc-backoff", "--restart", "always", "busybox", "sh", "-c", "exit 1")

    def backing_off() -> bool:  # from the fifth exit on, 1.6 s or more until the next run
        return (
            state(daemon, cid)["Restarting"] and int(inspect(daemon, cid, "{{.RestartCount}}")) >= 5
        )

    wait_until(backing_off, what="back-off")
    assert err(daemon, "rm", "lc-backoff") == (
        'Error response from daemon: cannot remove container "lc-backoff": container is '
        "restarting: stop the container before removing or force remove\n"
    )
    assert "Restarting (1)" in out(
        daemon, "ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}"
    )
    assert out(daemon, "stop", "-t", "1", "lc-backoff") == "lc-backoff\n"
    count = inspect(daemon, cid, "{{.RestartCount}}")
    time.sleep(3)  # longer than the back-off it was in
    st = state(daemon, cid)
    assert (st["Status"], st["Restarting"], st["ExitCode"]) == ("exited", False, 1)
    assert inspect(daemon, cid, "{{.RestartCount}}") == count
    # kill too (docker: the restart manager is cancelled; nothing to signal)
    dy(daemon, "start", "lc-backoff")
    wait_until(lambda: state(daemon, cid)["Restarting"], what="restarting")
    assert out(daemon, "kill", "lc-backoff") == "lc-backoff\n"
    time.sleep(3)
    assert state(daemon, cid)["Status"] == "exited"


def test_a_signal_sent_by_kill_cancels_the_restart_policy(daemon: Daemon, names: list[str]) -> None:
    """docker: without a StopSignal of its own, any `kill -s` marks the container to exit on
    its next exit (moby's ExitOnNext), so it is not restarted."""
    script = 'trap "exit 7" USR1; echo ready; while true; do sleep 0.05; done'
    cid = run_d(daemon, names, "lc-usr1", "--restart", "always", "busybox", "sh", "-c", script)
    wait_until(lambda: "ready" in out(daemon, "logs", cid), what="ready")
    dy(daemon, "kill", "-s", "USR1", "lc-usr1")
    wait_until(lambda: not state(daemon, cid)["Running"], what="exit")
    time.sleep(1)
    st = state(daemon, cid)
    assert (st["Status"], st["ExitCode"]) == ("exited", 7)
    assert inspect(daemon, cid, "{{.RestartCount}}") == "0"


def test_auto_remove(daemon: Daemon, names: list[str]) -> None:
    cid = run_d(daemon, names, "lc-autorm", "--rm", "busybox", "sh", "-c", "sleep 0.2; exit 2")
    wait_until(lambda: not out(daemon, "ps", "-a", "-q", "--filter", f"id={cid}"), what="removal")
    assert dy(daemon, "inspect", cid, check=False).returncode == 1
    assert not any(cid in m for m in mounts())
    result = dy(
        daemon,
        "run",
        "--rm",
        "--name",
        "lc-autorm2",
        "busybox",
        "sh",
        "-c",
        "echo bye; exit 4",
        check=False,
    )
    assert (result.returncode, result.stdout) == (4, b"bye\n")
    assert not out(daemon, "ps", "-a", "-q", "--filter", "name=lc-autorm2")


def test_wait_prints_the_exit_code(daemon: Daemon, names: list[str]) -> None:
    run_d(daemon, names, "lc-wait", "busybox", "sh", "-c", "sleep 0.5; exit 5")
    run_d(daemon, names, "lc-wait0", "busybox", "true")
    assert out(daemon, "wait", "lc-wait", "lc-wait0") == "5\n0\n"
    assert out(daemon, "wait", "lc-wait") == "5\n"  # an exited container answers at once
    result = dy(daemon, "wait", "lc-wait", "lc-nosuch", check=False)
    assert (result.returncode, result.stdout) == (1, b"5\n")
    assert b"No such container: lc-nosuch" in result.stderr


def test_containers_that_exit_at_once_are_all_recorded(daemon: Daemon) -> None:
    """Many containers exiting as soon as they start (their shims gone before the daemon
    watches them): every start succeeds and every exit is recorded."""
    from concurrent.futures import ThreadPoolExecutor

    label = f"lc.burst={uuid.uuid4().hex[:8]}"

    def start(i: int) -> subprocess.CompletedProcess[bytes]:
        args = ["run", "-d", "--label", label, "busybox", "sh", "-c", f"exit {i % 3}"]
        return dy(daemon, *args, check=False)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(start, range(32)))
    try:
        assert [r.returncode for r in results] == [0] * 32, [r.stderr for r in results]

        def statuses() -> list[str]:
            text = out(daemon, "ps", "-a", "--filter", f"label={label}", "--format", "{{.State}}")
            return text.split()

        wait_until(lambda: statuses() == ["exited"] * 32, what=lambda: str(statuses()))
        codes = out(daemon, "ps", "-a", "--filter", f"label={label}", "--filter", "exited=2", "-q")
        assert len(codes.split()) == len([i for i in range(32) if i % 3 == 2])
    finally:
        ids = out(daemon, "ps", "-aq", "--filter", f"label={label}").split()
        if ids:
            dy(daemon, "rm", "-f", *ids)


def test_start_again_right_after_the_exit(daemon: Daemon, names: list[str]) -> None:
    """The exit is reported before its shim has cleaned up: a start at once must still work,
    and nothing of either run may be left (runtime state, cgroups) once it is removed."""
    cid = run_d(daemon, names, "lc-again", "busybox", "true")
    for _ in range(15):
        assert call(daemon, "POST", f"/containers/{cid}/wait").status == 200
        reply = call(daemon, "POST", f"/containers/{cid}/start")
        assert reply.status == 204, reply.body
    assert out(daemon, "wait", cid) == "0\n"
    dy(daemon, "rm", cid)
    wait_until(lambda: not (daemon.exec_root / "runtime" / cid).exists(), what="runtime state")
    cgroups = Path("/sys/fs/cgroup")
    leftovers = [*cgroups.glob(f"*/dockyard/{cid}"), *cgroups.glob(f"dockyard/{cid}")]
    assert not leftovers, leftovers


# -- pause -----------------------------------------------------------------------------------------
def test_pause_freezes_the_processes(daemon: Daemon, names: list[str]) -> None:
    cid = run_d(daemon, names, "lc-pause", "busybox", "sh", "-c", TICKER)
    pid = state(daemon, cid)["Pid"]
    counter = Path(f"/proc/{pid}/root/tmp/counter")

    def value() -> int:
        text = counter.read_text().strip()
        return int(text) if text else -1

    wait_until(lambda: counter.exists() and value() > 2, what="ticking")
    assert out(daemon, "pause", "lc-pause") == "lc-pause\n"
    st = state(daemon, cid)
    assert (st["Status"], st["Paused"], st["Running"]) == ("paused", True, True)
    assert out(daemon, "ps", "--filter", f"id={cid}", "--format", "{{.Status}}").endswith(
        "(Paused)\n"
    )
    assert out(daemon, "ps", "-q", "--filter", "status=paused", "--filter", f"id={cid}")
    with open(f"/proc/{pid}/status") as f:
        proc_state = re.search(r"^State:\s+(\w)", f.read(), re.M)
    assert proc_state and proc_state.group(1) == "D", proc_state  # frozen by the freezer
    frozen = value()
    time.sleep(0.6)
    assert value() == frozen  # nothing ran while paused
    assert "is already paused" in err(daemon, "pause", "lc-pause")
    assert out(daemon, "unpause", "lc-pause") == "lc-pause\n"
    wait_until(lambda: value() > frozen + 2, what="ticking again")
    assert state(daemon, cid)["Status"] == "running"
    assert f"Container {cid} is not paused" in err(daemon, "unpause", "lc-pause")
    # stop of a paused container thaws it first
    dy(daemon, "pause", "lc-pause")
    assert out(daemon, "stop", "-t", "1", "lc-pause") == "lc-pause\n"
    st = state(daemon, cid)
    assert (st["Status"], st["Paused"], st["ExitCode"]) == ("exited", False, 137)
    assert not alive(pid)
    assert f"container {cid} is not running" in err(daemon, "pause", "lc-pause")


# -- rename ----------------------------------------------------------------------------------------
def test_rename_and_name_conflicts(daemon: Daemon, names: list[str]) -> None:
    names.extend(["lc-ren-a", "lc-ren-b", "lc-ren-c"])
    a = out(daemon, "create", "--name", "lc-ren-a", "busybox").strip()
    b = out(daemon, "create", "--name", "lc-ren-b", "busybox").strip()
    assert out(daemon, "rename", "lc-ren-a", "lc-ren-c") == ""
    assert inspect(daemon, a, "{{.Name}}") == "/lc-ren-c"
    assert dy(daemon, "inspect", "lc-ren-a", check=False).returncode == 1
    conflict = (
        'Conflict. The container name "/lc-ren-b" is already in use by container "{id}". You '
        "have to remove (or rename) that container to be able to reuse that name."
    )
    assert err(daemon, "rename", "lc-ren-c", "lc-ren-b") == (
        "Error response from daemon: Error when allocating new name: "
        + conflict.format(id=b)
        + "\nError: failed to rename container named lc-ren-c\n"
    )
    assert err(daemon, "rename", "lc-ren-c", "lc-ren-c") == (
        "Error response from daemon: Renaming a container with the same name as its current "
        "name\nError: failed to rename container named lc-ren-c\n"
    )
    assert err(daemon, "rename", "lc-ren-c", "bad name") == (
        "Error response from daemon: Error when allocating new name: Invalid container name "
        "(/bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed\n"
        "Error: failed to rename container named lc-ren-c\n"
    )
    assert "Error response from daemon: " + conflict.format(id=b) in err(
        daemon, "create", "--name", "lc-ren-b", "busybox", code=125
    )
    # The old name is free again; the renamed one runs under its new name.
    names.append("lc-ren-a")
    out(daemon, "create", "--name", "lc-ren-a", "busybox")
    dy(daemon, "start", "lc-ren-c")
    assert inspect(daemon, "lc-ren-c", "{{.Id}}") == a


# -- images in use ---------------------------------------------------------------------------------
@pytest.fixture
def private_image(daemon: Daemon, busybox_tar: Path) -> Iterator[tuple[str, str]]:
    """An image of its own (one tag), so that removing it touches nothing else."""
    tag = f"lc-image-{uuid.uuid4().hex[:8]}:v1"
    image_id = out(
        daemon, "import", "-c", 'CMD ["sh"]', "-c", f"ENV LC={tag}", str(busybox_tar), tag
    ).strip()
    yield tag, image_id
    dy(daemon, "rmi", "-f", image_id, check=False)


def test_rmi_of_an_image_a_container_uses(
    daemon: Daemon, names: list[str], private_image: tuple[str, str]
) -> None:
    tag, image_id = private_image
    short = image_id.removeprefix("sha256:")[:12]
    cid = run_d(daemon, names, "lc-user", tag, "sleep", "1000")
    assert err(daemon, "rmi", tag) == (
        f'Error response from daemon: conflict: unable to remove repository reference "{tag}" '
        f"(must force) - container {cid[:12]} is using its referenced image {short}\n"
    )
    running = (
        f"Error response from daemon: conflict: unable to delete {short} (cannot be forced) - "
        f"image is being used by running container {cid[:12]}\n"
    )
    assert err(daemon, "rmi", short) == running
    assert err(daemon, "rmi", "-f", short) == running
    # -f with the name untags it; the image stays for the container, now shown by ID.
    assert out(daemon, "rmi", "-f", tag) == f"Untagged: {tag}\n"
    assert out(daemon, "image", "inspect", "-f", "{{.Id}}", short).strip() == image_id
    assert out(daemon, "ps", "--filter", f"id={cid}", "--format", "{{.Image}}") == f"{short}\n"
    dy(daemon, "stop", "-t", "1", cid)
    assert err(daemon, "rmi", short) == (
        f"Error response from daemon: conflict: unable to delete {short} (must be forced) - "
        f"image is being used by stopped container {cid[:12]}\n"
    )
    assert out(daemon, "rmi", "-f", short).startswith(f"Deleted: {image_id}\n")
    # The stopped container keeps its filesystem and still starts.
    dy(daemon, "start", cid)
    assert state(daemon, cid)["Running"]


# -- ps --------------------------------------------------------------------------------------------
def test_ps_filters(daemon: Daemon, names: list[str]) -> None:
    label = f"lc.test={uuid.uuid4().hex[:8]}"
    key = label.split("=")[0]
    run_d(
        daemon, names, "lc-ps-up", "--label", label, "--label", "team=a", "busybox", "sleep", "1000"
    )
    names.append("lc-ps-fail")
    dy(
        daemon,
        "run",
        "--name",
        "lc-ps-fail",
        "--label",
        label,
        "--label",
        "team=b",
        "busybox",
        "sh",
        "-c",
        "exit 3",
        check=False,
    )
    names.append("lc-ps-new")
    dy(daemon, "create", "--name", "lc-ps-new", "--label", label, "busybox")
    run_d(daemon, names, "lc-ps-paused", "--label", label, "busybox", "sleep", "1000")
    dy(daemon, "pause", "lc-ps-paused")

    def listed(*filters: str, all_: bool = True) -> list[str]:
        args = ["ps", "--filter", f"label={label}", "--format", "{{.Names}}"]
        for f in filters:
            args += ["--filter", f]
        text = out(daemon, *args, *(["-a"] if all_ else []))
        return sorted(text.split())

    everything = ["lc-ps-fail", "lc-ps-new", "lc-ps-paused", "lc-ps-up"]
    assert listed() == everything
    assert listed(all_=False) == ["lc-ps-paused", "lc-ps-up"]
    assert listed("status=running") == ["lc-ps-up"]
    assert listed("status=paused") == ["lc-ps-paused"]
    assert listed("status=exited") == ["lc-ps-fail"]
    assert listed("status=created") == ["lc-ps-new"]
    assert listed("status=exited", "status=created") == ["lc-ps-fail", "lc-ps-new"]
    assert listed("exited=3") == ["lc-ps-fail"]
    assert listed("exited=0") == []
    assert listed("name=lc-ps-up") == ["lc-ps-up"]
    assert listed("name=ps-") == everything  # a substring
    assert listed(f"label={key}") == everything
    assert listed("label=team=b") == ["lc-ps-fail"]
    assert listed("label=team") == ["lc-ps-fail", "lc-ps-up"]
    assert listed("ancestor=busybox") == everything
    assert listed("ancestor=busybox:latest") == everything
    assert listed("ancestor=lc-nosuch-image") == []
    assert "invalid filter 'nosuch'" in err(daemon, "ps", "--filter", "nosuch=1").lower()


def test_ps_size_counts_written_files(daemon: Daemon, names: list[str]) -> None:
    run_d(daemon, names, "lc-size", "busybox", "sh", "-c", "echo hello > /hello; sleep 1000")
    run_d(daemon, names, "lc-size0", "busybox", "sleep", "1000")
    virtual = inspect(daemon, "busybox", "{{.Size}}")
    wait_until(
        lambda: (
            "6B"
            in out(
                daemon, "ps", "-s", "--filter", "name=lc-size", "--format", "{{.Names}} {{.Size}}"
            )
        ),
        what="size",
    )
    rows = dict(
        line.split(" ", 1)
        for line in out(
            daemon, "ps", "-s", "--filter", "name=lc-size", "--format", "{{.Names}} {{.Size}}"
        ).splitlines()
    )
    assert rows["lc-size"].startswith("6B (virtual ")
    assert rows["lc-size0"].startswith("0B (virtual ")
    sizes = json.loads(out(daemon, "inspect", "-s", "--format", "{{json .}}", "lc-size"))
    assert sizes["SizeRw"] == 6
    assert sizes["SizeRootFs"] == int(virtual) + 6


# -- logs ------------------------------------------------------------------------------------------
def test_logs_tail_since_timestamps(daemon: Daemon, names: list[str]) -> None:
    script = "for i in 1 2 3 4 5; do echo line$i; done; sleep 1.2; echo late"
    cid = run_d(daemon, names, "lc-logs", "busybox", "sh", "-c", script)
    dy(daemon, "wait", cid)
    assert out(daemon, "logs", cid).split() == ["line1", "line2", "line3", "line4", "line5", "late"]
    assert out(daemon, "logs", "--tail", "2", cid) == "line5\nlate\n"
    assert out(daemon, "logs", "-n", "0", cid) == ""
    assert out(daemon, "logs", "--tail", "all", cid).count("\n") == 6
    stamped = out(daemon, "logs", "-t", cid).splitlines()
    stamps = []
    for line in stamped:
        stamp, _, text = line.partition(" ")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp), line
        stamps.append(datetime.fromisoformat(stamp[:26] + "+00:00"))
        assert text
    assert stamps == sorted(stamps)
    assert (stamps[-1] - stamps[-2]).total_seconds() >= 1
    since = stamped[-1].split()[0]
    assert out(daemon, "logs", "--since", since, cid) == "late\n"
    until = stamped[-2].split()[0]
    assert out(daemon, "logs", "--until", until, cid).split()[-1] == "line5"
    assert "late" not in out(daemon, "logs", "--until", until, cid)
    assert out(daemon, "logs", "--since", "2100-01-01T00:00:00Z", cid) == ""


def test_logs_follow_ends_when_the_container_exits(daemon: Daemon, names: list[str]) -> None:
    script = "echo first; sleep 1; echo second; exit 0"
    cid = run_d(daemon, names, "lc-follow", "busybox", "sh", "-c", script)
    started = time.monotonic()
    follow = subprocess.run(
        [str(VENV_BIN / "dockyard"), "logs", "-f", cid],
        env=daemon.env(),
        input=b"",
        capture_output=True,
        timeout=30,
    )
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == b"first\nsecond\n"
    assert time.monotonic() - started >= 0.5  # it did wait for the second line
    # On a container that has already exited, -f prints everything and ends.
    assert out(daemon, "logs", "-f", cid) == "first\nsecond\n"


def test_logs_stdout_and_stderr_are_kept_apart(daemon: Daemon, names: list[str]) -> None:
    cid = run_d(daemon, names, "lc-streams", "busybox", "sh", "-c", "echo out; echo err >&2")
    dy(daemon, "wait", cid)
    result = dy(daemon, "logs", cid)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


def test_log_rotation(daemon: Daemon, names: list[str]) -> None:
    script = 'i=0; while [ $i -lt 200 ]; do echo "line $i"; i=$((i+1)); done'
    names.append("lc-rotate")
    dy(
        daemon,
        "run",
        "--name",
        "lc-rotate",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        script,
    )
    path = inspect(daemon, "lc-rotate", "{{.LogPath}}")
    assert os.path.exists(path) and os.path.exists(path + ".1")
    assert not os.path.exists(path + ".2")
    entry = len('{"log":"line 199\\n","stream":"stdout","time":"2026-01-01T00:00:00.000000000Z"}\n')
    for p in (path, path + ".1"):
        assert os.path.getsize(p) < 1024 + entry  # at most one entry past the limit
    assert os.path.getsize(path + ".1") >= 1024
    lines = out(daemon, "logs", "lc-rotate").splitlines()
    assert 10 < len(lines) < 200  # the oldest were rotated away
    assert lines[-1] == "line 199"
    first = int(lines[0].split()[1])
    assert lines == [f"line {i}" for i in range(first, 200)]  # what is kept is contiguous
