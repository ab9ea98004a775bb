"""Registries for tests: Debian's docker-registry on a free port behind a byte-counting proxy,
and a tiny fake registry (aiohttp, in a thread) that can misbehave on purpose."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class DockerRegistry:
    """`docker-registry serve` with storage in a temp dir; clients use `address` (a proxy that
    counts the bytes they send). Stopped by PID."""

    def __init__(self, htpasswd: tuple[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="test-registry-"))
        self.port = free_port()
        auth = ""
        if htpasswd is not None:
            import bcrypt

            hashed = bcrypt.hashpw(htpasswd[1].encode(), bcrypt.gensalt(rounds=5)).decode()
            (self.dir / "htpasswd").write_text(f"{htpasswd[0]}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {self.dir / 'htpasswd'}\n"
        (self.dir / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{self.port}\n{auth}"
        )
        self._log = open(self.dir / "log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.dir / "config.yml")],
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.05)
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self._listener.close() if hasattr(self, "_listener") else None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def layer_blob(files: dict[str, bytes]) -> tuple[bytes, str]:
    """(gzip blob, diffID) of a layer holding `files`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    plain = buf.getvalue()
    return gzip.compress(plain, mtime=0), digest(plain)


@dataclass
class FakeImage:
    manifest: bytes
    manifest_digest: str
    config_digest: str
    layer_digests: list[str]


@dataclass
class FakeRegistry:
    """Serves blobs and manifests from dicts. Knobs: `corrupt` (blob digests whose bytes are
    altered), `truncate` (blob digests whose first full GET stops half way), `auth` ((user,
    password): bearer tokens from /token with basic credentials)."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    truncate: set[str] = field(default_factory=set)
    auth: tuple[str, str] | None = None
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    address: str = ""

    def add_image(
        self, tag: str, layers: list[dict[str, bytes]], arch: str = "amd64", media: str = ""
    ) -> FakeImage:
        blobs, diff_ids = zip(*(layer_blob(files) for files in layers), strict=True)
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
                "history": [{"created_by": "test"} for _ in layers],
            }
        ).encode()
        self.blobs[digest(config)] = config
        for blob in blobs:
            self.blobs[digest(blob)] = blob
        layer_type = media or "application/vnd.docker.image.rootfs.diff.tar.gzip"
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": digest(config),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": layer_type, "digest": digest(b), "size": len(b)} for b in blobs
                ],
            }
        ).encode()
        media_type = "application/vnd.docker.distribution.manifest.v2+json"
        self.manifests[tag] = self.manifests[digest(manifest)] = (media_type, manifest)
        return FakeImage(manifest, digest(manifest), digest(config), [digest(b) for b in blobs])

    def add_index(self, tag: str, entries: list[tuple[FakeImage, str]]) -> str:
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "digest": image.manifest_digest,
                        "size": len(image.manifest),
                        "platform": {"os": "linux", "architecture": arch},
                    }
                    for image, arch in entries
                ],
            }
        ).encode()
        self.manifests[tag] = ("application/vnd.oci.image.index.v1+json", body)
        return digest(body)

    # -- the server ----------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        if self.auth is None:
            return True
        return request.headers.get("Authorization") == "Bearer good-token"

    def _challenge(self, scope: str) -> web.Response:
        header = f'Bearer realm="http://{self.address}/token",service="fake",scope="{scope}"'
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return web.json_response(body, status=401, headers={"WWW-Authenticate": header})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((request.method, path, dict(request.headers)))
        if path == "/token":
            import base64

            expected = (
                "Basic " + base64.b64encode(":".join(self.auth or ("", "")).encode()).decode()
            )
            if request.headers.get("Authorization") != expected:
                return web.json_response({"details": "bad credentials"}, status=401)
            return web.json_response({"token": "good-token", "expires_in": 300})
        if path == "/v2/":
            if not self._authorized(request):
                return self._challenge("")
            return web.json_response({})
        parts = path.split("/")
        repo = "/".join(parts[2:-2])
        if not self._authorized(request):
            return self._challenge(f"repository:{repo}:pull")
        kind, ref = parts[-2], parts[-1]
        if kind == "manifests" and ref in self.manifests:
            media, body = self.manifests[ref]
            return web.Response(
                body=body, headers={"Content-Type": media, "Docker-Content-Digest": digest(body)}
            )
        if kind == "blobs" and ref in self.blobs:
            data = self.blobs[ref]
            if ref in self.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            start = 0
            if request.headers.get("Range", "").startswith("bytes="):
                start = int(request.headers["Range"][6:].split("-")[0])
            status = 206 if start else 200
            response = web.StreamResponse(
                status=status, headers={"Content-Length": str(len(data) - start)}
            )
            if start:
                response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            await response.prepare(request)
            if ref in self.truncate and not start:
                self.truncate.discard(ref)
                await response.write(data[: len(data) // 2])
                request.transport.close()  # type: ignore[union-attr]
                return response
            await response.write(data[start:])
            await response.write_eof()
            return response
        code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
        return web.json_response(
            {"errors": [{"code": code, "message": f"{kind[:-1]} unknown"}]}, status=404
        )

    def start(self) -> FakeRegistry:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", port).start()
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        async def down() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FakeRegistry:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()
