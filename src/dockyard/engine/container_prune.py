"""`docker container prune`, and the container figures of `docker info` and `system df`.

prune (moby daemon/prune.go): every container that does not run, created before `until` and
matching the `label`/`label!` filters, is removed; its writable layer's size is reclaimed.
One prune at a time.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.image.model import parse_rfc3339

from .container_views import container_summaries
from .filters import Filters, parse_timestamp

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)
PRUNE_FILTERS = ("label", "label!", "until")
_pruning = threading.Lock()


def prune(engine: Engine, filters: Filters | None = None) -> dict[str, Any]:
    """POST /containers/prune."""
    filters = filters or Filters()
    if not _pruning.acquire(blocking=False):
        raise Conflict("a prune operation is already running")
    try:
        filters.validate(PRUNE_FILTERS)
        untils = filters.get("until")
        if len(untils) > 1:
            raise InvalidParameter("more than one until filter specified")
        until = parse_timestamp(untils[0]) if untils else None
        deleted: list[str] = []
        reclaimed = 0
        for container in engine.container_store.all():
            state = container.state
            if state.get("Running") or state.get("Restarting"):
                continue
            if until is not None and parse_rfc3339(container.created) > until:
                continue
            labels = container.config.get("Labels")
            if not filters.match_kv("label", labels):
                continue
            if "label!" in filters and filters.match_kv("label!", labels):
                continue
            try:
                size = int(engine.snapshots.usage(container.snapshot_key))
            except NotFound:
                size = 0
            try:
                engine.containers.remove(container.id)
            except DockyardError as e:
                log.warning("failed to prune container %s: %s", container.id, e.message)
                continue
            reclaimed += max(size, 0)
            deleted.append(container.id)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
    finally:
        _pruning.release()


def counts(engine: Engine) -> dict[str, int]:
    """The Containers* fields of GET /info (a paused container counts as paused only)."""
    running = paused = stopped = 0
    for container in engine.container_store.all():
        if container.state.get("Paused"):
            paused += 1
        elif container.running:
            running += 1
        else:
            stopped += 1
    return {
        "Containers": running + paused + stopped,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
    }


def disk_usage(engine: Engine, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Containers of GET /system/df: every container's summary with its sizes; sets the
    Containers count of the `images` summaries (how many containers use each)."""
    users: dict[str, int] = {}
    for container in engine.container_store.all():
        users[container.image_id] = users.get(container.image_id, 0) + 1
    for image in images:
        image["Containers"] = users.get(image["Id"], 0)
    return container_summaries(engine, all_containers=True, size=True)
