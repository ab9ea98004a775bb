"""`docker load`: parse an extracted archive into the images it holds (no layer is applied here).

Two formats:

- docker-archive: `manifest.json`, a list of {Config, RepoTags, Layers[, Parent, LayerSources]}
  with paths into the archive: the old layout (`<v1 id>/layer.tar`, `<image id>.json`), the one
  docker 25+ writes (`blobs/sha256/<hex>`) and skopeo's (`<diffID hex>.tar`, `<id>.json`).
  When an archive has both manifest.json and index.json (docker 25+), manifest.json wins, as in
  moby's tarexport/load.go.
- OCI image layout (`oci-layout` + `index.json`, no manifest.json), as containerd imports it for
  docker: nested indexes are followed to the manifest of the wanted platform, and an image is
  named by `io.containerd.image.name`, else by `org.opencontainers.image.ref.name` taken as is
  (containerd's default: no prefix is combined with it; docker then parses it as a reference).

Everything is checked before the engine touches a layer: JSON shapes, the config's
rootfs.diff_ids against the layers, every referenced file existing inside the directory (symlinks
are resolved and must stay inside), the digest of each config (and, in OCI layouts, of each
index and manifest, and the size of each layer blob). Layer contents are not hashed here: the
engine hashes each layer while it applies it, streaming.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArchive
from dockyard.image.model import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    config_diff_ids,
    is_digest,
)

MANIFEST_JSON = "manifest.json"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
MAX_JSON = 16 << 20  # manifests, indexes and configs are small; refuse to read giant ones
MAX_METADATA = 256 << 20  # all of them together, each file counted once
MAX_INDEX_DEPTH = 8

_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
_INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
_CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)
LAYER_MEDIA_TYPES = frozenset(
    (
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    )
)
_HEX64 = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class LoadLayer:
    """A layer file inside the staging directory. `diff_id` comes from the config (the engine
    checks it while applying). In OCI layouts `digest` and `media_type` describe the blob
    (possibly gzip or zstd compressed); for docker-archives both are None: sniff the file."""

    path: str
    diff_id: str
    digest: str | None = None
    media_type: str | None = None


@dataclass(frozen=True)
class LoadImage:
    """One image of the archive: exact config bytes, layers bottom-up, names as found."""

    config: bytes
    layers: list[LoadLayer]
    repo_tags: list[str] = field(default_factory=list)
    parent: str | None = None  # docker-archive `Parent` (an image ID), if any

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


def read_archive(dest: str, platform_spec: str | None = None) -> list[LoadImage]:
    """The images of the archive extracted in `dest`. `platform_spec` ("linux/amd64",
    "linux/arm64/v8") picks a manifest from multi-platform OCI indexes; default: the host."""
    files = _Files(os.path.realpath(dest))
    if _find(files.root, MANIFEST_JSON) is not None:
        return _read_docker_archive(files)
    layout = _find(files.root, "oci-layout")
    if layout is None:
        raise InvalidArchive(f"invalid archive: does not contain a {MANIFEST_JSON}")
    return _OciLayout(files, _parse_platform(platform_spec)).read(layout)


class _Files:
    """The archive's small files (JSON), each read once and all within a total budget: a
    hostile manifest may list one big config a million times, or a thousand big configs."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._cache: dict[str, bytes] = {}
        self._total = 0

    def read(self, path: str, name: str) -> bytes:
        data = self._cache.get(path)
        if data is None:
            data = _read_small(path, name)
            self._total += len(data)
            if self._total > MAX_METADATA:
                raise InvalidArchive(
                    f"invalid archive: more than {MAX_METADATA >> 20} MiB of manifests and configs"
                )
            self._cache[path] = data
        return data


# --- docker-archive ------------------------------------------------------------------------


def _read_docker_archive(files: _Files) -> list[LoadImage]:
    root = files.root
    path = _find(root, MANIFEST_JSON)
    assert path is not None
    try:
        manifest = json.loads(files.read(path, MANIFEST_JSON))
    except (ValueError, RecursionError) as exc:
        raise InvalidArchive(f"invalid archive: failed to decode {MANIFEST_JSON}: {exc}") from None
    if manifest is None:
        raise InvalidArchive("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(manifest, list):
        raise InvalidArchive(f"invalid archive: failed to decode {MANIFEST_JSON}: not a list")

    images = []
    parsed: dict[str, list[str]] = {}  # config path -> its diff_ids, checked once
    for n, raw in enumerate(manifest):
        item = _fold_keys(raw, ("Config", "RepoTags", "Layers", "Parent", "LayerSources"))
        where = f"{MANIFEST_JSON} entry {n}"
        config_name = item.get("Config")
        layer_names = item.get("Layers") or []
        repo_tags = item.get("RepoTags") or []
        parent = item.get("Parent") or None
        if not isinstance(config_name, str) or not config_name:
            raise InvalidArchive(f"invalid archive: {where} has no Config")
        if not _is_str_list(layer_names) or not _is_str_list(repo_tags):
            raise InvalidArchive(f"invalid archive: {where}: Layers and RepoTags must be lists")
        if parent is not None and not (isinstance(parent, str) and is_digest(parent)):
            raise InvalidArchive(f"invalid archive: {where}: invalid Parent {parent!r}")

        config_path = _inside(root, config_name)
        config = files.read(config_path, config_name)
        if config_path not in parsed:
            _check_named_digest(config_name, config)
            parsed[config_path] = _config_diff_ids(config, config_name)
        diff_ids = parsed[config_path]
        if len(layer_names) != len(diff_ids):
            raise InvalidArchive(
                "invalid manifest, layers length mismatch: "
                f"expected {len(layer_names)}, got {len(diff_ids)}"
            )
        layers = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            layer_path = _inside(root, name)
            _regular_size(layer_path, name)
            layers.append(LoadLayer(layer_path, diff_id))
        images.append(LoadImage(config, layers, list(repo_tags), parent))
    return images


def _check_named_digest(name: str, data: bytes) -> None:
    """Configs named by their digest (`<hex>.json`, `blobs/sha256/<hex>`) must match it."""
    base = os.path.basename(name)
    hexpart = base[: -len(".json")] if base.endswith(".json") else base
    if not _HEX64.fullmatch(hexpart):
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual != hexpart:
        raise InvalidArchive(f"invalid archive: {name}: content has digest sha256:{actual}")


# --- OCI image layout ----------------------------------------------------------------------


class _OciLayout:
    def __init__(self, files: _Files, want: tuple[str, str, str]) -> None:
        self.files = files
        self.root = files.root
        self.want = want
        self._selected: dict[str, dict[str, Any]] = {}  # index digest -> chosen manifest
        self._verified: set[tuple[str, int]] = set()  # hash each blob once, however shared

    def read(self, layout_path: str) -> list[LoadImage]:
        layout = _json(self.files.read(layout_path, "oci-layout"), "oci-layout", dict)
        version = layout.get("imageLayoutVersion")
        if version != "1.0.0":
            raise InvalidArchive(f"invalid archive: unsupported OCI version {version}")
        index_path = _find(self.root, "index.json")
        if index_path is None:
            raise InvalidArchive("invalid archive: missing index.json in OCI layout 1.0.0")
        index = _json(self.files.read(index_path, "index.json"), "index.json", dict)
        descriptors = self._manifests(index, "index.json")

        # docker lists one descriptor per tag, all for the same manifest: one image, many names.
        found: dict[str, tuple[LoadImage, list[str]]] = {}
        for desc in descriptors:
            media_type = desc.get("mediaType")
            if media_type in _MANIFESTS:
                if not self._platform_score(desc.get("platform")):
                    continue  # a per-platform manifest listed at the top, for another platform
                manifest_desc = desc
            elif media_type in _INDEXES:
                if desc["digest"] not in self._selected:
                    self._selected[desc["digest"]] = self._select(desc, depth=1, seen=set())
                manifest_desc = self._selected[desc["digest"]]
            else:
                continue  # artifacts, signatures: nothing docker would load
            digest = manifest_desc["digest"]
            if digest not in found:
                found[digest] = (self._image(manifest_desc), [])
            annotations = desc.get("annotations")
            annotations = annotations if isinstance(annotations, dict) else {}
            name = annotations.get(ANNOTATION_IMAGE_NAME) or annotations.get(ANNOTATION_REF_NAME)
            if isinstance(name, str) and name and name not in found[digest][1]:
                found[digest][1].append(name)
        if not found:
            raise InvalidArchive(
                f"invalid archive: index.json holds no image for {'/'.join(filter(None, self.want))}"
            )
        return [LoadImage(image.config, image.layers, names) for image, names in found.values()]

    def _manifests(self, index: dict[str, Any], where: str) -> list[dict[str, Any]]:
        if index.get("schemaVersion") != 2:
            raise InvalidArchive(f"invalid archive: {where}: schemaVersion must be 2")
        manifests = index.get("manifests")
        if not isinstance(manifests, list):
            raise InvalidArchive(f"invalid archive: {where}: manifests must be a list")
        for desc in manifests:
            _check_descriptor(desc, where)
        return manifests

    def _select(self, desc: dict[str, Any], depth: int, seen: set[str]) -> dict[str, Any]:
        """The manifest descriptor for our platform under the index `desc` (nested ok)."""
        digest = desc["digest"]
        if depth > MAX_INDEX_DEPTH or digest in seen:
            raise InvalidArchive(f"invalid archive: index {digest} nests too deep or loops")
        seen.add(digest)
        where = f"index {digest}"
        index = _json(self._blob(desc), where, dict)
        children = self._manifests(index, where)
        best, best_score = None, 0
        for candidate in children:
            score = self._platform_score(candidate.get("platform"))
            kind = candidate.get("mediaType")
            if score > best_score and (kind in _MANIFESTS or kind in _INDEXES):
                best, best_score = candidate, score
        if best is None:
            raise InvalidArchive(
                "invalid archive: no matching manifest for "
                f"{'/'.join(filter(None, self.want))} in the manifest list entries"
            )
        if best["mediaType"] in _INDEXES:
            return self._select(best, depth + 1, seen)
        return best

    def _platform_score(self, plat: Any) -> int:
        """0: another platform. 3: os, arch and variant match (arm64's "" is v8); 2: os and
        arch match, the variant is absent on one side; 1: no platform given (single-platform
        layouts omit it). The first best candidate wins, as in containerd's matcher order."""
        if plat is None:
            return 1
        if not isinstance(plat, dict):
            return 0
        want_os, want_arch, want_variant = self.want
        if plat.get("os") != want_os or plat.get("architecture") != want_arch:
            return 0
        variant = plat.get("variant") or ""
        if variant == want_variant or (want_arch == "arm64" and variant in ("", "v8")):
            return 3
        return 2 if not variant or not want_variant else 0

    def _image(self, desc: dict[str, Any]) -> LoadImage:
        digest = desc["digest"]
        manifest = _json(self._blob(desc), f"manifest {digest}", dict)
        if manifest.get("schemaVersion") != 2:
            raise InvalidArchive(f"invalid archive: manifest {digest}: schemaVersion must be 2")
        config_desc = manifest.get("config")
        layer_descs = manifest.get("layers")
        _check_descriptor(config_desc, f"manifest {digest}")
        if config_desc.get("mediaType") not in _CONFIGS:
            raise InvalidArchive(
                f"invalid archive: manifest {digest}: unsupported config media type "
                f"{config_desc.get('mediaType')!r}"
            )
        if not isinstance(layer_descs, list):
            raise InvalidArchive(f"invalid archive: manifest {digest}: layers must be a list")
        config = self._blob(config_desc)
        diff_ids = _config_diff_ids(config, f"config {config_desc['digest']}")
        if len(layer_descs) != len(diff_ids):
            raise InvalidArchive(
                "invalid manifest, layers length mismatch: "
                f"expected {len(layer_descs)}, got {len(diff_ids)}"
            )
        layers = []
        for layer_desc, diff_id in zip(layer_descs, diff_ids, strict=True):
            _check_descriptor(layer_desc, f"manifest {digest}")
            media_type = layer_desc["mediaType"]
            if media_type not in LAYER_MEDIA_TYPES:
                raise InvalidArchive(
                    f"invalid archive: layer {layer_desc['digest']}: "
                    f"unsupported media type {media_type!r}"
                )
            path, name = self._blob_path(layer_desc["digest"])
            size = _regular_size(path, name)
            if size != layer_desc["size"]:
                raise InvalidArchive(
                    f"invalid archive: {name}: size {size}, expected {layer_desc['size']}"
                )
            layers.append(LoadLayer(path, diff_id, layer_desc["digest"], media_type))
        return LoadImage(config, layers)

    def _blob_path(self, digest: str) -> tuple[str, str]:
        algorithm, _, encoded = digest.partition(":")
        name = f"blobs/{algorithm}/{encoded}"
        return _inside(self.root, name), name

    def _blob(self, desc: dict[str, Any]) -> bytes:
        """A small blob, checked against its descriptor's size and digest."""
        path, name = self._blob_path(desc["digest"])
        data = self.files.read(path, name)
        if (desc["digest"], desc["size"]) not in self._verified:
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if len(data) != desc["size"] or actual != desc["digest"]:
                raise InvalidArchive(
                    f"invalid archive: {name}: content has digest {actual} and size "
                    f"{len(data)}, expected {desc['digest']} and size {desc['size']}"
                )
            self._verified.add((desc["digest"], desc["size"]))
        return data


def _check_descriptor(desc: Any, where: str) -> None:
    if not isinstance(desc, dict):
        raise InvalidArchive(f"invalid archive: {where}: descriptor is not an object")
    digest, size = desc.get("digest"), desc.get("size")
    if not isinstance(digest, str) or not is_digest(digest):
        if isinstance(digest, str) and digest.partition(":")[0] not in ("", "sha256"):
            raise InvalidArchive(f"invalid archive: {where}: unsupported digest {digest!r}")
        raise InvalidArchive(f"invalid archive: {where}: invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArchive(f"invalid archive: {where}: invalid size for {digest}")
    if not isinstance(desc.get("mediaType"), str):
        raise InvalidArchive(f"invalid archive: {where}: descriptor {digest} has no mediaType")


def _parse_platform(spec: str | None) -> tuple[str, str, str]:
    if spec is None:
        machine = platform.machine().lower()
        arch, variant = {
            "x86_64": ("amd64", ""),
            "amd64": ("amd64", ""),
            "aarch64": ("arm64", "v8"),
            "arm64": ("arm64", "v8"),
            "armv7l": ("arm", "v7"),
            "armv6l": ("arm", "v6"),
            "i386": ("386", ""),
            "i686": ("386", ""),
        }.get(machine, (machine, ""))
        return "linux", arch, variant
    parts = spec.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"invalid platform {spec!r}: want os/arch[/variant]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


# --- shared --------------------------------------------------------------------------------


def _find(root: str, name: str) -> str | None:
    """Path of a top-level file that exists (after symlinks inside root), else None."""
    path = _inside(root, name)
    return path if os.path.exists(path) else None


def _inside(root: str, name: str) -> str:
    """`name` resolved under root; symlinks followed, but the result must stay inside root
    (moby's safePath is FollowSymlinkInScope: same rule, stated as an error here)."""
    if not isinstance(name, str) or "\x00" in name or not name:
        raise InvalidArchive(f"invalid archive: invalid path {name!r}")
    joined = os.path.join(root, name.lstrip("/"))
    try:
        path = os.path.realpath(joined, strict=True)
    except FileNotFoundError:
        path = os.path.realpath(joined)  # reported as missing by whoever opens it
    except OSError as exc:  # ELOOP: a symlink cycle
        raise InvalidArchive(f"invalid archive: open {name}: {exc.strerror}") from None
    if path != root and not path.startswith(root + os.sep):
        raise InvalidArchive(f"invalid archive: path {name!r} leads outside the archive")
    return path


def _regular_size(path: str, name: str) -> int:
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        raise InvalidArchive(f"open {name}: no such file or directory")
    return st.st_size


def _read_small(path: str, name: str) -> bytes:
    size = _regular_size(path, name)
    if size > MAX_JSON:
        raise InvalidArchive(f"invalid archive: {name} is too large ({size} bytes)")
    with open(path, "rb") as f:
        return f.read(MAX_JSON + 1)


def _json(data: bytes, where: str, kind: type) -> Any:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidArchive(f"invalid archive: failed to decode {where}: {exc}") from None
    if not isinstance(value, kind):
        raise InvalidArchive(
            f"invalid archive: failed to decode {where}: not a JSON {kind.__name__}"
        )
    return value


def _config_diff_ids(config: bytes, where: str) -> list[str]:
    doc = _json(config, where, dict)
    if doc.get("rootfs") is None:
        raise InvalidArchive("invalid image JSON, no RootFS key")
    try:
        diff_ids = config_diff_ids(doc)
    except ValueError as exc:
        raise InvalidArchive(f"invalid archive: {where}: {exc}") from None
    os_name = doc.get("os") or "linux"
    if os_name != "linux":
        raise InvalidArchive(f"cannot load {os_name} image on linux")
    return diff_ids


def _fold_keys(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Go's decoder matches struct fields case-insensitively (exact match preferred)."""
    if not isinstance(obj, dict):
        raise InvalidArchive(f"invalid archive: failed to decode {MANIFEST_JSON}: not an object")
    found: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in names else next((n for n in names if n.lower() == key.lower()), None)
        if name is not None:
            found[name] = value
    return found


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
