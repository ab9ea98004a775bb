"""Helpers for the end-to-end tests: real clients (docker CLI, docker-py, skopeo) against our daemon.

Tests that use the session `daemon` take the `cleanup` fixture: whatever images and tags they add
are removed afterwards, so the session daemon holds busybox:latest and nothing else between tests.
Tests that count what the store holds use `fresh_daemon` instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon


def layer_tar(files: dict[str, bytes], *, mtime: int = 1_700_000_000) -> bytes:
    """A layer: a plain tar of regular files (directories implied)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_state(daemon: Daemon) -> tuple[list[str], list[str]]:
    """(sorted image IDs, sorted tags) of everything the daemon holds, dangling included."""
    out = daemon.docker("images", "-a", "--no-trunc", "--format", "{{json .}}").stdout.decode()
    ids, tags = set(), set()
    for line in out.splitlines():
        row = json.loads(line)
        ids.add(row["ID"])
        if row["Tag"] != "<none>":
            tags.add(f"{row['Repository']}:{row['Tag']}")
    return sorted(ids), sorted(tags)


def store_files(daemon: Daemon) -> dict[str, list[str]]:
    """What lies on disk in the content store and the snapshotter (for "nothing stored")."""
    root = daemon.data_root

    def names(path: Path) -> list[str]:
        return sorted(os.listdir(path)) if path.is_dir() else []

    return {
        "blobs": names(root / "content" / "blobs" / "sha256"),
        "ingest": names(root / "content" / "ingest"),
        "snapshots": names(root / "snapshots"),
        "tmp": names(root / "tmp"),
    }


def inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(daemon.docker("image", "inspect", name).stdout)[0]


@pytest.fixture
def uid() -> str:
    """A short unique suffix for names a test creates."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def cleanup(daemon: Daemon) -> Iterator[Daemon]:
    """The session daemon; afterwards every image and tag the test added is removed."""
    import docker

    client = docker.APIClient(base_url=daemon.host)
    before_ids = {image["Id"] for image in client.images(all=True)}
    before_tags = {tag for image in client.images(all=True) for tag in image["RepoTags"] or []}
    try:
        yield daemon
    finally:
        for image in client.images(all=True):
            for tag in image["RepoTags"] or []:
                if tag not in before_tags:
                    client.remove_image(tag, noprune=False)
        for image in client.images(all=True):
            if image["Id"] not in before_ids:
                client.remove_image(image["Id"], force=True)
        after_ids = {image["Id"] for image in client.images(all=True)}
        client.close()
        assert after_ids == before_ids, "cleanup left images behind"


def human_size(size: float, precision: int) -> str:
    """go-units' HumanSizeWithPrecision (decimal units): `docker images` uses 3, `system df` 4."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.{precision}g}{units[index]}"


def failed(result: subprocess.CompletedProcess[bytes], code: int = 1) -> str:
    """Assert a command failed with `code`; return its stderr."""
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}: {result.stdout!r} {result.stderr!r}"
    )
    return result.stderr.decode()


def table(output: bytes) -> list[list[str]]:
    """A docker table (columns separated by two or more spaces) as rows of cells."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.decode().splitlines()]
