"""What the Engine API shows of containers: inspect documents, list summaries with docker's
filters, and the status words (`Up 3 seconds`, `Exited (0) 2 minutes ago`)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.model import parse_rfc3339
from dockyard.units import human_duration

from . import container_volumes
from .container_store import ZERO_TIME, Container
from .filters import Filters

if TYPE_CHECKING:
    from .engine import Engine

LIST_FILTERS = (
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "is-task",
    "isolation",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
)
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def status_word(container: Container) -> str:
    """The short State of a list entry."""
    state = container.state
    if state.get("Restarting"):
        return "restarting"
    if state.get("Running"):
        return "paused" if state.get("Paused") else "running"
    return state.get("Status") or "created"


def status_text(container: Container, now: float | None = None) -> str:
    """docker's State.String()."""
    now = time.time() if now is None else now
    state = container.state

    def since(stamp: str) -> str:
        return human_duration(now - parse_rfc3339(stamp))

    if state.get("Restarting"):
        return f"Restarting ({state.get('ExitCode', 0)}) {since(state['FinishedAt'])} ago"
    if state.get("Running"):
        up = f"Up {since(state['StartedAt'])}"
        return up + " (Paused)" if state.get("Paused") else up
    if state.get("Status") == "removing":
        return "Removal In Progress"
    if state.get("Dead"):
        return "Dead"
    if state.get("StartedAt", ZERO_TIME) == ZERO_TIME:
        return "Created"
    if state.get("FinishedAt", ZERO_TIME) == ZERO_TIME:
        return ""
    return f"Exited ({state.get('ExitCode', 0)}) {since(state['FinishedAt'])} ago"


def command_text(container: Container) -> str:
    args = [f"'{a}'" if " " in a else a for a in container.doc.get("Args") or []]
    return (
        " ".join([container.doc.get("Path", ""), *args]) if args else container.doc.get("Path", "")
    )


def _network_settings() -> dict[str, Any]:
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": {},
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {},
    }


def sizes(engine: Engine, container: Container) -> tuple[int, int]:
    """(SizeRw, SizeRootFs): the writable layer's own bytes, and with the image's."""
    try:
        rw = int(engine.snapshots.usage(container.snapshot_key))
    except NotFound:
        rw = 0
    image = engine.image_store.get(container.image_id)
    return rw, rw + (image.size if image else 0)


def container_inspect(engine: Engine, ref: str, size: bool = False) -> dict[str, Any]:
    container = engine.containers.find(ref)
    doc = dict(container.doc)
    doc["Name"] = "/" + container.name
    rootfs = engine.containers.rootfs(container.id)
    try:
        data = engine.snapshots.driver_data(container.snapshot_key, merged=rootfs)
    except NotFound:
        data = None
    doc["GraphDriver"] = {"Data": data, "Name": engine.snapshots.driver}
    doc["NetworkSettings"] = _network_settings()
    doc["ExecIDs"] = engine.execs.ids_of(container)
    points = doc.pop("MountPoints", None) or []
    doc["Mounts"] = container_volumes.shown(engine.containers.volumes, points)
    if size:
        doc["SizeRw"], doc["SizeRootFs"] = sizes(engine, container)
    ordered = {k: doc[k] for k in _INSPECT_ORDER if k in doc}
    ordered.update({k: v for k, v in doc.items() if k not in ordered})
    return ordered


_INSPECT_ORDER = (
    "Id Created Path Args State Image ResolvConfPath HostnamePath HostsPath LogPath Name "
    "RestartCount Driver Platform MountLabel ProcessLabel AppArmorProfile ExecIDs HostConfig "
    "GraphDriver SizeRw SizeRootFs Mounts Config NetworkSettings"
).split()


def _image_shown(engine: Engine, container: Container) -> str:
    """The image as ps shows it: the name it was created from while that name still means the
    same image, else the image ID."""
    name = container.config.get("Image") or ""
    if name and name != container.image_id:
        try:
            if engine.images.resolve(name).id == container.image_id:
                return name
        except Exception:
            pass
    return container.image_id


def summary(engine: Engine, container: Container, size: bool) -> dict[str, Any]:
    created = int(parse_rfc3339(container.created))
    doc: dict[str, Any] = {
        "Id": container.id,
        "Names": ["/" + container.name],
        "Image": _image_shown(engine, container),
        "ImageID": container.image_id,
        "Command": command_text(container),
        "Created": created,
        "Ports": [],
        "Labels": container.config.get("Labels") or {},
        "State": status_word(container),
        "Status": status_text(container),
        "HostConfig": {"NetworkMode": container.host_config.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": {}},
        "Mounts": container_volumes.shown(
            engine.containers.volumes, container.doc.get("MountPoints") or []
        ),
    }
    if size:
        doc["SizeRw"], doc["SizeRootFs"] = sizes(engine, container)
    return doc


def container_summaries(
    engine: Engine,
    *,
    all_containers: bool = False,
    limit: int = -1,
    size: bool = False,
    filters: Filters | None = None,
) -> list[dict[str, Any]]:
    """GET /containers/json: newest first, docker's filters (moby daemon/list.go)."""
    filters = filters or Filters()
    filters.validate(LIST_FILTERS)
    for status in filters.get("status"):
        if status not in STATUSES:
            raise InvalidParameter(f"invalid filter 'status={status}'")
    exited_codes = set()
    for value in filters.get("exited"):
        try:
            exited_codes.add(int(value))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={value}'") from None
    containers = engine.container_store.all()
    before = _boundary(engine, filters.get("before"))
    since = _boundary(engine, filters.get("since"))
    ancestors = _ancestors(engine, filters.get("ancestor"))
    if limit > 0 or before is not None or since is not None:
        all_containers = True
    result = []
    for container in containers:
        created = container.created
        if before is not None and created >= before:
            continue
        if since is not None and created <= since:
            continue
        if (
            not all_containers
            and not container.running
            and "status" not in filters
            and "exited" not in filters
        ):
            continue
        if "status" in filters and status_word(container) not in filters.get("status"):
            continue
        if exited_codes and (
            container.running
            or container.state.get("ExitCode") not in exited_codes
            or container.state.get("StartedAt") == ZERO_TIME
        ):
            continue
        if filters.get("id") and not any(container.id.startswith(v) for v in filters.get("id")):
            continue
        if filters.get("name") and not any(
            re.search(v, container.name) for v in filters.get("name")
        ):
            continue
        if not filters.match_kv("label", container.config.get("Labels")):
            continue
        if ancestors is not None and container.image_id not in ancestors:
            continue
        result.append(summary(engine, container, size))
        if 0 < limit <= len(result):
            break
    return result


def _boundary(engine: Engine, refs: list[str]) -> str | None:
    if not refs:
        return None
    try:
        return engine.containers.find(refs[0]).created
    except NotFound:
        raise InvalidParameter(f"No such container: {refs[0]}") from None


def _ancestors(engine: Engine, refs: list[str]) -> set[str] | None:
    """The images an `ancestor` filter names, with the images built on them."""
    if not refs:
        return None
    found: set[str] = set()
    for ref in refs:
        try:
            found.add(engine.images.resolve(ref).id)
        except Exception:
            continue
    grew = True
    while grew:
        grew = False
        for image in engine.image_store.all():
            if image.parent in found and image.id not in found:
                found.add(image.id)
                grew = True
    return found
