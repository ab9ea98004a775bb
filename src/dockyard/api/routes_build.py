"""POST /build: the classic builder's endpoint. The body is the context tar; the answer is its
JSON progress stream (`{"stream": …}` lines, `{"aux": {"ID": …}}`, an `errorDetail` line when
a step fails). Errors found before the first line (bad parameters, a Dockerfile that does not
parse) are plain HTTP errors, as dockerd's lazily started stream gives them."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from dockyard.build.builder import Builder, BuildError, BuildOptions
from dockyard.build.run import Cancelled
from dockyard.distribution.auth import AuthConfig, auth_from_json, registry_host
from dockyard.errors import DockyardError, InvalidParameter

from .routes_images import bool_value
from .server import Router, engine_of, json_response, prepare_stream
from .streams import EXECUTOR, body_reader, json_line

log = logging.getLogger("dockyard.api.build")


def _json_map(request: web.Request, name: str) -> dict[str, Any]:
    text = request.query.get(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidParameter(f"failed to parse {name}: invalid JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameter(f"failed to parse {name}: not a JSON object")
    return value


def options_from(request: web.Request) -> BuildOptions:
    query = request.query
    if query.get("remote"):
        raise InvalidParameter(
            "remote build contexts are not supported by this daemon: send the context as the "
            "request body"
        )
    if query.get("version") == "2":
        raise InvalidParameter(
            "BuildKit is not supported by this daemon: build with DOCKER_BUILDKIT=0"
        )
    build_args = {
        str(k): (None if v is None else str(v)) for k, v in _json_map(request, "buildargs").items()
    }
    return BuildOptions(
        tags=query.getall("t", []),
        dockerfile=query.get("dockerfile") or "Dockerfile",
        build_args=build_args,
        labels={str(k): str(v) for k, v in _json_map(request, "labels").items()},
        no_cache=bool_value(request, "nocache"),
        rm=bool_value(request, "rm", True),
        force_rm=bool_value(request, "forcerm"),
        target=query.get("target", ""),
        quiet=bool_value(request, "q"),
        network_mode=query.get("networkmode", ""),
        platform=query.get("platform", ""),
        pull=bool_value(request, "pull"),
        auths=_registry_config(request),
    )


def _registry_config(request: web.Request) -> dict[str, AuthConfig]:
    """X-Registry-Config: base64url JSON of every registry's auth config (the docker CLI sends
    all it knows); keyed by registry host. An undecodable header counts as none, as moby."""
    header = request.headers.get("X-Registry-Config", "").strip()
    if not header:
        return {}
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {registry_host(str(k)): auth_from_json(v) for k, v in doc.items()}


def _error_line(exc: BaseException) -> bytes:
    message = exc.message if isinstance(exc, DockyardError) else (str(exc) or type(exc).__name__)
    detail: dict[str, Any] = {"message": message}
    if isinstance(exc, BuildError) and exc.code is not None:
        detail = {"code": exc.code, "message": message}
    return json_line({"errorDetail": detail, "error": message})


async def build(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    loop = asyncio.get_running_loop()
    response: web.StreamResponse | None = None
    write_lock = asyncio.Lock()

    async def write(data: bytes) -> None:
        nonlocal response
        async with write_lock:
            if response is None:
                response = await prepare_stream(request, "application/json")
            await response.write(data)

    def emit(value: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(write(json_line(value)), loop).result()

    builder = Builder(engine, options_from(request), emit)
    reader = body_reader(request)
    job = loop.run_in_executor(EXECUTOR, builder.build, reader)
    try:
        while True:
            done, _ = await asyncio.wait({job}, timeout=0.25)
            if done:
                break
            transport = request.transport
            if transport is None or transport.is_closing():
                builder.cancel()
        job.result()
    except asyncio.CancelledError:
        builder.cancel()
        raise
    except Exception as exc:
        if builder.quiet_output and not isinstance(exc, Cancelled):
            for line in builder.quiet_output:  # -q: the steps are shown when it fails
                await write(json_line(line))
        if response is None:
            if isinstance(exc, DockyardError):
                raise
            raise DockyardError(str(exc) or type(exc).__name__) from exc
        if not isinstance(exc, DockyardError):
            log.exception("build failed")
        with contextlib.suppress(Exception):
            await write(_error_line(exc))
    if response is None:  # nothing was written (quiet and nothing to say): still a stream
        response = await prepare_stream(request, "application/json")
    with contextlib.suppress(Exception):
        await response.write_eof()
    return response


async def prune_cache(request: web.Request) -> web.Response:
    """POST /build/prune: the classic builder's cache index (keys whose image is gone; all of
    them with `all`). RUN --mount=type=cache directories are kept: a build may hold them."""
    from dockyard.build.cache import CacheStore

    engine = engine_of(request)
    store = CacheStore(engine.db, lambda i: engine.image_store.get(i) is not None)
    everything = bool_value(request, "all")
    deleted = await asyncio.get_running_loop().run_in_executor(EXECUTOR, store.prune, everything)
    return json_response({"CachesDeleted": deleted or None, "SpaceReclaimed": 0})


def register(router: Router) -> None:
    router.add("POST", "/build", build)
    router.add("POST", "/build/prune", prune_cache)
