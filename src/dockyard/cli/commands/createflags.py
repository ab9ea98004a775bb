"""The flags of `run`/`create` and what they become in the Engine API's create body."""

from __future__ import annotations

import os

from dockyard.cli.command import CLIError
from dockyard.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _bytes(value: str) -> int:
    from dockyard.units import parse_ram_size

    return parse_ram_size(value)


def _memory_swap(value: str) -> int:
    return -1 if value == "-1" else _bytes(value)


def _cpus(value: str) -> int:
    from dockyard.errors import InvalidParameter
    from dockyard.flagvalues import parse_cpus

    try:
        return parse_cpus(value)
    except InvalidParameter as exc:
        raise ValueError(exc.message) from None


def _ulimit(value: str) -> str:
    from dockyard.errors import InvalidParameter
    from dockyard.flagvalues import parse_ulimit

    try:
        parse_ulimit(value)
    except InvalidParameter as exc:
        raise ValueError(exc.message) from None
    return value


def _restart(value: str) -> str:
    from dockyard.errors import InvalidParameter
    from dockyard.flagvalues import parse_restart_policy

    try:
        parse_restart_policy(value)
    except InvalidParameter as exc:
        raise ValueError(exc.message) from None
    return value


def _int(value: str) -> int:
    from dockyard.gostrconv import go_parse_int

    return go_parse_int(value)


# A string flag's value when it was not given (docker tells "" from unset for these).
UNSET = "\x00unset"


FLAGS = [
    Flag("attach", "a", "list", help="Attach to STDIN, STDOUT or STDERR"),
    Flag("cap-add", kind="list", help="Add Linux capabilities"),
    Flag("cap-drop", kind="list", help="Drop Linux capabilities"),
    Flag("cidfile", kind="string", help="Write the container ID to the file"),
    Flag("cpu-period", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) period"),
    Flag("cpu-quota", kind="int", help="Limit CPU CFS (Completely Fair Scheduler) quota"),
    Flag("cpu-shares", "c", "int", help="CPU shares (relative weight)"),
    Flag("cpus", kind="string", help="Number of CPUs", metavar="decimal", convert=_cpus),
    Flag("cpuset-cpus", kind="string", help="CPUs in which to allow execution (0-3, 0,1)"),
    Flag("cpuset-mems", kind="string", help="MEMs in which to allow execution (0-3, 0,1)"),
    Flag("device", kind="list", help="Add a host device to the container"),
    Flag("device-cgroup-rule", kind="list", help="Add a rule to the cgroup allowed devices list"),
    Flag("domainname", kind="string", help="Container NIS domain name"),
    Flag(
        "entrypoint",
        kind="string",
        default=UNSET,
        help="Overwrite the default ENTRYPOINT of the image",
    ),
    Flag("env", "e", "list", help="Set environment variables"),
    Flag("env-file", kind="list", help="Read in a file of environment variables"),
    Flag("group-add", kind="list", help="Add additional groups to join"),
    Flag("hostname", "h", "string", help="Container host name"),
    Flag("init", help="Run an init inside the container that forwards signals and reaps processes"),
    Flag("interactive", "i", help="Keep STDIN open even if not attached"),
    Flag("ipc", kind="string", help="IPC mode to use"),
    Flag("label", "l", "list", help="Set meta data on a container"),
    Flag("log-driver", kind="string", help="Logging driver for the container"),
    Flag("log-opt", kind="list", help="Log driver options"),
    Flag("memory", "m", "string", help="Memory limit", metavar="bytes", convert=_bytes),
    Flag(
        "memory-reservation",
        kind="string",
        help="Memory soft limit",
        metavar="bytes",
        convert=_bytes,
    ),
    Flag(
        "memory-swap",
        kind="string",
        metavar="bytes",
        convert=_memory_swap,
        help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    ),
    Flag(
        "memory-swappiness",
        kind="int",
        default=-1,
        help="Tune container memory swappiness (0 to 100)",
    ),
    Flag("name", kind="string", help="Assign a name to the container"),
    Flag("network", kind="string", default="default", help="Connect a container to a network"),
    Flag("oom-kill-disable", help="Disable OOM Killer"),
    Flag("oom-score-adj", kind="int", help="Tune host's OOM preferences (-1000 to 1000)"),
    Flag("pid", kind="string", help="PID namespace to use"),
    Flag("pids-limit", kind="int", help="Tune container pids limit (set -1 for unlimited)"),
    Flag("platform", kind="string", help="Set platform if server is multi-platform capable"),
    Flag("privileged", help="Give extended privileges to this container"),
    Flag("read-only", help="Mount the container's root filesystem as read only"),
    Flag(
        "restart",
        kind="string",
        default="no",
        help="Restart policy to apply when a container exits",
        convert=_restart,
    ),
    Flag(
        "rm",
        help="Automatically remove the container and its associated anonymous volumes when it exits",
    ),
    Flag("runtime", kind="string", help="Runtime to use for this container"),
    Flag("security-opt", kind="list", help="Security Options"),
    Flag("shm-size", kind="string", help="Size of /dev/shm", metavar="bytes", convert=_bytes),
    Flag("stop-signal", kind="string", help="Signal to stop the container"),
    Flag(
        "stop-timeout",
        kind="string",
        default=UNSET,
        metavar="int",
        convert=_int,
        help="Timeout (in seconds) to stop a container",
    ),
    Flag("sysctl", kind="map", help="Sysctl options"),
    Flag("tmpfs", kind="list", help="Mount a tmpfs directory"),
    Flag("tty", "t", help="Allocate a pseudo-TTY"),
    Flag("ulimit", kind="list", help="Ulimit options", metavar="ulimit", convert=_ulimit),
    Flag("user", "u", "string", help="Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("uts", kind="string", help="UTS namespace to use"),
    Flag("volume", "v", "list", help="Bind mount a volume"),
    Flag("workdir", "w", "string", help="Working directory inside the container"),
]


def _env(opts: dict[str, Any]) -> list[str]:
    from dockyard.errors import InvalidParameter
    from dockyard.flagvalues import parse_env_file

    env: list[str] = []
    for path in opts["env-file"]:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise CLIError(f"open {path}: {(exc.strerror or str(exc)).lower()}", 125) from None
        try:
            env += parse_env_file(data, os.environ.get, filename=path)
        except InvalidParameter as exc:
            raise CLIError(exc.message, 125) from None
    for entry in opts["env"]:
        if "=" not in entry:  # `-e NAME` takes the value from our own environment
            if entry in os.environ:
                env.append(f"{entry}={os.environ[entry]}")
            continue
        env.append(entry)
    return env


def _labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, _, val = value.partition("=")
        labels[key] = val
    return labels


def _tmpfs(values: list[str]) -> dict[str, str]:
    found = {}
    for value in values:
        dest, _, options = value.partition(":")
        found[dest] = options
    return found


def create_body(opts: dict[str, Any], image: str, command: list[str]) -> dict[str, Any]:
    """The POST /containers/create body for these flags (docker's parse in cli opts.go)."""
    from dockyard.flagvalues import parse_restart_policy, parse_ulimit

    attach = [a.lower() for a in opts["attach"]]
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise CLIError(
                f'invalid argument "{stream}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR',
                125,
            )
    detached = opts.get("detach", False)
    if detached and attach:
        raise CLIError("Conflicting options: -a and -d", 125)
    stdin = opts["interactive"]
    if detached:
        attach_stdin = attach_stdout = attach_stderr = False
    elif attach:
        attach_stdin, attach_stdout, attach_stderr = (
            "stdin" in attach,
            "stdout" in attach,
            "stderr" in attach,
        )
    else:
        attach_stdin, attach_stdout, attach_stderr = stdin, True, True
    entrypoint = None if opts["entrypoint"] == UNSET else opts["entrypoint"]
    restart_name, retries = parse_restart_policy(opts["restart"])
    ulimits = []
    for value in opts["ulimit"]:
        name, soft, hard = parse_ulimit(value)
        ulimits.append({"Name": name, "Soft": soft, "Hard": hard})
    log_config: dict[str, Any] = {"Type": opts["log-driver"], "Config": {}}
    for value in opts["log-opt"]:
        key, eq, val = value.partition("=")
        if not eq:
            raise CLIError(
                f'invalid argument "{value}" for "--log-opt" flag: invalid key-value pair', 125
            )
        log_config["Config"][key] = val
    host: dict[str, Any] = {
        "Binds": opts["volume"] or None,
        "ContainerIDFile": opts["cidfile"],
        "LogConfig": log_config,
        "NetworkMode": opts["network"],
        "PortBindings": {},
        "RestartPolicy": {"Name": restart_name or "no", "MaximumRetryCount": retries},
        "AutoRemove": opts["rm"],
        "CapAdd": opts["cap-add"] or None,
        "CapDrop": opts["cap-drop"] or None,
        "GroupAdd": opts["group-add"] or None,
        "IpcMode": opts["ipc"],
        "OomScoreAdj": opts["oom-score-adj"],
        "PidMode": opts["pid"],
        "Privileged": opts["privileged"],
        "ReadonlyRootfs": opts["read-only"],
        "SecurityOpt": opts["security-opt"] or None,
        "UTSMode": opts["uts"],
        "ShmSize": opts["shm-size"] or 0,
        "Runtime": opts["runtime"],
        "CpuShares": opts["cpu-shares"],
        "Memory": opts["memory"] or 0,
        "NanoCpus": opts["cpus"] or 0,
        "CpuPeriod": opts["cpu-period"],
        "CpuQuota": opts["cpu-quota"],
        "CpusetCpus": opts["cpuset-cpus"],
        "CpusetMems": opts["cpuset-mems"],
        "DeviceCgroupRules": opts["device-cgroup-rule"] or None,
        "Devices": [_device(d) for d in opts["device"]],
        "MemoryReservation": opts["memory-reservation"] or 0,
        "MemorySwap": opts["memory-swap"] or 0,
        "MemorySwappiness": None if opts["memory-swappiness"] == -1 else opts["memory-swappiness"],
        "OomKillDisable": opts["oom-kill-disable"],
        "PidsLimit": opts["pids-limit"] or None,
        "Ulimits": ulimits or None,
        "Sysctls": opts["sysctl"] or None,
        "Tmpfs": _tmpfs(opts["tmpfs"]) or None,
        "Init": True if opts["init"] else None,
        "ConsoleSize": [0, 0],
    }
    body: dict[str, Any] = {
        "Hostname": opts["hostname"],
        "Domainname": opts["domainname"],
        "User": opts["user"],
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": opts["tty"],
        "OpenStdin": stdin,
        "StdinOnce": stdin and attach_stdin,
        "Env": _env(opts),
        "Cmd": command or None,
        "Image": image,
        "WorkingDir": opts["workdir"],
        "Entrypoint": None if entrypoint is None else ([entrypoint] if entrypoint else [""]),
        "Labels": _labels(opts["label"]),
        "HostConfig": host,
    }
    if opts["stop-signal"]:
        body["StopSignal"] = opts["stop-signal"]
    if opts["stop-timeout"] != UNSET:
        body["StopTimeout"] = opts["stop-timeout"]
    return body


def _device(value: str) -> dict[str, str]:
    parts = value.split(":")
    host = parts[0]
    inside = parts[1] if len(parts) > 1 and not set(parts[1]) <= set("rwm") else host
    mode = parts[-1] if len(parts) > 1 and set(parts[-1]) <= set("rwm") else "rwm"
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": mode}
