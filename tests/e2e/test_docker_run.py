"""The real docker CLI and docker-py running containers through our daemon."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
import uuid

import docker
import pytest

from tests.conftest import Daemon


def name() -> str:
    return "e2e-" + uuid.uuid4().hex[:10]


def out(daemon: Daemon, *args: str) -> str:
    return daemon.docker(*args).stdout.decode()


def test_run_rm_echo(daemon: Daemon) -> None:
    before = out(daemon, "ps", "-aq")
    assert out(daemon, "run", "--rm", "busybox", "echo", "hi") == "hi\n"
    assert out(daemon, "ps", "-aq") == before  # --rm removed it


def test_exit_code_and_stderr(daemon: Daemon) -> None:
    result = daemon.docker(
        "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7", check=False
    )
    assert result.returncode == 7
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"


def test_command_not_found_is_127(daemon: Daemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "nosuch", check=False)
    assert result.returncode == 127
    assert b'exec: "nosuch": executable file not found in $PATH' in result.stderr


def test_run_detached_logs_follow_and_stop(daemon: Daemon) -> None:
    n = name()
    cid = out(
        daemon,
        "run",
        "-d",
        "--name",
        n,
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.1; done; sleep 30",
    ).strip()
    assert len(cid) == 64
    try:
        follow = subprocess.Popen(
            ["docker", "logs", "-f", n],
            env=daemon.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        seen = b""
        while b"line3\n" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([follow.stdout], [], [], 0.5)
            if ready:
                seen += os.read(follow.stdout.fileno(), 4096)
        assert seen == b"line1\nline2\nline3\n"
        assert (
            out(daemon, "inspect", "-f", "{{.State.Status}} {{.State.Running}}", n)
            == "running true\n"
        )
        assert out(daemon, "stop", "-t", "1", n) == f"{n}\n"
        follow.wait(timeout=10)  # following ends when the container stops
        assert follow.returncode == 0
        state = out(daemon, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n)
        assert state == "exited 137\n"  # sh as PID 1 ignores SIGTERM: killed after the timeout
    finally:
        daemon.docker("rm", "-f", n, check=False)


def test_ps_size_and_wait(daemon: Daemon) -> None:
    n = name()
    daemon.docker(
        "run",
        "--name",
        n,
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big; exit 3",
        check=False,
    )
    try:
        assert out(daemon, "wait", n) == "3\n"
        rows = out(
            daemon,
            "ps",
            "-a",
            "-s",
            "--filter",
            f"name={n}",
            "--format",
            "{{.Names}}|{{.Status}}|{{.Size}}",
        )
        shown_name, status, size = rows.strip().split("|")
        assert shown_name == n
        assert status.startswith("Exited (3) ")
        assert size.startswith("100kB (virtual ")
    finally:
        daemon.docker("rm", n)


def test_rm_running_needs_force(daemon: Daemon) -> None:
    n = name()
    daemon.docker("run", "-d", "--name", n, "busybox", "sleep", "30")
    result = daemon.docker("rm", n, check=False)
    assert result.returncode == 1
    assert (
        b"container is running: stop the container before removing or force remove" in result.stderr
    )
    assert out(daemon, "rm", "-f", n) == f"{n}\n"
    assert daemon.docker("inspect", n, check=False).returncode == 1


def test_run_it_under_a_pty(daemon: Daemon) -> None:
    """`docker run -it` with a real terminal: a TTY inside, input echoed back through it."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the docker CLI on the pty
        os.environ.update(daemon.env())
        os.execvp("docker", ["docker", "run", "-it", "--rm", "busybox", "sh"])
    try:
        transcript = b""

        def read_until(marker: bytes, timeout: float = 15) -> None:
            nonlocal transcript
            deadline = time.monotonic() + timeout
            while marker not in transcript and time.monotonic() < deadline:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if ready:
                    try:
                        transcript += os.read(fd, 4096)
                    except OSError:
                        break
            assert marker in transcript, transcript

        read_until(b"# ")
        os.write(fd, b"tty; echo marker-$((6*7))\n")
        read_until(b"marker-42")
        assert b"/dev/pts/" in transcript
        os.write(fd, b"exit 5\n")
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 5
    finally:
        os.close(fd)


def test_run_interactive_stdin(daemon: Daemon) -> None:
    result = daemon.docker(
        "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", input=b"piped input\n"
    )
    assert result.stdout == b"piped input\ndone\n"


@pytest.fixture
def client(daemon: Daemon):
    c = docker.DockerClient(base_url=daemon.host)
    yield c
    c.close()


def test_docker_py_run_and_create(client: docker.DockerClient) -> None:
    assert (
        client.containers.run("busybox", ["echo", "from docker-py"], remove=True)
        == b"from docker-py\n"
    )
    container = client.containers.create(
        "busybox", ["sh", "-c", "echo a; sleep 0.2; echo b; exit 2"], name=name()
    )
    try:
        container.start()
        lines = list(container.logs(stream=True, follow=True))
        assert b"".join(lines) == b"a\nb\n"
        assert container.wait(timeout=20) == {"StatusCode": 2, "Error": None}
        container.reload()
        assert container.status == "exited"
        assert container.attrs["State"]["ExitCode"] == 2
    finally:
        container.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)


def test_docker_py_detach_stop_remove(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", ["sleep", "30"], detach=True, name=name())
    try:
        assert container.status in ("created", "running")
        container.reload()
        assert container.status == "running"
        assert container.id in [c.id for c in client.containers.list()]
        container.stop(timeout=1)
        container.reload()
        assert container.status == "exited"
    finally:
        container.remove(v=True, force=True)
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("nosuch-image-xyz:1")
