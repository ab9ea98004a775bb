"""A container's docker Config and OCI config.json, from an image config plus run options.

Pure functions, in the order the daemon uses them:

    config = merge_config(image_config, opts, container_id=cid)      # `docker inspect` .Config
    uid, gid, gids = resolve_user(config["User"], passwd, group, opts.group_add)
    spec = build_spec(config, opts, rootfs=..., container_id=cid, user=(uid, gid, gids), ...)
    spec = clamp_rlimits(spec, {"RLIMIT_NOFILE": host_hard_nofile})  # the caller's duty

The rules are dockerd's (moby daemon/create.go, commit.go `merge`, oci_linux.go, oci/defaults.go)
checked against what dockerd 20.10 + runc 1.1 actually wrote on a test machine; the comments say
where and why we differ. Everything that needs the host (device numbers, volume paths, the
daemon's own capabilities, the host hard rlimits, the init binary) comes in as arguments.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.runtime.defaults import (
    DEFAULT_CAPABILITIES,
    DEFAULT_MASKED_PATHS,
    DEFAULT_PATH_ENV,
    DEFAULT_READONLY_PATHS,
    DEFAULT_ULIMITS,
    INIT_PATH_IN_CONTAINER,
    KNOWN_CAPABILITIES,
    NETWORK_SYSCTLS,
    OCI_VERSION,
    RLIM_INFINITY,
)
from dockyard.runtime.linuxspec import DeviceNode, devices, namespaces, resources
from dockyard.runtime.mountspec import clean_path, container_mounts, parse_bind, user_mounts
from dockyard.runtime.options import (
    RunOptions,
    adapt_options,
    parse_cpus,
    parse_env_file,
    parse_restart_policy,
    parse_security_opt,
    parse_signal,
    parse_ulimit,
)
from dockyard.runtime.users import resolve_user

__all__ = [
    "DeviceNode",
    "RunOptions",
    "adapt_options",
    "build_spec",
    "clamp_rlimits",
    "command_line",
    "merge_config",
    "parse_cpus",
    "parse_env_file",
    "parse_restart_policy",
    "parse_ulimit",
    "process_env",
    "replace_or_append_env",
    "resolve_user",
    "tweak_capabilities",
]

MAX_HOSTNAME_LEN = 64


# --- the docker Config ------------------------------------------------------------------------


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def merge_config(
    image_config: Mapping[str, Any] | None,
    opts: RunOptions,
    *,
    container_id: str = "",
    host_hostname: str = "",
) -> dict[str, Any]:
    """The container's Config as `docker inspect` shows it, built as dockerd does at create.

    The run options are the user's Config; the image fills what they leave empty (moby
    `merge`): User, WorkingDir, StopSignal, Healthcheck when unset; Env is the user's list
    followed by each image entry whose key the user did not set (so the user's order comes
    first); Labels and Volumes are unions (user wins). Entrypoint/Cmd: with no --entrypoint the
    image's Entrypoint and, when no command is given, its Cmd; `--entrypoint X` drops the
    image's Cmd; `--entrypoint ""` ([""]) drops both. Hostname defaults to the first 12 digits
    of the ID, or the host's name with --network host. Env keeps entries without "=" (they
    unset a variable when the process env is built) and gets no default PATH: dockerd adds
    that to the process env only, and inspect shows Env null for an image without Env.
    """
    image = dict(image_config or {})
    if opts.working_dir:
        _check_working_dir(opts.working_dir)
    for entry in opts.env:
        if _env_key(entry) == "":
            raise InvalidParameter(f"invalid environment variable: {entry}")
    if opts.stop_signal:
        parse_signal(opts.stop_signal)

    env: list[str] | None
    if opts.env:
        keys = {_env_key(e) for e in opts.env}
        env = [*opts.env, *(e for e in image.get("Env") or [] if _env_key(e) not in keys)]
    else:
        env = list(image["Env"]) if image.get("Env") is not None else None

    entrypoint = list(opts.entrypoint) if opts.entrypoint is not None else None
    cmd = list(opts.cmd) if opts.cmd else None
    if not entrypoint:
        if not cmd:
            cmd = list(image["Cmd"]) if image.get("Cmd") is not None else None
        if entrypoint is None:
            entrypoint = list(image["Entrypoint"]) if image.get("Entrypoint") is not None else None
    if entrypoint == [""]:
        entrypoint = None
    if not entrypoint and not cmd:
        raise InvalidParameter("no command specified")

    labels = {**(image.get("Labels") or {}), **opts.labels}
    volumes = dict(image.get("Volumes") or {})
    for bind in opts.binds:
        mount = parse_bind(bind)
        if mount.type == "volume" and mount.name == "":  # anonymous: `-v /data`
            volumes[mount.destination] = {}

    hostname = opts.hostname
    if not hostname:
        hostname = host_hostname if opts.network_mode == "host" else container_id[:12]
    if len(hostname) > MAX_HOSTNAME_LEN:
        raise InvalidParameter(
            f'hostname "{hostname}" is too long (maximum {MAX_HOSTNAME_LEN} bytes)'
        )

    # The docker CLI's rules: -i attaches stdin, no -a attaches stdout and stderr, stdin is
    # closed when the attached client goes (StdinOnce), and `run -d` attaches nothing.
    attach = {a.lower() for a in opts.attach}
    if not attach <= {"stdin", "stdout", "stderr"}:
        raise InvalidParameter("valid streams are STDIN, STDOUT and STDERR")
    if opts.detach and attach:
        raise InvalidParameter("conflicting options: cannot specify both --attach and --detach")
    attach_stdin = "stdin" in attach or opts.open_stdin
    attach_out = "stdout" in attach or not attach
    attach_err = "stderr" in attach or not attach
    stdin_once = opts.open_stdin and attach_stdin
    if opts.detach:
        attach_stdin = attach_out = attach_err = stdin_once = False

    config: dict[str, Any] = {
        "Hostname": hostname,
        "Domainname": opts.domainname,
        "User": opts.user or image.get("User") or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_out,
        "AttachStderr": attach_err,
    }
    if image.get("ExposedPorts"):
        config["ExposedPorts"] = dict(image["ExposedPorts"])
    config |= {
        "Tty": opts.tty,
        "OpenStdin": opts.open_stdin,
        "StdinOnce": stdin_once,
        "Env": env,
        "Cmd": cmd,
    }
    if image.get("Healthcheck"):
        config["Healthcheck"] = copy.deepcopy(image["Healthcheck"])
    config |= {
        "Image": opts.image,
        "Volumes": volumes or None,
        "WorkingDir": clean_path(opts.working_dir)
        if opts.working_dir
        else image.get("WorkingDir") or "",
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": dict(sorted(labels.items())),
    }
    stop_signal = opts.stop_signal or image.get("StopSignal") or ""
    if stop_signal:
        config["StopSignal"] = stop_signal
    return config


def _check_working_dir(path: str) -> None:
    if not path.startswith("/"):
        raise InvalidParameter(
            f"the working directory '{path}' is invalid, it needs to be an absolute path"
        )


def command_line(config: Mapping[str, Any]) -> list[str]:
    """The process args: Entrypoint followed by Cmd (moby getEntrypointAndArgs)."""
    entrypoint = [a for a in config.get("Entrypoint") or []]
    if entrypoint == [""]:
        entrypoint = []
    args = [*entrypoint, *(config.get("Cmd") or [])]
    if not args:
        raise InvalidParameter("no command specified")
    return args


# --- environment --------------------------------------------------------------------------------


def replace_or_append_env(defaults: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """moby ReplaceOrAppendEnvValues: an override replaces the entry with its key in place, or
    is appended; "K" without "=" removes K. The first position of a key is kept, its last value
    wins."""
    env = list(defaults)
    index = {_env_key(e): i for i, e in enumerate(env)}
    removed: set[int] = set()
    for value in overrides:
        key, sep, _ = value.partition("=")
        if not sep:
            if value in index:
                removed.add(index[value])
            continue
        if key in index:
            env[index[key]] = value
            removed.discard(index[key])
        else:
            index[key] = len(env)
            env.append(value)
    return [e for i, e in enumerate(env) if i not in removed]


def process_env(config: Mapping[str, Any]) -> list[str]:
    """The process environment: PATH default, HOSTNAME, TERM=xterm with a tty, then Config.Env
    (moby CreateDaemonEnvironment)."""
    base = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={config.get('Hostname', '')}"]
    if config.get("Tty"):
        base.append("TERM=xterm")
    return replace_or_append_env(base, config.get("Env") or [])


# --- capabilities -------------------------------------------------------------------------------


def _normalize_caps(names: Sequence[str], available: Sequence[str], which: str) -> list[str]:
    out = []
    for raw in names:
        name = raw.upper()
        if name != "ALL" and not name.startswith("CAP_"):
            name = "CAP_" + name
        if name != "ALL" and name not in KNOWN_CAPABILITIES:
            raise InvalidParameter(f'invalid {which}: unknown capability: "{name}"')
        if name != "ALL" and name not in available:
            raise InvalidParameter(
                f"invalid {which}: capability not supported by your kernel or not available "
                f'in the current environment: "{name}"'
            )
        out.append(name)
    return out


def tweak_capabilities(
    cap_add: Sequence[str],
    cap_drop: Sequence[str],
    privileged: bool,
    available: Sequence[str] | None = None,
) -> list[str]:
    """The container's capability list (moby caps.TweakCapabilities).

    `available` is what the daemon itself holds (default: every known capability); --privileged
    and --cap-add ALL grant exactly those, and naming one outside it is an error, as in moby.
    dockerd 20.10 instead asked runc for every known capability and failed to start privileged
    containers on hosts like ours that lack CAP_SYS_RESOURCE.
    """
    have = list(available) if available is not None else list(KNOWN_CAPABILITIES)
    if privileged:
        return have
    if not cap_add and not cap_drop:
        return list(DEFAULT_CAPABILITIES)
    drops = _normalize_caps(cap_drop, have, "CapDrop")
    adds = _normalize_caps(cap_add, have, "CapAdd")
    if "ALL" in adds:
        return [c for c in have if c not in drops]
    if "ALL" in drops:
        return adds
    return [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds


# --- rlimits ------------------------------------------------------------------------------------


def _rlimit_value(value: int) -> int:
    return RLIM_INFINITY if value < 0 else value


def rlimits(ulimits: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
    """The spec rlimits: the container's ulimits, then the defaults it did not override."""
    merged = dict(ulimits)
    for name, soft, hard in DEFAULT_ULIMITS:
        merged.setdefault(name, (soft, hard))
    return [
        {"type": "RLIMIT_" + name.upper(), "hard": _rlimit_value(hard), "soft": _rlimit_value(soft)}
        for name, (soft, hard) in merged.items()
    ]


def clamp_rlimits(spec: Mapping[str, Any], hard_limits: Mapping[str, int]) -> dict[str, Any]:
    """A copy of `spec` with each rlimit lowered to the host's hard limit for its type.

    Raising a hard limit needs CAP_SYS_RESOURCE, which the runtime may not hold (on our test
    machines the hard RLIMIT_NOFILE is 20000 and the capability is absent), and then runc
    fails the whole start. The caller reads its own limits (resource.getrlimit) and applies
    this right before writing config.json: `hard_limits` maps "RLIMIT_NOFILE" etc. to the
    hard value; -1 or RLIM_INFINITY means no limit. The soft value never exceeds the hard one.
    """
    out = copy.deepcopy(dict(spec))
    for limit in (out.get("process") or {}).get("rlimits") or []:
        host = hard_limits.get(limit["type"])
        if host is None or host < 0 or host >= RLIM_INFINITY:
            continue
        limit["hard"] = min(limit["hard"], host)
        limit["soft"] = min(limit["soft"], limit["hard"])
    return out


# --- the spec ----------------------------------------------------------------------------------


def build_spec(
    config: Mapping[str, Any],
    opts: RunOptions,
    *,
    rootfs: str,
    container_id: str,
    user: tuple[int, int, Sequence[int]],
    cgroups_path: str,
    args: Sequence[str] | None = None,
    hostname: str | None = None,
    resolv_conf: str | None = None,
    hosts: str | None = None,
    hostname_file: str | None = None,
    available_caps: Sequence[str] | None = None,
    device_nodes: Mapping[str, Sequence[DeviceNode]] | None = None,
    host_devices: Sequence[DeviceNode] = (),
    volume_sources: Mapping[str, str] | None = None,
    init_path: str | None = None,
    extra_masked_paths: Sequence[str] = (),
    cgroup_unified: bool = False,
    recursive_readonly: bool = False,
) -> dict[str, Any]:
    """The OCI config.json for a container, as dockerd + containerd hand it to runc.

    `config` is merge_config's result; `opts` the run options (adapt_options is applied here).
    `user` is resolve_user's result. `args` defaults to command_line(config); with --init (and a
    private PID namespace) it runs under `init_path`, bind-mounted at /sbin/docker-init.
    `resolv_conf`, `hosts`, `hostname_file` are host files bind-mounted over /etc/...
    (None: not mounted). `available_caps`: the daemon's own capabilities (see
    defaults.capabilities_from_mask); `device_nodes`: host path of each --device -> the stat'd
    node(s) under it; `host_devices`: every host device, for --privileged; `volume_sources`:
    host directory of each volume by destination or name; `extra_masked_paths`: host-dependent
    masks (thermal_throttle); `cgroup_unified`: the host runs cgroup v2 only;
    `recursive_readonly`: the runtime supports "rro", which docker prefers for read-only binds.
    The result carries docker's rlimits unclamped: run it through clamp_rlimits before use.
    """
    opts = adapt_options(opts)
    security = parse_security_opt(opts.security_opt)
    if security.seccomp not in ("", "unconfined"):
        # No seccomp section is written yet (containers run as with seccomp=unconfined until
        # docker's default profile is added); silently ignoring a named profile would be worse.
        raise InvalidParameter(f"seccomp profile {security.seccomp!r} is not supported yet")
    uid, gid, gids = user
    spec_namespaces = namespaces(opts, cgroup_unified=cgroup_unified)
    ns_types = {n["type"] for n in spec_namespaces}

    process_args = list(args) if args is not None else command_line(config)
    if opts.init and "pid" in ns_types:
        if init_path is None:
            raise InvalidParameter('exec: "docker-init": executable file not found in $PATH')
        process_args = [INIT_PATH_IN_CONTAINER, "--", *process_args]
    else:
        init_path = None

    caps = tweak_capabilities(opts.cap_add, opts.cap_drop, opts.privileged, available_caps)
    # Like dockerd 20.10, a non-root process gets only the bounding set: execve would clear
    # its permitted and effective sets anyway, and this way it never holds them before exec.
    capabilities: dict[str, Any] = {"bounding": caps}
    if uid == 0:
        capabilities |= {"effective": list(caps), "permitted": list(caps)}

    process: dict[str, Any] = {}
    if config.get("Tty"):
        process["terminal"] = True
        height, width = opts.console_size
        if height or width:
            process["consoleSize"] = {"height": height, "width": width}
    process |= {
        "user": {"uid": uid, "gid": gid, "additionalGids": list(gids)},
        "args": process_args,
        "env": process_env(config),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": capabilities,
        "rlimits": rlimits(opts.ulimits),
    }
    if security.no_new_privileges:
        process["noNewPrivileges"] = True
    if not -1000 <= opts.oom_score_adj <= 1000:
        raise InvalidParameter(
            f"Invalid value {opts.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    process["oomScoreAdj"] = opts.oom_score_adj

    root: dict[str, Any] = {"path": rootfs}
    if opts.read_only:
        root["readonly"] = True

    spec: dict[str, Any] = {"ociVersion": OCI_VERSION, "process": process, "root": root}
    if "uts" in ns_types:
        spec["hostname"] = (
            hostname if hostname is not None else config.get("Hostname") or container_id[:12]
        )

    extra_mounts = user_mounts(
        opts,
        volumes=config.get("Volumes") or {},
        volume_sources=volume_sources or {},
        network_files={
            "/etc/resolv.conf": resolv_conf,
            "/etc/hostname": hostname_file,
            "/etc/hosts": hosts,
        },
    )
    writable_cgroups = (
        opts.privileged if security.writable_cgroups is None else security.writable_cgroups
    )
    mounts, rootfs_propagation = container_mounts(
        opts,
        extra_mounts,
        init_path=init_path,
        recursive_readonly=recursive_readonly,
        writable_cgroups=writable_cgroups,
    )
    spec["mounts"] = mounts

    sysctl: dict[str, str] = {}
    if config.get("Domainname"):
        # No OCI field for the NIS domain name in 1.0; this sysctl has setdomainname's effect.
        sysctl["kernel.domainname"] = config["Domainname"]
    if opts.network_mode != "host":
        sysctl.update(NETWORK_SYSCTLS)
    sysctl.update(opts.sysctls)

    spec_devices, device_rules = devices(opts, device_nodes or {}, host_devices)
    linux: dict[str, Any] = {}
    if sysctl:
        linux["sysctl"] = dict(sorted(sysctl.items()))
    linux |= {
        "resources": resources(opts, device_rules),
        "cgroupsPath": cgroups_path,
        "namespaces": spec_namespaces,
    }
    if spec_devices:
        linux["devices"] = spec_devices
    if rootfs_propagation:
        linux["rootfsPropagation"] = rootfs_propagation
    if not opts.privileged:
        masked = (
            opts.masked_paths
            if opts.masked_paths is not None
            else [*DEFAULT_MASKED_PATHS, *extra_masked_paths]
        )
        readonly = (
            opts.readonly_paths if opts.readonly_paths is not None else list(DEFAULT_READONLY_PATHS)
        )
        linux["maskedPaths"] = list(masked)
        linux["readonlyPaths"] = list(readonly)
    spec["linux"] = linux
    return spec
