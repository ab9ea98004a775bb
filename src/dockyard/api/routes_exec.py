"""Exec routes: POST /containers/{id}/exec, POST /exec/{id}/start, GET /exec/{id}/json,
POST /exec/{id}/resize (moby daemon/server/router/container/exec.go).

A start without Detach hijacks the connection as attach does and proxies it to the shim
connection that runs the process (routes_containers.proxy); the stream carries docker's frames
unless the start asked for a TTY (raw), and a start error is written into it, as moby does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.engine.execs import DEFAULT_DETACH_KEYS, Exec
from dockyard.errors import DockyardError, InvalidParameter

from .hijack import Hijacked, hijack
from .routes_containers import MULTIPLEXED, RAW, _json_body, frame, proxy
from .server import Router, engine_of, json_response, version_at_least
from .streams import run_sync

CREATE_FIELDS = (
    "User Privileged Tty ConsoleSize AttachStdin AttachStderr AttachStdout Detach DetachKeys Env "
    "WorkingDir Cmd"
).split()
START_FIELDS = ("Detach", "Tty", "ConsoleSize")


def go_fields(body: dict[str, Any], fields: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Go's encoding/json matches object keys to struct fields case-insensitively (an exact
    match wins): docker-py sends `detachKeys`, for one."""
    names = {f.lower(): f for f in fields}
    out: dict[str, Any] = {}
    for key, value in body.items():
        field = names.get(key.lower())
        if field is None:
            continue
        if key == field or field not in body:
            out[field] = value
    return out


async def create(request: web.Request) -> web.Response:
    engine = engine_of(request)
    body = go_fields(await _json_body(request), CREATE_FIELDS)
    if not version_at_least(request, "1.42"):
        body.pop("ConsoleSize", None)
    exec_id = await run_sync(engine.execs.create, request.match_info["id"], body)
    return json_response({"Id": exec_id}, status=201)


async def inspect(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return json_response(await run_sync(engine.execs.inspect, request.match_info["id"]))


async def resize(request: web.Request) -> web.Response:
    engine = engine_of(request)
    height, width = _uint32(request, "h", "height"), _uint32(request, "w", "width")
    await run_sync(engine.execs.resize, request.match_info["id"], height, width)
    return web.Response(status=200)


def _uint32(request: web.Request, name: str, what: str) -> int:
    """moby's httputils.Uint32Value: strconv.ParseUint(value, 10, 32), empty meaning 0."""
    value = request.query.get(name, "")
    if value == "":
        return 0
    if not all(c in "0123456789" for c in value):
        why = "invalid syntax"
    elif int(value) >= 1 << 32:
        why = "value out of range"
    else:
        return int(value)
    raise InvalidParameter(
        f'invalid resize {what} "{value}": strconv.ParseUint: parsing "{value}": {why}'
    )


async def start(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    exec_id = request.match_info["id"]
    body = go_fields(await _json_body(request), START_FIELDS)
    tty = bool(body.get("Tty"))
    size = body.get("ConsoleSize")
    if not tty or not version_at_least(request, "1.42") or not size:
        size = None
    elif not (isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) for n in size)):
        raise InvalidParameter("invalid ConsoleSize: expected [height, width]")
    exec_ = await run_sync(engine.execs.find, exec_id)  # moby's ExecExists, before the hijack
    if body.get("Detach"):
        await run_sync(engine.execs.start_detached, exec_id, size)
        return web.Response(status=200)
    content_type = RAW if tty or not version_at_least(request, "1.42") else MULTIPLEXED
    response, conn = await hijack(request, content_type)
    client = _Client(conn, exec_, tty=tty)
    try:
        try:
            _, sock = await run_sync(engine.execs.start, exec_id, size)
        except DockyardError as exc:
            await client.error(exc.message)
            return response
        await proxy(client, sock, tty=False, stdin=exec_.open_stdin, control=exec_.control)  # type: ignore[arg-type]
        if exec_.exit_code is None:
            exec_.lost()
        if exec_.error is not None:
            await client.error(exec_.error.message)
    finally:
        conn.close()
    return response


class _Client:
    """The hijacked client as proxy() sees it. proxy() is given the shim's frames as they are
    (tty=False); here they are unframed for a TTY stream, and the streams the exec did not
    open are dropped (with a TTY stream, stderr: moby attaches only stdout then). A client
    that leaves does not end the proxy: it drains the process's output to its exit, so the
    exit code is recorded (`docker exec` processes outlive their client). In a TTY session
    with stdin, the detach keys end the client's session and leave the process running."""

    def __init__(self, conn: Hijacked, exec_: Exec, *, tty: bool) -> None:
        self.conn, self.exec, self.tty = conn, exec_, tty
        self.gone = False
        self.escape = (exec_.detach_keys or DEFAULT_DETACH_KEYS) if exec_.tty else b""
        self.matched = 0

    async def read(self, n: int = 65536) -> bytes:
        """The client's next stdin bytes; b"" at its end (or once it detached)."""
        while not self.gone:
            data = await self.conn.read(n)
            if not data or not (self.escape and self.exec.open_stdin):
                return data
            data = self._unescape(data)
            if data or self.gone:
                return data
        return b""

    def _unescape(self, data: bytes) -> bytes:
        """moby's copyEscapable: a partial match is held back until it fails to complete."""
        out = bytearray()
        for byte in data:
            if byte == self.escape[self.matched]:
                self.matched += 1
                if self.matched == len(self.escape):
                    self.gone = True  # detached: the session ends, the process runs on
                    self.conn.close()
                    return bytes(out)
                continue
            out += self.escape[: self.matched]
            self.matched = 0
            out.append(byte)
        return bytes(out)

    async def write(self, data: bytes) -> bool:
        if self.gone:
            return True
        stream = data[0]
        if (stream == 1 and not self.exec.open_stdout) or (
            stream == 2 and (not self.exec.open_stderr or self.tty)
        ):
            return True
        if not await self.conn.write(data[8:] if self.tty else data):
            self.gone = True
        return True

    async def error(self, message: str) -> None:
        """moby writes a start error to the stream's stdout, then ends the stream."""
        text = (message + "\r\n").encode()
        if not self.gone:
            await self.conn.write(text if self.tty else frame(1, text))


def register(router: Router) -> None:
    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("GET", "/exec/{id}/json", inspect)
    router.add("POST", "/exec/{id}/resize", resize)
