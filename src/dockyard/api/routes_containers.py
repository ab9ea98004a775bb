"""Container routes: create, start, stop, kill, restart, pause, wait, attach, logs, remove,
rename, list and inspect. Streams (attach, logs) are proxied between the client and the shim."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

from aiohttp import web

from dockyard.engine import logs as logfiles
from dockyard.engine.container_views import container_inspect, container_summaries
from dockyard.engine.filters import Filters
from dockyard.errors import DockyardError, InvalidParameter

from .hijack import Hijacked, hijack
from .routes_images import bool_value
from .server import Router, engine_of, json_response, prepare_stream, version_at_least
from .streams import run_sync

HEADER_SIZE = 8
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json(loads=json.loads)
    except ValueError as exc:
        raise InvalidParameter(f"invalid JSON: {exc}") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the body must be an object")
    return body


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r}") from None


# -- lifecycle ---------------------------------------------------------------------------------
async def create(request: web.Request) -> web.Response:
    engine = engine_of(request)
    body = await _json_body(request)
    result = await run_sync(engine.containers.create, body, request.query.get("name") or None)
    return json_response(result, status=201)


async def start(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await run_sync(engine.containers.start, request.match_info["id"])
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await run_sync(
        engine.containers.stop,
        request.match_info["id"],
        _int(request, "t"),
        request.query.get("signal"),
    )
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await run_sync(
        engine.containers.restart,
        request.match_info["id"],
        _int(request, "t"),
        request.query.get("signal"),
    )
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    engine = engine_of(request)
    name = request.match_info["id"]
    try:
        await run_sync(engine.containers.kill, name, request.query.get("signal") or "KILL")
    except DockyardError as exc:  # moby's router wraps whatever ContainerKill says
        exc.message = f"cannot kill container: {name}: {exc.message}"
        raise
    return web.Response(status=204)


async def pause(request: web.Request) -> web.Response:
    await run_sync(engine_of(request).containers.pause, request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await run_sync(engine_of(request).containers.unpause, request.match_info["id"])
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await run_sync(
        lambda: engine.containers.remove(
            request.match_info["id"],
            force=bool_value(request, "force"),
            volumes=bool_value(request, "v"),
        )
    )
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    engine = engine_of(request)
    await run_sync(
        engine.containers.rename, request.match_info["id"], request.query.get("name", "")
    )
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    """Headers go out at once (docker run relies on it: it waits, then starts); the body when
    the condition is met."""
    engine = engine_of(request)
    future = await run_sync(
        engine.containers.wait, request.match_info["id"], request.query.get("condition", "")
    )
    response = await prepare_stream(request, "application/json")
    try:
        result = await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        future.cancel()
        raise
    await response.write(json.dumps(result, separators=(",", ":")).encode() + b"\n")
    await response.write_eof()
    return response


# -- list and inspect --------------------------------------------------------------------------
async def list_containers(request: web.Request) -> web.Response:
    engine = engine_of(request)
    filters = Filters.from_json(request.query.get("filters"))
    summaries = await run_sync(
        lambda: container_summaries(
            engine,
            all_containers=bool_value(request, "all"),
            limit=_int(request, "limit") or -1,
            size=bool_value(request, "size"),
            filters=filters,
        )
    )
    return json_response(summaries)


async def inspect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    doc = await run_sync(
        container_inspect, engine, request.match_info["id"], bool_value(request, "size")
    )
    return json_response(doc)


# -- attach ------------------------------------------------------------------------------------
async def attach(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    stdin, stdout, stderr = (bool_value(request, k) for k in ("stdin", "stdout", "stderr"))
    container, future = await run_sync(
        engine.containers.attach, request.match_info["id"], stdin, stdout, stderr
    )
    tty = bool(container.config.get("Tty"))
    content_type = RAW if tty or not version_at_least(request, "1.42") else MULTIPLEXED
    response, conn = await hijack(request, content_type)
    try:
        sock = await _until_started(future, conn)
        if sock is not None:
            await proxy(conn, sock, tty=tty, stdin=stdin)
    except DockyardError as exc:
        await conn.write(
            exc.message.encode() + b"\n" if tty else frame(2, exc.message.encode() + b"\n")
        )
    finally:
        conn.close()
    return response


async def _until_started(future: Any, conn: Hijacked) -> socket.socket | None:
    """The shim connection, once the container starts; None if the client leaves first."""
    wrapped = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(conn.protocol_closed())
    done, _ = await asyncio.wait({wrapped, gone}, return_when=asyncio.FIRST_COMPLETED)
    if wrapped in done:
        gone.cancel()
        return wrapped.result()
    future.cancel()
    return None


async def proxy(
    conn: Hijacked, sock: socket.socket, *, tty: bool, stdin: bool, control: Any = None
) -> None:
    """Shim frames → the client (raw for a TTY), the client's bytes → stdin frames. Ends when
    the shim closes the connection (the process exited)."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    async def upstream() -> None:
        while True:
            data = await conn.read()
            if not data:
                writer.write(frame(0, b""))  # the client's stdin ended: close the process's
                await writer.drain()
                return
            if stdin:
                writer.write(frame(0, data))
                await writer.drain()

    feeder = asyncio.ensure_future(upstream())
    try:
        while True:
            try:
                head = await reader.readexactly(HEADER_SIZE)
                payload = await reader.readexactly(int.from_bytes(head[4:], "big"))
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            stream = head[0]
            if stream == 3:
                if control is not None:
                    control(json.loads(payload))
                continue
            if stream not in (1, 2):
                continue
            if not await conn.write(payload if tty else head + payload):
                break
    finally:
        feeder.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def resize(request: web.Request) -> web.Response:
    engine = engine_of(request)
    height, width = _int(request, "h") or 0, _int(request, "w") or 0
    await run_sync(engine.containers.resize, request.match_info["id"], height, width)
    return web.Response(status=200)


# -- logs --------------------------------------------------------------------------------------
async def container_logs(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    container = await run_sync(engine.containers.find, request.match_info["id"])
    opts = logfiles.parse_options(dict(request.query))
    if not (opts.stdout or opts.stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tty = bool(container.config.get("Tty"))
    content_type = RAW if tty or not version_at_least(request, "1.42") else MULTIPLEXED
    path = container.doc["LogPath"]
    entries, offset = await run_sync(logfiles.read_entries, path, opts)
    response = await prepare_stream(request, content_type)

    def render(entry: logfiles.Entry) -> bytes:
        text = entry.text
        if opts.timestamps:
            text = logfiles.fixed_nano(entry.time).encode() + b" " + text
        return text if tty else frame(1 if entry.stream == "stdout" else 2, text)

    try:
        if entries:
            await response.write(b"".join(map(render, entries)))
        while opts.follow:
            new, offset = await run_sync(logfiles.read_new, path, offset, opts)
            chunk = b"".join(map(render, new))
            if chunk:
                await response.write(chunk)
                continue
            current = await run_sync(engine.container_store.get, container.id)
            if current is None or not (current.running or current.state.get("Restarting")):
                new, offset = await run_sync(logfiles.read_new, path, offset, opts)
                chunk = b"".join(map(render, new))
                if chunk:
                    await response.write(chunk)
                break
            await asyncio.sleep(0.05)
        await response.write_eof()
    except ConnectionError:
        pass
    return response


def register(router: Router) -> None:
    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("GET", "/containers/{id}/logs", container_logs)
    router.add("DELETE", "/containers/{id}", remove)
