"""A container's bundle: the files it gets (/etc/hostname, /etc/hosts, /etc/resolv.conf), its
user looked up inside its own root, and the OCI config.json written for the runtime."""

from __future__ import annotations

import json
import os
import resource
from typing import Any

from dockyard.errors import InvalidParameter
from dockyard.image.tarsafe import resolve_in_root
from dockyard.runtime import spec as specs
from dockyard.runtime.defaults import capabilities_from_mask
from dockyard.runtime.options import RunOptions
from dockyard.runtime.users import UserLookupError

RLIMITS = {
    name: getattr(resource, name)
    for name in dir(resource)
    if name.startswith("RLIMIT_") and isinstance(getattr(resource, name), int)
}


def read_in_root(root: str, path: str, limit: int = 1 << 20) -> str | None:
    """The text of `path` inside `root`, its symlinks resolved inside the root (an image's
    /etc/passwd may be a link, and must never lead to the host's)."""

    def readlink(relative: str) -> str | None:
        try:
            return os.readlink(os.path.join(root, relative))
        except OSError:
            return None

    resolved = resolve_in_root(path, readlink)
    try:
        fd = os.open(os.path.join(root, resolved), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit).decode("utf-8", "replace")


def _own_capabilities() -> list[str]:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return capabilities_from_mask(line.split()[1])
    return []


def _hard_limits() -> dict[str, int]:
    limits = {}
    for name, number in RLIMITS.items():
        hard = resource.getrlimit(number)[1]
        if hard != resource.RLIM_INFINITY:
            limits[name] = hard
    return limits


def write_etc_files(directory: str, hostname: str, domainname: str) -> dict[str, str]:
    """hostname, hosts and resolv.conf for the container, as docker writes them for a
    container without a network (the network issue adds its address and DNS)."""
    full = f"{hostname}.{domainname}" if domainname else hostname
    files = {
        "hostname": f"{hostname}\n",
        "hosts": (
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
            "ff02::2\tip6-allrouters\n"
            f"127.0.1.1\t{full}{' ' + hostname if full != hostname else ''}\n"
        ),
        "resolv.conf": _resolv_conf(),
    }
    paths = {}
    for name, text in files.items():
        path = os.path.join(directory, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        paths[name] = path
    return paths


def _resolv_conf() -> str:
    """The host's resolv.conf without loopback name servers (unreachable from a container's
    own network namespace), as docker filters it."""
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    kept = [
        line
        for line in lines
        if not (
            line.startswith("nameserver")
            and line.split()[1:2]
            and line.split()[1].startswith(("127.", "::1"))
        )
    ]
    return "\n".join(kept) + "\n" if kept else ""


def write_bundle(
    directory: str,
    *,
    rootfs: str,
    container_id: str,
    config: dict[str, Any],
    opts: RunOptions,
    etc_files: dict[str, str],
    cgroups_path: str,
    volume_sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write config.json for the container; returns the spec."""
    passwd = read_in_root(rootfs, "/etc/passwd")
    group = read_in_root(rootfs, "/etc/group")
    try:
        user = specs.resolve_user(config.get("User") or "", passwd, group, opts.group_add)
    except UserLookupError as exc:
        raise InvalidParameter(str(exc)) from None
    spec = specs.build_spec(
        config,
        opts,
        rootfs=rootfs,
        container_id=container_id,
        user=user,
        cgroups_path=cgroups_path,
        hostname=config.get("Hostname") or container_id[:12],
        resolv_conf=etc_files["resolv.conf"],
        hosts=etc_files["hosts"],
        hostname_file=etc_files["hostname"],
        available_caps=_own_capabilities(),
        volume_sources=volume_sources,
    )
    spec = specs.clamp_rlimits(spec, _hard_limits())
    path = os.path.join(directory, "config.json")
    with open(path + ".tmp", "w") as f:
        json.dump(spec, f)
    os.replace(path + ".tmp", path)
    return spec
