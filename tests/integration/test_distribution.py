"""Our daemon pulling and pushing: against Debian's docker-registry (started here on a free
port) and against a fake registry that misbehaves (wrong digests, cut-off bodies, unknown
media types, bearer auth)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.registries import DockerRegistry, FakeRegistry


@pytest.fixture
def registry() -> Iterator[DockerRegistry]:
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry (Debian package) is not installed")
    reg = DockerRegistry()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with FakeRegistry() as reg:
        yield reg


@pytest.fixture
def loaded(fresh_daemon: Daemon, busybox_tar: Path) -> Daemon:
    fresh_daemon.dockyard("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return fresh_daemon


def image_ids(d: Daemon) -> list[str]:
    out = d.dockyard("images", "-a", "-q", "--no-trunc").stdout.decode().split()
    return sorted(set(out))


def stored(d: Daemon) -> tuple[list[str], list[str]]:
    root = d.data_root / "content"
    return sorted(os.listdir(root / "blobs" / "sha256")), sorted(os.listdir(root / "ingest"))


def inspect(d: Daemon, name: str) -> dict:
    return json.loads(d.dockyard("image", "inspect", name).stdout)[0]


def test_push_twice_sends_no_layer_twice_and_pull_gives_the_same_image(
    loaded: Daemon, registry: DockerRegistry
) -> None:
    d = loaded
    ref = f"{registry.address}/test/busybox:1"
    d.dockyard("tag", "busybox", ref)
    first = d.dockyard("push", ref).stdout.decode()
    assert "Pushed" in first and "1: digest: sha256:" in first
    sent_first = registry.sent
    layer = inspect(d, ref)
    assert sent_first > 500_000  # the busybox layer went
    second = d.dockyard("push", ref).stdout.decode()
    assert "Layer already exists" in second
    assert registry.sent - sent_first < 10_000  # requests and the manifest, no layer bytes
    image_id = layer["Id"]
    d.dockyard("rmi", ref, "busybox")
    assert image_ids(d) == []
    out = d.dockyard("pull", ref).stdout.decode()
    assert "Pull complete" in out and "Status: Downloaded newer image for" in out
    pulled = inspect(d, ref)
    assert pulled["Id"] == image_id
    digest = first.split("digest: ")[1].split()[0]
    assert pulled["RepoDigests"] == [f"{registry.address}/test/busybox@{digest}"]
    again = d.dockyard("pull", ref).stdout.decode()
    assert "Image is up to date" in again
    assert d.dockyard("run", "--rm", ref, "echo", "pulled").stdout == b"pulled\n"


def test_push_mounts_a_blob_from_another_repository(
    loaded: Daemon, registry: DockerRegistry
) -> None:
    d = loaded
    d.dockyard("tag", "busybox", f"{registry.address}/a/one:1")
    d.dockyard("tag", "busybox", f"{registry.address}/b/two:1")
    d.dockyard("push", f"{registry.address}/a/one:1")
    before = registry.sent
    out = d.dockyard("push", f"{registry.address}/b/two:1").stdout.decode()
    assert "Mounted from a/one" in out
    assert registry.sent - before < 10_000


def test_run_pulls_a_missing_image(loaded: Daemon, registry: DockerRegistry) -> None:
    d = loaded
    ref = f"{registry.address}/run/me:latest"
    d.dockyard("tag", "busybox", ref)
    d.dockyard("push", ref)
    d.dockyard("rmi", ref)
    result = d.docker("run", "--rm", ref, "echo", "ran")
    assert result.stdout == b"ran\n"
    assert b"Unable to find image" in result.stderr


def test_index_picks_the_platform(fresh_daemon: Daemon, fake: FakeRegistry) -> None:
    amd = fake.add_image("amd", [{"arch": b"amd64\n"}], arch="amd64")
    arm = fake.add_image("arm", [{"arch": b"arm64\n"}], arch="arm64")
    index_digest = fake.add_index("multi", [(amd, "amd64"), (arm, "arm64")])
    d = fresh_daemon
    d.dockyard("pull", "--platform", "linux/arm64", f"{fake.address}/multi:multi")
    got = inspect(d, f"{fake.address}/multi:multi")
    assert got["Id"] == arm.config_digest
    assert got["Architecture"] == "arm64"
    assert got["RepoDigests"] == [f"{fake.address}/multi@{index_digest}"]
    d.dockyard("pull", f"{fake.address}/multi:multi")  # the host's: amd64 here
    assert inspect(d, f"{fake.address}/multi:multi")["Id"] == amd.config_digest
    bad = d.dockyard(
        "pull", "--platform", "linux/s390x", f"{fake.address}/multi:multi", check=False
    )
    assert bad.returncode == 1
    assert b"no matching manifest for linux/s390x" in bad.stderr


def test_a_blob_that_does_not_match_its_digest_is_refused(
    fresh_daemon: Daemon, fake: FakeRegistry
) -> None:
    image = fake.add_image("1", [{"a": b"one"}, {"b": b"two" * 1000}])
    fake.corrupt.add(image.layer_digests[1])
    d = fresh_daemon
    before = stored(d)
    snapshots = sorted(os.listdir(d.data_root / "snapshots"))
    result = d.dockyard("pull", f"{fake.address}/bad:1", check=False)
    assert result.returncode == 1
    assert b"digest" in result.stderr.lower()
    assert image_ids(d) == []
    assert stored(d) == before  # nothing stored, not even the good first layer
    assert sorted(os.listdir(d.data_root / "snapshots")) == snapshots


def test_a_cut_off_download_resumes_with_range(fresh_daemon: Daemon, fake: FakeRegistry) -> None:
    image = fake.add_image("1", [{"big": os.urandom(300_000)}])
    fake.truncate.add(image.layer_digests[0])
    d = fresh_daemon
    d.dockyard("pull", f"{fake.address}/cut:1")
    assert inspect(d, f"{fake.address}/cut:1")["Id"] == image.config_digest
    ranges = [h.get("Range") for m, p, h in fake.requests if p.endswith(image.layer_digests[0])]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_an_unknown_layer_media_type_is_refused(fresh_daemon: Daemon, fake: FakeRegistry) -> None:
    fake.add_image("1", [{"a": b"x"}], media="application/x-mystery")
    d = fresh_daemon
    before = stored(d)
    result = d.dockyard("pull", f"{fake.address}/odd:1", check=False)
    assert result.returncode == 1
    assert b"unsupported layer media type: application/x-mystery" in result.stderr
    assert stored(d) == before and image_ids(d) == []


def test_bearer_auth_with_login(fresh_daemon: Daemon, fake: FakeRegistry) -> None:
    fake.auth = ("alice", "s3cret")
    image = fake.add_image("1", [{"a": b"private"}])
    d = fresh_daemon
    ref = f"{fake.address}/private/img:1"
    denied = d.dockyard("pull", ref, check=False)
    assert denied.returncode == 1
    assert b"pull access denied" in denied.stderr
    wrong = d.dockyard("login", "-u", "alice", "-p", "nope", fake.address, check=False)
    assert wrong.returncode == 1 and b"unauthorized" in wrong.stderr.lower()
    ok = d.dockyard("login", "-u", "alice", "--password-stdin", fake.address, input=b"s3cret\n")
    assert b"Login Succeeded" in ok.stdout
    config = json.loads((d.base / "docker-config" / "config.json").read_text())
    assert fake.address in config["auths"]
    d.dockyard("pull", ref)
    assert inspect(d, ref)["Id"] == image.config_digest
    token_calls = [h for m, p, h in fake.requests if p == "/token"]
    assert any(h.get("Authorization", "").startswith("Basic ") for h in token_calls)
    out = d.dockyard("logout", fake.address).stdout.decode()
    assert f"Removing login credentials for {fake.address}" in out
    assert (
        fake.address
        not in json.loads((d.base / "docker-config" / "config.json").read_text())["auths"]
    )


def test_unknown_tag_and_unreachable_registry(fresh_daemon: Daemon, fake: FakeRegistry) -> None:
    d = fresh_daemon
    missing = d.dockyard("pull", f"{fake.address}/none:1", check=False)
    assert missing.returncode == 1
    assert b"manifest for" in missing.stderr and b"not found" in missing.stderr
    result = d.dockyard("pull", "127.0.0.1:1/nothing:1", check=False)
    assert result.returncode == 1
    assert b"127.0.0.1:1" in result.stderr and b"connection refused" in result.stderr
    assert image_ids(d) == []


def test_chunked_and_monolithic_uploads(registry: DockerRegistry) -> None:
    """The client's two upload paths against docker-registry: Content-Range PATCH chunks (for
    a large blob when Options.upload_chunk is set) and one PUT (a small blob)."""
    import asyncio
    import hashlib

    import aiohttp

    from dockyard.distribution.auth import AuthConfig
    from dockyard.distribution.client import Options, Registry

    big = os.urandom((1 << 20) * 3 + 123)
    small = b"small blob"

    async def go() -> list[bytes]:
        async with aiohttp.ClientSession() as session:
            client = Registry(
                session, registry.address, AuthConfig(), Options(upload_chunk=1 << 20), push=True
            )
            import dockyard.distribution.client as client_module

            old = client_module.MONOLITHIC_MAX
            client_module.MONOLITHIC_MAX = 1 << 20
            try:
                got = []
                for data in (big, small):
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    assert not await client.blob_exists("up/load", digest)
                    location = await client.start_upload("up/load", digest)
                    assert location is not None

                    async def chunks(start: int, end: int, data: bytes = data):
                        yield data[start:end]

                    await client.upload("up/load", location, digest, len(data), chunks)
                    assert await client.blob_exists("up/load", digest)
                    parts: list[bytes] = []
                    await client.fetch_blob("up/load", digest, len(data), parts.append)
                    got.append(b"".join(parts))
                return got
            finally:
                client_module.MONOLITHIC_MAX = old

    assert asyncio.run(go()) == [big, small]
