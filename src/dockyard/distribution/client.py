"""The registry client: the distribution-spec over aiohttp, with the registry token protocol
(Bearer per scope, anonymous or from basic credentials) and basic auth.

One `Registry` talks to one registry host through an ordered list of endpoints (mirrors first
for Docker Hub pulls; https, then http for insecure registries; http for loopback). Blob bodies
stream through callbacks, so that the caller decides where the bytes go.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp

from dockyard.errors import DockyardError

from . import auth as authmod
from .manifest import ACCEPT, MAX_MANIFEST_SIZE

CHUNK = 1 << 20
MONOLITHIC_MAX = 32 << 20  # blobs up to this size go in one PUT, larger ones by PATCH
# Larger blobs go in one streamed PATCH by default: docker-registry resumes its hash on each
# PATCH of a chunked upload, so 64 MiB chunks halved the push rate of a 200 MiB layer
# (99 MB/s against 186 MB/s, bench/bench_registry_client.py). Options.upload_chunk > 0 sends
# Content-Range chunks of that size instead.
RETRIES = 5


class RegistryError(DockyardError):
    """An error from (or reaching) a registry; the message names it."""


class Unauthorized(RegistryError):
    status = 401


class Denied(RegistryError):
    status = 403


@dataclass
class Options:
    """Daemon-wide registry settings (dockyardd --insecure-registry, --registry-mirror)."""

    insecure: set[str] = field(default_factory=set)
    mirrors: list[str] = field(default_factory=list)
    upload_chunk: int = 0  # 0: one streamed PATCH for a large blob


def endpoints(host: str, options: Options, *, push: bool = False) -> list[str]:
    """Base URLs to try for a registry, in order."""
    if host == authmod.DOCKER_HUB:
        hub = [f"https://{authmod.DOCKER_HUB_API}"]
        return hub if push else [m.rstrip("/") for m in options.mirrors] + hub
    if authmod.is_loopback(host):
        return [f"http://{host}"]
    if host in options.insecure or host.split(":")[0] in options.insecure:
        return [f"https://{host}", f"http://{host}"]
    return [f"https://{host}"]


def _errors_text(body: bytes) -> str:
    """`code: message` of a registry's JSON error body (distribution's errcode format)."""
    import json

    try:
        doc = json.loads(body)
        items = doc.get("errors") or []
        parts = []
        for item in items:
            code = str(item.get("code", "")).lower().replace("_", " ")
            message = item.get("message", "")
            parts.append(f"{code}: {message}" if message else code)
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError, TypeError):
        pass
    return body[:200].decode(errors="replace").strip()


class Registry:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        credentials: authmod.AuthConfig,
        options: Options,
        *,
        push: bool = False,
    ) -> None:
        self.session = session
        self.host = host
        self.credentials = credentials
        self._candidates = endpoints(host, options, push=push)
        self.upload_chunk = options.upload_chunk
        # Certificates are checked except for registries the daemon was told are insecure.
        self._ssl = not (host in options.insecure or host.split(":")[0] in options.insecure)
        self.base: str | None = None
        self._challenge: authmod.Challenge | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self.sent = 0  # blob bytes uploaded (the bench counts them)

    # -- connection and auth -------------------------------------------------------------------
    async def _base(self) -> str:
        """Find the first endpoint that answers /v2/ (learning its auth challenge)."""
        if self.base is not None:
            return self.base
        last: Exception | None = None
        for candidate in self._candidates:
            url = f"{candidate}/v2/"
            try:
                async with self.session.get(url, ssl=self._ssl) as r:
                    await r.read()
                    if r.status == 401:
                        self._challenge = self._pick(r.headers.getall("WWW-Authenticate", []))
                    elif r.status >= 500 and candidate != self._candidates[-1]:
                        continue
                    self.base = candidate
                    return candidate
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last = exc
        raise RegistryError(self._unreachable(last))

    def _unreachable(self, exc: Exception | None) -> str:
        url = f"{self._candidates[-1]}/v2/"
        reason = str(exc) if exc else "no endpoint answered"
        if isinstance(exc, aiohttp.ClientConnectorError):
            errno = exc.os_error.errno
            text = os.strerror(errno).lower() if errno else str(exc.os_error)
            reason = f"dial tcp {exc.host}:{exc.port}: connect: {text}"
        elif isinstance(exc, TimeoutError):
            reason = "i/o timeout"
        return f'Get "{url}": {reason} (registry {self.host} is unreachable)'

    @staticmethod
    def _pick(headers: Iterable[str]) -> authmod.Challenge | None:
        challenges = [c for h in headers for c in authmod.parse_challenges(h)]
        for scheme in ("bearer", "basic"):
            for challenge in challenges:
                if challenge.scheme == scheme:
                    return challenge
        return None

    async def _token(self, scopes: tuple[str, ...], fresh: bool = False) -> str:
        cached = self._tokens.get(scopes)
        if cached and not fresh and cached[1] > time.monotonic():
            return cached[0]
        assert self._challenge is not None
        realm = self._challenge.params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host}: bearer challenge without a realm")
        creds = self.credentials
        headers: dict[str, str] = {}
        query = authmod.token_query(self._challenge, list(scopes))
        if creds.registry_token:
            return creds.registry_token
        if creds.username or creds.password:
            headers["Authorization"] = "Basic " + authmod.encode_basic(
                creds.username, creds.password
            )
        if creds.identity_token:  # an OAuth refresh token: POST form, as docker does
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "client_id": "dockyard",
                "service": self._challenge.params.get("service", ""),
                "scope": " ".join(scopes),
            }
            request = self.session.post(realm, data=form)
        else:
            request = self.session.get(realm, params=query, headers=headers)
        try:
            async with request as r:
                body = await r.read()
                if r.status in (401, 403):
                    raise Unauthorized(
                        f"{'unauthorized' if r.status == 401 else 'denied'}: "
                        f"{_errors_text(body) or 'authentication required'}"
                    )
                if r.status != 200:
                    raise RegistryError(
                        f"token endpoint {realm} answered {r.status}: {_errors_text(body)}"
                    )
        except aiohttp.ClientError as exc:
            raise RegistryError(f"token endpoint {realm}: {exc}") from None
        token, lifetime = authmod.token_from_response(body)
        self._tokens[scopes] = (token, time.monotonic() + max(lifetime - 10, 5))
        return token

    async def _auth_headers(self, scopes: tuple[str, ...], fresh: bool = False) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "bearer":
            return {"Authorization": "Bearer " + await self._token(scopes, fresh)}
        if challenge.scheme == "basic" and not self.credentials.empty:
            creds = self.credentials
            return {
                "Authorization": "Basic " + authmod.encode_basic(creds.username, creds.password)
            }
        return {}

    async def request(
        self,
        method: str,
        path_or_url: str,
        scopes: tuple[str, ...],
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        params: Any = None,
        data_factory: Callable[[], Any] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send with auth; on a 401, learn the challenge, refresh the token and send once more.
        The caller reads and releases the response."""
        base = await self._base()
        url = path_or_url if "://" in path_or_url else base + path_or_url
        for attempt in range(2):
            hdrs = dict(headers or {})
            hdrs.update(await self._auth_headers(scopes, fresh=attempt > 0))
            body = data_factory() if data_factory is not None else data
            try:
                response = await self.session.request(
                    method, url, headers=hdrs, data=body, params=params, ssl=self._ssl
                )
            except (aiohttp.ClientConnectorError, TimeoutError) as exc:
                raise RegistryError(self._unreachable(exc)) from None
            if response.status != 401 or attempt == 1:
                return response
            challenge = self._pick(response.headers.getall("WWW-Authenticate", []))
            await response.read()
            response.release()
            if challenge is None:
                return response
            self._challenge = challenge
            if challenge.scheme == "basic" and self.credentials.empty:
                return response
        raise AssertionError("unreachable")

    def _fail(self, what: str, status: int, body: bytes) -> RegistryError:
        text = _errors_text(body) or f"status {status}"
        if status == 401:
            return Unauthorized(f"{what}: unauthorized: {text}")
        if status == 403:
            return Denied(f"{what}: denied: {text}")
        if status == 404:
            error = RegistryError(text)
            error.status = 404
            return error
        return RegistryError(f"{what}: {self.host} answered {status}: {text}")

    # -- login ---------------------------------------------------------------------------------
    async def login(self) -> None:
        """Check the credentials against /v2/ (and the token endpoint)."""
        base = await self._base()
        if self._challenge is None:
            return
        if self._challenge.scheme == "bearer":
            await self._token((), fresh=True)
            return
        async with self.session.get(
            f"{base}/v2/", headers=await self._auth_headers(()), ssl=self._ssl
        ) as r:
            if r.status == 401:
                raise Unauthorized(
                    f"login attempt to {base}/v2/ failed with status: 401 Unauthorized"
                )

    # -- manifests -----------------------------------------------------------------------------
    async def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str]:
        """(body, content type) of a manifest or index by tag or digest."""
        scopes = (authmod.repository_scope(repo, ["pull"]),)
        response = await self.request(
            "GET", f"/v2/{repo}/manifests/{quote(ref)}", scopes, headers={"Accept": ACCEPT}
        )
        async with response:
            if response.status != 200:
                raise self._fail(f"manifest {repo}:{ref}", response.status, await response.read())
            if (response.content_length or 0) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {repo}:{ref} is too big")
            body = await response.content.read(MAX_MANIFEST_SIZE + 1)
            if len(body) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {repo}:{ref} is too big")
            return body, response.headers.get("Content-Type", "")

    async def put_manifest(self, repo: str, tag: str, media_type: str, body: bytes) -> None:
        scopes = (authmod.repository_scope(repo, ["pull", "push"]),)
        response = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{quote(tag)}",
            scopes,
            headers={"Content-Type": media_type},
            data=body,
        )
        async with response:
            if response.status not in (200, 201, 202):
                raise self._fail(f"manifest {repo}:{tag}", response.status, await response.read())

    # -- blobs ---------------------------------------------------------------------------------
    async def fetch_blob(
        self, repo: str, digest: str, size: int, sink: Callable[[bytes], None]
    ) -> None:
        """Stream a blob into `sink`, exactly `size` bytes; a connection that breaks off is
        resumed with Range (or, when the registry ignores Range, the delivered part is
        skipped). The caller verifies the digest."""
        scopes = (authmod.repository_scope(repo, ["pull"]),)
        offset, failures = 0, 0
        while True:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                response = await self.request(
                    "GET", f"/v2/{repo}/blobs/{digest}", scopes, headers=headers
                )
                async with response:
                    if response.status not in (200, 206):
                        raise self._fail(
                            f"blob {digest[:19]}", response.status, await response.read()
                        )
                    skip = offset if (offset and response.status == 200) else 0
                    async for chunk in response.content.iter_chunked(CHUNK):
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                            if not chunk:
                                continue
                        if offset + len(chunk) > size:
                            raise RegistryError(
                                f"blob {digest} from {self.host} is larger than its "
                                f"descriptor ({size} bytes)"
                            )
                        sink(chunk)
                        offset += len(chunk)
                if offset == size:
                    return
                error: Exception = RegistryError(
                    f"blob {digest} from {self.host}: connection closed after {offset} of "
                    f"{size} bytes"
                )
            except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
                error = RegistryError(f"blob {digest} from {self.host}: {exc}")
            except RegistryError:
                raise
            failures += 1
            if failures >= RETRIES:
                raise error
            await asyncio.sleep(0.05 * failures)

    async def blob_exists(self, repo: str, digest: str) -> bool:
        scopes = (authmod.repository_scope(repo, ["pull", "push"]),)
        response = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes)
        async with response:
            if response.status == 200:
                return True
            if response.status == 404:
                return False
            raise self._fail(f"blob {digest[:19]}", response.status, b"")

    async def start_upload(self, repo: str, digest: str, mount_from: str = "") -> str | None:
        """POST an upload; None when the blob was mounted from `mount_from` instead."""
        actions = (authmod.repository_scope(repo, ["pull", "push"]),)
        params: list[tuple[str, str]] = []
        if mount_from:
            actions += (authmod.repository_scope(mount_from, ["pull"]),)
            params = [("mount", digest), ("from", mount_from)]
        response = await self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", actions, params=params or None
        )
        async with response:
            body = await response.read()
            if response.status == 201 and mount_from:
                return None
            if response.status != 202:
                raise self._fail(f"upload to {repo}", response.status, body)
            location = response.headers.get("Location")
            if not location:
                raise RegistryError(f"registry {self.host} gave no upload location")
            return urljoin(str(response.url), location)

    async def upload(
        self,
        repo: str,
        location: str,
        digest: str,
        size: int,
        chunks: Callable[[int, int], AsyncIterator[bytes]],
    ) -> None:
        """Send a blob to an upload `location`: one PUT when small, PATCH chunks then a PUT
        when large. `chunks(start, end)` yields the blob's bytes in [start, end)."""
        scopes = (authmod.repository_scope(repo, ["pull", "push"]),)
        octet = {"Content-Type": "application/octet-stream"}

        def with_digest(url: str) -> str:
            return url + ("&" if "?" in url else "?") + "digest=" + quote(digest)

        if size <= MONOLITHIC_MAX:
            response = await self.request(
                "PUT",
                with_digest(location),
                scopes,
                headers={**octet, "Content-Length": str(size)},
                data_factory=lambda: chunks(0, size),
            )
        else:
            start = 0
            while start < size:
                end = min(start + self.upload_chunk, size) if self.upload_chunk else size
                headers = {**octet, "Content-Length": str(end - start)}
                if self.upload_chunk:
                    headers["Content-Range"] = f"{start}-{end - 1}"
                response = await self.request(
                    "PATCH",
                    location,
                    scopes,
                    headers=headers,
                    data_factory=lambda s=start, e=end: chunks(s, e),
                )
                async with response:
                    body = await response.read()
                    if response.status != 202:
                        raise self._fail(f"blob {digest[:19]} upload", response.status, body)
                    location = urljoin(str(response.url), response.headers["Location"])
                start = end
            response = await self.request(
                "PUT", with_digest(location), scopes, headers={**octet, "Content-Length": "0"}
            )
        async with response:
            body = await response.read()
            if response.status not in (201, 204):
                raise self._fail(f"blob {digest[:19]} upload", response.status, body)
        self.sent += size
