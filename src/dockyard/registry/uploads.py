"""Blob uploads: POST starts one (or finishes it with `?digest=`), PATCH appends a chunk at the
offset its Content-Range names (416 otherwise), PUT `?digest=` appends the last bytes, verifies
and publishes the blob. Bytes go to the staging area (storage.py) and are hashed as they arrive;
an upload whose bytes do not match its digest is removed and nothing is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re

from aiohttp import web

from .errors import RegistryError
from .names import ALGORITHMS, valid_digest
from .storage import Storage

_CONTENT_RANGE = re.compile(r"(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?")
_READ_SIZE = 1 << 20


class _State:
    """The running sha256 of an upload's bytes, valid while `size` equals the file's size."""

    __slots__ = ("hash", "lock", "size")

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.lock = asyncio.Lock()


class Uploads:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._states: dict[str, _State] = {}

    def _headers(self, name: str, upload_id: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
            "Docker-Upload-UUID": upload_id,
            "Range": f"0-{max(size - 1, 0)}",
            "Content-Length": "0",
        }

    def _check(self, name: str, upload_id: str) -> _State:
        if self.storage.upload_repo(upload_id) != name:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", upload_id)
        state = self._states.get(upload_id)
        if state is None:
            state = self._states[upload_id] = _State()
            state.size = -1  # unknown: the hash is recomputed from the file at the end
        return state

    def start(self, name: str) -> web.Response:
        upload_id = self.storage.new_upload(name)
        self._states[upload_id] = _State()
        return web.Response(status=202, headers=self._headers(name, upload_id, 0))

    def status(self, name: str, upload_id: str) -> web.Response:
        self._check(name, upload_id)
        size = self.storage.upload_size(upload_id)
        return web.Response(status=204, headers=self._headers(name, upload_id, size))

    def cancel(self, name: str, upload_id: str) -> web.Response:
        self._check(name, upload_id)
        self._forget(upload_id)
        return web.Response(status=204, headers={"Content-Length": "0"})

    def _forget(self, upload_id: str) -> None:
        self._states.pop(upload_id, None)
        self.storage.remove_upload(upload_id)

    async def _append(self, request: web.Request, name: str, upload_id: str, state: _State) -> int:
        """Append the request body at the offset Content-Range names; returns the new size."""
        path = self.storage.upload_data(upload_id)
        size = os.stat(path).st_size
        content_range = request.headers.get("Content-Range")
        if content_range:
            match = _CONTENT_RANGE.fullmatch(content_range.strip())
            if match is None:
                raise RegistryError("BLOB_UPLOAD_INVALID", f"bad Content-Range {content_range!r}")
            start, end = int(match[1]), int(match[2])
            length = request.content_length
            if start != size or end < start or (length is not None and length != end - start + 1):
                raise RegistryError(
                    "RANGE_INVALID",
                    f"upload is at {size} bytes, chunk is {content_range}",
                    headers=self._headers(name, upload_id, size),
                )
        if state.size != size:
            state.size = -1
        try:
            with open(path, "ab") as f:
                async for chunk in request.content.iter_chunked(_READ_SIZE):
                    f.write(chunk)
                    if state.size >= 0:
                        state.hash.update(chunk)
                        state.size += len(chunk)
                    size += len(chunk)
        except BaseException:
            state.size = -1  # a failed write leaves the file's length unknown to the hash
            raise
        return size

    async def patch(self, request: web.Request, name: str, upload_id: str) -> web.Response:
        state = self._check(name, upload_id)
        async with state.lock:
            size = await self._append(request, name, upload_id, state)
        return web.Response(status=202, headers=self._headers(name, upload_id, size))

    async def put(self, request: web.Request, name: str, upload_id: str) -> web.Response:
        state = self._check(name, upload_id)
        digest = request.query.get("digest", "")
        if not valid_digest(digest):
            raise RegistryError("DIGEST_INVALID", digest or "missing digest parameter")
        async with state.lock:
            await self._append(request, name, upload_id, state)
            await self._finish(name, upload_id, digest, state)
        return _created(name, digest)

    async def monolithic(self, request: web.Request, name: str, digest: str) -> web.Response:
        if not valid_digest(digest):
            raise RegistryError("DIGEST_INVALID", digest)
        upload_id = self.storage.new_upload(name)
        state = self._states[upload_id] = _State()
        try:
            await self._append(request, name, upload_id, state)
            await self._finish(name, upload_id, digest, state)
        except BaseException:
            self._forget(upload_id)
            raise
        return _created(name, digest)

    async def _finish(self, name: str, upload_id: str, digest: str, state: _State) -> None:
        algo = digest.partition(":")[0]
        path = self.storage.upload_data(upload_id)
        size = os.stat(path).st_size
        if algo == "sha256" and state.size == size:
            actual = "sha256:" + state.hash.hexdigest()
        else:
            actual = await asyncio.to_thread(_hash_file, path, algo)
        if actual != digest:
            self._forget(upload_id)
            raise RegistryError(
                "DIGEST_INVALID", f"expected {digest}, the {size} bytes uploaded are {actual}"
            )
        self._states.pop(upload_id, None)
        await asyncio.to_thread(self.storage.commit_upload, name, upload_id, digest)


def _hash_file(path: str, algo: str) -> str:
    assert algo in ALGORITHMS
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_READ_SIZE):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def _created(name: str, digest: str) -> web.Response:
    headers = {
        "Location": f"/v2/{name}/blobs/{digest}",
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    }
    return web.Response(status=201, headers=headers)
