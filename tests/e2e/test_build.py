"""Builds driven by real clients: `DOCKER_BUILDKIT=0 docker build` and docker-py's
images.build against our daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest
from docker.errors import BuildError

from tests.conftest import Daemon

from .conftest import failed, inspect

DOCKERFILE = """FROM busybox
ARG GREETING=hello
COPY greeting.txt /greeting.txt
RUN echo "$GREETING from run" > /run.txt
ENV WHO=world
CMD ["sh", "-c", "cat /greeting.txt /run.txt; echo $WHO"]
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "greeting.txt").write_text("from the context\n")
    (tmp_path / "ignored.txt").write_text("never sent\n")
    (tmp_path / ".dockerignore").write_text("ignored.txt\n")
    return tmp_path


def docker_build(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**daemon.env(), "DOCKER_BUILDKIT": "0"}
    return subprocess.run(
        ["docker", "build", *args], env=env, capture_output=True, timeout=300, input=b""
    )


def test_docker_cli_classic_build_and_cached_rebuild(
    cleanup: Daemon, context: Path, uid: str
) -> None:
    tag = f"e2e-build-{uid}:v1"
    first = docker_build(cleanup, "-t", tag, "--build-arg", "GREETING=hi", str(context))
    assert first.returncode == 0, first.stderr.decode()
    out = first.stdout.decode()
    assert "Step 1/6 : FROM busybox" in out
    assert " ---> Running in " in out
    assert "Successfully built " in out
    assert f"Successfully tagged {tag}" in out
    run = cleanup.docker("run", "--rm", tag).stdout.decode()
    assert run == "from the context\nhi from run\nworld\n"
    second = docker_build(cleanup, "-t", tag, "--build-arg", "GREETING=hi", str(context))
    assert second.returncode == 0, second.stderr.decode()
    assert second.stdout.decode().count("Using cache") == 5
    quiet = docker_build(cleanup, "-q", "-t", tag, "--build-arg", "GREETING=hi", str(context))
    assert quiet.stdout.decode().strip() == inspect(cleanup, tag)["Id"]
    history = cleanup.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
    assert "|1 GREETING=hi /bin/sh -c echo" in history.stdout.decode()


def test_docker_cli_build_errors(cleanup: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo doing; false\n")
    err = failed(docker_build(cleanup, "--force-rm", str(tmp_path)))
    assert "The command '/bin/sh -c echo doing; false' returned a non-zero code: 1" in err
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUNN x\n")
    err = failed(docker_build(cleanup, str(tmp_path)))
    assert "dockerfile parse error on line 2: unknown instruction: RUNN" in err
    listed = cleanup.docker("ps", "-a", "--format", "{{.Command}}").stdout.decode()
    assert "echo doing; false" not in listed  # --force-rm removed the failed step's container


def test_docker_py_images_build(cleanup: Daemon, context: Path, uid: str) -> None:
    client = docker.DockerClient(base_url=cleanup.host)
    try:
        image, logs = client.images.build(
            path=str(context), tag=f"e2e-py-{uid}", buildargs={"GREETING": "hey"}, rm=True
        )
        assert f"e2e-py-{uid}:latest" in image.tags
        assert any("Successfully built" in line.get("stream", "") for line in logs)
        output = client.containers.run(image.id, remove=True)
        assert output == b"from the context\nhey from run\nworld\n"
        with pytest.raises(BuildError) as caught:
            (context / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
            client.images.build(path=str(context), forcerm=True)
        assert "returned a non-zero code: 7" in str(caught.value)
    finally:
        client.close()


def test_docker_cli_classic_build_with_run_mounts_and_parallel_stages(
    cleanup: Daemon, tmp_path: Path, uid: str
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("bound\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS one\nRUN echo one > /one\n"
        "FROM busybox AS two\nRUN echo two > /two\n"
        "FROM busybox AS unused\nRUN echo never-built\n"
        "FROM busybox\n"
        "RUN --mount=type=bind,source=src,target=/src "
        f"--mount=type=cache,target=/cache,id=e2e-{uid} "
        "cat /src/a.txt > /out && cp /out /cache/seen\n"
        "RUN --mount=type=bind,from=one,source=/one,target=/o cat /o >> /out\n"
        "COPY --from=two /two /two\n"
        'CMD ["cat", "/out", "/two"]\n'
    )
    tag = f"e2e-mounts-{uid}"
    result = docker_build(cleanup, "-t", tag, str(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "never-built" not in out
    assert "Step 1/9 : FROM busybox AS one" in out and "Step 9/9 : CMD" in out
    assert cleanup.docker("run", "--rm", tag).stdout.decode() == "bound\none\ntwo\n"
