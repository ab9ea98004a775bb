"""The Engine API application: routing with version prefixes, negotiation and error mapping.

Every route answers both unprefixed and under `/v<major>.<minor>/`, as dockerd does. Errors are
JSON `{"message": …}` with the status the error type carries; clients branch on those statuses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard import __version__
from dockyard.engine.engine import Engine
from dockyard.errors import DockyardError, InvalidParameter

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
ENGINE = web.AppKey("engine", Engine)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("dockyard.api")


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise InvalidParameter(f"invalid API version: {version}") from None


def version_at_least(request: web.Request, version: str) -> bool:
    return _version_tuple(request["api_version"]) >= _version_tuple(version)


def engine_of(request: web.Request) -> Engine:
    return request.app[ENGINE]


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON as dockerd writes it: compact, newline-terminated, and a Content-Type of exactly
    `application/json` (the docker client only decodes error bodies with that exact type)."""
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        version = request.match_info.get("version") or API_VERSION
        if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
            raise InvalidParameter(
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version"
            )
        if _version_tuple(version) > _version_tuple(API_VERSION):
            raise InvalidParameter(
                f"client version {version} is too new. Maximum supported API version is "
                f"{API_VERSION}"
            )
        request["api_version"] = version
        response = await handler(request)
    except DockyardError as exc:
        response = error_response(exc.status, exc.message)
    except web.HTTPNotFound:
        response = error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        response = error_response(405, "method not allowed")
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        response = error_response(500, str(exc) or exc.__class__.__name__)
    if not response.prepared:
        _set_headers(response)
    return response


def _set_headers(response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"Dockyard/{__version__} (linux)"


async def prepare_stream(
    request: web.Request, content_type: str, status: int = 200
) -> web.StreamResponse:
    """Start a streaming response (headers go out now)."""
    response = web.StreamResponse(status=status)
    response.content_type = content_type
    _set_headers(response)
    await response.prepare(request)
    return response


class Router:
    """Registers each route unprefixed and under /v{version}."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)
        self.app.router.add_route(method, r"/v{version:[0-9]+\.[0-9]+}" + path, handler)


def make_app(engine: Engine) -> web.Application:
    from . import (
        routes_build,
        routes_containers,
        routes_distribution,
        routes_exec,
        routes_images,
        routes_networks,
        routes_system,
        routes_volumes,
    )
    from .routes_container_files import register as register_container_files

    app = web.Application(middlewares=[api_middleware], client_max_size=64 << 20)
    app[ENGINE] = engine
    router = Router(app)
    routes_system.register(router)
    routes_images.register(router)
    routes_containers.register(router)
    routes_exec.register(router)
    register_container_files(router)
    routes_build.register(router)
    routes_distribution.register(router)
    routes_volumes.register(router)
    routes_networks.register(router)
    return app
