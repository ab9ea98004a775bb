"""Registry routes: pull (`POST /images/create?fromImage=`), push, and `POST /auth`.

Pull and push stream docker's JSON progress. An error before the first message (no such
manifest, registry unreachable, bad credentials) is the response's status, as moby answers;
once the stream has started it is a JSON error line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dockyard.distribution.auth import AuthConfig, auth_from_json, decode_registry_auth
from dockyard.engine.pull import pull_target
from dockyard.engine.push import login
from dockyard.errors import DockyardError, InvalidParameter

from .server import Router, engine_of, json_response, prepare_stream
from .streams import json_error, json_line, run_sync

_DONE = object()


def _registry_auth(request: web.Request) -> AuthConfig:
    return decode_registry_auth(request.headers.get("X-Registry-Auth", ""))


async def _stream(request: web.Request, work: Callable[[Callable[[dict], None]], Any]) -> Any:
    """Run `work(emit)` on a worker thread, streaming what it emits as JSON lines."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def emit(message: dict) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, message)

    task = asyncio.ensure_future(run_sync(work, emit))
    task.add_done_callback(lambda _: loop.call_soon(queue.put_nowait, _DONE))
    response: web.StreamResponse | None = None
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if response is None:
                response = await prepare_stream(request, "application/json")
            await response.write(json_line(item))
        if response is None:
            task.result()  # an error before any output: the status says it
            response = await prepare_stream(request, "application/json")
        elif task.exception() is not None:
            exc = task.exception()
            message = exc.message if isinstance(exc, DockyardError) else str(exc)
            await response.write(json_error(message or type(exc).__name__))
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        # The client went away; the work finishes (or fails) on its own and cleans up.
        raise
    return response


async def pull_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    query = request.query
    ref = pull_target(query["fromImage"], query.get("tag", ""))
    auth = _registry_auth(request)
    platform = query.get("platform", "")
    return await _stream(request, lambda emit: engine.pulls.pull(ref, platform, auth, emit))


async def push_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    refs = await run_sync(
        engine.pushes.tags_to_push, request.match_info["name"], request.query.get("tag", "")
    )
    auth = _registry_auth(request)
    return await _stream(request, lambda emit: engine.pushes.push(refs, auth, emit))


async def authenticate(request: web.Request) -> web.Response:
    engine = engine_of(request)
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise InvalidParameter("invalid JSON body") from None
    auth = auth_from_json(body)
    await run_sync(login, auth, engine.registry_options)
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def register(router: Router) -> None:
    router.add("POST", "/images/{name:.+}/push", push_image)
    router.add("POST", "/auth", authenticate)
