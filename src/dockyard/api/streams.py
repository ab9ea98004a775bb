"""Bridges between aiohttp's async request/response bodies and the engine's blocking file-like
streams, which run in worker threads. Back-pressure is natural: each side waits for the other."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import StreamReader, web

T = TypeVar("T")
CHUNK = 1 << 20

# Streaming operations (save, load, import) each hold a thread for their whole duration.
EXECUTOR = ThreadPoolExecutor(max_workers=64, thread_name_prefix="engine")


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(EXECUTOR, lambda: fn(*args))


async def _read_up_to(content: StreamReader, size: int) -> bytes:
    """Gather up to `size` bytes (fewer only at EOF), so the worker crosses threads rarely."""
    parts: list[bytes] = []
    have = 0
    while have < size:
        data = await content.read(size - have)
        if not data:
            break
        parts.append(data)
        have += len(data)
    return b"".join(parts)


class BodyReader(io.RawIOBase):
    """A request body as a blocking reader, for use from a worker thread."""

    def __init__(self, content: StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self._content = content
        self._loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), CHUNK)
        future = asyncio.run_coroutine_threadsafe(_read_up_to(self._content, size), self._loop)
        data = future.result()
        buffer[: len(data)] = data
        return len(data)


def body_reader(request: web.Request) -> io.BufferedReader:
    return io.BufferedReader(BodyReader(request.content, asyncio.get_running_loop()), CHUNK)


class ResponseWriter(io.RawIOBase):
    """A prepared streaming response as a blocking writer, for use from a worker thread."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop
        self.written = 0
        self.broken = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = bytes(data)
        if not chunk or self.broken:  # after a failed write (client gone) the rest is dropped
            return len(chunk)
        if _on_loop_thread(self._loop):
            # Only the finaliser of a writer abandoned after an error flushes from here; waiting
            # on the loop from the loop's own thread would hang the whole daemon.
            self.broken = True
            return len(chunk)
        try:
            asyncio.run_coroutine_threadsafe(self._response.write(chunk), self._loop).result()
        except BaseException:
            self.broken = True
            raise
        self.written += len(chunk)
        return len(chunk)


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def response_writer(response: web.StreamResponse) -> io.BufferedWriter:
    return io.BufferedWriter(ResponseWriter(response, asyncio.get_running_loop()), CHUNK)


def json_line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\r\n"


def json_error(message: str) -> bytes:
    return json_line({"errorDetail": {"message": message}, "error": message})
