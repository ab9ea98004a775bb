"""Volumes: an image's VOLUMEs and `-v` become local volumes with the image's files copied in;
anonymous ones go with `rm -v` and `--rm`, named ones stay; the docker CLI manages them."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.integration.test_lifecycle import dy, out, wait_until


def volumes(daemon: Daemon) -> set[str]:
    return set(daemon.docker("volume", "ls", "-q").stdout.decode().split())


@pytest.fixture
def image_with_volume(daemon: Daemon) -> Iterator[str]:
    """busybox plus /data (owned by 1:2, mode 0750, holding `seed`) declared a VOLUME, and
    /link -> /etc declared one too: its copy must come from the image's /etc."""
    tag = f"vol-image:{uuid.uuid4().hex[:8]}"
    name = f"vol-src-{uuid.uuid4().hex[:8]}"
    script = "mkdir /data && echo seed > /data/seed && chown 1:2 /data && chmod 750 /data"
    dy(daemon, "run", "--name", name, "busybox", "sh", "-c", f"{script} && ln -s /etc /link")
    dy(daemon, "commit", "-c", 'VOLUME ["/data", "/link"]', name, tag)
    dy(daemon, "rm", name)
    yield tag
    dy(daemon, "rmi", tag, check=False)


def test_image_volume_gets_the_image_files_and_goes_with_rm_v(
    daemon: Daemon, image_with_volume: str
) -> None:
    before = volumes(daemon)
    name = f"vol-{uuid.uuid4().hex[:8]}"
    shown = out(
        daemon, "run", "--name", name, image_with_volume, "sh", "-c",
        "stat -c '%u:%g %a' /data; cat /data/seed; echo more >> /data/seed; ls /link/passwd",
    )  # fmt: skip
    assert shown == "1:2 750\nseed\n/link/passwd\n"
    mounts = json.loads(out(daemon, "inspect", "-f", "{{json .Mounts}}", name))
    assert sorted(m["Destination"] for m in mounts) == ["/data", "/link"]
    data = next(m for m in mounts if m["Destination"] == "/data")
    assert data["Type"] == "volume" and data["Driver"] == "local" and data["RW"] is True
    assert data["Source"] == str(daemon.data_root / "volumes" / data["Name"] / "_data")
    assert volumes(daemon) - before == {m["Name"] for m in mounts}
    # The image's /etc was copied, not the host's: busybox has no os-release.
    link = next(m for m in mounts if m["Destination"] == "/link")
    assert (Path(link["Source"]) / "passwd").read_text().startswith("root:x:0:0:")
    assert not (Path(link["Source"]) / "os-release").exists()
    # A restart keeps what was written (it is not copied again).
    assert out(daemon, "start", "-a", name) == "1:2 750\nseed\nmore\n/link/passwd\n"
    # Writes to a volume are not the container's: diff and commit leave them out.
    assert "seed" not in out(daemon, "diff", name)
    assert daemon.docker("volume", "rm", data["Name"], check=False).returncode == 1
    dy(daemon, "rm", "-v", name)
    assert volumes(daemon) == before
    assert not (daemon.data_root / "volumes" / data["Name"]).exists()


def test_named_volumes_persist_and_anonymous_ones_go_with_rm(daemon: Daemon) -> None:
    before = volumes(daemon)
    vol = f"named-{uuid.uuid4().hex[:8]}"
    try:
        dy(daemon, "run", "--rm", "-v", f"{vol}:/v", "busybox", "sh", "-c", "echo 1 > /v/f")
        assert out(daemon, "run", "--rm", "-v", f"{vol}:/v:ro", "busybox", "cat", "/v/f") == "1\n"
        result = dy(
            daemon, "run", "--rm", "-v", f"{vol}:/v:ro", "busybox", "touch", "/v/g", check=False
        )
        assert result.returncode == 1 and b"Read-only file system" in result.stderr
        # --rm takes the anonymous volume, never the named one
        dy(daemon, "run", "--rm", "-v", "/anon", "-v", f"{vol}:/v", "busybox", "true")
        wait_until(lambda: volumes(daemon) - before == {vol}, what="anonymous volume removal")
        inspected = json.loads(daemon.docker("volume", "inspect", vol).stdout)[0]
        assert inspected["Name"] == vol and inspected["Driver"] == "local"
    finally:
        daemon.docker("volume", "rm", vol, check=False)
    assert volumes(daemon) == before


def test_the_docker_cli_manages_volumes(daemon: Daemon) -> None:
    vol = f"cli-{uuid.uuid4().hex[:8]}"
    assert daemon.docker("volume", "create", "--label", "k=v", vol).stdout.decode() == vol + "\n"
    assert vol in daemon.docker("volume", "ls", "--filter", "label=k=v", "-q").stdout.decode()
    name = f"vol-{uuid.uuid4().hex[:8]}"
    daemon.docker("create", "--name", name, "-v", f"{vol}:/x", "busybox", "true")
    busy = daemon.docker("volume", "rm", vol, check=False)
    assert busy.returncode == 1
    assert busy.stderr.decode().startswith(f"Error response from daemon: remove {vol}: ")
    assert "volume is in use" in busy.stderr.decode()
    dy(daemon, "rm", name)
    assert daemon.docker("volume", "rm", vol).stdout.decode() == vol + "\n"
    gone = daemon.docker("volume", "inspect", vol, check=False)
    assert gone.returncode == 1 and b"no such volume" in gone.stderr
    bad = daemon.docker("volume", "create", "a/b", check=False)
    assert bad.returncode == 1 and b"includes invalid characters" in bad.stderr
    # prune: unused anonymous volumes only (docker 23+), named ones need --all
    anon = f"vol-{uuid.uuid4().hex[:8]}"
    daemon.docker("create", "--name", anon, "-v", "/p", "busybox", "true")
    made = json.loads(out(daemon, "inspect", "-f", "{{json .Mounts}}", anon))[0]["Name"]
    keep = f"keep-{uuid.uuid4().hex[:8]}"
    daemon.docker("volume", "create", keep)
    dy(daemon, "rm", anon)
    assert made in daemon.docker("volume", "prune", "-f").stdout.decode()
    assert keep in volumes(daemon) and made not in volumes(daemon)
    daemon.docker("volume", "rm", keep)
    assert os.path.isdir(daemon.data_root / "volumes")


def test_our_cli_manages_volumes(daemon: Daemon) -> None:
    vol = f"ours-{uuid.uuid4().hex[:8]}"
    assert out(daemon, "volume", "create", "--label", "team=a", vol) == vol + "\n"
    listing = out(daemon, "volume", "ls", "--filter", "label=team=a")
    assert listing.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert f"local     {vol}" in listing
    assert out(daemon, "volume", "inspect", "-f", "{{.Name}} {{.Driver}}", vol) == f"{vol} local\n"
    missing = dy(daemon, "volume", "inspect", "nosuch-volume", check=False)
    assert missing.returncode == 1 and missing.stdout == b"[]\n"
    assert missing.stderr == b"Error response from daemon: get nosuch-volume: no such volume\n"
    anon = f"vol-{uuid.uuid4().hex[:8]}"
    dy(daemon, "create", "--name", anon, "-v", "/anon", "busybox", "true")
    made = json.loads(out(daemon, "inspect", "-f", "{{json .Mounts}}", anon))[0]["Name"]
    dy(daemon, "rm", anon)
    pruned = out(daemon, "volume", "prune", "-f")
    assert pruned.startswith("Deleted Volumes:\n") and made in pruned and vol not in pruned
    assert out(daemon, "volume", "rm", vol) == vol + "\n"
    assert vol not in volumes(daemon)
