"""`docker save` and `docker load`: images to and from archives (docker-archive + OCI layout).

Load is all or nothing: every layer of every image in the archive is stored first, then the
images are recorded in one transaction; on any failure the layers this load added are removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from dockyard import reference
from dockyard.errors import InvalidArchive, NotFound
from dockyard.image.archive import (
    SaveImage,
    extract_archive,
    read_archive,
    write_save_archive,
)
from dockyard.image.model import chain_ids, parse_rfc3339
from dockyard.image.store import LayerRecord

from .images import ImageService, no_such_image
from .layers import LayerSession


@dataclass(frozen=True)
class SavePlan:
    images: list[SaveImage]
    chains: dict[str, str]  # diffID → the chain ID of a stored layer with that content


class _HashingReader(io.RawIOBase):
    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        self.hash.update(data)
        return len(data)


class ArchiveService:
    def __init__(self, images: ImageService, tmp_root: str) -> None:
        self.images = images
        self.store = images.store
        self.layers = images.layers
        self.tmp_root = tmp_root

    # -- save ----------------------------------------------------------------------------------
    def plan_save(self, names: list[str]) -> SavePlan:
        """Resolve every name before the first byte goes out, so errors get a status code."""
        tags: dict[str, list[str]] = {}
        order: list[str] = []

        def add(image_id: str, tag: reference.Reference | None) -> None:
            if image_id not in tags:
                tags[image_id] = []
                order.append(image_id)
            if tag is not None and not (tag.digest and not tag.tag):
                familiar = tag.with_default_tag().familiar()
                if familiar not in tags[image_id]:
                    tags[image_id].append(familiar)

        for name in names:
            parsed = reference.parse_any(name)
            if isinstance(parsed, str):
                add(self.images.resolve(parsed).id, None)
                continue
            if parsed.familiar_name == "sha256":
                add(self.images.resolve(name).id, None)
                continue
            if parsed.tag is None and parsed.digest is None:
                refs = [r for r in self.store.refs() if r.name == parsed.name]
                if not refs:
                    image_id = self.store.search(name)
                    if image_id is None:
                        raise no_such_image(name)
                    add(image_id, None)
                for ref in refs:
                    add(ref.image_id, reference.parse_normalized(ref.ref))
                continue
            image_id = self.store.resolve(str(parsed))
            if image_id is None:
                raise NotFound("reference does not exist")
            add(image_id, parsed)
        images = []
        chains: dict[str, str] = {}
        for image_id in order:
            record = self.store.get(image_id)
            if record is None:
                raise no_such_image(image_id)
            layers = [self.store.layer(chain) for chain in record.chain_ids]
            for layer in layers:
                if layer is not None:
                    chains.setdefault(layer.diff_id, layer.chain_id)
            images.append(
                SaveImage(
                    config=self.images.blobs.read(image_id),
                    repo_tags=tags[image_id],
                    layers=[(layer.diff_id, layer.tar_size) for layer in layers if layer],
                    parent=record.parent,
                )
            )
        return SavePlan(images, chains)

    def write_save(self, plan: SavePlan, out: BinaryIO) -> None:
        write_save_archive(
            out, plan.images, lambda diff_id: self.layers.open_tar(plan.chains[diff_id])
        )

    # -- load ----------------------------------------------------------------------------------
    def load(self, stream: BinaryIO) -> list[str]:
        """Load every image in the archive; returns docker's result lines."""
        os.makedirs(self.tmp_root, exist_ok=True)
        staging = tempfile.mkdtemp(prefix="load-", dir=self.tmp_root)
        try:
            extract_archive(stream, staging)
            images = read_archive(staging)
            if not images:
                raise InvalidArchive("invalid archive: it contains no images")
            targets = [[_parse_tag(tag) for tag in image.repo_tags] for image in images]
            parents = _parent_links(images)
            # All layers first, then all images: a failure anywhere stores nothing.
            with self.layers.session() as session:
                layer_sets: list[list[LayerRecord]] = []
                for image in images:
                    parent: str | None = None
                    layers: list[LayerRecord] = []
                    for index, layer in enumerate(image.layers):
                        record = self._load_layer(session, staging, layer, parent, index)
                        layers.append(record)
                        parent = record.chain_id
                    layer_sets.append(layers)
                return self._record(images, layer_sets, targets, parents)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _load_layer(
        self, session: LayerSession, staging: str, layer: Any, parent: str | None, index: int
    ) -> LayerRecord:
        chain = chain_ids([parent, layer.diff_id])[1] if parent else layer.diff_id
        existing = session.existing(chain)
        if existing is not None:
            return existing
        path = os.path.join(staging, layer.path)
        with open(path, "rb") as raw:
            hashing = _HashingReader(raw)
            source = io.BufferedReader(hashing, 1 << 20) if layer.digest else raw
            record = session.ingest(source, parent, expected_diff_id=layer.diff_id, index=index)
            if layer.digest:
                while source.read(1 << 20):
                    pass
        if layer.digest and "sha256:" + hashing.hash.hexdigest() != layer.digest:
            raise InvalidArchive(f"invalid archive: blob {layer.digest} does not match its digest")
        return record

    def _record(
        self,
        images: list[Any],
        layer_sets: list[list[LayerRecord]],
        targets: list[list[reference.Reference]],
        parents: list[str | None],
    ) -> list[str]:
        messages: list[str] = []
        id_lines: list[str] = []
        for image, layers, tags, parent in zip(images, layer_sets, targets, parents, strict=True):
            previous = {tag: self.store.resolve(str(tag.with_default_tag())) for tag in tags}
            image_id = self.images.add_image(image.config, layers, targets=tags, parent=parent)
            id_lines.append(f"Loaded image ID: {image_id}")
            for tag in tags:
                old = previous[tag]
                if old is not None and old != image_id:
                    messages.append(
                        f"The image {tag.familiar()} already exists, renaming the old one with ID "
                        f"{old} to empty string"
                    )
                messages.append(f"Loaded image: {tag.familiar()}")
        # moby's quirk, which docker-py relies on: the IDs of all images are listed only when
        # the last image in the archive has no tags.
        if not targets[-1]:
            messages.extend(id_lines)
        return messages


def _parse_tag(text: str) -> reference.Reference:
    try:
        parsed = reference.parse_normalized(text)
    except reference.InvalidReference:
        raise InvalidArchive(f'invalid tag "{text}"') from None
    if parsed.tag is None:
        raise InvalidArchive(f'invalid tag "{text}"')
    reference.check_tag_name(parsed)  # before any layer is stored
    return parsed


def _parent_links(images: list[Any]) -> list[str | None]:
    """Each image's parent, as moby's load sets it (validatedParentLinks, checkValidParent): a
    docker-archive `Parent` counts only when that image is in the same archive, and must then be
    a valid parent. Checked before any layer is stored."""
    configs = {image.image_id: json.loads(image.config) for image in images}
    links: list[str | None] = []
    for image in images:
        parent = image.parent
        if parent is None or parent == image.image_id or parent not in configs:
            links.append(None)
        elif _valid_parent(configs[image.image_id], configs[parent]):
            links.append(parent)
        else:
            raise InvalidArchive(f"image {parent} is not a valid parent for {image.image_id}")
    return links


def _valid_parent(child: dict[str, Any], parent: dict[str, Any]) -> bool:
    """The parent's history is the child's but for one last entry (creation times compared as
    instants, as moby does)."""
    child_history, parent_history = child.get("history") or [], parent.get("history") or []
    if not child_history and not parent_history:
        return True
    if len(child_history) - len(parent_history) != 1:
        return False

    def entry(item: Any) -> tuple[Any, ...]:
        if not isinstance(item, dict):
            return (item,)
        created = item.get("created")
        try:
            when: Any = parse_rfc3339(created) if created else None
        except (TypeError, ValueError):
            when = created
        fields = ("author", "created_by", "comment")
        return (when, *(item.get(k) or "" for k in fields), bool(item.get("empty_layer")))

    return all(entry(p) == entry(c) for p, c in zip(parent_history, child_history, strict=False))
