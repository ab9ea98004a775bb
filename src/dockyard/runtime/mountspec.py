"""`-v` and `--tmpfs` text as dockerd's Linux mount parser reads it.

parse_bind turns "src:dst[:mode]" (or a bare "dst" for an anonymous volume) into a MountPoint
with moby's rules and error texts (daemon/volume/mounts/linux_parser.go ParseMountRaw);
merge_tmpfs_options is moby/sys/mount MergeTmpfsOptions, which decides the option list of a
tmpfs mount in config.json; user_mounts and container_mounts assemble the spec's mount list
(moby setupMounts + withMounts). Creating volumes is the volume package's job, not this one's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.runtime.defaults import (
    INIT_PATH_IN_CONTAINER,
    NETWORK_FILES,
    READONLY_ROOTFS_EXEMPT,
    default_mounts,
)
from dockyard.runtime.options import RunOptions, clean_path, go_quote

PROPAGATION_MODES = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_COPY_MODES = ("nocopy",)
_CONSISTENCY_MODES = ("consistent", "cached", "delegated")
DEFAULT_PROPAGATION = "rprivate"


@dataclass(frozen=True)
class MountPoint:
    """One parsed `-v`: a bind (absolute source) or a volume (a name, or none: anonymous)."""

    type: str  # "bind" or "volume"
    destination: str
    source: str = ""  # bind: the cleaned host path
    name: str = ""  # volume: its name; "" for an anonymous volume
    rw: bool = True
    propagation: str = ""  # bind: given or rprivate; volume: "" (no option in config.json)
    copy_data: bool = True  # volume: copy the image's files into a new volume ("nocopy")
    mode: str = ""


def valid_mount_mode(mode: str) -> bool:
    """Each kind of mode (rw, label, propagation, copy, consistency) at most once."""
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for opt in mode.split(","):
        for i, kind in enumerate(
            (_RW_MODES, _LABEL_MODES, PROPAGATION_MODES, _COPY_MODES, _CONSISTENCY_MODES)
        ):
            if opt in kind:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def _invalid_spec(raw: str) -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{raw}'")


def _config_error(raw: str, kind: str, why: str) -> InvalidParameter:
    return InvalidParameter(
        f"invalid volume specification: '{raw}': invalid mount config for type \"{kind}\": {why}"
    )


def validate_destination(path: str) -> None:
    """A mount target must be absolute and not "/" (also used for --tmpfs destinations)."""
    if clean_path(path.replace("\\", "/")) == "/":
        raise InvalidParameter("invalid specification: destination can't be '/'")
    if not path.replace("\\", "/").startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{path}' mount path must be absolute")


def parse_bind(raw: str) -> MountPoint:
    """One `-v` value, checked as dockerd checks it at create (source existence aside)."""
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise _invalid_spec(raw)
    source, mode = "", ""
    if len(arr) == 1:
        target = arr[0]
    elif len(arr) == 2:
        if valid_mount_mode(arr[1]):
            raise _invalid_spec(raw)  # "/foo:rw": a volume cannot have a mode without a source
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise _invalid_spec(raw)
    if not valid_mount_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    options = mode.split(",") if mode else []
    kind = "bind" if source.startswith("/") else "volume"
    propagation = next((o for o in options if o in PROPAGATION_MODES), "")
    if "nocopy" in options and kind == "bind":
        raise _config_error(raw, kind, "field VolumeOptions must not be specified")
    if propagation and kind == "volume":
        raise _config_error(raw, kind, "field BindOptions must not be specified")
    if target == "":
        raise _config_error(raw, kind, "field Target must not be empty")
    try:
        validate_destination(target)
    except InvalidParameter as e:
        raise _config_error(raw, kind, e.message) from None
    destination = clean_path(target)
    rw = "ro" not in options
    if kind == "bind":
        return MountPoint(
            "bind",
            destination,
            clean_path(source),
            rw=rw,
            propagation=propagation or DEFAULT_PROPAGATION,
            mode=mode,
        )
    return MountPoint(
        "volume", destination, name=source, rw=rw, copy_data="nocopy" not in options, mode=mode
    )


# MergeTmpfsOptions keeps one option per mount flag: the same flag set and cleared ("ro"/"rw",
# "exec"/"noexec") collide, and all propagation/bind options are one flag. The value here is the
# collision key.
_TMPFS_FLAG_KEYS = {
    "ro": "rdonly",
    "rw": "rdonly",
    "suid": "nosuid",
    "nosuid": "nosuid",
    "dev": "nodev",
    "nodev": "nodev",
    "exec": "noexec",
    "noexec": "noexec",
    "sync": "sync",
    "async": "sync",
    "dirsync": "dirsync",
    "remount": "remount",
    "mand": "mand",
    "nomand": "mand",
    "atime": "noatime",
    "noatime": "noatime",
    "diratime": "nodiratime",
    "nodiratime": "nodiratime",
    "relatime": "relatime",
    "norelatime": "relatime",
    "strictatime": "strictatime",
    "nostrictatime": "strictatime",
    **{
        p: "propagation" for p in ("bind", "rbind", "unbindable", "runbindable", *PROPAGATION_MODES)
    },
}
_TMPFS_DATA_KEYS = ("", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """Drop duplicate and overridden tmpfs options; the later of two wins, order is kept."""
    seen: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        key = _TMPFS_FLAG_KEYS.get(option)
        if key is None:
            name, sep, _ = option.partition("=")
            if not sep or name not in _TMPFS_DATA_KEYS:
                raise InvalidParameter(f"invalid tmpfs option {go_quote(name)}")
            key = "=" + name
        if key not in seen:
            seen.add(key)
            out.append(option)
    return out[::-1]


# --- the container's mount list -----------------------------------------------------------------


def _depth(destination: str) -> int:
    return clean_path(destination).count("/")


def mount_points(opts: RunOptions, volumes: Iterable[str] = ()) -> dict[str, MountPoint]:
    """The Config's volumes and the `-v` binds by destination: a bind or named volume at a
    volume's place replaces it; the same destination twice is an error (moby's order)."""
    points: dict[str, MountPoint] = {}
    for destination in sorted(volumes):
        clean = clean_path(destination)
        points[clean] = MountPoint("volume", clean)
    bound: set[str] = set()
    for raw in opts.binds:
        mp = parse_bind(raw)
        if mp.type == "volume" and not mp.name and mp.destination in points:
            continue  # `-v /dst` is already among the Config's volumes
        if mp.destination in bound:
            raise InvalidParameter(f"Duplicate mount point: {mp.destination}")
        bound.add(mp.destination)
        points[mp.destination] = mp  # a bind replaces a volume at the same place
    return points


def volume_points(opts: RunOptions, volumes: Iterable[str] = ()) -> list[MountPoint]:
    """The volumes a container needs (anonymous ones have no name yet); a --tmpfs at the
    same place wins over a volume (moby setupMounts)."""
    tmpfs = {clean_path(d) for d in opts.tmpfs}
    return [
        mp
        for mp in mount_points(opts, volumes).values()
        if mp.type == "volume" and mp.destination not in tmpfs
    ]


def user_mounts(
    opts: RunOptions,
    *,
    volumes: Iterable[str] = (),
    volume_sources: Mapping[str, str],
    network_files: Mapping[str, str | None],
) -> list[dict[str, Any]]:
    """Volume, bind, network-file, IPC and tmpfs mounts in dockerd's order.

    `volumes` are the Config's Volumes (the image's VOLUMEs and `-v /dst`): each becomes an
    anonymous volume unless a bind or tmpfs takes its place. dockerd lists volumes and binds,
    then /etc/resolv.conf, /etc/hostname, /etc/hosts, then the host's /dev/shm for --ipc host,
    then tmpfs mounts, and sorts them by path depth so a parent is mounted before its
    children. That sort is stable (Go's sort.Sort is, for lists this short), so equal depths
    keep the listed order; dockerd's own order of volumes and binds comes from a Go map, so we
    choose one: volumes by path, then binds as given. Each entry has destination and either
    source, writable and propagation ("" for a volume) or tmpfs (its option text).
    """
    points = mount_points(opts, volumes)
    tmpfs = {clean_path(d): data for d, data in opts.tmpfs.items()}
    binds: list[dict[str, Any]] = []
    overrides: dict[str, MountPoint] = {}
    for mp in points.values():
        if mp.destination in tmpfs:
            continue  # a --tmpfs at the same place wins (moby setupMounts)
        if mp.destination in NETWORK_FILES and mp.type == "bind":
            overrides[mp.destination] = mp  # replaces the daemon's file (TrySetNetworkMount)
            continue
        if mp.type == "bind":
            source = mp.source
        else:
            source = volume_sources.get(mp.destination) or volume_sources.get(mp.name, "")
            if not source:
                raise InvalidParameter(f"no volume path given for {mp.destination}")
        binds.append(
            {
                "destination": mp.destination,
                "source": source,
                "writable": mp.rw,
                "propagation": mp.propagation,
            }
        )
    mounts = sorted(binds, key=lambda m: _depth(m["destination"]))
    for destination in NETWORK_FILES:
        user = overrides.get(destination)
        source = user.source if user else network_files.get(destination)
        if source:
            writable = user.rw if user else not opts.read_only
            mounts.append(
                {
                    "destination": destination,
                    "source": source,
                    "writable": writable,
                    "propagation": "rprivate",
                }
            )
    has_shm = any(m["destination"] == "/dev/shm" for m in mounts) or "/dev/shm" in tmpfs
    if opts.ipc_mode == "host" and not has_shm:
        mounts.append(
            {
                "destination": "/dev/shm",
                "source": "/dev/shm",
                "writable": True,
                "propagation": "rprivate",
            }
        )
    for destination in opts.tmpfs:
        validate_destination(destination)
    mounts += [{"destination": d, "tmpfs": data} for d, data in tmpfs.items()]
    return sorted(mounts, key=lambda m: _depth(m["destination"]))


def container_mounts(
    opts: RunOptions,
    mounts_of_user: list[dict[str, Any]],
    *,
    init_path: str | None,
    recursive_readonly: bool,
    writable_cgroups: bool,
) -> tuple[list[dict[str, Any]], str]:
    """The spec's mounts and linux.rootfsPropagation (moby withMounts).

    Docker's defaults first (minus those a user mount replaces, everything under /dev when /dev
    itself is mounted, /dev/shm with --ipc none), then the init binary, then the user mounts
    from user_mounts(). --read-only adds "ro" to every mount but /proc, the /dev ones and the
    user's; --privileged makes /sys writable, and writable cgroups the cgroup mount.
    """
    user_dests = {m["destination"] for m in mounts_of_user}
    mount_dev = "/dev" in user_dests
    mounts = []
    for m in default_mounts():
        dest = m["destination"]
        if dest in user_dests or (mount_dev and dest.startswith("/dev/")):
            continue
        if dest == "/dev/shm":
            if opts.ipc_mode == "none":
                continue
            m["options"].append(f"size={opts.shm_size}")
        mounts.append(m)
    if init_path is not None and INIT_PATH_IN_CONTAINER not in user_dests:
        mounts.append(
            {
                "destination": INIT_PATH_IN_CONTAINER,
                "type": "bind",
                "source": init_path,
                "options": ["bind", "ro"],
            }
        )

    rootfs_propagation = ""
    for m in mounts_of_user:
        if "tmpfs" in m:
            extra = m["tmpfs"].split(",") if m["tmpfs"] else []
            options = merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", *extra])
            mounts.append(
                {
                    "destination": m["destination"],
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": options,
                }
            )
            continue
        options = ["rbind"]
        if not m["writable"]:
            options.append("rro" if recursive_readonly else "ro")
        propagation = m["propagation"]
        if propagation:
            options.append(propagation)
        # A shared or slave bind only works if the rootfs propagates too. dockerd also checks
        # that the host source is a shared (or slave) mount; that needs mountinfo, so the
        # caller does it before calling us.
        if propagation in ("shared", "rshared") and rootfs_propagation not in ("shared", "rshared"):
            rootfs_propagation = "shared"
        elif propagation in ("slave", "rslave") and rootfs_propagation not in (
            "shared",
            "rshared",
            "slave",
            "rslave",
        ):
            rootfs_propagation = "rslave"
        mounts.append(
            {
                "destination": m["destination"],
                "type": "bind",
                "source": m["source"],
                "options": options,
            }
        )

    if opts.read_only:
        for m in mounts:
            dest = m["destination"]
            if dest in READONLY_ROOTFS_EXEMPT or dest in user_dests:
                continue
            if "ro" not in m["options"]:
                m["options"].append("ro")
    for m in mounts:
        if (opts.privileged and m["destination"] == "/sys") or (
            writable_cgroups and m["type"] == "cgroup"
        ):
            m["options"] = [o for o in m["options"] if o != "ro"]
    return mounts, rootfs_propagation
