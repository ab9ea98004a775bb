"""The specs we build are ones runc and crun accept and run as docker would (root only: CI runs
as root and installs both).

Each test writes a bundle (busybox rootfs from scripts/busybox_rootfs.py, /etc/hostname, hosts,
resolv.conf, config.json from merge_config + build_spec + clamp_rlimits), runs it with
`runc run` and with `crun run` (on a hybrid-cgroup host in the v1-only view of the cgroups that
runtime/oci_binary.py gives crun), checks what the container printed, then `delete`s it and
removes its cgroup parent and the bundle.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.runtime import oci_binary
from dockyard.runtime.defaults import capabilities_from_mask
from dockyard.runtime.spec import RunOptions, build_spec, clamp_rlimits, merge_config, resolve_user

pytestmark = pytest.mark.root


def require_runtime(name: str) -> str:
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {name} creates namespaces, mounts and cgroups")
    path = oci_binary.find(name)
    if not path:
        pytest.skip(f"{name} is not installed (apt-get install {name}; .ci/run installs it)")
    return path


@dataclass
class Bundle:
    path: Path
    runtime: str  # runc or crun
    binary: str


def own_capabilities() -> list[str]:
    with open("/proc/self/status") as f:
        match = re.search(r"^CapEff:\s*([0-9a-f]+)$", f.read(), re.M)
    assert match
    return capabilities_from_mask(match.group(1))


def host_hard_limits(spec: dict) -> dict[str, int]:
    return {
        r["type"]: resource.getrlimit(getattr(resource, r["type"]))[1]
        for r in spec["process"].get("rlimits", [])
    }


@pytest.fixture(params=["runc", "crun"])
def bundle(request: pytest.FixtureRequest, busybox_tar: Path, tmp_path: Path) -> Iterator[Bundle]:
    binary = require_runtime(request.param)
    path = tmp_path / "bundle"
    (path / "rootfs").mkdir(parents=True)
    subprocess.run(["tar", "-C", str(path / "rootfs"), "-xf", str(busybox_tar)], check=True)
    (path / "hostname").write_text("dytest\n")
    (path / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (path / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    try:
        yield Bundle(path, request.param, binary)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(where: Bundle, opts: RunOptions, **kw: object) -> subprocess.CompletedProcess[str]:
    """Build the spec for `opts`, run it with the runtime, and clean up everything it made."""
    bundle = where.path
    cid = uuid.uuid4().hex + uuid.uuid4().hex
    parent = f"dockyard-test-{cid[:12]}"
    rootfs = bundle / "rootfs"
    config = merge_config({}, opts, container_id=cid)
    user = resolve_user(
        config["User"],
        (rootfs / "etc/passwd").read_text(),
        (rootfs / "etc/group").read_text(),
        opts.group_add,
    )
    spec = build_spec(
        config,
        opts,
        rootfs=str(rootfs),
        container_id=cid,
        user=user,
        cgroups_path=f"/{parent}/{cid}",
        resolv_conf=str(bundle / "resolv.conf"),
        hosts=str(bundle / "hosts"),
        hostname_file=str(bundle / "hostname"),
        available_caps=own_capabilities(),
        cgroup_unified=os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
        **kw,  # type: ignore[arg-type]
    )
    spec = clamp_rlimits(spec, host_hard_limits(spec))
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    state = bundle.parent / f"{where.runtime}-state"
    runtime = [where.binary, "--root", str(state)]
    view = oci_binary.enter_v1_view if oci_binary.needs_v1_view(where.runtime) else None
    try:
        return subprocess.run(
            [*runtime, "run", "--bundle", str(bundle), cid[:32]],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            preexec_fn=view,
        )
    finally:
        subprocess.run(
            [*runtime, "delete", "--force", cid[:32]], capture_output=True, preexec_fn=view
        )
        shutil.rmtree(state, ignore_errors=True)
        for leftover in glob.glob(f"/sys/fs/cgroup/{parent}") + glob.glob(
            f"/sys/fs/cgroup/*/{parent}"
        ):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(leftover)


def test_true(bundle):
    result = run(bundle, RunOptions(cmd=["true"]))
    assert (result.returncode, result.stderr) == (0, "")


def test_id_hostname_and_capabilities(bundle):
    result = run(
        bundle,
        RunOptions(
            cmd=["sh", "-c", "id; hostname; cat /proc/self/status | grep Cap"], hostname="dytest"
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "uid=0(root) gid=0(root) groups=0(root)",
        "dytest",
        "CapInh:\t0000000000000000",
        "CapPrm:\t00000000a80425fb",
        "CapEff:\t00000000a80425fb",
        "CapBnd:\t00000000a80425fb",
        "CapAmb:\t0000000000000000",
    ]


def test_restricted_container(bundle):
    """--user nobody --cap-drop ALL --read-only --network none --tmpfs /run --memory 64m ..."""
    script = "; ".join(
        [
            "id",
            "grep -E 'CapEff|CapBnd|NoNewPrivs' /proc/self/status",
            "touch /x 2>/dev/null && echo rootfs-writable || echo rootfs-read-only",
            "touch /run/x && echo run-writable",
            "grep -c : /proc/net/dev",
            "ulimit -n",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo no-v1-memory",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || echo no-v1-pids",
            "echo $HOME-$TERM-$HOSTNAME",
            "cat /etc/resolv.conf",
            "test -e /proc/kcore && wc -c </proc/kcore || echo kcore-absent",
        ]
    )
    opts = RunOptions(
        cmd=["sh", "-c", script],
        user="nobody",
        cap_drop=["ALL"],
        read_only=True,
        network_mode="none",
        tmpfs={"/run": "size=1m"},
        memory=64 << 20,
        pids_limit=50,
        security_opt=["no-new-privileges"],
        hostname="h1",
        env=["HOME=/home"],
    )
    result = run(bundle, opts)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
    ]
    assert lines[4:7] == ["rootfs-read-only", "run-writable", "1"]  # only lo in the netns
    assert int(lines[7]) == min(1048576, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    if lines[8] != "no-v1-memory":  # cgroup v1 hierarchies show the container's own cgroup
        assert lines[8:10] == [str(64 << 20), "50"]
    assert lines[10:12] == ["/home--h1", "nameserver 192.0.2.53"]
    assert lines[12] in ("0", "kcore-absent")  # masked: reads as /dev/null


def test_privileged_gets_the_runtime_capabilities(bundle):
    result = run(bundle, RunOptions(cmd=["grep", "CapEff", "/proc/self/status"], privileged=True))
    assert result.returncode == 0, result.stderr
    with open("/proc/self/status") as f:
        own = re.search(r"^CapEff:\s*(\w+)$", f.read(), re.M)
    assert own and result.stdout.split() == ["CapEff:", own.group(1)]


def test_exit_status_and_missing_command(bundle):
    assert run(bundle, RunOptions(cmd=["sh", "-c", "exit 3"])).returncode == 3
    result = run(bundle, RunOptions(cmd=["/nonexistent"]))
    assert result.returncode != 0 and "no such file or directory" in result.stderr.lower()
