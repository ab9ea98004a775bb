"""The Engine API's connection hijack (attach, exec start): answer `101 UPGRADED`, then the
connection is a raw byte stream in both directions.

aiohttp supports the upgrade (it knows `Upgrade: tcp`) but its request handler closes the
connection when the client half-closes, and a docker client half-closes when its stdin ends,
then still expects the output. So, once upgraded, the transport is handed to a protocol of our
own that keeps writing after EOF; aiohttp is told about the connection's end as usual.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class _Feed:
    """Receives what aiohttp had already read past the request (its "message tail")."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class _Protocol(asyncio.Protocol):
    def __init__(self, original: Any, reader: asyncio.StreamReader) -> None:
        self.original = original
        self.reader = reader
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.closed = False
        self.lost = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.reader.feed_data(data)

    def eof_received(self) -> bool:
        self.reader.feed_eof()
        return True  # half-closed: keep the transport open for our output

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost.set()
        if not self.reader.at_eof():
            self.reader.feed_eof()
        self.can_write.set()
        self.original.connection_lost(exc)


class Hijacked:
    """A hijacked connection: read() the client's bytes, write() ours."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.reader = protocol.reader

    async def read(self, n: int = 65536) -> bytes:
        return await self.reader.read(n)

    async def write(self, data: bytes) -> bool:
        """False when the client is gone."""
        if self.protocol.closed or self.transport.is_closing():
            return False
        self.transport.write(data)
        await self.protocol.can_write.wait()
        return not self.protocol.closed

    async def protocol_closed(self) -> None:
        """Returns when the client's connection is gone."""
        await self.protocol.lost.wait()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


async def hijack(request: web.Request, content_type: str) -> tuple[web.StreamResponse, Hijacked]:
    """Answer 101 (or 200 when the client did not ask to upgrade) and take the connection."""
    upgrade = "upgrade" in request.headers.get("Connection", "").lower()
    response = web.StreamResponse(
        status=101 if upgrade else 200, reason="UPGRADED" if upgrade else "OK"
    )
    response.content_type = content_type
    if upgrade:
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    response.force_close()
    await response.prepare(request)
    transport = request.transport
    assert transport is not None
    reader = asyncio.StreamReader()
    original = request.protocol
    original.set_parser(_Feed(reader))  # takes what was read past the request already
    protocol = _Protocol(original, reader)
    transport.set_protocol(protocol)
    return response, Hijacked(transport, protocol)  # type: ignore[arg-type]
