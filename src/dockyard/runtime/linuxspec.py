"""The `linux` section of a container's spec: namespaces, devices and cgroup resources.

Pure: device numbers come from the caller's stat of the host (DeviceNode), as do the modes.
Rules and error texts are dockerd's (moby oci_linux.go WithNamespaces/WithDevices,
daemon_unix.go getMemoryResources/getCPUResources/getPidsLimit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.runtime.defaults import DEFAULT_NAMESPACES, default_device_rules
from dockyard.runtime.options import (
    DeviceMapping,
    RunOptions,
    parse_device,
    parse_device_cgroup_rule,
)


@dataclass(frozen=True)
class DeviceNode:
    """A device node as stat(2) on the host sees it; the caller stats, build_spec places it."""

    path: str
    type: str  # "c", "b" or "p"
    major: int
    minor: int
    file_mode: int = 0o666  # permission bits only, as the spec's fileMode
    uid: int = 0
    gid: int = 0

    def to_spec(self, path: str | None = None) -> dict[str, Any]:
        return {
            "path": path or self.path,
            "type": self.type,
            "major": self.major,
            "minor": self.minor,
            "fileMode": self.file_mode,
            "uid": self.uid,
            "gid": self.gid,
        }


# --- devices and resources ---------------------------------------------------------------------


def devices(
    opts: RunOptions,
    device_nodes: Mapping[str, Sequence[DeviceNode]],
    host_devices: Sequence[DeviceNode],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(linux.devices, linux.resources.devices), moby WithDevices."""
    mappings = [parse_device(d) for d in opts.devices]
    if opts.privileged:
        devs = [n.to_spec() for n in host_devices]
        for dm in mappings:
            if dm.path_on_host != dm.path_in_container:  # same path: already there from the host
                devs += [n.to_spec(_in_container(n, dm)) for n in _nodes(dm, device_nodes)]
        return devs, [{"allow": True, "access": "rwm"}]
    devs, rules = [], default_device_rules()
    for dm in mappings:
        for node in _nodes(dm, device_nodes):
            devs.append(node.to_spec(_in_container(node, dm)))
            rules.append(
                {
                    "allow": True,
                    "type": node.type,
                    "major": node.major,
                    "minor": node.minor,
                    "access": dm.permissions,
                }
            )
    rules += [parse_device_cgroup_rule(r) for r in opts.device_cgroup_rules]
    return devs, rules


def _nodes(
    dm: DeviceMapping, device_nodes: Mapping[str, Sequence[DeviceNode]]
) -> Sequence[DeviceNode]:
    nodes = device_nodes.get(dm.path_on_host)
    if not nodes:
        raise InvalidParameter(
            f'error gathering device information while adding custom device "{dm.path_on_host}": '
            "not a device node"
        )
    return nodes


def _in_container(node: DeviceNode, dm: DeviceMapping) -> str:
    # A directory given to --device brings the nodes under it, at the same relative place.
    return node.path.replace(dm.path_on_host, dm.path_in_container, 1)


def resources(opts: RunOptions, device_rules: list[dict[str, Any]]) -> dict[str, Any]:
    """linux.resources as dockerd 20.10 writes them (memory, cpu and blockIO always present)."""
    memory: dict[str, Any] = {}
    if opts.memory > 0:
        memory["limit"] = opts.memory
    if opts.memory_reservation > 0:
        memory["reservation"] = opts.memory_reservation
    if opts.memory_swap > 0:
        memory["swap"] = opts.memory_swap
    if opts.memory_swappiness is not None and opts.memory_swappiness >= 0:
        memory["swappiness"] = opts.memory_swappiness
    memory["disableOOMKiller"] = opts.oom_kill_disable
    if opts.cpu_shares < 0:
        raise InvalidParameter(
            f"invalid CPU shares ({opts.cpu_shares}): value must be a positive integer"
        )
    cpu: dict[str, Any] = {"shares": opts.cpu_shares}
    if opts.nano_cpus > 0:
        cpu["quota"] = opts.nano_cpus * 100_000 // 1_000_000_000  # over a 100ms period
        cpu["period"] = 100_000
    if opts.cpu_quota != 0:
        cpu["quota"] = opts.cpu_quota
    if opts.cpu_period != 0:
        cpu["period"] = opts.cpu_period
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        cpu["mems"] = opts.cpuset_mems
    resources: dict[str, Any] = {"devices": device_rules, "memory": memory, "cpu": cpu}
    # Zero or negative means unlimited; dockerd 20.10 then writes no pids section at all.
    if opts.pids_limit is not None and opts.pids_limit > 0:
        resources["pids"] = {"limit": opts.pids_limit}
    resources["blockIO"] = {"weight": 0}  # 0 leaves the kernel's weight alone
    return resources


# --- namespaces --------------------------------------------------------------------------------


def namespaces(opts: RunOptions, *, cgroup_unified: bool) -> list[dict[str, str]]:
    """linux.namespaces: docker's five, minus those shared with the host, plus cgroup.

    Joining another container's namespaces ("container:<id>") needs that container's pid and
    is refused until the engine can supply it.
    """
    ipc, pid, uts = opts.ipc_mode, opts.pid_mode, opts.uts_mode
    if ipc not in ("", "private", "shareable", "host", "none"):
        if ipc.startswith("container:") and ipc != "container:":
            raise InvalidParameter("joining another container's IPC namespace is not supported yet")
        raise InvalidParameter(f"invalid IPC mode: {ipc}")
    if pid not in ("", "host"):
        if pid.startswith("container:") and pid != "container:":
            raise InvalidParameter("joining another container's PID namespace is not supported yet")
        raise InvalidParameter(f"invalid PID mode: {pid}")
    if uts not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {uts}")
    if opts.network_mode.startswith("container:"):
        raise InvalidParameter("joining another container's network namespace is not supported yet")
    cgroupns = opts.cgroupns_mode
    if cgroupns not in ("", "host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {cgroupns}")
    if cgroupns == "":
        # dockerd's default: private on a cgroup v2 host (privileged too), host on v1 and
        # hybrid hosts; on our hybrid test machine runc cannot even mount the v1 hierarchies
        # inside a private cgroup namespace (dockerd's --cgroupns private fails there too).
        cgroupns = "private" if cgroup_unified else "host"

    shared = {"network": opts.network_mode == "host", "ipc": ipc == "host", "pid": pid == "host"}
    shared["uts"] = uts == "host"
    out = [{"type": t} for t in DEFAULT_NAMESPACES if not shared.get(t)]
    if cgroupns == "private":
        out.append({"type": "cgroup"})
    return out
