"""Pure parts of the low-level runtime: mount options, secure_join, cgroup rules, error texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.runtime import caps, cgroups, mounts, process, state
from dockyard.runtime.syscalls import MS_BIND, MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC


def test_parse_options_splits_flags_propagation_and_data() -> None:
    flags, cleared, prop, data = mounts.parse_options(
        ["rbind", "ro", "nosuid", "rprivate", "mode=755", "size=64k", "rw", "dev"]
    )
    assert flags == MS_BIND | MS_REC | MS_NOSUID
    assert cleared == MS_RDONLY | MS_NODEV
    assert prop == [MS_PRIVATE | MS_REC]
    assert data == "mode=755,size=64k"


def test_secure_join_never_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").symlink_to("/../../../host/etc/passwd")
    (root / "up").symlink_to("../../..")
    (root / "loop").symlink_to("loop")
    assert mounts.secure_join(str(root), "/etc/hosts") == str(root / "host/etc/passwd")
    assert mounts.secure_join(str(root), "../../x") == str(root / "x")
    assert mounts.secure_join(str(root), "/up/etc") == str(root / "etc")
    with pytest.raises(OSError):
        mounts.secure_join(str(root), "/loop")


def test_device_rules_follow_runc() -> None:
    rules = cgroups.device_rules(
        {"devices": [{"allow": False, "access": "rwm"}]},
        [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
            {"path": "/p", "type": "p"},
        ],
    )
    lines = [cgroups.device_rule(r) for r in rules]
    assert lines[0] == "a *:* rwm"
    assert lines[1] == "c 10:229 rwm"
    assert "c 1:3 rwm" in lines and "c 136:* rwm" in lines and "c *:* m" in lines
    assert len(lines) == 2 + len(cgroups.ALWAYS_ALLOWED)


def test_shares_to_weight_and_container_path() -> None:
    assert cgroups.shares_to_weight(2) == 1
    assert cgroups.shares_to_weight(1024) == 39
    assert cgroups.shares_to_weight(262144) == 10000
    assert cgroups.container_path(None, "abc") == "/dockyard/abc"
    assert cgroups.container_path("/docker/abc", "abc") == "/docker/abc"
    assert cgroups.container_path("pod/abc", "abc", "/k8s") == "/k8s/pod/abc"
    with pytest.raises(ValueError):
        cgroups.container_path("../../etc", "x")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('exec: "nosuch": executable file not found in $PATH', 127),
        ('exec: "/x": stat /x: no such file or directory', 127),
        ('exec: "/etc": permission denied', 126),
        ("exec /bin/x: is a directory", 126),
        ("cgroup resources: invalid argument", 125),
    ],
)
def test_docker_exit_codes(message: str, code: int) -> None:
    assert process.docker_exit_code(message) == code
    assert process.ContainerError(message).exit_code == code


def test_lookup_uses_gos_rules_and_texts(tmp_path: Path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("")
    env = [f"PATH=/nonexistent:{tmp_path}"]
    assert process.lookup("tool", env) == str(exe)
    with pytest.raises(
        process.ExecError, match=r'exec: "nosuch": executable file not found in \$PATH'
    ):
        process.lookup("nosuch", env)
    with pytest.raises(
        process.ExecError, match=r'exec: "/nope": stat /nope: no such file or directory'
    ):
        process.lookup("/nope", env)
    with pytest.raises(process.ExecError, match=r"permission denied"):
        process.lookup(str(tmp_path), env)  # a directory
    with pytest.raises(process.ExecError, match=r"permission denied"):
        process.lookup(str(plain), env)  # no x bit, even for root


def test_prepare_env_dedups_and_adds_home() -> None:
    env = process.prepare_env(["A=1", "PATH=/bin", "A=2", "HOME="], 0)
    assert env[0] == "A=2" and env[1] == "PATH=/bin"
    assert env[-1].startswith("HOME=")


def test_capability_masks() -> None:
    assert caps.mask(["CAP_CHOWN", "CAP_KILL"]) == 0b100001
    assert caps.names(0b100001) == ["CAP_CHOWN", "CAP_KILL"]
    with pytest.raises(caps.CapabilityError):
        caps.mask(["CAP_TEST"])


def test_state_ids_and_oci_state() -> None:
    assert state.valid_id("abc-1.2_3+x")
    assert not state.valid_id("../x") and not state.valid_id("") and not state.valid_id("a/b")
    record = state.Record(
        id="c1", bundle="/b", pid=42, pid_start=1, created="t", cgroup_path="/d/c1"
    )
    assert state.oci_state(record, "running") == {
        "ociVersion": state.OCI_VERSION,
        "id": "c1",
        "status": "running",
        "pid": 42,
        "bundle": "/b",
        "annotations": {},
    }
    assert "pid" not in state.oci_state(record, "stopped")
