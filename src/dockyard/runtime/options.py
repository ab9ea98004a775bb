"""What `docker run`/`docker create` can set that shapes a container's spec, and its parsers.

RunOptions is the part of docker's Config + HostConfig that build_spec needs, with docker's
defaults. The parse_* functions are the pure pieces of the docker CLI and daemon that turn flag
text into those values; each raises InvalidParameter with docker's own message, because users
and scripts match on it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field, replace

from dockyard.errors import InvalidParameter
from dockyard.flagvalues import (  # noqa: F401 - the parsers are part of this module's API
    RESTART_POLICIES,
    go_parse_int,
    parse_cpus,
    parse_env_file,
    parse_restart_policy,
    parse_signal,
    parse_ulimit,
)
from dockyard.gostrconv import go_quote
from dockyard.runtime.defaults import DEFAULT_SHM_SIZE


@dataclass
class RunOptions:
    """docker run/create options that matter to the spec; field defaults are docker's.

    Lists of "K=V"/"src:dst" strings keep docker's flag syntax so the CLI, the Engine API layer
    and tests can fill them the same way.
    """

    image: str = ""
    cmd: list[str] | None = None
    # None: the image's. [""]: reset entrypoint and image Cmd (what `--entrypoint ""` sends).
    # []: reset the entrypoint but keep the image's Cmd (an API client sending an empty list).
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    attach: list[str] = field(default_factory=list)  # -a stdin/stdout/stderr
    detach: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    read_only: bool = False
    memory: int = 0
    memory_swap: int = 0  # 0: twice `memory` when that is set; -1: unlimited
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    cpu_shares: int = 0
    nano_cpus: int = 0  # --cpus
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    init: bool | None = None
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: dict[str, str] = field(default_factory=dict)
    security_opt: list[str] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)  # destination -> "size=..,mode=.."
    binds: list[str] = field(default_factory=list)  # -v "src:dst[:mode]" and anonymous "dst"
    network_mode: str = "default"  # "default"/"bridge"/"none" get a netns of their own; "host"
    ipc_mode: str = "private"  # "private", "shareable", "host", "none"
    pid_mode: str = ""  # "" (private) or "host"
    uts_mode: str = ""  # "" (private) or "host"
    cgroupns_mode: str = ""  # "": docker's default for the host (build_spec's cgroup_unified)
    devices: list[str] = field(default_factory=list)  # --device "host[:container][:rwm]"
    device_cgroup_rules: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    oom_kill_disable: bool = False
    oom_score_adj: int = 0
    console_size: tuple[int, int] = (0, 0)  # (height, width), used with tty
    masked_paths: list[str] | None = None  # None: docker's defaults
    readonly_paths: list[str] | None = None


def adapt_options(opts: RunOptions) -> RunOptions:
    """The daemon's create-time defaults (moby adaptContainerSettings), as inspect shows them."""
    swap = opts.memory_swap
    if opts.memory > 0 and swap == 0:
        swap = opts.memory * 2
    return replace(opts, memory_swap=swap, shm_size=opts.shm_size or DEFAULT_SHM_SIZE)


def clean_path(path: str) -> str:
    """Go's path.Clean: like posixpath.normpath, but "//x" is "/x" as well."""
    clean = posixpath.normpath(path)
    return clean[1:] if clean.startswith("//") else clean


@dataclass
class SecurityOptions:
    """What `--security-opt` values mean to the spec."""

    no_new_privileges: bool = False
    writable_cgroups: bool | None = None  # None: writable exactly when privileged
    seccomp: str = ""
    apparmor: str = ""
    labels: list[str] = field(default_factory=list)


def parse_security_opt(opts: list[str]) -> SecurityOptions:
    """`--security-opt` values, with the daemon's error texts (moby parseSecurityOpt).

    The deprecated "key:value" form is still accepted, as dockerd accepts it.
    """
    result = SecurityOptions()
    for opt in opts:
        if opt == "no-new-privileges":
            result.no_new_privileges = True
            continue
        if opt == "writable-cgroups":
            result.writable_cgroups = True
            continue
        if opt == "disable":
            result.labels.append("disable")
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else ""
        if not sep:
            raise InvalidParameter(f"invalid --security-opt 1: {go_quote(opt)}")
        key, _, value = opt.partition(sep)
        if key == "label":
            result.labels.append(value)
        elif key == "apparmor":
            result.apparmor = value
        elif key == "seccomp":
            result.seccomp = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            flag = _go_parse_bool(value)
            if flag is None:
                raise InvalidParameter(f"invalid --security-opt 2: {go_quote(opt)}")
            if key == "no-new-privileges":
                result.no_new_privileges = flag
            else:
                result.writable_cgroups = flag
        else:
            raise InvalidParameter(f"invalid --security-opt 2: {go_quote(opt)}")
    return result


def _go_parse_bool(text: str) -> bool | None:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


@dataclass(frozen=True)
class DeviceMapping:
    """A parsed `--device`: host path, path in the container, cgroup permissions."""

    path_on_host: str
    path_in_container: str
    permissions: str = "rwm"


def _valid_device_mode(mode: str) -> bool:
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def parse_device(value: str) -> DeviceMapping:
    """`--device /dev/x[:/dev/y][:rwm]` as the docker CLI validates, cleans and splits it."""
    parts = value.split(":")
    if len(parts) > 3 or parts[0] == "":
        raise InvalidParameter(f"bad format for path: {value}")
    # validateLinuxPath: find the container path, check it, and clean it in the value.
    if len(parts) == 1:
        container = parts[0]
        parts = [clean_path(container)]
    elif len(parts) == 2 and _valid_device_mode(parts[1]):
        container = parts[0]
        parts = [clean_path(container), parts[1]]
    elif len(parts) == 2:
        container = parts[1]
        parts = [parts[0], clean_path(container)]
    else:
        container = parts[1]
        if not _valid_device_mode(parts[2]):
            raise InvalidParameter(f"bad mode specified: {parts[2]}")
    if not posixpath.isabs(container):
        raise InvalidParameter(f"{container} is not an absolute path")
    # parseLinuxDevice: a mode-looking second field is the mode, not a path.
    src, dst, perms = parts[0], "", "rwm"
    if len(parts) >= 2:
        if _valid_device_mode(parts[1]):
            perms = parts[1]
        else:
            dst = parts[1]
    if len(parts) == 3:
        perms = parts[2]
    return DeviceMapping(src, dst or src, perms)


_CGROUP_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")


def parse_device_cgroup_rule(rule: str) -> dict[str, object]:
    """`--device-cgroup-rule 'c 42:* rmw'` -> a spec devices-cgroup entry; * becomes -1."""
    m = _CGROUP_RULE.fullmatch(rule)
    if m is None:
        raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
    major = -1 if m.group(2) == "*" else int(m.group(2))
    minor = -1 if m.group(3) == "*" else int(m.group(3))
    if major >= 2**63 or minor >= 2**63:
        which = "major" if major >= 2**63 else "minor"
        raise InvalidParameter(f"invalid {which} value in device cgroup rule format: '{rule}'")
    return {"allow": True, "type": m.group(1), "major": major, "minor": minor, "access": m.group(4)}


LINUX_MIN_MEMORY = 6 * 1024 * 1024


def validate_resources(opts: RunOptions, *, ncpu: int) -> list[str]:
    """dockerd's create-time checks of resources and OOM settings; returns its warnings.

    Run it on the options as the client sent them (before adapt_options), as dockerd does;
    `ncpu` is the host's CPU count (os.cpu_count()), which bounds --cpus.
    """
    warnings: list[str] = []
    memory, swap, reservation = opts.memory, opts.memory_swap, opts.memory_reservation
    if memory != 0 and memory < LINUX_MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and 0 < swap < memory:
        raise InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if memory == 0 and swap > 0:
        raise InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    swappiness = opts.memory_swappiness
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidParameter(
            f"Invalid value: {swappiness}, valid memory swappiness range is 0-100"
        )
    if 0 < reservation < LINUX_MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    if opts.oom_kill_disable and memory == 0:
        warnings.append(
            "OOM killer is disabled for the container, but no memory limit is set, "
            "this can result in the system running out of resources."
        )
    if opts.nano_cpus > 0 and opts.cpu_period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if opts.nano_cpus > 0 and opts.cpu_quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if opts.nano_cpus != 0 and not 0 <= opts.nano_cpus <= ncpu * 1_000_000_000:
        raise InvalidParameter(
            f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    if opts.cpu_period != 0 and not 1000 <= opts.cpu_period <= 1_000_000:
        raise InvalidParameter(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if 0 < opts.cpu_quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if opts.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if not -1000 <= opts.oom_score_adj <= 1000:
        raise InvalidParameter(
            f"Invalid value {opts.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    return warnings
