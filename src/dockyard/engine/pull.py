"""Pull: a registry's image into the store, all or nothing.

The manifest is resolved (an index picks the platform), the config fetched and checked, then
the layers the store lacks are downloaded several at once into the content store while one
thread unpacks them in order, each following its download as it arrives (distribution/spool.py).
The blob is kept as the registry sent it, so a later push sends the same bytes. Any failure
removes what this pull stored; the image and its names are recorded last, in one transaction.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from dockyard import reference
from dockyard.distribution import manifest as mf
from dockyard.distribution import progress
from dockyard.distribution.auth import AuthConfig
from dockyard.distribution.client import Options, Registry, RegistryError
from dockyard.distribution.spool import Spool
from dockyard.errors import DigestMismatch, InvalidParameter, NotFound
from dockyard.image.model import chain_ids, config_diff_ids, sha256_digest
from dockyard.image.store import ImageStore, LayerRecord

from .images import ImageService

CONCURRENT_DOWNLOADS = 3
MAX_CONFIG_SIZE = 8 << 20


def new_session() -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=120)
    return aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=16), auto_decompress=False
    )


def remote_path(ref: reference.Reference) -> str:
    return ref.path


def pull_target(from_image: str, tag: str) -> reference.Reference:
    """moby's postImagesCreate: fromImage plus a tag that may be a digest."""
    try:
        ref = reference.parse_normalized(from_image)
        if tag:
            ref = ref.with_digest(tag) if ":" in tag else ref.with_tag(tag)
    except reference.InvalidReference as exc:
        raise InvalidParameter(str(exc)) from None
    return ref.with_default_tag()


@dataclass
class _Layer:
    index: int
    descriptor: mf.Descriptor
    diff_id: str
    chain_id: str
    existing: LayerRecord | None = None
    spool: Spool | None = None


class BlobSources:
    """Which repositories of which registry a blob came from or went to: a push mounts a blob
    from one of them instead of sending it (`?mount=&from=`)."""

    def __init__(self, images: ImageService) -> None:
        self.db = images.db  # its table: the last migration in content/db.py

    def add(self, registry: str, repository: str, digests: list[str]) -> None:
        with self.db.tx() as tx:
            tx.executemany(
                "INSERT OR IGNORE INTO blob_sources (digest, registry, repository) "
                "VALUES (?, ?, ?)",
                [(d, registry, repository) for d in digests],
            )

    def find(self, digest: str, registry: str) -> list[str]:
        rows = self.db.query(
            "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ?",
            (digest, registry),
        )
        return [r["repository"] for r in rows]


class PullService:
    def __init__(self, images: ImageService, options: Options, sources: BlobSources) -> None:
        self.images = images
        self.blobs = images.blobs
        self.layers = images.layers
        self.options = options
        self.sources = sources

    def pull(
        self, ref: reference.Reference, platform: str, auth: AuthConfig, emit: progress.Emit
    ) -> str:
        """Pull `ref` (with a tag or digest); returns the image ID."""
        want = mf.parse_platform(platform) if platform else mf.host_platform()
        return asyncio.run(self._pull(ref, want, auth, emit))

    async def _pull(
        self,
        ref: reference.Reference,
        want: mf.Platform,
        auth: AuthConfig,
        emit: progress.Emit,
    ) -> str:
        repo = remote_path(ref)
        async with new_session() as session:
            registry = Registry(session, ref.domain, auth, self.options)
            top_digest, manifest = await self._resolve(registry, repo, ref, want)
            emit(progress.status(f"Pulling from {repo}", ref.tag or ref.digest or ""))
            config_bytes = await self._config(registry, repo, manifest.config)
            image_id = sha256_digest(config_bytes)
            config = json.loads(config_bytes)
            diff_ids = config_diff_ids(config)
            if len(diff_ids) != len(manifest.layers):
                raise InvalidParameter(
                    f"image config lists {len(diff_ids)} layers, the manifest {len(manifest.layers)}"
                )
            chains = chain_ids(diff_ids)
            plan = [_Layer(i, d, diff_ids[i], chains[i]) for i, d in enumerate(manifest.layers)]
            previous = self.images.store.resolve(str(ref)) if ref.tag else None
            with self.layers.session() as lease:
                for layer in plan:
                    layer.existing = lease.existing(layer.chain_id)
                    short = layer.descriptor.short()
                    if layer.existing is not None:
                        emit(progress.status("Already exists", short, detail=True))
                    else:
                        emit(progress.status("Pulling fs layer", short, detail=True))
                records = await self._layers(registry, repo, plan, lease, emit)
                targets = [ref.name_only().with_digest(top_digest)]
                if ref.tag:
                    targets.insert(0, ref)
                await asyncio.get_running_loop().run_in_executor(
                    None,
                    lambda: self.images.add_image(config_bytes, records, targets=targets),
                )
            self.sources.add(
                ref.domain, repo, [d.digest for d in manifest.layers] + [manifest.config.digest]
            )
        emit(progress.status(f"Digest: {top_digest}"))
        shown = ref.familiar()
        if previous == image_id:
            emit(progress.status(f"Status: Image is up to date for {shown}"))
        else:
            emit(progress.status(f"Status: Downloaded newer image for {shown}"))
        return image_id

    async def _resolve(
        self, registry: Registry, repo: str, ref: reference.Reference, want: mf.Platform
    ) -> tuple[str, mf.Manifest]:
        """(the digest the tag names, the image manifest for our platform)."""
        wanted = ref.digest or ref.tag or "latest"
        try:
            body, content_type = await registry.get_manifest(repo, wanted)
        except RegistryError as exc:
            if exc.status == 404:
                raise NotFound(f"manifest for {ref.familiar()} not found: {exc.message}") from None
            if exc.status in (401, 403):
                raise type(exc)(
                    f"pull access denied for {ref.familiar_name}, repository does not exist or "
                    f"may require 'docker login': {exc.message}"
                ) from None
            raise
        digest = sha256_digest(body)
        if ref.digest and digest != ref.digest:
            raise DigestMismatch(f"manifest verification failed for digest {ref.digest}")
        parsed = mf.parse(body, content_type)
        if isinstance(parsed, mf.Index):
            entry = mf.choose(parsed, want)
            inner, inner_type = await registry.get_manifest(repo, entry.digest)
            if sha256_digest(inner) != entry.digest:
                raise DigestMismatch(f"manifest verification failed for digest {entry.digest}")
            parsed = mf.parse(inner, inner_type)
            if not isinstance(parsed, mf.Manifest):
                raise mf.ManifestError("invalid manifest: an index inside an index")
        return digest, parsed

    async def _config(self, registry: Registry, repo: str, desc: mf.Descriptor) -> bytes:
        if desc.size > MAX_CONFIG_SIZE:
            raise mf.ManifestError(f"image config too big: {desc.size} bytes")
        parts: list[bytes] = []
        await registry.fetch_blob(repo, desc.digest, desc.size, parts.append)
        data = b"".join(parts)
        if sha256_digest(data) != desc.digest:
            raise DigestMismatch(
                f"digest mismatch: image config {desc.digest} got {sha256_digest(data)}"
            )
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            config_diff_ids(doc)
        except ValueError as exc:
            raise InvalidParameter(f"invalid image config {desc.digest}: {exc}") from None
        return data

    async def _layers(
        self,
        registry: Registry,
        repo: str,
        plan: list[_Layer],
        lease: Any,
        emit: progress.Emit,
    ) -> list[LayerRecord]:
        missing = [layer for layer in plan if layer.existing is None]
        for layer in missing:
            layer.spool = Spool(self.blobs, layer.descriptor.digest, layer.descriptor.size)
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONCURRENT_DOWNLOADS)

        async def download(layer: _Layer) -> None:
            spool, desc = layer.spool, layer.descriptor
            assert spool is not None
            short = desc.short()
            try:
                if gate.locked():
                    emit(progress.status("Waiting", short, detail=True))
                async with gate:
                    meter = progress.Throttle(emit, "Downloading", short, desc.size)

                    def sink(chunk: bytes) -> None:
                        spool.write(chunk)
                        meter.add(len(chunk))

                    await registry.fetch_blob(repo, desc.digest, desc.size, sink)
                emit(progress.status("Verifying Checksum", short, detail=True))
                await loop.run_in_executor(None, spool.finish)
                emit(progress.status("Download complete", short, detail=True))
            except BaseException as exc:
                spool.fail(exc)
                raise

        def unpack() -> list[LayerRecord]:
            records: list[LayerRecord] = []
            parent: str | None = None
            for layer in plan:
                if layer.existing is not None:
                    record = layer.existing
                else:
                    assert layer.spool is not None
                    desc = layer.descriptor
                    reader = _Metered(layer.spool.reader(), emit, desc.short(), desc.size)
                    with reader:
                        record = lease.ingest(
                            reader,
                            parent,
                            expected_diff_id=layer.diff_id,
                            index=layer.index,
                            stored_blob=(desc.digest, desc.media_type),
                        )
                    emit(progress.status("Pull complete", desc.short(), detail=True))
                records.append(record)
                parent = record.chain_id
            return records

        tasks = [asyncio.ensure_future(download(layer)) for layer in missing]
        unpacking = loop.run_in_executor(None, unpack)
        try:
            await asyncio.gather(*tasks)
            records = await unpacking
            self._drop_blobs([layer.descriptor.digest for layer in missing])
            return records
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            for layer in missing:
                assert layer.spool is not None
                layer.spool.fail(exc)
            await asyncio.gather(*tasks, unpacking, return_exceptions=True)
            self._drop_blobs([layer.descriptor.digest for layer in missing])
            raise

    def _drop_blobs(self, digests: list[str]) -> None:
        """Blobs this pull published that no layer took (a failed pull stores nothing)."""
        with self.layers.lock:
            for digest in digests:
                with self.images.db.tx() as tx:
                    used = ImageStore.blob_in_use(tx, digest)
                if not used and self.images.store.get(digest) is None:
                    self.blobs.delete(digest)


class _Metered:
    """The unpacker's reader of a layer, reporting docker's `Extracting` progress."""

    def __init__(self, inner: Any, emit: progress.Emit, ident: str, total: int) -> None:
        self._inner = inner
        self._meter = progress.Throttle(emit, "Extracting", ident, total)

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        if data:
            self._meter.add(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer)
        if n:
            self._meter.add(n)
        return n

    def readable(self) -> bool:
        return True

    def __enter__(self) -> _Metered:
        return self

    def __exit__(self, *_: object) -> None:
        self._inner.close()
