"""prime_migration: a no-op migration of the daemon into its own cgroup, so that a container's
init does not wait for an RCU grace period when it joins its cgroup. It moves nothing."""

from __future__ import annotations

import threading
from pathlib import Path

from dockyard.runtime import cgroups
from tests.conftest import needs_root


def test_priming_leaves_the_process_where_it_was() -> None:
    needs_root()
    before = Path("/proc/self/cgroup").read_text()
    threads = set(threading.enumerate())
    cgroups.prime_migration()
    primers = [t for t in threading.enumerate() if t not in threads]
    assert len(primers) == 1  # one hierarchy is enough: the lock is global
    primers[0].join(timeout=30)
    assert not primers[0].is_alive()
    assert Path("/proc/self/cgroup").read_text() == before
