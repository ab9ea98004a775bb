"""The docker CLI and docker-py pulling, pushing and logging in through our daemon, against
Debian's docker-registry (plain and with htpasswd basic auth) and against our own registry
server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon
from tests.registries import DockerRegistry
from tests.registry_server import registry_server


@pytest.fixture
def loaded(fresh_daemon: Daemon, busybox_tar: Path) -> Daemon:
    fresh_daemon.dockyard("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return fresh_daemon


def _registry(htpasswd: tuple[str, str] | None = None) -> Iterator[DockerRegistry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry (Debian package) is not installed")
    reg = DockerRegistry(htpasswd)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def registry() -> Iterator[DockerRegistry]:
    yield from _registry()


@pytest.fixture(params=["docker-registry", "dockyard registry"])
def any_registry(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Debian's registry, then ours: the same client behaviour against both."""
    if request.param == "docker-registry":
        yield from _registry()
    else:
        with registry_server() as server:
            yield server


@pytest.fixture
def private_registry() -> Iterator[DockerRegistry]:
    yield from _registry(("bob", "hunter2"))


def test_docker_cli_push_and_pull(loaded: Daemon, any_registry: Any) -> None:
    d, registry = loaded, any_registry
    ref = f"{registry.address}/cli/busybox:v1"
    d.docker("tag", "busybox", ref)
    image_id = json.loads(d.docker("image", "inspect", ref).stdout)[0]["Id"]
    out = d.docker("push", ref).stdout.decode()
    assert "Pushed" in out and "v1: digest: sha256:" in out
    assert "Layer already exists" in d.docker("push", ref).stdout.decode()
    d.docker("rmi", ref, "busybox")
    out = d.docker("pull", ref).stdout.decode()
    assert "Pull complete" in out and f"Status: Downloaded newer image for {ref}" in out
    assert json.loads(d.docker("image", "inspect", ref).stdout)[0]["Id"] == image_id
    digests = json.loads(d.docker("image", "inspect", ref).stdout)[0]["RepoDigests"]
    assert digests[0].startswith(f"{registry.address}/cli/busybox@sha256:")


def test_docker_cli_login_against_htpasswd(
    loaded: Daemon, private_registry: DockerRegistry
) -> None:
    d = loaded
    reg = private_registry
    ref = f"{reg.address}/private/busybox:1"
    d.docker("tag", "busybox", ref)
    denied = d.docker("push", ref, check=False)
    assert denied.returncode != 0 and b"unauthorized" in denied.stderr.lower()
    wrong = d.docker("login", "-u", "bob", "-p", "wrong", reg.address, check=False)
    assert wrong.returncode != 0
    ok = d.docker("login", "-u", "bob", "--password-stdin", reg.address, input=b"hunter2")
    assert b"Login Succeeded" in ok.stdout
    d.docker("push", ref)
    d.docker("rmi", ref)
    d.docker("pull", ref)
    # our CLI reads the same config.json the docker CLI wrote
    d.dockyard("rmi", ref)
    d.dockyard("pull", ref)
    d.docker("logout", reg.address)


def test_docker_py_push_and_pull(loaded: Daemon, registry: DockerRegistry) -> None:
    import docker

    d = loaded
    client = docker.DockerClient(base_url=d.host)
    try:
        repo = f"{registry.address}/py/busybox"
        client.images.get("busybox").tag(repo, "7")
        lines = list(client.images.push(repo, tag="7", stream=True, decode=True))
        assert any("aux" in line and line["aux"]["Tag"] == "7" for line in lines)
        assert not any("error" in line for line in lines)
        client.images.remove(f"{repo}:7")
        image = client.images.pull(repo, tag="7")
        assert f"{repo}:7" in image.tags
        assert image.attrs["RepoDigests"][0].startswith(f"{repo}@sha256:")
    finally:
        client.close()
