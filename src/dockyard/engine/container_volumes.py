"""A container's mount points: what create decides, start mounts, inspect shows, rm removes.

They are kept in the container's document as "MountPoints" (moby keeps the same in
config.v2.json): volumes by name (made at create, as dockerd does) and binds by source.
"""

from __future__ import annotations

import contextlib
from typing import Any

from dockyard.errors import DockyardError
from dockyard.runtime.mountspec import mount_points
from dockyard.runtime.options import RunOptions

from .volumes import VolumeStore, copy_image_content


def plan(volumes: VolumeStore, opts: RunOptions, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The mount points of a new container; its volumes are made now. Anonymous volumes made
    here are removed again when a later one fails."""
    made: list[str] = []
    points: list[dict[str, Any]] = []
    tmpfs = set(opts.tmpfs)
    try:
        for mp in mount_points(opts, config.get("Volumes") or {}).values():
            if mp.destination in tmpfs:
                continue
            if mp.type == "bind":
                points.append(
                    {
                        "Type": "bind",
                        "Source": mp.source,
                        "Destination": mp.destination,
                        "Mode": mp.mode,
                        "RW": mp.rw,
                        "Propagation": mp.propagation,
                    }
                )
                continue
            existed = bool(mp.name) and volumes.get(mp.name) is not None
            volume = volumes.create(mp.name or None)
            if volume.anonymous:
                made.append(volume.name)
            points.append(
                {
                    "Type": "volume",
                    "Name": volume.name,
                    "Destination": mp.destination,
                    "Mode": mp.mode,
                    "RW": mp.rw,
                    "CopyData": mp.copy_data and not existed,
                    "Anonymous": volume.anonymous,
                }
            )
    except BaseException:
        for name in made:
            with contextlib.suppress(DockyardError):
                volumes.remove(name)
        raise
    return points


def sources(volumes: VolumeStore, points: list[dict[str, Any]]) -> dict[str, str]:
    """Host directory of each volume, by destination (what the OCI spec builder binds)."""
    return {
        p["Destination"]: volumes.create(p["Name"]).mountpoint
        for p in points
        if p["Type"] == "volume"
    }


def populate(volumes: VolumeStore, points: list[dict[str, Any]], rootfs: str) -> bool:
    """First start: copy the image's files into the new volumes. True when a point changed."""
    changed = False
    for p in points:
        if p["Type"] == "volume" and p.get("CopyData"):
            copy_image_content(rootfs, p["Destination"], volumes.create(p["Name"]).mountpoint)
            p["CopyData"] = False
            changed = True
    return changed


def remove_anonymous(volumes: VolumeStore, points: list[dict[str, Any]]) -> None:
    for p in points:
        if p["Type"] == "volume" and p.get("Anonymous"):
            with contextlib.suppress(DockyardError):
                volumes.remove(p["Name"])


def shown(volumes: VolumeStore, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The "Mounts" of inspect and of the container list, as dockerd shows them."""
    out = []
    for p in points:
        if p["Type"] == "bind":
            out.append(
                {
                    "Type": "bind",
                    "Source": p["Source"],
                    "Destination": p["Destination"],
                    "Mode": p["Mode"],
                    "RW": p["RW"],
                    "Propagation": p["Propagation"],
                }
            )
        else:
            volume = volumes.get(p["Name"])
            out.append(
                {
                    "Type": "volume",
                    "Name": p["Name"],
                    "Source": volume.mountpoint if volume else "",
                    "Destination": p["Destination"],
                    "Driver": "local",
                    "Mode": p["Mode"],
                    "RW": p["RW"],
                    "Propagation": "",
                }
            )
    return out
