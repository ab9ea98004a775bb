"""Volumes: GET /volumes, GET/DELETE /volumes/{name}, POST /volumes/create, POST /volumes/prune."""

from __future__ import annotations

from aiohttp import web

from dockyard.engine import volume_service
from dockyard.engine.filters import Filters

from .server import Router, engine_of, json_response
from .streams import run_sync


async def list_volumes(request: web.Request) -> web.Response:
    filters = Filters.from_json(request.query.get("filters"))
    return json_response(await run_sync(volume_service.listing, engine_of(request), filters))


async def inspect_volume(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(await run_sync(volume_service.inspect, engine_of(request), name))


async def create_volume(request: web.Request) -> web.Response:
    body = await request.json() if request.can_read_body else {}
    doc = await run_sync(volume_service.create, engine_of(request), body or {})
    return json_response(doc, status=201)


async def remove_volume(request: web.Request) -> web.Response:
    force = request.query.get("force", "") in ("1", "true", "True")
    name = request.match_info["name"]
    await run_sync(volume_service.remove, engine_of(request), name, force)
    return web.Response(status=204)


async def prune_volumes(request: web.Request) -> web.Response:
    filters = Filters.from_json(request.query.get("filters"))
    return json_response(await run_sync(volume_service.prune, engine_of(request), filters))


def register(router: Router) -> None:
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/create", create_volume)
    router.add("POST", "/volumes/prune", prune_volumes)
    router.add("GET", "/volumes/{name}", inspect_volume)
    router.add("DELETE", "/volumes/{name}", remove_volume)
