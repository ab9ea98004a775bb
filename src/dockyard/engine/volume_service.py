"""The volume use cases of the Engine API: list, inspect, create, remove, prune, disk usage.

A volume is in use while a container (running or not) has it among its mount points, as
dockerd counts references.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from dockyard.errors import NotFound

from .filters import Filters
from .volumes import Volume

if TYPE_CHECKING:
    from .engine import Engine


def users(engine: Engine) -> dict[str, list[str]]:
    """Volume name -> IDs of the containers that mount it."""
    found: dict[str, list[str]] = {}
    for container in engine.container_store.all():
        for point in container.doc.get("MountPoints") or []:
            if point["Type"] == "volume":
                found.setdefault(point["Name"], []).append(container.id)
    return found


def _get(engine: Engine, name: str) -> Volume:
    volume = engine.containers.volumes.get(name)
    if volume is None:
        raise NotFound(f"get {name}: no such volume")
    return volume


def inspect(engine: Engine, name: str) -> dict[str, Any]:
    return _get(engine, name).inspect()


def _matches(volume: Volume, filters: Filters, in_use: bool) -> bool:
    filters.validate(("dangling", "name", "driver", "label"))
    if "dangling" in filters and filters.get_bool("dangling", False) == in_use:
        return False
    if "name" in filters and not any(n in volume.name for n in filters.get("name")):
        return False
    if "driver" in filters and "local" not in filters.get("driver"):
        return False
    return filters.match_kv("label", volume.labels)


def listing(engine: Engine, filters: Filters) -> dict[str, Any]:
    used = users(engine)
    volumes = [
        v.inspect()
        for v in engine.containers.volumes.list()
        if _matches(v, filters, v.name in used)
    ]
    return {"Volumes": volumes, "Warnings": None}


def create(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    name = body.get("Name") or None
    labels = dict(body.get("Labels") or {})
    store = engine.containers.volumes
    if name is None:  # `volume create` without a name: a random name, not an anonymous volume
        name = secrets.token_hex(32)
    return store.create(name, labels).inspect()


def remove(engine: Engine, name: str, force: bool = False) -> None:
    _get(engine, name)
    in_use = users(engine).get(name, [])
    engine.containers.volumes.remove(name, None if force and not in_use else in_use)


def prune(engine: Engine, filters: Filters) -> dict[str, Any]:
    """Unused volumes: anonymous ones only, unless the filter `all=true` (docker 23+)."""
    filters.validate(("all", "label"))
    everything = filters.get_bool("all", False)
    used = users(engine)
    deleted, reclaimed = [], 0
    store = engine.containers.volumes
    for volume in store.list():
        if volume.name in used or not (everything or volume.anonymous):
            continue
        if not filters.match_kv("label", volume.labels):
            continue
        size = store.size(volume.name)
        store.remove(volume.name)
        deleted.append(volume.name)
        reclaimed += size
    return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}


def disk_usage(engine: Engine) -> list[dict[str, Any]]:
    used = users(engine)
    out = []
    for volume in engine.containers.volumes.list():
        doc = volume.inspect()
        doc["UsageData"] = {
            "RefCount": len(used.get(volume.name, [])),
            "Size": engine.containers.volumes.size(volume.name),
        }
        out.append(doc)
    return out
