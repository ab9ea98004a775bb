"""The Engine API's container create body → our run options, and the HostConfig that
`docker inspect` shows back (pure)."""

from __future__ import annotations

from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.runtime.options import RunOptions, parse_restart_policy

RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
LOG_DRIVERS = ("json-file",)


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def run_options(body: dict[str, Any]) -> RunOptions:
    """What the create body asks for, as RunOptions (docker's defaults for what it omits)."""
    host = body.get("HostConfig") or {}
    opts = RunOptions(image=str(body.get("Image") or ""))
    cmd = body.get("Cmd")
    opts.cmd = _list(cmd) if isinstance(cmd, list) else ([cmd] if isinstance(cmd, str) else None)
    entrypoint = body.get("Entrypoint")
    if isinstance(entrypoint, str):
        opts.entrypoint = [entrypoint]
    elif isinstance(entrypoint, list):
        opts.entrypoint = _list(entrypoint)
    opts.env = _list(body.get("Env"))
    opts.working_dir = str(body.get("WorkingDir") or "")
    opts.user = str(body.get("User") or "")
    opts.hostname = str(body.get("Hostname") or "")
    opts.domainname = str(body.get("Domainname") or "")
    opts.tty = bool(body.get("Tty"))
    opts.open_stdin = bool(body.get("OpenStdin"))
    opts.labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
    opts.stop_signal = str(body.get("StopSignal") or "")
    opts.privileged = bool(host.get("Privileged"))
    opts.cap_add = _list(host.get("CapAdd"))
    opts.cap_drop = _list(host.get("CapDrop"))
    opts.read_only = bool(host.get("ReadonlyRootfs"))
    opts.memory = int(host.get("Memory") or 0)
    opts.memory_swap = int(host.get("MemorySwap") or 0)
    opts.memory_reservation = int(host.get("MemoryReservation") or 0)
    if host.get("MemorySwappiness") is not None:
        opts.memory_swappiness = int(host["MemorySwappiness"])
    opts.cpu_shares = int(host.get("CpuShares") or 0)
    opts.nano_cpus = int(host.get("NanoCpus") or 0)
    opts.cpu_period = int(host.get("CpuPeriod") or 0)
    opts.cpu_quota = int(host.get("CpuQuota") or 0)
    opts.cpuset_cpus = str(host.get("CpusetCpus") or "")
    opts.cpuset_mems = str(host.get("CpusetMems") or "")
    if host.get("PidsLimit") not in (None, 0):
        opts.pids_limit = int(host["PidsLimit"])
    opts.ulimits = {
        str(u["Name"]): (int(u.get("Soft", 0)), int(u.get("Hard", 0)))
        for u in host.get("Ulimits") or []
        if isinstance(u, dict) and "Name" in u
    }
    if host.get("Init") is not None:
        opts.init = bool(host["Init"])
    if host.get("ShmSize"):
        opts.shm_size = int(host["ShmSize"])
    opts.sysctls = {str(k): str(v) for k, v in (host.get("Sysctls") or {}).items()}
    opts.security_opt = _list(host.get("SecurityOpt"))
    opts.tmpfs = {str(k): str(v) for k, v in (host.get("Tmpfs") or {}).items()}
    opts.binds = _list(host.get("Binds"))
    opts.network_mode = str(host.get("NetworkMode") or "default")
    opts.ipc_mode = str(host.get("IpcMode") or "private")
    opts.pid_mode = str(host.get("PidMode") or "")
    opts.uts_mode = str(host.get("UTSMode") or "")
    opts.cgroupns_mode = str(host.get("CgroupnsMode") or "")
    opts.devices = [
        f"{d.get('PathOnHost', '')}:{d.get('PathInContainer', '')}:{d.get('CgroupPermissions', 'rwm')}"
        for d in host.get("Devices") or []
        if isinstance(d, dict)
    ]
    opts.device_cgroup_rules = _list(host.get("DeviceCgroupRules"))
    opts.group_add = _list(host.get("GroupAdd"))
    opts.oom_kill_disable = bool(host.get("OomKillDisable"))
    opts.oom_score_adj = int(host.get("OomScoreAdj") or 0)
    size = host.get("ConsoleSize") or [0, 0]
    if isinstance(size, list) and len(size) == 2:
        opts.console_size = (int(size[0] or 0), int(size[1] or 0))
    if host.get("MaskedPaths") is not None:
        opts.masked_paths = _list(host["MaskedPaths"])
    if host.get("ReadonlyPaths") is not None:
        opts.readonly_paths = _list(host["ReadonlyPaths"])
    return opts


def restart_policy(host: dict[str, Any]) -> dict[str, Any]:
    """The RestartPolicy of a HostConfig, checked as dockerd checks it."""
    policy = host.get("RestartPolicy") or {}
    name = str(policy.get("Name") or "")
    retries = int(policy.get("MaximumRetryCount") or 0)
    if name not in RESTART_POLICIES:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )
    if retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if host.get("AutoRemove") and name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    return {"Name": name or "no", "MaximumRetryCount": retries}


def log_config(host: dict[str, Any]) -> dict[str, Any]:
    """The LogConfig, with docker's json-file options (max-size, max-file) checked."""
    config = host.get("LogConfig") or {}
    driver = str(config.get("Type") or "json-file")
    if driver not in LOG_DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    options = {str(k): str(v) for k, v in (config.get("Config") or {}).items()}
    for key in options:
        if key not in ("max-size", "max-file", "compress", "labels", "env", "tag"):
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
    return {"Type": driver, "Config": options}


def log_limits(config: dict[str, Any]) -> tuple[int, int]:
    """(max_size bytes or -1, max_file) from json-file options."""
    from dockyard.units import parse_ram_size as parse_size

    options = config.get("Config") or {}
    max_size = parse_size(options["max-size"]) if options.get("max-size") else -1
    max_file = int(options.get("max-file") or 1)
    if max_file < 1:
        raise InvalidParameter("max-file cannot be less than 1")
    if max_file > 1 and max_size < 0:
        raise InvalidParameter("max-file cannot be set without max-size")
    return max_size, max_file


def host_config(body: dict[str, Any]) -> dict[str, Any]:
    """The HostConfig as inspect shows it: what was sent, with docker's defaults filled in."""
    host = dict(body.get("HostConfig") or {})
    defaults: dict[str, Any] = {
        "Binds": None,
        "ContainerIDFile": "",
        "NetworkMode": "default",
        "PortBindings": {},
        "AutoRemove": False,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": None,
        "CapDrop": None,
        "CgroupnsMode": "host",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": None,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": False,
        "PublishAllPorts": False,
        "ReadonlyRootfs": False,
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 67108864,
        "Runtime": "",  # the daemon's default is filled in at create (engine/runtimes.py)
        "Isolation": "",
        "CpuShares": 0,
        "Memory": 0,
        "NanoCpus": 0,
        "CgroupParent": "",
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": "",
        "CpusetMems": "",
        "Devices": [],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "MemoryReservation": 0,
        "MemorySwap": 0,
        "MemorySwappiness": None,
        "OomKillDisable": None,
        "PidsLimit": None,
        "Ulimits": [],
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": None,
        "ReadonlyPaths": None,
    }
    for key, value in defaults.items():
        if host.get(key) in (None, "") and value not in (None, ""):
            host[key] = value
        host.setdefault(key, value)
    if host.get("NetworkMode") in ("", "bridge"):
        host["NetworkMode"] = "default" if not host.get("NetworkMode") else host["NetworkMode"]
    host["RestartPolicy"] = restart_policy(host)
    host["LogConfig"] = log_config(host)
    if host["Memory"] and not host["MemorySwap"]:
        host["MemorySwap"] = host["Memory"] * 2
    return host


def validate_name(name: str) -> str:
    from .names import valid_name

    if not valid_name(name):
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.removeprefix("/")


def parse_restart(text: str) -> dict[str, Any]:
    """`--restart` text for the CLI side; kept here so both sides agree on the words."""
    name, retries = parse_restart_policy(text)
    return {"Name": name, "MaximumRetryCount": retries}
