"""prime_migration: a no-op migration of the daemon into its own cgroup, so that a container's
init does not wait for an RCU grace period when it joins its cgroup. It moves nothing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dockyard.runtime import cgroups
from tests.conftest import needs_root


def test_priming_leaves_the_process_where_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_root()
    before = Path("/proc/self/cgroup").read_text()
    written: list[str] = []
    done = threading.Event()
    original = cgroups._rewrite_own_pid

    def rewrite(procs: str) -> None:
        original(procs)
        written.append(procs)
        done.set()

    monkeypatch.setattr(cgroups, "_rewrite_own_pid", rewrite)
    cgroups.prime_migration()
    assert done.wait(timeout=30)
    assert len(written) == 1  # one hierarchy is enough: the lock is global
    procs = Path(written[0])
    assert procs.name == "cgroup.procs"
    assert str(os.getpid()) in procs.read_text().split()  # our own cgroup: we are in it
    assert Path("/proc/self/cgroup").read_text() == before
