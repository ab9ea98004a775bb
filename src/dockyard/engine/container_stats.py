"""`docker top` and `docker stats`: a running container's processes and resource usage.

top (moby daemon/top_unix.go): the host's `ps` with the given arguments (default `-ef`) and
`-q` with the container's PIDs (again without `-q` when ps refuses the combination), keeping
the lines whose PID is the container's (and the thread lines after them).

stats (daemon/stats*.go): the cgroup's figures in docker's StatsResponse, as moby converts
containerd's cgroup v1 and v2 metrics (a hybrid host has v1 controllers: v1 figures), with the
host's CPU time from /proc/stat, the memory limit capped at the machine's memory and the
network counters of the container's own network namespace.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, DockyardError, InvalidParameter
from dockyard.image.model import rfc3339_nano

from .container_store import Container

if TYPE_CHECKING:
    from .engine import Engine

ZERO_TIME = "0001-01-01T00:00:00Z"
_PS_ARGS = re.compile(r"[\t\n\f\r ]+([^\t\n\f\r ]*)=[\t\n\f\r ]*(PID[^\t\n\f\r ]*)")
_CLOCK_TICKS = 100

# The memory.stat keys moby reports (containerd's cgroup1 / cgroup2 metrics).
_V1_MEMORY = (
    "cache rss rss_huge mapped_file dirty writeback pgpgin pgpgout pgfault pgmajfault "
    "inactive_anon active_anon inactive_file active_file unevictable "
    "hierarchical_memory_limit hierarchical_memsw_limit total_cache total_rss total_rss_huge "
    "total_mapped_file total_dirty total_writeback total_pgpgin total_pgpgout total_pgfault "
    "total_pgmajfault total_inactive_anon total_active_anon total_inactive_file "
    "total_active_file total_unevictable"
).split()
_V2_MEMORY = (
    "anon file kernel_stack slab sock shmem file_mapped file_dirty file_writeback anon_thp "
    "inactive_anon active_anon inactive_file active_file unevictable slab_reclaimable "
    "slab_unreclaimable pgfault pgmajfault workingset_refault workingset_activate "
    "workingset_nodereclaim pgrefill pgscan pgsteal pgactivate pgdeactivate pglazyfree "
    "pglazyfreed thp_fault_alloc thp_collapse_alloc"
).split()
_BLKIO_KEYS = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)


def _runtime(engine: Engine, container: Container) -> Any:
    return engine.containers.runtime(container)


def _running(engine: Engine, ref: str) -> Container:
    container = engine.containers.find(ref)
    with engine.containers.lock(container.id):
        container = engine.container_store.get(container.id) or container
        if not container.running:
            raise Conflict(f"container {container.id} is not running")
        if container.state.get("Restarting"):
            raise Conflict(
                f"Container {container.id} is restarting, wait until the container is running"
            )
    return container


# -- top ---------------------------------------------------------------------------------------
def _fields(line: str) -> list[str]:
    """Go's fieldsASCII: split on ASCII whitespace only."""
    return [f for f in re.split(r"[\t\n\f\r ]+", line) if f]


def parse_ps(output: str, pids: list[int]) -> dict[str, Any]:
    """moby's parsePSOutput: the titles, and the lines of the container's processes."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise DockyardError("Couldn't find PID field in ps output")
    index = titles.index("PID")
    wanted = set(pids)
    processes: list[list[str]] = []
    previous_ours = False

    def add(fields: list[str]) -> None:
        cut = len(titles) - 1
        processes.append([*fields[:cut], " ".join(fields[cut:])])

    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if index >= len(fields):
            continue
        if fields[index] == "-":
            if previous_ours:
                add(fields)
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise DockyardError(f"Unexpected pid '{fields[index]}': invalid syntax") from None
        previous_ours = pid in wanted
        if previous_ours:
            add(fields)
    return {"Processes": processes, "Titles": titles}


def top(engine: Engine, ref: str, ps_args: str = "") -> dict[str, Any]:
    """GET /containers/{id}/top."""
    ps_args = ps_args or "-ef"
    for key, value in _PS_ARGS.findall(ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')
    container = _running(engine, ref)
    pids = sorted(_runtime(engine, container).pids())
    args = ps_args.split(" ")
    quick = f"-q{','.join(map(str, pids))}"
    result = subprocess.run(["ps", *args, quick], capture_output=True, check=False)
    if result.returncode != 0:  # some options (f) refuse -q: again without it
        result = subprocess.run(["ps", *args], capture_output=True, check=False)
        if result.returncode != 0:
            first = result.stderr.decode(errors="replace").split("\n", 1)[0]
            raise DockyardError(f"ps: {first or f'exit status {result.returncode}'}")
    return parse_ps(result.stdout.decode(errors="replace"), pids)


# -- stats -------------------------------------------------------------------------------------
def _empty_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def empty_stats(container: Container) -> dict[str, Any]:
    """What docker answers for a container that does not run."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": dict.fromkeys(_BLKIO_KEYS),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _empty_cpu(),
        "precpu_stats": _empty_cpu(),
        "memory_stats": {},
        "name": "/" + container.name,
        "id": container.id,
    }


def system_cpu() -> tuple[int, int]:
    """(host CPU time in ns, online CPUs) from /proc/stat, as moby reads them."""
    total = cpus = 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or len(line) < 4:
                break
            if line[3] == " ":
                ticks = sum(int(v) for v in line.split()[1:8])
                total = ticks * 1_000_000_000 // _CLOCK_TICKS
            elif line[3].isdigit():
                cpus += 1
    return total, cpus


def machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _omit_zero(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v}


def _networks(pid: int) -> dict[str, Any]:
    """The interfaces of the container's own network namespace (none when it shares ours)."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return {}
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return {}
    found: dict[str, Any] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = [int(v) for v in rest.split()]
        if name == "lo" or len(values) < 12:
            continue
        found[name] = {
            "rx_bytes": values[0],
            "rx_packets": values[1],
            "rx_errors": values[2],
            "rx_dropped": values[3],
            "tx_bytes": values[8],
            "tx_packets": values[9],
            "tx_errors": values[10],
            "tx_dropped": values[11],
        }
    return found


def _memory_events_oom(runtime: Any) -> int:
    directory = runtime.cgroup.dir_of("memory")
    try:
        with open(os.path.join(directory, "memory.events")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom":
                    return int(value)
    except (OSError, TypeError, ValueError):
        pass
    return 0


def sample(engine: Engine, container: Container) -> dict[str, Any]:
    """One StatsResponse of a running container (Pre* fields zero: the caller fills them);
    the empty answer when it no longer runs."""
    try:
        runtime = _runtime(engine, container)
        raw = runtime.stats()
        v2 = runtime.cgroup.v2
    except Exception:
        return empty_stats(container)
    read = rfc3339_nano(time.time_ns())
    system, online = system_cpu()
    cpu_raw, mem_raw = raw.get("cpu") or {}, raw.get("memory") or {}
    usage: dict[str, Any] = {"total_usage": cpu_raw.get("usage_ns") or 0}
    if cpu_raw.get("percpu_ns") and not v2:
        usage["percpu_usage"] = list(cpu_raw["percpu_ns"])
    usage["usage_in_kernelmode"] = cpu_raw.get("system_ns") or 0
    usage["usage_in_usermode"] = cpu_raw.get("user_ns") or 0
    throttling = cpu_raw.get("throttling") or {}
    cpu = {
        "cpu_usage": usage,
        **_omit_zero({"system_cpu_usage": system, "online_cpus": online}),
        "throttling_data": {
            "periods": throttling.get("periods", 0),
            "throttled_periods": throttling.get("throttled_periods", 0),
            "throttled_time": throttling.get("throttled_time_ns", 0),
        },
    }
    stat = mem_raw.get("stats") or {}
    limit = mem_raw.get("limit")
    machine = machine_memory()
    if limit is None or (machine and limit > machine):
        limit = machine
    memory = _omit_zero(
        {
            "usage": mem_raw.get("usage") or 0,
            "max_usage": 0 if v2 else mem_raw.get("max_usage") or 0,
            "stats": {k: stat.get(k, 0) for k in (_V2_MEMORY if v2 else _V1_MEMORY)},
            "failcnt": _memory_events_oom(runtime) if v2 else mem_raw.get("failcnt") or 0,
            "limit": limit,
        }
    )
    entries = (raw.get("blkio") or {}).get("io_service_bytes_recursive") or []
    if v2:
        blkio: dict[str, Any] = dict.fromkeys(_BLKIO_KEYS)
        blkio["io_service_bytes_recursive"] = [
            {**e, "op": str(e.get("op", "")).lower()} for e in entries
        ] or None
    else:
        blkio = {key: [] for key in _BLKIO_KEYS}
        blkio["io_service_bytes_recursive"] = list(entries)
    pids = raw.get("pids") or {}
    return {
        "read": read,
        "preread": ZERO_TIME,
        "pids_stats": _omit_zero({"current": pids.get("current"), "limit": pids.get("limit")}),
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu,
        "precpu_stats": _empty_cpu(),
        "memory_stats": memory,
        "name": "/" + container.name,
        "id": container.id,
        "networks": _networks(container.state.get("Pid") or 0),
    }


def stats(engine: Engine, ref: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The current figures of container `ref`, with `previous`'s read time and CPU figures as
    preread and precpu_stats (docker's stream: each answer carries the one before)."""
    container = engine.containers.find(ref)
    current = engine.container_store.get(container.id) or container
    if not current.running or current.state.get("Restarting"):
        return empty_stats(current)
    doc = sample(engine, current)
    if previous is not None and previous.get("read", ZERO_TIME) != ZERO_TIME:
        doc["preread"] = previous["read"]
        doc["precpu_stats"] = previous["cpu_stats"]
    return doc
