"""Image use cases: import, list, inspect, history, tag, remove, prune, disk usage.

Resolution, delete conflicts and the records returned follow moby's image service, so that
clients see docker's answers (`Untagged:`/`Deleted:` records, `No such image: x:latest`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, BinaryIO

from dockyard import reference
from dockyard.content.blobs import BlobStore
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.image.changes import apply_changes
from dockyard.image.model import (
    canonical_json,
    config_diff_ids,
    new_config,
    parse_rfc3339,
    rfc3339_nano,
)
from dockyard.image.store import ImageRecord, ImageStore, LayerRecord, RefRecord

from .filters import Filters, parse_timestamp
from .layers import LayerStore

LIST_FILTERS = ("dangling", "label", "before", "since", "reference", "until")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def no_such_image(name: str) -> NotFound:
    return NotFound(f"No such image: {name}")


class ImageService:
    def __init__(self, store: ImageStore, blobs: BlobStore, layers: LayerStore) -> None:
        self.store = store
        self.db = store.db
        self.blobs = blobs
        self.layers = layers
        self._prune_running = threading.Lock()
        self.config = lru_cache(maxsize=1024)(self._config)
        # (container ID, running) of the containers made from an image; set by the engine.
        self.users: Callable[[str], list[tuple[str, bool]]] = lambda _image_id: []
        # Chain IDs that containers' writable layers are built on: kept even when no image is.
        self.layers_in_use: Callable[[], set[str]] = set

    # -- lookup --------------------------------------------------------------------------------
    def _config(self, image_id: str) -> dict[str, Any]:
        return json.loads(self.blobs.read(image_id))

    def resolve(self, ref_or_id: str) -> ImageRecord:
        """docker's GetImage: a full ID, then a name (default tag latest), then an ID prefix."""
        parsed = reference.parse_any(ref_or_id)
        if isinstance(parsed, str):  # a bare 64-hex ID or sha256:… digest
            found = self.store.get(parsed)
            if found is None:
                raise no_such_image(parsed)
            return found
        image_id = self.store.resolve(str(parsed.with_default_tag()))
        if image_id is not None and (found := self.store.get(image_id)) is not None:
            return found
        prefix = self.store.search(ref_or_id)
        if prefix is not None and (found := self.store.get(prefix)) is not None:
            return found
        raise no_such_image(parsed.with_default_tag().familiar())

    def refs_of(self, image_id: str) -> tuple[list[str], list[str]]:
        """(RepoTags, RepoDigests) in familiar form."""
        tags, digests = [], []
        for ref in self.store.refs(image_id):
            familiar = reference.parse_normalized(ref.ref).familiar()
            (tags if ref.kind == "tag" else digests).append(familiar)
        return tags, digests

    # -- import --------------------------------------------------------------------------------
    def import_image(
        self,
        stream: BinaryIO,
        *,
        repo: str = "",
        tag: str = "",
        message: str = "",
        changes: list[str] | None = None,
        platform: str = "",
    ) -> str:
        """`POST /images/create?fromSrc=-`: one layer from a (compressed) tar, a new config."""
        target = reference.parse_repo_tag(repo, tag)
        if target is not None:
            reference.check_tag_name(target)  # before the layer is stored, not after
        os_name, arch = _platform(platform)
        container_config = apply_changes({}, changes or [])
        with self.layers.session() as session:
            layer = session.ingest(stream, None)
            now = rfc3339_nano(time.time_ns())
            config = new_config(
                diff_ids=[layer.diff_id],
                created=now,
                history=[{"created": now, **({"comment": message} if message else {})}],
                config=container_config,
                architecture=arch,
                os_name=os_name,
                extra={"comment": message} if message else None,
            )
            targets = [target] if target else []
            return self.add_image(canonical_json(config), [layer], targets=targets)

    def add_image(
        self,
        config_bytes: bytes,
        layers: list[LayerRecord],
        *,
        targets: list[reference.Reference] = (),  # type: ignore[assignment]
        parent: str | None = None,
    ) -> str:
        """Record an image whose layers are stored (and leased by the caller's layer session);
        tag it. Returns the image ID."""
        config = json.loads(config_bytes)
        if [layer.diff_id for layer in layers] != config_diff_ids(config):
            raise InvalidParameter("image config does not match its layers")
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        created = config.get("created") or ""
        record = ImageRecord(
            id=image_id,
            created=created,
            created_unix=parse_rfc3339(created) if created else 0.0,
            parent=parent,
            size=sum(layer.size for layer in layers),
            last_tag_time="",
            chain_ids=[layer.chain_id for layer in layers],
        )
        with self.layers.lock:  # a concurrent rmi of the same image deletes row and blob together
            self.blobs.put(config_bytes, expected=image_id)
            try:
                with self.db.tx() as tx:
                    ImageStore.add_image(tx, record)
                    for target in targets:
                        self._set_tag(tx, target, image_id)
            except BaseException:
                if self.store.get(image_id) is None:
                    self.blobs.delete(image_id)
                raise
        return image_id

    def _set_tag(self, tx: Any, target: reference.Reference, image_id: str) -> str | None:
        ref = target.with_default_tag()
        kind = "digest" if ref.digest and not ref.tag else "tag"
        return ImageStore.set_ref(
            tx, RefRecord(str(ref), ref.name, kind, image_id), rfc3339_nano(time.time_ns())
        )

    # -- tag -----------------------------------------------------------------------------------
    def tag(self, ref_or_id: str, repo: str, tag: str) -> None:
        target = reference.parse_repo_tag(repo, tag)
        if target is None:
            raise InvalidParameter("invalid reference format")
        reference.check_tag_name(target)
        image = self.resolve(ref_or_id)
        with self.db.tx() as tx:
            self._set_tag(tx, target, image.id)

    # -- inspect and history -------------------------------------------------------------------
    def inspect(self, ref_or_id: str) -> dict[str, Any]:
        image = self.resolve(ref_or_id)
        config = self.config(image.id)
        tags, digests = self.refs_of(image.id)
        history = config.get("history") or []
        comment = config.get("comment") or (history[-1].get("comment", "") if history else "")
        top = image.top_layer
        return {
            "Id": image.id,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": image.parent or "",
            "Comment": comment,
            "Created": config.get("created", ""),
            "DockerVersion": config.get("docker_version", ""),
            "Author": config.get("author", ""),
            "Config": config.get("config") or {},
            "Architecture": config.get("architecture", ""),
            **({"Variant": config["variant"]} if config.get("variant") else {}),
            "Os": config.get("os", ""),
            **({"OsVersion": config["os.version"]} if config.get("os.version") else {}),
            "Size": image.size,
            "GraphDriver": {
                "Data": self.layers.driver_data(top) if top else None,
                "Name": self.layers.snapshots.driver,
            },
            "RootFS": {"Type": "layers", "Layers": config_diff_ids(config)}
            if image.chain_ids
            else {"Type": "layers"},
            "Metadata": {"LastTagTime": image.last_tag_time or "0001-01-01T00:00:00Z"},
        }

    def history(self, ref_or_id: str) -> list[dict[str, Any]]:
        image = self.resolve(ref_or_id)
        config = self.config(image.id)
        sizes = [layer.size for layer in map(self.store.layer, image.chain_ids) if layer]
        items: list[dict[str, Any]] = []
        layer_index = 0
        for entry in config.get("history") or []:
            size = 0
            if not entry.get("empty_layer"):
                if layer_index >= len(sizes):
                    raise InvalidParameter("too many non-empty layers in History section")
                size = sizes[layer_index]
                layer_index += 1
            created = entry.get("created")
            items.insert(
                0,
                {
                    "Id": "<missing>",
                    "Created": int(parse_rfc3339(created)) if created else 0,
                    "CreatedBy": entry.get("created_by", ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": entry.get("comment", ""),
                },
            )
        current: ImageRecord | None = image
        for item in items:
            if current is None:
                break
            item["Id"] = current.id
            item["Tags"] = self.refs_of(current.id)[0] or None
            current = self.store.get(current.parent) if current.parent else None
        return items

    # -- list ----------------------------------------------------------------------------------
    def summary(self, image: ImageRecord, tags: list[str], digests: list[str]) -> dict[str, Any]:
        config = self.config(image.id)
        return {
            "Containers": -1,
            "Created": int(image.created_unix),
            "Id": image.id,
            "Labels": (config.get("config") or {}).get("Labels"),
            "ParentId": image.parent or "",
            "RepoDigests": digests,
            "RepoTags": tags,
            "SharedSize": -1,
            "Size": image.size,
        }

    def list(
        self, *, all_images: bool = False, filters: Filters | None = None, shared_size: bool = False
    ) -> list[dict[str, Any]]:
        filters = filters or Filters()
        filters.validate(LIST_FILTERS)
        dangling_only = filters.get_bool("dangling", False)
        before = min((self._created(v) for v in filters.get("before")), default=None)
        for value in filters.get("until"):
            stamp = _until(value)
            before = stamp if before is None else min(before, stamp)
        since = max((self._created(v) for v in filters.get("since")), default=None)
        images = self.store.all()
        parents = self.store.parents_with_children()
        refs: dict[str, list[RefRecord]] = {}
        for ref in self.store.refs():
            refs.setdefault(ref.image_id, []).append(ref)
        patterns = filters.get("reference")
        result = []
        for image in images:
            if dangling_only and image.id in parents:
                continue
            if before is not None and not image.created_unix < before:
                continue
            if since is not None and not image.created_unix > since:
                continue
            if "label" in filters and not filters.match_kv(
                "label", (self.config(image.id).get("config") or {}).get("Labels")
            ):
                continue
            tags, digests = [], []
            for ref in refs.get(image.id, []):
                parsed = reference.parse_normalized(ref.ref)
                if patterns and not _ref_matches(parsed, patterns):
                    continue
                (tags if ref.kind == "tag" else digests).append(parsed.familiar())
            if not tags and not digests:
                if all_images or image.id not in parents:
                    if "dangling" in filters and not dangling_only:
                        continue
                    if patterns:
                        continue
                else:
                    continue
            elif dangling_only and tags:
                continue
            result.append(self.summary(image, tags, digests))
        if shared_size:
            self._shared_sizes(result)
        result.sort(key=lambda s: s["Created"], reverse=True)
        return result

    def _created(self, ref_or_id: str) -> float:
        return self.resolve(ref_or_id).created_unix

    def _shared_sizes(self, summaries: list[dict[str, Any]]) -> None:
        users: dict[str, int] = {}
        images = {image.id: image for image in self.store.all()}
        for image in images.values():
            for chain in image.chain_ids:
                users[chain] = users.get(chain, 0) + 1
        layers = self.store.layers()
        for summary in summaries:
            chains = images[summary["Id"]].chain_ids
            summary["SharedSize"] = sum(layers[c].size for c in chains if users[c] > 1)

    # -- remove --------------------------------------------------------------------------------
    def delete(self, ref_or_id: str, *, force: bool = False, prune: bool = True) -> list[dict]:
        image = self.resolve(ref_or_id)
        records: list[dict[str, str]] = []
        refs = self.store.refs(image.id)
        removed_repository_ref = False
        if not _is_id_prefix(image.id, ref_or_id):
            users = self.users(image.id)
            if not force and _single_reference(refs) and users:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{ref_or_id}" (must force) '
                    f"- container {users[0][0][:12]} is using its referenced image "
                    f"{short_id(image.id)}"
                )
            named = reference.parse_normalized(ref_or_id).with_default_tag()
            with self.db.tx() as tx:
                ImageStore.delete_ref(tx, str(named))
            records.append({"Untagged": named.familiar()})
            refs = self.store.refs(image.id)
            if not named.digest and not any(r.kind == "tag" and r.name == named.name for r in refs):
                # The last tag of a repository went: its digest references go with it.
                remaining = []
                for ref in refs:
                    if ref.kind == "digest" and ref.name == named.name:
                        with self.db.tx() as tx:
                            ImageStore.delete_ref(tx, ref.ref)
                        records.append({"Untagged": reference.parse_normalized(ref.ref).familiar()})
                    else:
                        remaining.append(ref)
                refs = remaining
            if refs:
                return records
            removed_repository_ref = True
        elif _single_reference(refs):
            conflict = self._conflict(image.id, hard=True, soft=not force, references=False)
            if conflict:
                raise conflict
            for ref in refs:
                with self.db.tx() as tx:
                    ImageStore.delete_ref(tx, ref.ref)
                records.append({"Untagged": reference.parse_normalized(ref.ref).familiar()})
        self._delete_helper(image.id, records, force, prune, quiet=removed_repository_ref)
        return records

    def _conflict(
        self, image_id: str, *, hard: bool, soft: bool, references: bool = True
    ) -> Conflict | None:
        """moby's checkImageDeleteConflict: child images and running containers are hard
        conflicts; tags and stopped containers soft ones (`force` overrides those)."""
        short = short_id(image_id)
        if hard and self.store.children(image_id):
            return Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - "
                "image has dependent child images"
            )
        users = self.users(image_id)
        running = [cid for cid, up in users if up]
        if hard and running:
            return Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - "
                f"image is being used by running container {running[0][:12]}"
            )
        if soft and references and self.store.refs(image_id):
            return Conflict(
                f"conflict: unable to delete {short} (must be forced) - "
                "image is referenced in multiple repositories"
            )
        stopped = [cid for cid, up in users if not up]
        if soft and stopped:
            return Conflict(
                f"conflict: unable to delete {short} (must be forced) - "
                f"image is being used by stopped container {stopped[0][:12]}"
            )
        return None

    def _delete_helper(
        self, image_id: str, records: list[dict], force: bool, prune: bool, quiet: bool
    ) -> None:
        conflict = self._conflict(image_id, hard=True, soft=not force)
        if conflict is not None:
            # moby: after an untag, a conflict is quiet unless the image is dangling and unused
            if quiet and (not self._is_dangling(image_id) or self.users(image_id)):
                return
            raise conflict
        image = self.store.get(image_id)
        if image is None:
            return
        # Under the layer lock: an import or load of the same layers waits, or is waited for.
        with self.layers.lock:
            with self.db.tx() as tx:
                for ref in self.store.refs(image_id):
                    ImageStore.delete_ref(tx, ref.ref)
                    records.append({"Untagged": reference.parse_normalized(ref.ref).familiar()})
                keep = self.layers.leased() | self.layers_in_use()
                released = ImageStore.delete_image(tx, image_id, keep=keep)
            self.config.cache_clear()
            self.layers.remove_files(released)
            self.blobs.delete(image_id)
        records.append({"Deleted": image_id})
        records.extend({"Deleted": layer.chain_id} for layer in released)
        if prune and image.parent:
            self._delete_helper(image.parent, records, False, True, quiet=True)

    def _is_dangling(self, image_id: str) -> bool:
        return not self.store.refs(image_id) and not self.store.children(image_id)

    # -- prune and disk usage ------------------------------------------------------------------
    def prune(self, filters: Filters | None = None) -> dict[str, Any]:
        filters = filters or Filters()
        if not self._prune_running.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            filters.validate(PRUNE_FILTERS)
            dangling_only = filters.get_bool("dangling", True)
            untils = filters.get("until")
            if len(untils) > 1:
                raise InvalidParameter("more than one until filter specified")
            until = _until(untils[0]) if untils else None
            layers = self.store.layers()
            parents = self.store.parents_with_children()
            deleted: list[dict[str, str]] = []
            for image in self.store.all():
                if dangling_only and image.id in parents:
                    continue
                refs = self.store.refs(image.id)
                if not refs and image.id in parents:
                    continue
                if until is not None and image.created_unix > until:
                    continue
                labels = (self.config(image.id).get("config") or {}).get("Labels")
                if not filters.match_kv("label", labels):
                    continue
                if "label!" in filters and filters.match_kv("label!", labels):
                    continue
                targets: list[str]
                if refs:
                    has_tag = any(r.kind == "tag" for r in refs)
                    targets = [r.ref for r in refs] if (not dangling_only or not has_tag) else []
                else:
                    targets = [image.id.removeprefix("sha256:")]
                for target in targets:
                    try:
                        deleted.extend(self.delete(target, prune=True))
                    except (Conflict, NotFound):
                        continue
            reclaimed = sum(
                layers[d["Deleted"]].size for d in deleted if d.get("Deleted") in layers
            )
            return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
        finally:
            self._prune_running.release()

    def disk_usage(self) -> dict[str, Any]:
        summaries = self.list(all_images=True, shared_size=True)
        for summary in summaries:
            summary["Containers"] = 0
        layers_size = sum(layer.size for layer in self.store.layers().values())
        return {"LayersSize": layers_size, "Images": summaries}


def _platform(platform: str) -> tuple[str, str]:
    if not platform:
        return "linux", "amd64"
    parts = platform.split("/")
    if parts[0].lower() != "linux":  # moby's image.CheckOS, word for word
        raise InvalidParameter("operating system is not supported")
    return "linux", parts[1] if len(parts) > 1 else "amd64"


def _until(value: str) -> float:
    try:
        return parse_timestamp(value)
    except InvalidParameter as exc:
        raise InvalidParameter(f"invalid value for 'until' filter: {exc}") from None


def _ref_matches(ref: reference.Reference, patterns: list[str]) -> bool:
    targets = [ref.familiar(), ref.familiar_name, str(ref.with_default_tag()), ref.name]
    return any(_path_match(p, t) for p in patterns for t in targets)


def _path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: like fnmatch, but `*` and `?` never match a `/`."""
    pattern_parts, name_parts = pattern.split("/"), name.split("/")
    return len(pattern_parts) == len(name_parts) and all(
        fnmatchcase(n, p) for p, n in zip(pattern_parts, name_parts, strict=True)
    )


def _is_id_prefix(image_id: str, candidate: str) -> bool:
    return image_id.startswith(candidate) or image_id.removeprefix("sha256:").startswith(candidate)


def _single_reference(refs: list[RefRecord]) -> bool:
    """All references are in one repository and there is at most one tag."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.kind == "tag"]
    if len(tags) > 1:
        return False
    single = tags[0] if tags else refs[0]
    digest_names = {r.name for r in refs if r.kind == "digest"}
    return len(digest_names) == 1 and single.name in digest_names
