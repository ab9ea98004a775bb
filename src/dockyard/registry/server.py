"""The registry's HTTP surface (distribution-spec v1.1) on aiohttp.

Repository names contain "/", so routing is by suffix: `/v2/<name>/blobs/uploads/[<uuid>]`,
`/v2/<name>/blobs/<digest>`, `/v2/<name>/manifests/<ref>`, `/v2/<name>/tags/list`,
`/v2/<name>/referrers/<digest>`, plus `/v2/`, `/v2/_catalog` and the token issuer `/token`.
Blob uploads are in uploads.py; authentication in auth.py; the disk in storage.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import ssl
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

from aiohttp import web

from . import manifests as mf
from .auth import Htpasswd, Tokens, allows, parse_basic, parse_scope
from .errors import RegistryError
from .gc import collect
from .names import digest_of, looks_like_digest, valid_digest, valid_name, valid_tag
from .storage import Storage
from .uploads import Uploads

log = logging.getLogger("dockyard.registry")

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload>[^/]*)"), "upload"),
    (re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"), "blob"),
    (re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"), "manifest"),
    (re.compile(r"(?P<name>.+)/tags/list"), "tags"),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), "referrers"),
]
_PULL = ["pull"]
_PUSH = ["pull", "push"]


class Registry:
    """The registry's state and settings; `app()` builds the aiohttp application."""

    def __init__(
        self,
        root: str,
        *,
        htpasswd: str | None = None,
        token_realm: str | None = None,
        token_key: bytes | None = None,
        token_service: str = "dockyard-registry",
        realm: str = "Dockyard Registry",
        upload_timeout: float = 3600.0,
        gc_interval: float | None = None,
        gc_grace: float = 3600.0,
    ) -> None:
        self.storage = Storage(root)
        self.uploads = Uploads(self.storage)
        self.htpasswd = Htpasswd(htpasswd) if htpasswd else None
        self.tokens = (
            Tokens(token_key, token_realm, token_service)
            if token_realm and token_key is not None
            else None
        )
        self.realm = realm
        self.upload_timeout = upload_timeout
        self.gc_interval = gc_interval
        self.gc_grace = gc_grace

    # -- auth ------------------------------------------------------------------------------
    def _unauthorized(self, scope: str | None, detail: object = None) -> RegistryError:
        if self.tokens is not None:
            challenge = self.tokens.challenge(scope)
        else:
            challenge = f'Basic realm="{self.realm}"'
        return RegistryError("UNAUTHORIZED", detail, headers={"WWW-Authenticate": challenge})

    def authorize(self, request: web.Request, kind: str, name: str, actions: list[str]) -> None:
        """Raise 401 with the right challenge unless the request may do `actions` on `name`."""
        header = request.headers.get("Authorization", "")
        scope = f"{kind}:{name}:{','.join(actions)}" if kind else None
        if self.tokens is not None:
            scheme, _, token = header.partition(" ")
            claims = self.tokens.verify(token.strip()) if scheme.lower() == "bearer" else None
            if claims is None:
                raise self._unauthorized(scope)
            if kind and not allows(claims, kind, name, actions):
                raise RegistryError(
                    "UNAUTHORIZED",
                    [{"Type": kind, "Name": name, "Action": a} for a in actions],
                    message="insufficient scope",
                    headers={
                        "WWW-Authenticate": self.tokens.challenge(scope, "insufficient_scope")
                    },
                )
        elif self.htpasswd is not None:
            creds = parse_basic(header)
            if creds is None or not self.htpasswd.verify(*creds):
                raise self._unauthorized(scope)

    def may(self, request: web.Request, name: str, actions: list[str]) -> bool:
        try:
            self.authorize(request, "repository", name, actions)
        except RegistryError:
            return False
        return True

    async def token(self, request: web.Request) -> web.Response:
        """The token issuer: basic auth against the htpasswd file, then a signed token."""
        try:
            return await self._token(request)
        except RegistryError as exc:
            return _error_response(request, exc)

    async def _token(self, request: web.Request) -> web.Response:
        if self.tokens is None:
            raise web.HTTPNotFound()
        if request.method == "POST":
            form = await request.post()
            creds: tuple[str, str] | None = (
                (str(form.get("username", "")), str(form.get("password", "")))
                if form.get("grant_type") == "password"
                else None
            )
            scopes = " ".join(str(s) for s in form.getall("scope", [])).split()
        else:
            creds = parse_basic(request.headers.get("Authorization", ""))
            scopes = " ".join(request.query.getall("scope", [])).split()
        subject = ""
        if creds is not None:
            if self.htpasswd is None or not self.htpasswd.verify(*creds):
                raise RegistryError(
                    "UNAUTHORIZED",
                    message="authentication failed",
                    headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'},
                )
            subject = creds[0]
        elif self.htpasswd is not None:
            raise RegistryError(
                "UNAUTHORIZED", headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'}
            )
        access = [a for a in (parse_scope(s) for s in scopes) if a is not None]
        token = self.tokens.issue(subject, access)
        body = {"token": token, "access_token": token, "expires_in": 300}
        return web.json_response(body)

    # -- routing ---------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except RegistryError as exc:
            return _error_response(request, exc)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        method = request.method
        if tail == "":
            self.authorize(request, "", "", [])
            return web.json_response({})
        if tail == "_catalog":
            self.authorize(request, "registry", "catalog", ["*"])
            return self.catalog(request)
        routed = _route(tail)
        if routed is None:
            raise RegistryError("NAME_UNKNOWN", tail, status=404, message="no such endpoint")
        kind, match = routed
        name = match["name"]
        if not valid_name(name):
            raise RegistryError("NAME_INVALID", name)
        write = method in ("POST", "PUT", "PATCH", "DELETE")
        self.authorize(request, "repository", name, _PUSH if write else _PULL)
        handler: Callable | None = getattr(self, f"{kind}_{method.lower()}", None)
        if handler is None:
            raise RegistryError("UNSUPPORTED", f"{method} {kind}")
        return await handler(request, **match.groupdict())

    # -- blobs -----------------------------------------------------------------------------
    def _blob_size(self, name: str, digest: str) -> int:
        if not valid_digest(digest):
            raise RegistryError("DIGEST_INVALID", digest)
        size = self.storage.blob_size(digest)
        if size is None or not self.storage.has_blob(name, digest):
            raise RegistryError("BLOB_UNKNOWN", digest)
        return size

    async def blob_head(self, request: web.Request, name: str, digest: str) -> web.Response:
        size = self._blob_size(name, digest)
        resp = web.Response(
            headers={
                "Docker-Content-Digest": digest,
                "Content-Type": "application/octet-stream",
                "Accept-Ranges": "bytes",
                "Content-Length": str(size),
            }
        )
        return resp

    async def blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        self._blob_size(name, digest)
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
        }
        return web.FileResponse(self.storage.blob_path(digest), headers=headers)

    async def blob_delete(self, request: web.Request, name: str, digest: str) -> web.Response:
        if not valid_digest(digest):
            raise RegistryError("DIGEST_INVALID", digest)
        if not self.storage.unlink_blob(name, digest):
            raise RegistryError("BLOB_UNKNOWN", digest)
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- uploads (see uploads.py) ----------------------------------------------------------
    async def upload_post(self, request: web.Request, name: str, upload: str) -> web.Response:
        if upload:
            raise RegistryError("UNSUPPORTED", "POST to an upload")
        mount, source = request.query.get("mount"), request.query.get("from")
        # A mount reads the source repository: with tokens, its pull scope joins the challenge,
        # so the client asks for a token that covers both repositories (as distribution does).
        if (
            mount
            and source
            and valid_name(source)
            and self.tokens is not None
            and not self.may(request, source, _PULL)
        ):
            scope = f"repository:{name}:pull,push repository:{source}:pull"
            raise RegistryError(
                "UNAUTHORIZED",
                [{"Type": "repository", "Name": source, "Action": "pull"}],
                message="insufficient scope",
                headers={"WWW-Authenticate": self.tokens.challenge(scope, "insufficient_scope")},
            )
        if (
            mount is not None
            and source
            and valid_digest(mount)
            and valid_name(source)
            and self.storage.has_blob(source, mount)
            and self.may(request, source, _PULL)
        ):
            await asyncio.to_thread(self._link, name, mount)
            return _created(name, mount)
        digest = request.query.get("digest")
        if digest is not None:
            return await self.uploads.monolithic(request, name, digest)
        return self.uploads.start(name)

    def _link(self, name: str, digest: str) -> None:
        with self.storage.gc_lock():
            if self.storage.blob_size(digest) is None:
                raise RegistryError("BLOB_UNKNOWN", digest)
            self.storage.link_blob(name, digest)

    async def upload_patch(self, request: web.Request, name: str, upload: str) -> web.Response:
        return await self.uploads.patch(request, name, upload)

    async def upload_put(self, request: web.Request, name: str, upload: str) -> web.Response:
        return await self.uploads.put(request, name, upload)

    async def upload_get(self, request: web.Request, name: str, upload: str) -> web.Response:
        return self.uploads.status(name, upload)

    async def upload_delete(self, request: web.Request, name: str, upload: str) -> web.Response:
        return self.uploads.cancel(name, upload)

    # -- manifests -------------------------------------------------------------------------
    def _check_reference(self, reference: str) -> None:
        if looks_like_digest(reference):
            if not valid_digest(reference):
                raise RegistryError("DIGEST_INVALID", reference, message="invalid digest")
        elif not valid_tag(reference):
            raise RegistryError("TAG_INVALID", reference, message="invalid tag")

    def _manifest(self, name: str, reference: str) -> tuple[str, bytes, str]:
        self._check_reference(reference)
        digest = self.storage.resolve(name, reference)
        found = self.storage.get_manifest(name, digest) if digest else None
        if digest is None or found is None:
            raise RegistryError("MANIFEST_UNKNOWN", {"Name": name, "Revision": reference})
        return digest, found[0], found[1]

    async def manifest_get(self, request: web.Request, name: str, reference: str) -> web.Response:
        digest, data, media_type = self._manifest(name, reference)
        headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
        return web.Response(body=data, headers=headers)

    async def manifest_head(self, request: web.Request, name: str, reference: str) -> web.Response:
        digest, data, media_type = self._manifest(name, reference)
        headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
        return web.Response(body=data, headers=headers)  # aiohttp sends no body for HEAD

    async def manifest_put(self, request: web.Request, name: str, reference: str) -> web.Response:
        self._check_reference(reference)
        tags = request.query.getall("tag", [])
        for tag in tags:
            if not valid_tag(tag):
                raise RegistryError("TAG_INVALID", tag, message="invalid tag")
        data = await _read_limited(request, mf.MAX_MANIFEST_SIZE)
        if looks_like_digest(reference):
            digest = digest_of(data, reference.partition(":")[0])
            if digest != reference:
                raise RegistryError("DIGEST_INVALID", f"manifest digest is {digest}")
        else:
            digest = digest_of(data)
            tags = [reference, *tags]
        manifest = mf.parse_manifest(data, request.headers.get("Content-Type", ""))
        referrer = mf.referrer_descriptor(manifest, digest, len(data)) if manifest.subject else None
        await asyncio.to_thread(self._store_manifest, name, digest, data, manifest, tags, referrer)
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        }
        if manifest.subject:
            headers["OCI-Subject"] = manifest.subject
        if looks_like_digest(reference) and tags:
            headers["OCI-Tag"] = ", ".join(tags)
        return web.Response(status=201, headers=headers)

    def _store_manifest(
        self,
        name: str,
        digest: str,
        data: bytes,
        manifest: mf.Manifest,
        tags: list[str],
        referrer: dict | None,
    ) -> None:
        storage = self.storage
        with storage.gc_lock():
            for blob in manifest.blobs:
                if not storage.has_blob(name, blob):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", blob)
            for child in manifest.children:
                if not (storage.has_manifest(name, child) or storage.has_blob(name, child)):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", child)
            storage.put_manifest(
                name, digest, data, manifest.media_type, tags, manifest.subject, referrer
            )

    async def manifest_delete(
        self, request: web.Request, name: str, reference: str
    ) -> web.Response:
        self._check_reference(reference)
        if looks_like_digest(reference):
            found = self.storage.get_manifest(name, reference)
            subject = None
            if found is not None:
                with contextlib.suppress(RegistryError):
                    subject = mf.parse_manifest(found[0], found[1]).subject
            if found is None or not self.storage.delete_manifest(name, reference, subject):
                raise RegistryError("MANIFEST_UNKNOWN", {"Name": name, "Revision": reference})
        elif not self.storage.delete_tag(name, reference):
            raise RegistryError("MANIFEST_UNKNOWN", {"Name": name, "Tag": reference})
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- listings --------------------------------------------------------------------------
    async def tags_get(self, request: web.Request, name: str) -> web.Response:
        tags = self.storage.tags(name)
        if tags is None:
            raise RegistryError("NAME_UNKNOWN", {"name": name})
        page, link = _paginate(request, tags, f"/v2/{name}/tags/list")
        return web.json_response({"name": name, "tags": page}, headers=link)

    def catalog(self, request: web.Request) -> web.Response:
        repos = self.storage.repositories()
        page, link = _paginate(request, repos, "/v2/_catalog")
        return web.json_response({"repositories": page}, headers=link)

    async def referrers_get(self, request: web.Request, name: str, digest: str) -> web.Response:
        if not valid_digest(digest):
            raise RegistryError("DIGEST_INVALID", digest)
        found = self.storage.referrers(name, digest)
        headers = {"Content-Type": mf.OCI_INDEX}
        artifact_type = request.query.get("artifactType")
        if artifact_type is not None:
            found = [d for d in found if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": found}
        return web.Response(body=json.dumps(index).encode(), headers=headers)

    # -- application -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=mf.MAX_MANIFEST_SIZE + 1024)
        app.router.add_route("*", "/v2", self.dispatch)
        app.router.add_route("*", "/v2/{tail:.*}", self.dispatch)
        if self.tokens is not None:
            app.router.add_route("GET", "/token", self.token)
            app.router.add_route("POST", "/token", self.token)
        app.on_response_prepare.append(_add_api_version)
        app.cleanup_ctx.append(self._maintenance)
        return app

    async def _maintenance(self, app: web.Application) -> AsyncIterator[None]:
        """Clean abandoned uploads and, with gc_interval, collect garbage in the background."""
        task = asyncio.create_task(self._maintain())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _maintain(self) -> None:
        period = min(self.upload_timeout / 2, self.gc_interval or 600.0, 600.0)
        since_gc = 0.0
        while True:
            await asyncio.sleep(period)
            since_gc += period
            try:
                await asyncio.to_thread(self.storage.clean_uploads, self.upload_timeout)
                if self.gc_interval is not None and since_gc >= self.gc_interval:
                    since_gc = 0.0
                    stats = await asyncio.to_thread(
                        collect, self.storage, grace=self.gc_grace, upload_age=self.upload_timeout
                    )
                    log.info("gc: %s", stats)
            except OSError:
                log.exception("registry maintenance failed")


def _error_response(request: web.Request, exc: RegistryError) -> web.Response:
    headers = {"Content-Type": "application/json", **exc.headers}
    headers.pop("Content-Length", None)  # set from the error body
    body = b"" if request.method == "HEAD" else exc.body()
    return web.Response(status=exc.status, body=body, headers=headers)


def _route(tail: str) -> tuple[str, re.Match[str]] | None:
    for pattern, kind in _ROUTES:
        match = pattern.fullmatch(tail)
        if match is not None:
            return kind, match
    return None


async def _add_api_version(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(API_VERSION_HEADER)


def _created(name: str, digest: str) -> web.Response:
    headers = {
        "Location": f"/v2/{name}/blobs/{digest}",
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    }
    return web.Response(status=201, headers=headers)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise RegistryError("MANIFEST_INVALID", f"manifest larger than {limit} bytes", status=413)
    chunks, total = [], 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > limit:
            raise RegistryError(
                "MANIFEST_INVALID", f"manifest larger than {limit} bytes", status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _paginate(
    request: web.Request, items: list[str], path: str
) -> tuple[list[str], dict[str, str]]:
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    n_text = request.query.get("n")
    if n_text is None:
        return items, {}
    try:
        n = int(n_text)
    except ValueError:
        n = -1
    if n < 0:
        raise RegistryError("PAGINATION_NUMBER_INVALID", n_text)
    page = items[:n]
    if len(items) > n and page:
        link = f'<{path}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
        return page, {"Link": link}
    return page, {}


async def serve(
    registry: Registry,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until cancelled or SIGTERM; `ready(port)` is called once listening (port 0 picks one)."""
    runner = web.AppRunner(registry.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    stop = asyncio.Event()
    with contextlib.suppress(RuntimeError, NotImplementedError):  # main thread only
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if ready is not None:
        ready(bound)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
