"""`docker system prune`, `docker network ls|inspect` and `docker builder prune` against our
daemon: the routes they call exist and answer as dockerd's do."""

from __future__ import annotations

import json

from tests.conftest import Daemon


def test_system_prune_removes_stopped_containers(fresh_daemon: Daemon, busybox_tar) -> None:
    d = fresh_daemon
    d.dockyard("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    stopped = d.docker("create", "busybox", "true").stdout.decode().strip()
    running = d.docker("run", "-d", "busybox", "sleep", "60").stdout.decode().strip()
    try:
        out = d.docker("system", "prune", "-f").stdout.decode()
        assert out.startswith(f"Deleted Containers:\n{stopped}\n")
        assert out.endswith("\nTotal reclaimed space: 0B\n")  # an empty writable layer
        left = d.docker("ps", "-a", "-q", "--no-trunc").stdout.decode().split()
        assert left == [running]
    finally:
        d.docker("rm", "-f", running)


def test_networks_and_builder_prune(daemon: Daemon) -> None:
    listing = daemon.docker("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout
    assert listing.decode().splitlines() == ["host host", "none null"]
    inspected = json.loads(daemon.docker("network", "inspect", "none").stdout)[0]
    assert inspected["Name"] == "none" and inspected["Scope"] == "local"
    missing = daemon.docker("network", "inspect", "nosuch", check=False)
    assert missing.returncode == 1 and b"network nosuch not found" in missing.stderr
    pruned = daemon.docker("builder", "prune", "-f")
    assert b"Total reclaimed space: 0B" in pruned.stdout
