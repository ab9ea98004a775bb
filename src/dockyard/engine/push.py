"""Push and login: the store's images to a registry, sending only the blobs it lacks.

Each layer's stored blob goes as it is (our store keeps compressed layers, so nothing is
recompressed): HEAD first; then a cross-repository mount when the blob is known to be in
another repository of the same registry; else an upload (one PUT when small, PATCH chunks when
large). The config follows, then the Docker schema2 manifest, as docker pushes it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from dockyard import reference
from dockyard.distribution import manifest as mf
from dockyard.distribution import progress
from dockyard.distribution.auth import DOCKER_HUB, AuthConfig, registry_host
from dockyard.distribution.client import Options, Registry, RegistryError
from dockyard.errors import InvalidParameter, NotFound
from dockyard.image.model import sha256_digest
from dockyard.image.store import LayerRecord

from .images import ImageService
from .pull import BlobSources, new_session

CONCURRENT_UPLOADS = 3
READ_CHUNK = 1 << 20


class PushService:
    def __init__(self, images: ImageService, options: Options, sources: BlobSources) -> None:
        self.images = images
        self.blobs = images.blobs
        self.options = options
        self.sources = sources
        self.last_sent = 0  # blob bytes the last push uploaded

    def tags_to_push(self, name: str, tag: str) -> list[reference.Reference]:
        """The references a push sends; checked before the first byte of the answer."""
        try:
            ref = reference.parse_normalized(name)
            if tag:
                ref = ref.with_tag(tag)
        except reference.InvalidReference as exc:
            raise InvalidParameter(str(exc)) from None
        if ref.digest:
            raise InvalidParameter("cannot push a digest reference")
        if ref.tag:
            if self.images.store.resolve(str(ref)) is None:
                raise NotFound(f"tag does not exist: {ref.familiar()}")
            return [ref]
        refs = [
            reference.parse_normalized(r.ref)
            for r in self.images.store.refs()
            if r.name == ref.name and r.kind == "tag"
        ]
        if not refs:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        return refs

    def push(self, refs: list[reference.Reference], auth: AuthConfig, emit: progress.Emit) -> None:
        return asyncio.run(self._push(refs, auth, emit))

    async def _push(
        self, refs: list[reference.Reference], auth: AuthConfig, emit: progress.Emit
    ) -> None:
        self.last_sent = 0
        first = refs[0]
        emit(progress.status(f"The push refers to repository [{first.name}]"))
        async with new_session() as session:
            registry = Registry(session, first.domain, auth, self.options, push=True)
            for ref in refs:
                await self._push_one(registry, ref, emit)
            self.last_sent = registry.sent

    async def _push_one(
        self, registry: Registry, ref: reference.Reference, emit: progress.Emit
    ) -> None:
        repo = ref.path
        image_id = self.images.store.resolve(str(ref))
        image = self.images.store.get(image_id) if image_id else None
        if image is None:
            raise NotFound(f"tag does not exist: {ref.familiar()}")
        layers = [self.images.store.layer(chain) for chain in image.chain_ids]
        if any(layer is None for layer in layers):
            raise NotFound(f"image {image.id} is missing a layer")
        stored: list[LayerRecord] = [layer for layer in layers if layer is not None]
        for layer in stored:
            emit(progress.status("Preparing", _short(layer.diff_id), detail=True))
        gate = asyncio.Semaphore(CONCURRENT_UPLOADS)
        done: set[str] = set()

        async def send(layer: LayerRecord) -> None:
            short = _short(layer.diff_id)
            if gate.locked():
                emit(progress.status("Waiting", short, detail=True))
            async with gate:
                if layer.blob in done:  # the same blob twice in one image
                    emit(progress.status("Layer already exists", short, detail=True))
                    return
                done.add(layer.blob)
                await self._send_blob(registry, repo, layer.blob, layer.blob_size, short, emit)

        tasks = [asyncio.ensure_future(send(layer)) for layer in stored]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        config = self.blobs.read(image.id)
        await self._send_blob(registry, repo, image.id, len(config), "", None)
        media_type, body = mf.schema2(
            image.id, len(config), [(lay.media_type, lay.blob, lay.blob_size) for lay in stored]
        )
        try:
            await registry.put_manifest(repo, ref.tag or "latest", media_type, body)
        except RegistryError as exc:
            raise RegistryError(
                f"failed to push manifest {ref.familiar()}: {exc.message}"
            ) from None
        digest = sha256_digest(body)
        self.sources.add(ref.domain, repo, [layer.blob for layer in stored] + [image.id])
        with self.images.db.tx() as tx:
            self.images._set_tag(tx, ref.name_only().with_digest(digest), image.id)
        tag = ref.tag or "latest"
        emit(progress.status(f"{tag}: digest: {digest} size: {len(body)}"))
        emit(progress.aux({"Tag": tag, "Digest": digest, "Size": len(body)}))

    async def _send_blob(
        self,
        registry: Registry,
        repo: str,
        digest: str,
        size: int,
        short: str,
        emit: progress.Emit | None,
    ) -> None:
        def say(text: str) -> None:
            if emit is not None:
                emit(progress.status(text, short, detail=True))

        try:
            if await registry.blob_exists(repo, digest):
                say("Layer already exists")
                return
            location: str | None = None
            for source in self.sources.find(digest, registry.host):
                if source == repo:
                    continue
                location = await registry.start_upload(repo, digest, mount_from=source)
                if location is None:
                    say(f"Mounted from {source}")
                    return
                break  # not mounted: the upload it opened is used for the bytes
            if location is None:
                location = await registry.start_upload(repo, digest)
            meter = progress.Throttle(emit, "Pushing", short, size) if emit else None
            path = self.blobs.path(digest)

            async def chunks(start: int, end: int) -> AsyncIterator[bytes]:
                with open(path, "rb") as f:
                    f.seek(start)
                    left = end - start
                    while left > 0:
                        data = f.read(min(READ_CHUNK, left))
                        if not data:
                            raise RegistryError(f"blob {digest} is shorter than recorded")
                        left -= len(data)
                        if meter is not None:
                            meter.add(len(data))
                        yield data

            if not os.path.exists(path):
                raise NotFound(f"blob {digest} not found")
            await registry.upload(repo, location, digest, size, chunks)
            say("Pushed")
        except RegistryError as exc:
            if exc.status in (401, 403):
                raise type(exc)(f"{exc.message}") from None
            raise


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def login(auth: AuthConfig, options: Options) -> str:
    """Check credentials against the registry; returns the host they are for."""
    host = registry_host(auth.server_address) if auth.server_address else DOCKER_HUB

    async def check() -> None:
        async with new_session() as session:
            await Registry(session, host, auth, options, push=True).login()

    asyncio.run(check())
    return host
