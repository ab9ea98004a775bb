"""build_spec and merge_config against what dockerd 20.10 + runc 1.1 wrote for the same options.

The expected fragments were read from /run/docker/containerd/daemon/io.containerd.runtime.v2.task/
moby/<id>/config.json and `docker inspect` after `docker run -d --name x [OPTIONS] busybox sleep
100` (and `docker create` for Config-only cases) on the test machine. Where we differ on purpose
the test says so: masked paths follow current moby (more paths), the host network mode drops the
network namespace instead of naming the host's, and every container gets RLIMIT_NOFILE 1048576.
"""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.runtime.defaults import DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, capability_mask
from dockyard.runtime.spec import RunOptions
from tests.unit.runtime_fixtures import (
    CID,
    CTR,
    DEFAULT_DEVICE_RULES,
    IMAGE,
    NET_FILES,
    SHM,
    SLEEP,
    spec_for,
)


def test_default_spec_is_what_dockerd_wrote():
    spec = spec_for(RunOptions(cmd=SLEEP, detach=True))
    caps = list(DEFAULT_CAPABILITIES)
    assert spec["ociVersion"] == "1.0.2-dev"
    assert spec["process"] == {
        "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
        "args": ["sleep", "100"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=d8aa9a53fc4b",
        ],
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        # Ours: dockerd 20.10 sets none (its containers inherit systemd's LimitNOFILE).
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}],
        "oomScoreAdj": 0,
    }
    assert spec["root"] == {"path": CTR + "/rootfs"}
    assert spec["hostname"] == "d8aa9a53fc4b"
    assert spec["mounts"] == [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        SHM,
        *NET_FILES,
    ]
    assert spec["linux"] == {
        "sysctl": {
            "net.ipv4.ip_unprivileged_port_start": "0",
            "net.ipv4.ping_group_range": "0 2147483647",
        },
        "resources": {
            "devices": DEFAULT_DEVICE_RULES,
            "memory": {"disableOOMKiller": False},
            "cpu": {"shares": 0},
            "blockIO": {"weight": 0},
        },
        "cgroupsPath": "/docker/" + CID,
        "namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")],
        # Ours: current moby's list (dockerd 20.10 lacks /proc/interrupts and powercap).
        "maskedPaths": list(DEFAULT_MASKED_PATHS),
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    }
    assert capability_mask(caps) == 0xA80425FB  # CapEff of a docker container's shell


# (docker run options, the same as RunOptions, {dotted path: expected value} from config.json)
OBSERVED = [
    (
        "--cap-add NET_ADMIN --cap-add SYS_ADMIN --cap-drop chown --cap-drop CAP_KILL",
        RunOptions(
            cmd=SLEEP, cap_add=["CAP_NET_ADMIN", "CAP_SYS_ADMIN"], cap_drop=["chown", "CAP_KILL"]
        ),
        {
            "process.capabilities.bounding": [
                *(c for c in DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_KILL")),
                "CAP_NET_ADMIN",
                "CAP_SYS_ADMIN",
            ]
        },
    ),
    (
        "--cap-drop ALL --cap-add NET_RAW",
        RunOptions(cmd=SLEEP, cap_drop=["ALL"], cap_add=["NET_RAW"]),
        {
            "process.capabilities": {
                k: ["CAP_NET_RAW"] for k in ("bounding", "effective", "permitted")
            }
        },
    ),
    (
        "--read-only",
        RunOptions(cmd=SLEEP, read_only=True),
        {
            "root": {"path": CTR + "/rootfs", "readonly": True},
            "mounts.7.options": ["rbind", "ro", "rprivate"],
            "mounts.9.options": ["rbind", "ro", "rprivate"],
            "mounts.3.options": ["nosuid", "noexec", "nodev", "ro"],
        },
    ),
    (
        "--memory 64m --memory-swap 128m --cpu-shares 512 --cpus 1.5 --pids-limit 100 --cpuset-cpus 0",
        RunOptions(
            cmd=SLEEP,
            memory=64 << 20,
            memory_swap=128 << 20,
            cpu_shares=512,
            nano_cpus=1_500_000_000,
            pids_limit=100,
            cpuset_cpus="0",
        ),
        {
            "linux.resources.memory": {
                "limit": 67108864,
                "swap": 134217728,
                "disableOOMKiller": False,
            },
            "linux.resources.cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0"},
            "linux.resources.pids": {"limit": 100},
        },
    ),
    (
        "--cpu-period 50000 --cpu-quota 25000 --memory 32m (swap defaults to twice memory)",
        RunOptions(cmd=SLEEP, cpu_period=50000, cpu_quota=25000, memory=32 << 20),
        {
            "linux.resources.memory": {
                "limit": 33554432,
                "swap": 67108864,
                "disableOOMKiller": False,
            },
            "linux.resources.cpu": {"shares": 0, "quota": 25000, "period": 50000},
        },
    ),
    (
        "--pids-limit -1 --oom-kill-disable --memory 64m --oom-score-adj 500",
        RunOptions(
            cmd=SLEEP, pids_limit=-1, oom_kill_disable=True, memory=64 << 20, oom_score_adj=500
        ),
        {
            "linux.resources.memory.disableOOMKiller": True,
            "linux.resources.pids": None,
            "process.oomScoreAdj": 500,
        },
    ),
    (
        "--ulimit core=-1 --ulimit nofile=1024:2048 --ulimit nproc=100",
        RunOptions(
            cmd=SLEEP, ulimits={"core": (-1, -1), "nofile": (1024, 2048), "nproc": (100, 100)}
        ),
        {
            "process.rlimits": [
                {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 2**64 - 1},
                {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
                {"type": "RLIMIT_NPROC", "hard": 100, "soft": 100},
            ]
        },
    ),
    (
        "-t -i",
        RunOptions(cmd=SLEEP, tty=True, open_stdin=True),
        {
            "process.terminal": True,
            "process.env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=d8aa9a53fc4b",
                "TERM=xterm",
            ],
        },
    ),
    (
        "--user 1000 --workdir /tmp -e B -e A=1 -e PATH=/bin -h myhost --domainname example.com",
        RunOptions(
            cmd=SLEEP,
            user="1000",
            working_dir="/tmp",
            env=["B", "A=1", "PATH=/bin"],
            hostname="myhost",
            domainname="example.com",
        ),
        {
            "process.env": ["PATH=/bin", "HOSTNAME=myhost", "A=1"],
            "process.cwd": "/tmp",
            "process.user": {"uid": 1000, "gid": 0, "additionalGids": [0]},
            "process.capabilities": {"bounding": list(DEFAULT_CAPABILITIES)},
            "hostname": "myhost",
            "linux.sysctl.kernel.domainname": "example.com",
        },
    ),
    (
        "--user 1000:1000 --group-add 65534 --group-add root",
        RunOptions(cmd=SLEEP, user="1000:1000", group_add=["65534", "root"]),
        {"process.user": {"uid": 1000, "gid": 1000, "additionalGids": [1000, 65534, 0]}},
    ),
    ("--user root:0", RunOptions(cmd=SLEEP, user="root:0"), {"process.user.additionalGids": [0]}),
    (
        "--network none",
        RunOptions(cmd=SLEEP, network_mode="none"),
        {"linux.namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")]},
    ),
    (
        # dockerd 20.10 names the host's netns (/var/run/docker/netns/default); moby now drops it.
        "--network host",
        RunOptions(cmd=SLEEP, network_mode="host"),
        {
            "linux.namespaces": [{"type": t} for t in ("mount", "uts", "pid", "ipc")],
            "linux.sysctl": None,
            "hostname": "vm",
            "process.env.1": "HOSTNAME=vm",
        },
    ),
    (
        "--ipc host --pid host --uts host",
        RunOptions(cmd=SLEEP, ipc_mode="host", pid_mode="host", uts_mode="host"),
        {
            "linux.namespaces": [{"type": "mount"}, {"type": "network"}],
            "hostname": None,
            "mounts.6:": [
                *NET_FILES,
                {
                    "destination": "/dev/shm",
                    "type": "bind",
                    "source": "/dev/shm",
                    "options": ["rbind", "rprivate"],
                },
            ],
        },
    ),
    ("--ipc none", RunOptions(cmd=SLEEP, ipc_mode="none"), {"mounts.6:": NET_FILES}),
    (
        "--tmpfs /data:rw,size=10m,mode=700 --tmpfs /run",
        RunOptions(cmd=SLEEP, tmpfs={"/data": "rw,size=10m,mode=700", "/run": ""}),
        {
            "mounts.7:": [
                {
                    "destination": "/data",
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": [
                        "noexec",
                        "nosuid",
                        "nodev",
                        "rprivate",
                        "rw",
                        "size=10m",
                        "mode=700",
                    ],
                },
                {
                    "destination": "/run",
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["noexec", "nosuid", "nodev", "rprivate"],
                },
                *NET_FILES,
            ]
        },
    ),
    (
        # dockerd's order among /mnt/* comes from a Go map; ours is the order given.
        "-v S:/mnt/b:ro -v S:/mnt/c:rw,z -v S:/mnt/d:ro,rprivate -v S:/mnt/a",
        RunOptions(
            cmd=SLEEP,
            binds=["/s:/mnt/b:ro", "/s:/mnt/c:rw,z", "/s:/mnt/d:ro,rprivate", "/s:/mnt/a"],
        ),
        {
            "mounts.7:": [
                {
                    "destination": "/mnt/b",
                    "type": "bind",
                    "source": "/s",
                    "options": ["rbind", "ro", "rprivate"],
                },
                {
                    "destination": "/mnt/c",
                    "type": "bind",
                    "source": "/s",
                    "options": ["rbind", "rprivate"],
                },
                {
                    "destination": "/mnt/d",
                    "type": "bind",
                    "source": "/s",
                    "options": ["rbind", "ro", "rprivate"],
                },
                {
                    "destination": "/mnt/a",
                    "type": "bind",
                    "source": "/s",
                    "options": ["rbind", "rprivate"],
                },
                *NET_FILES,
            ]
        },
    ),
    (
        "-v /data (an anonymous volume: no propagation option)",
        RunOptions(cmd=SLEEP, binds=["/data"]),
        {
            "mounts.7:": [
                {
                    "destination": "/data",
                    "type": "bind",
                    "source": "/vols/data",
                    "options": ["rbind"],
                },
                *NET_FILES,
            ]
        },
    ),
    (
        "--device /dev/zero:/dev/z --device /dev/zero:/dev/z2:r --device-cgroup-rule 'c 42:* rmw'",
        RunOptions(
            cmd=SLEEP,
            devices=["/dev/zero:/dev/z", "/dev/zero:/dev/z2:r"],
            device_cgroup_rules=["c 42:* rmw"],
        ),
        {
            "linux.devices": [
                {
                    "path": "/dev/z",
                    "type": "c",
                    "major": 1,
                    "minor": 5,
                    "fileMode": 438,
                    "uid": 0,
                    "gid": 0,
                },
                {
                    "path": "/dev/z2",
                    "type": "c",
                    "major": 1,
                    "minor": 5,
                    "fileMode": 438,
                    "uid": 0,
                    "gid": 0,
                },
            ],
            "linux.resources.devices": [
                *DEFAULT_DEVICE_RULES,
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
                {"allow": True, "type": "c", "major": 42, "minor": -1, "access": "rmw"},
            ],
        },
    ),
    (
        "--sysctl net.ipv4.ip_forward=1 --sysctl kernel.msgmax=65536 --shm-size 128m",
        RunOptions(
            cmd=SLEEP,
            sysctls={"net.ipv4.ip_forward": "1", "kernel.msgmax": "65536"},
            shm_size=128 << 20,
        ),
        {
            "linux.sysctl": {
                "kernel.msgmax": "65536",
                "net.ipv4.ip_forward": "1",
                "net.ipv4.ip_unprivileged_port_start": "0",
                "net.ipv4.ping_group_range": "0 2147483647",
            },
            "mounts.6.options": ["nosuid", "noexec", "nodev", "mode=1777", "size=134217728"],
        },
    ),
    (
        "--security-opt no-new-privileges",
        RunOptions(cmd=SLEEP, security_opt=["no-new-privileges"]),
        {"process.noNewPrivileges": True},
    ),
    (
        "--init",
        RunOptions(cmd=SLEEP, init=True),
        {
            "process.args": ["/sbin/docker-init", "--", "sleep", "100"],
            "mounts.7": {
                "destination": "/sbin/docker-init",
                "type": "bind",
                "source": "/usr/bin/docker-init",
                "options": ["bind", "ro"],
            },
        },
    ),
    (
        "--entrypoint /bin/sleep busybox 100",
        RunOptions(cmd=["100"], entrypoint=["/bin/sleep"]),
        {"process.args": ["/bin/sleep", "100"]},
    ),
    (
        "-e FOO=bar -e HOSTNAME=override",
        RunOptions(cmd=SLEEP, env=["FOO=bar", "HOSTNAME=override"]),
        {"process.env.1:": ["HOSTNAME=override", "FOO=bar"]},
    ),
]


def lookup(doc: object, path: str) -> object:
    """`a.b.3` indexes dicts and lists; a final `N:` slices; a missing key reads as None."""
    *parts, last = path.split(".")
    # sysctl keys contain dots: once inside "sysctl", the rest is one key
    if "sysctl" in parts:
        i = parts.index("sysctl")
        parts, last = parts[: i + 1], ".".join([*parts[i + 1 :], last])
    for part in parts:
        doc = doc[int(part)] if isinstance(doc, list) else doc.get(part)  # type: ignore[union-attr]
    if last.endswith(":"):
        return doc[int(last[:-1]) :]  # type: ignore[index]
    return doc[int(last)] if isinstance(doc, list) else doc.get(last)  # type: ignore[union-attr]


@pytest.mark.parametrize(("flags", "opts", "expected"), OBSERVED, ids=[o[0] for o in OBSERVED])
def test_spec_matches_dockerd(flags, opts, expected):
    spec = spec_for(opts)
    for path, value in expected.items():
        assert lookup(spec, path) == value, path


def test_image_config_reaches_the_process():
    """docker run -e A=user -e C=3 -e B -e A=again -u 5 --entrypoint sleep dyobs-img 100."""
    opts = RunOptions(
        image="dyobs-img", cmd=["100"], entrypoint=["sleep"], env=["A=again", "C=3", "B"], user="5"
    )
    spec = spec_for(opts, IMAGE)
    assert spec["process"]["env"] == [
        "PATH=/imgbin:/bin",
        "HOSTNAME=d8aa9a53fc4b",
        "A=again",
        "C=3",
    ]
    assert spec["process"]["cwd"] == "/srv"
    assert spec["process"]["user"] == {"uid": 5, "gid": 0, "additionalGids": [0]}
    assert spec["process"]["args"] == ["sleep", "100"]
    assert {
        "destination": "/vol",
        "type": "bind",
        "source": "/vols/vol",
        "options": ["rbind"],
    } in spec["mounts"]
    opts = RunOptions(
        image="dyobs-img", cmd=["100"], entrypoint=["sleep"], user="0:0", group_add=["5", "0"]
    )
    assert spec_for(opts, IMAGE)["process"]["user"]["additionalGids"] == [0, 5, 0]


# --- mounts and namespaces edge cases -------------------------------------------------------------


def test_read_only_keeps_kernel_filesystems_writable_and_user_mounts_as_given():
    spec = spec_for(RunOptions(cmd=SLEEP, read_only=True, binds=["/s:/mnt"], tmpfs={"/run": ""}))
    options = {m["destination"]: m["options"] for m in spec["mounts"]}
    for dest in ("/proc", "/dev", "/dev/pts", "/dev/mqueue", "/dev/shm", "/mnt", "/run"):
        assert "ro" not in options[dest], dest
    assert "ro" in options["/sys/fs/cgroup"] and "ro" in options["/etc/hosts"]


def test_user_mount_over_dev_drops_defaults_under_it_and_binds_over_network_files():
    spec = spec_for(RunOptions(cmd=SLEEP, binds=["/hostdev:/dev", "/my/hosts:/etc/hosts:ro"]))
    dests = [m["destination"] for m in spec["mounts"]]
    assert not [d for d in dests if d.startswith("/dev/")]
    (hosts,) = [m for m in spec["mounts"] if m["destination"] == "/etc/hosts"]
    assert hosts == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/my/hosts",
        "options": ["rbind", "ro", "rprivate"],
    }


def test_mounts_are_ordered_parents_first():
    spec = spec_for(RunOptions(cmd=SLEEP, binds=["/a:/x/y/z", "/b:/x", "/c:/x/y"]))
    dests = [m["destination"] for m in spec["mounts"][7:]]
    assert dests.index("/x") < dests.index("/x/y") < dests.index("/x/y/z")


def test_shared_and_slave_binds_set_rootfs_propagation():
    assert (
        spec_for(RunOptions(cmd=SLEEP, binds=["/s:/a:rshared"]))["linux"]["rootfsPropagation"]
        == "shared"
    )
    assert (
        spec_for(RunOptions(cmd=SLEEP, binds=["/s:/a:slave"]))["linux"]["rootfsPropagation"]
        == "rslave"
    )
    assert "rootfsPropagation" not in spec_for(RunOptions(cmd=SLEEP, binds=["/s:/a"]))["linux"]


def test_recursive_read_only_and_extra_masks():
    spec = spec_for(
        RunOptions(cmd=SLEEP, binds=["/s:/a:ro"]),
        recursive_readonly=True,
        extra_masked_paths=["/sys/x"],
    )
    assert spec["mounts"][7]["options"] == ["rbind", "rro", "rprivate"]
    assert spec["linux"]["maskedPaths"][-1] == "/sys/x"


def test_cgroup_namespace_modes():
    assert {"type": "cgroup"} in spec_for(RunOptions(cmd=SLEEP), cgroup_unified=True)["linux"][
        "namespaces"
    ]
    assert {"type": "cgroup"} in spec_for(RunOptions(cmd=SLEEP, cgroupns_mode="private"))["linux"][
        "namespaces"
    ]


def test_init_is_skipped_with_the_host_pid_namespace():
    spec = spec_for(RunOptions(cmd=SLEEP, init=True, pid_mode="host"))
    assert spec["process"]["args"] == SLEEP
    with pytest.raises(InvalidParameter, match="docker-init"):
        spec_for(RunOptions(cmd=SLEEP, init=True), init_path=None)


def test_console_size_with_tty():
    spec = spec_for(RunOptions(cmd=SLEEP, tty=True, console_size=(24, 80)))
    assert spec["process"]["consoleSize"] == {"height": 24, "width": 80}


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (RunOptions(cmd=SLEEP, ipc_mode="bogus"), "invalid IPC mode: bogus"),
        (RunOptions(cmd=SLEEP, pid_mode="bogus"), "invalid PID mode: bogus"),
        (RunOptions(cmd=SLEEP, uts_mode="bogus"), "invalid UTS mode: bogus"),
        (
            RunOptions(cmd=SLEEP, oom_score_adj=1001),
            "Invalid value 1001, range for oom score adj is [-1000, 1000]",
        ),
        (
            RunOptions(cmd=SLEEP, cpu_shares=-1),
            "invalid CPU shares (-1): value must be a positive integer",
        ),
        (
            RunOptions(cmd=SLEEP, devices=["/dev/nope"]),
            'error gathering device information while adding custom device "/dev/nope": not a device node',
        ),
        (RunOptions(cmd=SLEEP, binds=["/a:/x", "/b:/x"]), "Duplicate mount point: /x"),
        (RunOptions(cmd=SLEEP, tmpfs={"/": ""}), "invalid specification: destination can't be '/'"),
        (RunOptions(cmd=SLEEP, tmpfs={"/t": "foo"}), 'invalid tmpfs option "foo"'),
    ],
)
def test_build_spec_errors(opts, message):
    with pytest.raises(InvalidParameter) as e:
        spec_for(opts)
    assert e.value.message == message
