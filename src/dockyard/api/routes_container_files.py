"""Routes for a container's files and figures: archive (cp), export, changes (diff), commit,
top, stats and prune. Tars stream between the client and a worker thread."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
from collections.abc import Callable
from typing import Any, BinaryIO

from aiohttp import web

from dockyard.engine import commit as commits
from dockyard.engine import container_files, container_prune, container_stats
from dockyard.engine.filters import Filters
from dockyard.errors import DockyardError, InvalidParameter

from .routes_images import bool_value
from .server import Router, _set_headers, engine_of, json_response
from .streams import CHUNK, ResponseWriter, body_reader, run_sync

log = logging.getLogger("dockyard.api")
STAT_HEADER = "X-Docker-Container-Path-Stat"


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("bad parameter: path cannot be empty")
    return path


def _stat_header(path_stat: Any) -> str:
    data = json.dumps(path_stat.to_json(), separators=(",", ":")).encode()
    return base64.b64encode(data).decode()


class _Stream:
    """A response started from a worker thread: `start(headers)` sends the head (on the
    loop) and returns a blocking writer for the body."""

    def __init__(self, request: web.Request, content_type: str) -> None:
        self.request = request
        self.content_type = content_type
        self.loop = asyncio.get_running_loop()
        self.response: web.StreamResponse | None = None
        self.writer: io.BufferedWriter | None = None

    def start(self, headers: dict[str, str] | None = None) -> BinaryIO:
        async def prepare() -> web.StreamResponse:
            response = web.StreamResponse(status=200)
            response.content_type = self.content_type
            response.headers.update(headers or {})
            _set_headers(response)
            await response.prepare(self.request)
            return response

        self.response = asyncio.run_coroutine_threadsafe(prepare(), self.loop).result()
        self.writer = io.BufferedWriter(ResponseWriter(self.response, self.loop), CHUNK)
        return self.writer

    async def run(self, work: Callable[[], Any]) -> web.StreamResponse:
        """Run `work` in a worker; errors before the head went out are the answer, after it
        they cut the connection (the client sees a truncated tar, as with dockerd)."""
        try:
            await run_sync(work)
            if self.writer is not None:
                await run_sync(self.writer.flush)
        except Exception as exc:
            if self.response is None:
                raise
            if not isinstance(exc, ConnectionError):
                log.warning(
                    "%s %s failed mid-stream: %s", self.request.method, self.request.path, exc
                )
            if self.request.transport is not None:
                self.request.transport.close()
            return self.response
        assert self.response is not None
        with contextlib.suppress(ConnectionError):
            await self.response.write_eof()
        return self.response


# -- cp ----------------------------------------------------------------------------------------
async def head_archive(request: web.Request) -> web.Response:
    engine = engine_of(request)
    path = _path(request)
    path_stat = await run_sync(container_files.stat, engine, request.match_info["id"], path)
    return web.Response(status=200, headers={STAT_HEADER: _stat_header(path_stat)})


async def get_archive(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    path = _path(request)
    stream = _Stream(request, "application/x-tar")
    ref = request.match_info["id"]
    return await stream.run(
        lambda: container_files.archive(
            engine, ref, path, lambda st: stream.start({STAT_HEADER: _stat_header(st)})
        )
    )


async def put_archive(request: web.Request) -> web.Response:
    engine = engine_of(request)
    path = _path(request)
    reader = body_reader(request)
    await run_sync(
        lambda: container_files.extract(
            engine,
            request.match_info["id"],
            path,
            reader,
            no_overwrite_dir_non_dir=bool_value(request, "noOverwriteDirNonDir"),
            copy_uid_gid=bool_value(request, "copyUIDGID"),
        )
    )
    return web.Response(status=200)


# -- export, diff, commit ----------------------------------------------------------------------
async def export(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    stream = _Stream(request, "application/x-tar")
    ref = request.match_info["id"]
    return await stream.run(lambda: container_files.export(engine, ref, stream.start))


async def changes(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return json_response(await run_sync(container_files.changes, engine, request.match_info["id"]))


async def commit(request: web.Request) -> web.Response:
    engine = engine_of(request)
    config: dict[str, Any] | None = None
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            try:
                config = json.loads(raw)
            except ValueError as exc:
                raise InvalidParameter(f"invalid JSON: {exc}") from None
            if config is not None and not isinstance(config, dict):
                raise InvalidParameter("invalid JSON: the body must be an object")
    query = request.query
    image_id = await run_sync(
        lambda: commits.commit(
            engine,
            query.get("container", ""),
            repo=query.get("repo", ""),
            tag=query.get("tag", ""),
            comment=query.get("comment", ""),
            author=query.get("author", ""),
            pause=bool_value(request, "pause", default=True),
            changes=query.getall("changes", []),
            config=config or None,
        )
    )
    return json_response({"Id": image_id}, status=201)


# -- top, stats, prune -------------------------------------------------------------------------
async def top(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return json_response(
        await run_sync(
            container_stats.top,
            engine,
            request.match_info["id"],
            request.query.get("ps_args", ""),
        )
    )


def _line(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


async def stats(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    ref = request.match_info["id"]
    stream = bool_value(request, "stream", default=True)
    one_shot = bool_value(request, "one-shot")
    container = await run_sync(engine.containers.find, ref)
    if not stream:
        first = await run_sync(container_stats.stats, engine, container.id)
        if not one_shot and first["read"] != container_stats.ZERO_TIME:
            await asyncio.sleep(1)  # a second sample: CPU use is a difference
            first = await run_sync(container_stats.stats, engine, container.id, first)
        return json_response(first)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    _set_headers(response)
    await response.prepare(request)
    previous: dict[str, Any] | None = None
    try:
        while True:
            current = await run_sync(container_stats.stats, engine, container.id, previous)
            await response.write(_line(current))
            previous = current
            await asyncio.sleep(1)
    except (ConnectionError, asyncio.CancelledError):
        pass
    except DockyardError:  # removed meanwhile: the stream ends
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
    return response


async def prune(request: web.Request) -> web.Response:
    engine = engine_of(request)
    filters = Filters.from_json(request.query.get("filters"))
    return json_response(await run_sync(container_prune.prune, engine, filters))


def register(router: Router) -> None:
    router.add("GET", "/containers/{id}/archive", get_archive)
    router.add("HEAD", "/containers/{id}/archive", head_archive)
    router.add("PUT", "/containers/{id}/archive", put_archive)
    router.add("GET", "/containers/{id}/export", export)
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/stats", stats)
    router.add("POST", "/containers/prune", prune)
    router.add("POST", "/commit", commit)
