"""Container cgroups on cgroup v1, v2 and the hybrid layout (v1 controllers + an empty cgroup2).

The hierarchies are read from /proc/self/mountinfo, so a v1 controller mounted somewhere odd
(this machine class moves `hugetlb` to /tmp/peers/cg-hugetlb) is still found, and the cgroup2
tree of a hybrid host is joined too (tools that look at `0::` see the container).

Where a container's cgroup goes:
  * `linux.cgroupsPath` absolute ("/docker/ID"): that path from each hierarchy's root, as runc's
    cgroupfs driver does;
  * relative ("x/y"): under `parent` (default "/dockyard") — runc would put it under its own
    cgroup instead, but our callers (a shim, a test runner) may sit in a memory-limited leaf
    such as memory:/process_api/… and containers must not be charged to it;
  * absent: `<parent>/<container id>`.

Resources: memory (+swap where the kernel accounts it), cpu shares/quota/period, cpuset, pids,
blkio weight and throttles, hugetlb, v1 devices rules, `unified` key/values on v2. On cgroup v2
device rules would need a BPF program attached to the cgroup: that is out of scope and the
rules are ignored there (documented gap). The freezer implements pause/resume; OOM kills are
counted from memory.oom_control (v1) or memory.events (v2).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

UNIFIED = ""  # the key of the cgroup2 hierarchy, as in /proc/self/cgroup ("0::/path")


@dataclass(frozen=True)
class Hierarchy:
    key: str  # "memory", "cpu,cpuacct", "name=systemd", or "" for cgroup2
    mountpoint: str
    root: str  # the hierarchy path mounted there (normally "/")

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(self.key.split(",")) if self.key else ()


@cache
def hierarchies() -> tuple[Hierarchy, ...]:
    """Every cgroup hierarchy mounted in our mount namespace, first mount of each wins."""
    found: dict[str, Hierarchy] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if not tail or tail[0] not in ("cgroup", "cgroup2"):
                continue
            root, mountpoint = fields[3], _unescape(fields[4])
            if tail[0] == "cgroup2":
                key = UNIFIED
            else:
                opts = tail[2].split(",") if len(tail) > 2 else []
                key = ",".join(o for o in opts if o not in _V1_NON_CONTROLLER_OPTS)
            if key not in found or (found[key].root != "/" and root == "/"):
                found[key] = Hierarchy(key, mountpoint, root)
    return tuple(found.values())


_V1_NON_CONTROLLER_OPTS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec"}
_V1_NON_CONTROLLER_OPTS |= {"clone_children", "noprefix", "xattr", "cpuset_v2_mode"}


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def is_unified_only() -> bool:
    """True on a pure cgroup v2 host."""
    hs = hierarchies()
    return len(hs) == 1 and hs[0].key == UNIFIED


def container_path(cgroups_path: str | None, container_id: str, parent: str = "/dockyard") -> str:
    if cgroups_path and cgroups_path.startswith("/"):
        path = cgroups_path
    else:
        path = f"{parent.rstrip('/')}/{cgroups_path or container_id}"
    if ".." in path.split("/"):  # checked before normpath, which would resolve it away
        raise ValueError(f"invalid cgroupsPath {cgroups_path!r}")
    return os.path.normpath("/" + path.lstrip("/"))


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _read_int(path: str) -> int | None:
    try:
        text = _read(path).strip()
    except OSError:
        return None
    return None if text in ("", "max") else int(text)


def _kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in _read(path).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
    except OSError:
        pass
    return out


@dataclass
class Cgroup:
    """One container's cgroup: its directory in every hierarchy, keyed like /proc/self/cgroup."""

    path: str
    dirs: dict[str, str] = field(default_factory=dict)
    # The highest directory create() made (a cgroup path): destroy() removes up to it, so a
    # nested cgroupsPath leaves nothing behind, and nothing that was there before is touched.
    created_top: str | None = None

    @classmethod
    def for_path(cls, path: str) -> Cgroup:
        dirs = {}
        for h in hierarchies():
            rel = os.path.relpath(path, h.root) if h.root != "/" else path.lstrip("/")
            if rel.startswith(".."):
                continue  # this hierarchy is mounted from below the container's path
            dirs[h.key] = os.path.join(h.mountpoint, rel)
        return cls(path, dirs)

    # -- lookup ---------------------------------------------------------------------------------
    @property
    def v2(self) -> bool:
        return is_unified_only()

    def dir_of(self, controller: str) -> str | None:
        """The directory holding `controller`'s files (the unified dir on v2)."""
        if self.v2:
            return self.dirs.get(UNIFIED)
        for key, d in self.dirs.items():
            if controller in key.split(","):
                return d
        return None

    def _procs_dir(self) -> str | None:
        for controller in ("pids", "freezer", "memory", "cpu"):
            d = self.dir_of(controller)
            if d and os.path.isdir(d):
                return d
        return next((d for d in self.dirs.values() if os.path.isdir(d)), None)

    # -- lifecycle ------------------------------------------------------------------------------
    def note_new_dirs(self, keep: str = "/") -> None:
        """Find the highest directory create() is going to make; `keep` (the shared parent,
        e.g. /dockyard) never counts as ours, so destroy() will not remove it."""
        probe = next(iter(self.dirs.values()), "")
        if not probe.endswith(self.path):
            return
        mount_side = probe[: len(probe) - len(self.path)]
        path = self.path
        while path not in ("/", "") and path != keep.rstrip("/"):
            if keep.startswith(path + "/") or os.path.isdir(mount_side + path):
                break
            self.created_top = path
            path = os.path.dirname(path)

    def create(self) -> None:
        for key, d in self.dirs.items():
            if "cpuset" in key.split(","):
                self._make_cpuset(d)
            elif key == UNIFIED and self.v2:
                self._make_v2(d)
            else:
                os.makedirs(d, exist_ok=True)

    def _make_cpuset(self, d: str) -> None:
        # A new v1 cpuset has empty cpus/mems and refuses tasks: copy them down from the parent
        # at every level we create.
        if os.path.isdir(d):
            return
        parent = os.path.dirname(d)
        self._make_cpuset(parent)
        os.makedirs(d, exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not _read(os.path.join(d, name)).strip():
                _write(os.path.join(d, name), _read(os.path.join(parent, name)).strip())

    def _make_v2(self, d: str) -> None:
        # Enable the controllers we use on every ancestor's subtree_control, top down.
        mount = next(h.mountpoint for h in hierarchies() if h.key == UNIFIED)
        rel = os.path.relpath(d, mount).split("/")
        current = mount
        for part in rel:
            try:
                available = _read(os.path.join(current, "cgroup.controllers")).split()
                wanted = [
                    c
                    for c in ("cpu", "cpuset", "io", "memory", "pids", "hugetlb")
                    if c in available
                ]
                if wanted:
                    _write(
                        os.path.join(current, "cgroup.subtree_control"),
                        " ".join("+" + c for c in wanted),
                    )
            except OSError:
                pass  # a parent with processes of its own cannot delegate: limits then fail loudly
            current = os.path.join(current, part)
            os.makedirs(current, exist_ok=True)

    def join(self, pid: int = 0) -> None:
        """Move `pid` (0: the caller) into every hierarchy."""
        for d in self.dirs.values():
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left, then remove the container's directory in every hierarchy."""
        if self.pids():
            self.kill_all(signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    # EBUSY: killed tasks are still exiting.
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.002)
        top = self.created_top
        if top and top != self.path and self.path.startswith(top + "/"):
            levels = self.path[len(top) :].count("/")
            for d in self.dirs.values():
                for _ in range(levels):
                    d = os.path.dirname(d)
                    try:
                        os.rmdir(d)
                    except OSError:
                        break  # not empty: another container's, or not ours after all

    # -- resources ------------------------------------------------------------------------------
    def apply(self, resources: dict[str, Any] | None) -> None:
        if not resources:
            return
        if self.v2:
            _apply_v2(self.dirs[UNIFIED], resources)
        else:
            _apply_v1(self, resources)

    # -- freezer --------------------------------------------------------------------------------
    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        d = self.dir_of("freezer") if not self.v2 else self.dirs.get(UNIFIED)
        if not d:
            raise OSError(errno.ENOTSUP, "no freezer cgroup")
        deadline = time.monotonic() + 5
        while True:
            if self.v2:
                _write(os.path.join(d, "cgroup.freeze"), "1" if frozen else "0")
                done = _kv(os.path.join(d, "cgroup.events")).get("frozen") == int(frozen)
            else:
                _write(os.path.join(d, "freezer.state"), "FROZEN" if frozen else "THAWED")
                done = _read(os.path.join(d, "freezer.state")).strip() == (
                    "FROZEN" if frozen else "THAWED"
                )
            if done:
                return
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, "cgroup freezer did not settle")
            time.sleep(0.001)  # FREEZING: tasks are still being stopped

    def frozen(self) -> bool:
        try:
            if self.v2:
                return _kv(os.path.join(self.dirs[UNIFIED], "cgroup.events")).get("frozen") == 1
            d = self.dir_of("freezer")
            return bool(d) and _read(os.path.join(d, "freezer.state")).strip() == "FROZEN"
        except OSError:
            return False

    # -- processes ------------------------------------------------------------------------------
    def pids(self) -> list[int]:
        d = self._procs_dir()
        if not d:
            return []
        try:
            return [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
        except OSError:
            return []

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process; frozen meanwhile so none can fork a new one past us (as runc)."""
        frozen = False
        try:
            self.freeze()
            frozen = True
        except OSError:
            pass
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self.thaw()

    # -- accounting -----------------------------------------------------------------------------
    def oom_kill_count(self) -> int:
        d = self.dir_of("memory")
        if not d:
            return 0
        if self.v2:
            return _kv(os.path.join(d, "memory.events")).get("oom_kill", 0)
        return _kv(os.path.join(d, "memory.oom_control")).get("oom_kill", 0)

    def oom_notify_fd(self) -> int:
        """An fd that becomes readable on each OOM event: an eventfd (v1) or inotify (v2)."""
        d = self.dir_of("memory")
        if not d:
            raise OSError(errno.ENOTSUP, "no memory cgroup")
        if self.v2:
            from .syscalls import _libc

            fd = _libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
            if (
                fd < 0
                or _libc.inotify_add_watch(fd, os.path.join(d, "memory.events").encode(), 2) < 0
            ):
                raise OSError(errno.EIO, "inotify on memory.events failed")
            return int(fd)
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        ofd = os.open(os.path.join(d, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _write(os.path.join(d, "cgroup.event_control"), f"{efd} {ofd}")
        finally:
            os.close(ofd)  # the kernel holds its own reference
        return efd

    def stats(self) -> dict[str, Any]:
        """Usage figures for `docker stats`: memory, cpu (ns), pids, blkio."""
        if self.v2:
            return _stats_v2(self.dirs[UNIFIED])
        return _stats_v1(self)


def _v1_file(cg: Cgroup, controller: str, name: str) -> str | None:
    d = cg.dir_of(controller)
    return os.path.join(d, name) if d else None


def _apply_v1(cg: Cgroup, res: dict[str, Any]) -> None:
    def put(controller: str, name: str, value: object) -> None:
        path = _v1_file(cg, controller, name)
        if path is None:
            raise OSError(errno.ENOENT, f"cgroup controller {controller} is not mounted")
        _write(path, str(value))

    mem = res.get("memory") or {}
    if mem.get("limit") is not None:
        put("memory", "memory.limit_in_bytes", mem["limit"])
    if mem.get("swap") is not None:
        path = _v1_file(cg, "memory", "memory.memsw.limit_in_bytes")
        if path and os.path.exists(path):  # no swap accounting: the limit alone applies
            _write(path, str(mem["swap"]))
    if mem.get("reservation") is not None:
        put("memory", "memory.soft_limit_in_bytes", mem["reservation"])
    if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
        put("memory", "memory.swappiness", mem["swappiness"])
    if mem.get("disableOOMKiller"):
        put("memory", "memory.oom_control", 1)
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        put("cpu", "cpu.shares", cpu["shares"])
    if cpu.get("period"):
        put("cpu", "cpu.cfs_period_us", cpu["period"])
    if cpu.get("quota"):
        put("cpu", "cpu.cfs_quota_us", cpu["quota"])
    if cpu.get("realtimePeriod"):
        put("cpu", "cpu.rt_period_us", cpu["realtimePeriod"])
    if cpu.get("realtimeRuntime"):
        put("cpu", "cpu.rt_runtime_us", cpu["realtimeRuntime"])
    if cpu.get("cpus"):
        put("cpuset", "cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        put("cpuset", "cpuset.mems", cpu["mems"])
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        put("pids", "pids.max", pids["limit"] if pids["limit"] > 0 else "max")
    for rule in res.get("devices") or []:
        put("devices", "devices.allow" if rule.get("allow") else "devices.deny", device_rule(rule))
    blkio = res.get("blockIO") or {}
    if blkio.get("weight"):
        put("blkio", "blkio.weight", blkio["weight"])
    if blkio.get("leafWeight"):
        put("blkio", "blkio.leaf_weight", blkio["leafWeight"])
    for d in blkio.get("weightDevice") or []:
        if d.get("weight"):
            put("blkio", "blkio.weight_device", f"{d['major']}:{d['minor']} {d['weight']}")
        if d.get("leafWeight"):
            put("blkio", "blkio.leaf_weight_device", f"{d['major']}:{d['minor']} {d['leafWeight']}")
    for key, name in _THROTTLE.items():
        for d in blkio.get(key) or []:
            put("blkio", f"blkio.throttle.{name}", f"{d['major']}:{d['minor']} {d['rate']}")
    for h in res.get("hugepageLimits") or []:
        put("hugetlb", f"hugetlb.{h['pageSize']}.limit_in_bytes", h["limit"])
    if res.get("unified"):
        raise ValueError("linux.resources.unified needs a cgroup v2 host")
    net = res.get("network") or {}
    if net.get("classID") is not None:
        put("net_cls", "net_cls.classid", net["classID"])
    for p in net.get("priorities") or []:
        put("net_prio", "net_prio.ifpriomap", f"{p['name']} {p['priority']}")


_THROTTLE = {
    "throttleReadBpsDevice": "read_bps_device",
    "throttleWriteBpsDevice": "write_bps_device",
    "throttleReadIOPSDevice": "read_iops_device",
    "throttleWriteIOPSDevice": "write_iops_device",
}


# What runc always allows after the spec's own rules (libcontainer/specconv AllowedDevices):
# mknod of anything, and the default devices, the console, ptys and tun/tap.
ALWAYS_ALLOWED = (
    ("c", None, None, "m"),
    ("b", None, None, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 9, "rwm"),
    ("c", 5, 1, "rwm"),
    ("c", 136, None, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)


def device_rules(
    resources: dict[str, Any] | None, devices: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """The spec's rules, then its linux.devices and the always-allowed ones, as runc does."""
    rules = list((resources or {}).get("devices") or [])
    for d in devices or ():
        if d.get("type") not in ("c", "b", "u"):
            continue  # FIFOs are not device-controlled
        rules.append(
            {
                "allow": True,
                "type": "c" if d.get("type") == "u" else d.get("type"),
                "major": d.get("major"),
                "minor": d.get("minor"),
                "access": "rwm",
            }
        )
    for kind, major, minor, access in ALWAYS_ALLOWED:
        rules.append(
            {"allow": True, "type": kind, "major": major, "minor": minor, "access": access}
        )
    return rules


def device_rule(rule: dict[str, Any]) -> str:
    """An OCI device rule as the v1 devices controller line: "c 1:3 rwm", "a *:* rwm"."""
    kind = rule.get("type") or "a"
    major = rule.get("major")
    minor = rule.get("minor")
    ma = "*" if major is None or major < 0 else str(major)
    mi = "*" if minor is None or minor < 0 else str(minor)
    return f"{kind} {ma}:{mi} {rule.get('access') or 'rwm'}"


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] to v2 cpu.weight [1, 10000], runc's formula."""
    return 1 + ((shares - 2) * 9999) // 262142


def _apply_v2(d: str, res: dict[str, Any]) -> None:
    def put(name: str, value: object) -> None:
        _write(os.path.join(d, name), str(value))

    mem = res.get("memory") or {}
    limit = mem.get("limit")
    if limit is not None:
        put("memory.max", "max" if limit < 0 else limit)
    if mem.get("swap") is not None and os.path.exists(os.path.join(d, "memory.swap.max")):
        swap = mem["swap"]
        # OCI's swap is v1's memory+swap total; v2 limits swap alone.
        if swap < 0:
            put("memory.swap.max", "max")
        elif limit is not None and limit >= 0:
            put("memory.swap.max", max(swap - limit, 0))
    if mem.get("reservation") is not None:
        put("memory.low", mem["reservation"])
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        put("cpu.weight", shares_to_weight(cpu["shares"]))
    if cpu.get("quota") or cpu.get("period"):
        quota = cpu.get("quota")
        put("cpu.max", f"{quota if quota and quota > 0 else 'max'} {cpu.get('period') or 100000}")
    if cpu.get("cpus"):
        put("cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        put("cpuset.mems", cpu["mems"])
    pids = res.get("pids") or {}
    if pids.get("limit") is not None:
        put("pids.max", pids["limit"] if pids["limit"] > 0 else "max")
    blkio = res.get("blockIO") or {}
    if blkio.get("weight"):
        put("io.weight", blkio["weight"])  # same [10, 1000] range in io.bfq/io.weight
    v2_keys = {"read_bps_device": "rbps", "write_bps_device": "wbps"}
    v2_keys |= {"read_iops_device": "riops", "write_iops_device": "wiops"}
    for key, name in _THROTTLE.items():
        for dev in blkio.get(key) or []:
            put("io.max", f"{dev['major']}:{dev['minor']} {v2_keys[name]}={dev['rate']}")
    for h in res.get("hugepageLimits") or []:
        put(f"hugetlb.{h['pageSize']}.max", h["limit"])
    for name, value in (res.get("unified") or {}).items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"invalid unified resource {name!r}")
        put(name, value)


def _stats_v1(cg: Cgroup) -> dict[str, Any]:
    def num(controller: str, name: str) -> int | None:
        path = _v1_file(cg, controller, name)
        return _read_int(path) if path else None

    mem_stat = {}
    path = _v1_file(cg, "memory", "memory.stat")
    if path:
        mem_stat = _kv(path)
    acct = _v1_file(cg, "cpuacct", "cpuacct.usage_percpu")
    percpu: list[int] = []
    if acct:
        try:
            percpu = [int(x) for x in _read(acct).split()]
        except OSError:
            pass
    cpu_stat = _kv(_v1_file(cg, "cpu", "cpu.stat") or "/nonexistent")
    user_system = _kv(_v1_file(cg, "cpuacct", "cpuacct.stat") or "/nonexistent")
    hz = os.sysconf("SC_CLK_TCK")
    return {
        "memory": {
            "usage": num("memory", "memory.usage_in_bytes"),
            "max_usage": num("memory", "memory.max_usage_in_bytes"),
            "limit": num("memory", "memory.limit_in_bytes"),
            "failcnt": num("memory", "memory.failcnt"),
            "stats": mem_stat,
        },
        "cpu": {
            "usage_ns": num("cpuacct", "cpuacct.usage"),
            "percpu_ns": percpu,
            "user_ns": user_system.get("user", 0) * 1_000_000_000 // hz,
            "system_ns": user_system.get("system", 0) * 1_000_000_000 // hz,
            "throttling": {
                "periods": cpu_stat.get("nr_periods", 0),
                "throttled_periods": cpu_stat.get("nr_throttled", 0),
                "throttled_time_ns": cpu_stat.get("throttled_time", 0),
            },
        },
        "pids": {"current": num("pids", "pids.current"), "limit": num("pids", "pids.max")},
        "blkio": {"io_service_bytes_recursive": _blkio_v1(cg)},
    }


def _blkio_v1(cg: Cgroup) -> list[dict[str, Any]]:
    path = _v1_file(cg, "blkio", "blkio.throttle.io_service_bytes_recursive")
    out = []
    try:
        for line in _read(path).splitlines() if path else []:
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                out.append(
                    {
                        "major": int(major),
                        "minor": int(minor),
                        "op": parts[1],
                        "value": int(parts[2]),
                    }
                )
    except OSError:
        pass
    return out


def _stats_v2(d: str) -> dict[str, Any]:
    cpu = _kv(os.path.join(d, "cpu.stat"))
    blk = []
    try:
        for line in _read(os.path.join(d, "io.stat")).splitlines():
            dev, *pairs = line.split()
            major, minor = dev.split(":")
            kv = dict(p.split("=", 1) for p in pairs)
            for key, op in (("rbytes", "Read"), ("wbytes", "Write")):
                blk.append(
                    {
                        "major": int(major),
                        "minor": int(minor),
                        "op": op,
                        "value": int(kv.get(key, 0)),
                    }
                )
    except (OSError, ValueError):
        pass
    return {
        "memory": {
            "usage": _read_int(os.path.join(d, "memory.current")),
            "max_usage": _read_int(os.path.join(d, "memory.peak")),
            "limit": _read_int(os.path.join(d, "memory.max")),
            "failcnt": _kv(os.path.join(d, "memory.events")).get("max"),
            "stats": _kv(os.path.join(d, "memory.stat")),
        },
        "cpu": {
            "usage_ns": cpu.get("usage_usec", 0) * 1000,
            "percpu_ns": [],
            "user_ns": cpu.get("user_usec", 0) * 1000,
            "system_ns": cpu.get("system_usec", 0) * 1000,
            "throttling": {
                "periods": cpu.get("nr_periods", 0),
                "throttled_periods": cpu.get("nr_throttled", 0),
                "throttled_time_ns": cpu.get("throttled_usec", 0) * 1000,
            },
        },
        "pids": {
            "current": _read_int(os.path.join(d, "pids.current")),
            "limit": _read_int(os.path.join(d, "pids.max")),
        },
        "blkio": {"io_service_bytes_recursive": blk},
    }


def prime_migration() -> None:
    """Start the RCU grace period that the next cgroup migration must wait for, now.

    Moving a task between cgroups takes the global cgroup_threadgroup_rwsem for writing, and
    the first writer after a quiet spell waits for an RCU grace period (5-25 ms on this
    machine class); writers that come while one is under way, or shortly after, do not wait
    again. A container's init joins its cgroup ~10 ms into its start, so the daemon calls
    this when a start begins: a thread moves the daemon into the cgroup it is already in (a
    no-op migration that takes the lock), and the init's migration finds the wait done.
    """
    try:
        with open("/proc/self/cgroup") as f:
            own = {key: path.rstrip("\n") for _, key, path in (line.split(":", 2) for line in f)}
    except (OSError, ValueError):
        return
    for h in hierarchies():
        path = own.get(h.key)
        if path is None or not path.startswith(h.root):
            continue
        procs = os.path.join(h.mountpoint, path[len(h.root) :].lstrip("/"), "cgroup.procs")
        threading.Thread(target=_rewrite_own_pid, args=(procs,), daemon=True).start()
        return


def _rewrite_own_pid(procs: str) -> None:
    with contextlib.suppress(OSError):
        _write(procs, str(os.getpid()))
