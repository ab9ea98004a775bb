"""`docker exec` end to end: the real docker CLI, docker-py and our CLI against our daemon.

Every test runs its own busybox container (`sleep`) and removes it (`docker rm -f`)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import termios
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import VENV_BIN, Daemon

NOT_FOUND = (
    'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": '
    "executable file not found in $PATH: unknown"
)


@pytest.fixture
def container(daemon: Daemon) -> Iterator[str]:
    """A running busybox container's name; removed afterwards."""
    name = "exec-" + uuid.uuid4().hex[:10]
    daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "600")
    try:
        yield name
    finally:
        daemon.docker("rm", "-f", name, check=False)


@pytest.fixture
def api(daemon: Daemon) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=daemon.host)
    try:
        yield client
    finally:
        client.close()


def out(result) -> str:  # type: ignore[no-untyped-def]
    return result.stdout.decode()


# -- a terminal for the clients: docker's -t needs one ----------------------------------------
class Terminal:
    """A command run on a pty of its own, as in a terminal window (rows x cols)."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.resize(rows, cols)
        self.output = b""
        self.status: int | None = None

    def resize(self, rows: int, cols: int) -> None:
        """As a terminal window does: the kernel sends the client SIGWINCH."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the client exited and its side of the pty is closed
            data = b""
        self.output += data
        return bool(data)

    def expect(self, pattern: bytes, timeout: float = 30) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if not self._read(0.1):
                break
        found = re.search(pattern, self.output)
        assert found, f"{pattern!r} not in {self.output!r}"
        return found

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.1):
            pass
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"still running after {timeout}s: {self.output!r}")


def docker_cli(daemon: Daemon) -> list[str]:
    return ["docker"]


def dockyard_cli(daemon: Daemon) -> list[str]:
    return [str(VENV_BIN / "dockyard")]


CLIENTS = pytest.mark.parametrize("cli", [docker_cli, dockyard_cli], ids=["docker", "dockyard"])


def run(daemon: Daemon, cli, *args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    if cli is docker_cli:
        return daemon.docker(*args, input=input, check=False)
    return daemon.dockyard(*args, input=input, check=False)


# -- the docker CLI and ours -------------------------------------------------------------------
@CLIENTS
def test_exec_echo_and_exit_codes(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    result = run(daemon, cli, "exec", container, "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hi\n", b"")
    result = run(daemon, cli, "exec", container, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    result = run(daemon, cli, "exec", container, "sh", "-c", "kill -9 $$")
    assert result.returncode == 137


@CLIENTS
def test_exec_cannot_run(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    result = run(daemon, cli, "exec", container, "nosuch")
    assert result.returncode == 127
    assert out(result) == NOT_FOUND + "\r\n"  # moby writes it into the stream, on stdout
    result = run(daemon, cli, "exec", container, "/etc")
    assert result.returncode == 126
    assert '"/etc": permission denied' in out(result)
    result = run(daemon, cli, "exec", "-w", "/nosuch", container, "pwd")
    assert result.returncode == 127
    assert 'chdir to cwd ("/nosuch") set in config.json failed: no such file' in out(result)
    result = run(daemon, cli, "exec", "-u", "nosuch", container, "id")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "Error response from daemon: unable to find user nosuch: no matching entries in passwd "
        "file\n"
    )


@CLIENTS
def test_exec_env_workdir_user(daemon: Daemon, container: str, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=1\nBOTH=file\n")
    result = run(
        daemon,
        cli,
        "exec",
        "-e",
        "FOO=bar",
        "-e",
        "BOTH=flag",
        "--env-file",
        str(env_file),
        "-w",
        "/tmp",
        "-u",
        "nobody",
        container,
        "sh",
        "-c",
        'echo "$FOO $FROM_FILE $BOTH $HOSTNAME"; pwd; id -u; id -g',
    )
    assert result.returncode == 0, result.stderr
    lines = out(result).splitlines()
    hostname = daemon.docker("inspect", "-f", "{{.Config.Hostname}}", container).stdout.strip()
    assert lines == [f"bar 1 flag {hostname.decode()}", "/tmp", "65534", "65534"]
    result = run(daemon, cli, "exec", "-u", "0:0", container, "id")
    assert out(result).startswith("uid=0(root) gid=0(root)")


@CLIENTS
def test_exec_privileged(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    def effective(*flags: str) -> int:
        text = out(
            run(daemon, cli, "exec", *flags, container, "grep", "CapEff", "/proc/self/status")
        )
        return int(text.split()[1], 16)

    plain, privileged = effective(), effective("--privileged")
    assert plain & ~privileged == 0 and privileged != plain
    assert privileged & (1 << 21)  # CAP_SYS_ADMIN
    assert effective("-u", "nobody") == 0


@CLIENTS
def test_exec_stdin(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    result = run(daemon, cli, "exec", "-i", container, "cat", input=b"hello\n")
    assert (result.returncode, result.stdout) == (0, b"hello\n")
    # Half-close: the process sees the end of its input, and its output still comes back.
    data = os.urandom(3 << 20)
    result = run(daemon, cli, "exec", "-i", container, "sh", "-c", "wc -c; echo end", input=data)
    assert out(result).split() == [str(len(data)), "end"]
    # Without -i the process's stdin is empty.
    result = run(daemon, cli, "exec", container, "cat", input=b"ignored")
    assert (result.returncode, result.stdout) == (0, b"")


@CLIENTS
def test_exec_detached(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    result = run(daemon, cli, "exec", "-d", container, "sh", "-c", "sleep 0.2; echo done > /tmp/d")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if run(daemon, cli, "exec", container, "cat", "/tmp/d").stdout == b"done\n":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the detached exec did not run")
    result = run(daemon, cli, "exec", "-d", container, "nosuch")
    assert result.returncode == 1
    assert result.stderr.decode() == f"Error response from daemon: {NOT_FOUND}\n"


@CLIENTS
def test_exec_not_running(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    cid = daemon.docker("inspect", "-f", "{{.Id}}", container).stdout.decode().strip()
    daemon.docker("pause", container)
    result = run(daemon, cli, "exec", container, "true")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"Error response from daemon: Container {container} is paused, unpause the container "
        "before exec\n"
    )
    daemon.docker("unpause", container)
    daemon.docker("stop", "-t", "0", container)
    result = run(daemon, cli, "exec", container, "true")
    assert result.returncode == 1
    assert result.stderr.decode() == f"Error response from daemon: container {cid} is not running\n"
    result = run(daemon, cli, "exec", "nosuch-" + container, "true")
    assert result.returncode == 1
    assert (
        result.stderr.decode()
        == f"Error response from daemon: No such container: nosuch-{container}\n"
    )


@CLIENTS
def test_exec_ends_with_its_container(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    term = Terminal([*cli(daemon), "exec", container, "sleep", "60"], daemon.env())
    time.sleep(1)
    daemon.docker("stop", "-t", "1", container)
    assert term.wait() == 137


@CLIENTS
def test_exec_tty(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    argv = [
        *cli(daemon),
        "exec",
        "-it",
        container,
        "sh",
        "-c",
        "tty; stty size; echo $TERM; exit 5",
    ]
    term = Terminal(argv, daemon.env(), rows=33, cols=120)
    assert term.wait() == 5
    assert re.fullmatch(rb"/dev/pts/\d+\r\n33 120\r\nxterm\r\n", term.output), term.output


@CLIENTS
def test_exec_tty_interactive_and_resize(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    term = Terminal([*cli(daemon), "exec", "-it", container, "sh"], daemon.env(), rows=30, cols=90)
    term.expect(rb"# ")
    term.write(b"stty size\r")
    term.expect(rb"30 90\r\n")
    term.resize(40, 132)  # the client gets SIGWINCH and resizes the exec's terminal
    time.sleep(0.5)
    term.write(b"stty size; echo $((6 * 7))\r")
    term.expect(rb"40 132\r\n42\r\n")
    term.write(b"exit 4\r")
    assert term.wait() == 4


@CLIENTS
def test_exec_tty_detach_keys(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    argv = [*cli(daemon), "exec", "-it", "--detach-keys", "ctrl-x,x", container, "sh"]
    term = Terminal(argv, daemon.env())
    term.expect(rb"# ")
    term.write(b"sleep 2 && echo detached > /tmp/after\r")
    time.sleep(0.3)
    term.write(b"\x18x")
    assert term.wait() == 1
    assert b"read escape sequence" in term.output
    deadline = time.monotonic() + 10  # the process runs on after its client left
    while run(daemon, cli, "exec", container, "cat", "/tmp/after").stdout != b"detached\n":
        assert time.monotonic() < deadline
        time.sleep(0.2)


@CLIENTS
def test_exec_tty_needs_a_terminal(daemon: Daemon, container: str, cli) -> None:  # type: ignore[no-untyped-def]
    result = run(daemon, cli, "exec", "-it", container, "true")
    assert result.returncode == 1
    assert "the input device is not a TTY" in result.stderr.decode()
    result = run(daemon, cli, "exec", "-t", container, "tty")  # -t alone is fine
    assert result.returncode == 0
    assert re.fullmatch(rb"/dev/pts/\d+\r\n", result.stdout)


def test_dockyard_exec_usage(daemon: Daemon, container: str) -> None:
    result = daemon.dockyard("exec", container, check=False)
    assert result.returncode == 1
    assert "'dockyard exec' requires at least 2 arguments" in result.stderr.decode()
    result = daemon.dockyard("exec", "-e", "=x", container, "true", check=False)
    assert result.returncode == 125
    assert 'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x' in (
        result.stderr.decode()
    )
    assert daemon.dockyard("container", "exec", container, "echo", "ok").stdout == b"ok\n"


# -- the Engine API, through docker-py -------------------------------------------------------
def test_docker_py_exec_run(api: docker.DockerClient, container: str) -> None:
    ctr = api.containers.get(container)
    assert tuple(ctr.exec_run("echo hi")) == (0, b"hi\n")
    assert tuple(ctr.exec_run(["sh", "-c", "exit 9"])) == (9, b"")
    code, output = ctr.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert (code, output) == (0, (b"out\n", b"err\n"))
    result = ctr.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done"], stream=True)
    assert b"".join(result.output) == b"1\n2\n3\n"
    code, output = ctr.exec_run("nosuch")
    assert (code, output) == (127, NOT_FOUND.encode() + b"\r\n")
    code, output = ctr.exec_run("tty", tty=True)
    assert code == 0 and re.fullmatch(rb"/dev/pts/\d+\r\n", output)
    code, output = ctr.exec_run(
        ["sh", "-c", "echo $A; pwd; id -u"], environment={"A": "b"}, workdir="/tmp", user="nobody"
    )
    assert (code, output) == (0, b"b\n/tmp\n65534\n")


def test_docker_py_exec_inspect(api: docker.DockerClient, container: str) -> None:
    low = api.api
    cid = api.containers.get(container).id
    assert low.inspect_container(container)["ExecIDs"] is None
    exec_id = low.exec_create(container, ["sleep", "1"], privileged=True, user="nobody")["Id"]
    assert re.fullmatch(r"[0-9a-f]{64}", exec_id)
    assert low.inspect_container(container)["ExecIDs"] == [exec_id]
    created = low.exec_inspect(exec_id)
    assert created == {
        "ID": exec_id,
        "Running": False,
        "ExitCode": None,
        "ProcessConfig": {
            "tty": False,
            "entrypoint": "sleep",
            "arguments": ["1"],
            "privileged": True,
            "user": "nobody",
        },
        "OpenStdin": False,
        "OpenStderr": True,
        "OpenStdout": True,
        "CanRemove": False,
        "ContainerID": cid,
        "DetachKeys": "",
        "Pid": 0,
    }
    assert low.exec_start(exec_id, detach=True) in (b"", "")
    running = low.exec_inspect(exec_id)
    assert running["Running"] is True and running["ExitCode"] is None and running["Pid"] > 0
    with pytest.raises(docker.errors.APIError) as err:
        low.exec_start(exec_id, detach=True)
    assert err.value.status_code == 409
    assert f"exec command {exec_id} is already running" in str(err.value)
    deadline = time.monotonic() + 10
    while low.exec_inspect(exec_id)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    done = low.exec_inspect(exec_id)
    assert (done["ExitCode"], done["Pid"]) == (0, running["Pid"])
    assert low.inspect_container(container)["ExecIDs"] is None
    with pytest.raises(docker.errors.APIError) as err:
        low.exec_start(exec_id, detach=True)
    assert err.value.status_code == 409
    assert f"exec command {exec_id} has already run" in str(err.value)
    with pytest.raises(docker.errors.NotFound) as err:
        low.exec_inspect("nosuch")
    assert "No such exec instance: nosuch" in str(err.value)
    keys = low.exec_create(container, "true", detach_keys="ctrl-a,b")["Id"]
    assert low.exec_inspect(keys)["DetachKeys"] == "AWI="  # base64 of b"\x01b", as moby's []byte


def test_docker_py_exec_errors(api: docker.DockerClient, container: str) -> None:
    low = api.api
    with pytest.raises(docker.errors.APIError) as err:
        low.exec_create(container, [])
    assert err.value.status_code == 400 and "No exec command specified" in str(err.value)
    with pytest.raises(docker.errors.APIError) as err:
        low.exec_create(container, "true", user="nosuch")
    assert err.value.status_code == 400
    with pytest.raises(docker.errors.NotFound):
        low.exec_create("nosuch-" + container, "true")
    exec_id = low.exec_create(container, "nosuch")["Id"]
    with pytest.raises(docker.errors.APIError) as err:
        low.exec_start(exec_id, detach=True)
    assert err.value.status_code == 400 and NOT_FOUND in str(err.value)
    assert low.exec_inspect(exec_id)["ExitCode"] == 127
    # An exec made before the container stopped is forgotten with it (moby's Cleanup).
    exec_id = low.exec_create(container, "true")["Id"]
    api.containers.get(container).stop(timeout=0)
    with pytest.raises(docker.errors.NotFound):
        low.exec_inspect(exec_id)
    with pytest.raises(docker.errors.APIError) as err:
        low.exec_create(container, "true")
    assert err.value.status_code == 409


def test_docker_py_exec_socket_stdin(api: docker.DockerClient, container: str) -> None:
    """The raw hijacked stream: stdin in, a half-close, frames out."""
    low = api.api
    exec_id = low.exec_create(container, ["sh", "-c", "cat; echo bye >&2"], stdin=True)["Id"]
    sock = low.exec_start(exec_id, socket=True)
    raw = sock._sock
    raw.sendall(b"ping\n")
    import socket as socketlib

    raw.shutdown(socketlib.SHUT_WR)
    data = b""
    raw.settimeout(30)
    while chunk := raw.recv(65536):
        data += chunk
    sock.close()
    frames = []
    while data:
        size = struct.unpack(">I", data[4:8])[0]
        frames.append((data[0], data[8 : 8 + size]))
        data = data[8 + size :]
    assert frames == [(1, b"ping\n"), (2, b"bye\n")]
    assert low.exec_inspect(exec_id)["ExitCode"] == 0


def test_exec_resize_api(api: docker.DockerClient, container: str) -> None:
    low = api.api
    exec_id = low.exec_create(container, ["sh", "-c", "sleep 0.5; stty size"], tty=True)["Id"]
    sock = low.exec_start(exec_id, socket=True, tty=True)
    low.exec_resize(exec_id, height=17, width=71)
    raw = sock._sock
    raw.settimeout(30)
    data = b""
    while chunk := raw.recv(65536):
        data += chunk
    sock.close()
    assert data == b"17 71\r\n"
    with pytest.raises(docker.errors.APIError) as err:
        low.exec_resize("nosuch", height=1, width=1)
    assert err.value.status_code == 404


def test_exec_ids_json_shape(daemon: Daemon, container: str) -> None:
    """`docker inspect` shows ExecIDs while an exec runs."""
    term = Terminal(["docker", "exec", container, "sleep", "2"], daemon.env())
    deadline = time.monotonic() + 10
    while True:
        doc = json.loads(daemon.docker("inspect", container).stdout)[0]
        if doc["ExecIDs"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(doc["ExecIDs"]) == 1 and re.fullmatch(r"[0-9a-f]{64}", doc["ExecIDs"][0])
    assert term.wait() == 0
    doc = json.loads(daemon.docker("inspect", container).stdout)[0]
    assert doc["ExecIDs"] is None
