"""The constant parts of a container's OCI spec, as dockerd sets them for `docker run`.

Sources: moby's `daemon/pkg/oci/defaults.go` and `caps/defaults.go`, and what dockerd 20.10 +
runc 1.1 wrote into config.json on a test machine (see tests/unit/test_runtime_spec.py). Where the
two differ, the comment on the constant says which one we follow and why. Everything here is
data: functions return fresh copies so a caller can never mutate the defaults.
"""

from __future__ import annotations

import copy
from typing import Any

from dockyard.flagvalues import ULIMIT_NAMES  # noqa: F401 - re-exported

# The runtime-spec version we declare. runc 1.1 (`runc features`: ociVersionMax) and dockerd
# 20.10 both write 1.0.2-dev; we use no field that a later version added (no time namespace,
# no `domainname`), so claiming a newer version would only make older runtimes refuse us.
OCI_VERSION = "1.0.2-dev"

# PATH a process gets when the image sets none (moby oci.DefaultPathEnv).
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_SHM_SIZE = 64 * 1024 * 1024

# Where `--init` puts docker-init inside the container.
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"

# Docker's default bounding/effective/permitted set, in docker's order (it shows in config.json).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Every capability the kernel headers know, indexed by bit number (capability.h). The order
# matters: "all capabilities" (--privileged, --cap-add ALL) are listed in bit order, as
# containerd's cap.Current() lists them.
KNOWN_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# Masked paths follow current moby, not dockerd 20.10: /proc/interrupts and
# /sys/devices/virtual/powercap were added for security advisories (GHSA-6fw5-f8r9-fgfm,
# GHSA-jq35-85cj-fj4p), and an old daemon lacking them is not something to copy. moby also masks
# /sys/devices/system/cpu/cpu*/thermal_throttle where the host has them; that needs a stat of
# the host, so build_spec takes them as `extra_masked_paths`.
DEFAULT_MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
)

DEFAULT_READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_DEFAULT_MOUNTS: tuple[dict[str, Any], ...] = (
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
    # size= is appended from --shm-size.
    {
        "destination": "/dev/shm",
        "type": "tmpfs",
        "source": "shm",
        "options": ["nosuid", "noexec", "nodev", "mode=1777"],
    },
)


def default_mounts() -> list[dict[str, Any]]:
    """A fresh copy of docker's default mount list (/dev/shm without its size= option)."""
    return copy.deepcopy(list(_DEFAULT_MOUNTS))


# The devices cgroup: deny everything, then allow the nodes runc creates in /dev (1:5 zero,
# 1:3 null, 1:9 urandom, 1:8 random, 5:0 tty, 5:1 console) and deny /dev/net/tun (10:229) again,
# in dockerd's order. runc appends its own allow rules (full, ptmx, pts) after these.
_DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
)


def default_device_rules() -> list[dict[str, Any]]:
    """A fresh copy of docker's devices-cgroup rules for an unprivileged container."""
    return copy.deepcopy(list(_DEFAULT_DEVICE_RULES))


# Namespaces a container gets, in dockerd's order. moby now also lists the time namespace where
# the kernel has one; runc 1.1 does not know it (`runc features`), so we never add it.
DEFAULT_NAMESPACES: tuple[str, ...] = ("mount", "network", "uts", "pid", "ipc")

# Sysctls dockerd adds when the container gets a network namespace of its own: ping without
# CAP_NET_RAW and binding ports below 1024 without CAP_NET_BIND_SERVICE. moby checks that the
# kernel has them (4.11+ for the port one); every kernel we support does.
NETWORK_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
)

# Ulimits applied unless the container sets its own (docker's daemon-wide --default-ulimit).
# dockerd itself has none and lets containers inherit its own limits from systemd
# (LimitNOFILE=1048576 in docker's unit); we set that number explicitly so a container does not
# depend on how our daemon was started. Hosts whose hard limit is lower need clamp_rlimits.
DEFAULT_ULIMITS: tuple[tuple[str, int, int], ...] = (("nofile", 1048576, 1048576),)

# `--ulimit` names docker accepts (go-units; "as" is deliberately disabled there).

# RLIM_INFINITY as the runtime spec's uint64 (docker's -1 ulimit becomes this).
RLIM_INFINITY = 2**64 - 1

# Mounts that a read-only rootfs leaves writable (moby withMounts).
READONLY_ROOTFS_EXEMPT: frozenset[str] = frozenset(
    {"/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"}
)

# The files dockerd bind-mounts from the container's directory into every container.
NETWORK_FILES: tuple[str, ...] = ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")


def capabilities_from_mask(mask: int | str) -> list[str]:
    """The capability names set in a CapEff/CapBnd mask (hex text as in /proc/self/status or int).

    dockerd grants `--privileged` and `--cap-add ALL` only the capabilities it holds itself
    (moby caps.GetAllCapabilities); the caller reads its own CapEff and passes the result to
    build_spec as `available_caps`. Bits beyond the known list are ignored (a newer kernel).
    """
    value = int(mask, 16) if isinstance(mask, str) else mask
    return [name for bit, name in enumerate(KNOWN_CAPABILITIES) if value >> bit & 1]


def capability_mask(names: list[str] | tuple[str, ...]) -> int:
    """The inverse of capabilities_from_mask, e.g. 0xa80425fb for DEFAULT_CAPABILITIES."""
    mask = 0
    for name in names:
        mask |= 1 << KNOWN_CAPABILITIES.index(name)
    return mask
