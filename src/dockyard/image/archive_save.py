"""`docker save`: the archive docker 25+ writes (OCI image layout plus docker's manifest.json).

The layout, byte for byte where we can (moby daemon/internal/image/tarexport/save.go, tarred by
go-archive's `Tar`):

    blobs/                       dir, mtime = created time of the last image saved
    blobs/sha256/                dir, mtime = epoch
    blobs/sha256/<hex>...        layers (uncompressed, digest = diffID), configs and legacy v1
                                 layer JSON (mtime = the image's created time), OCI manifests
                                 (mtime = epoch); sorted by name, like go-archive's walk
    index.json                   OCI index, one descriptor per tag (untagged: one, no names)
    manifest.json                docker's list: Config, RepoTags, Layers, [Parent], LayerSources
    oci-layout                   {"imageLayoutVersion": "1.0.0"}
    repositories                 {familiar repo: {tag: top layer diffID hex}}, only with tags

Every entry is a USTAR header with uid/gid 0, no user names, mode 0755/0644, and the archive
ends with two zero blocks and no record padding (Go's tar.Writer). The whole plan is computed
first (it is small: JSON and sizes); layers are then streamed straight from `open_layer` into
`out`, which need not be seekable, because their sizes are known before their headers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

from dockyard.errors import DigestMismatch, DockyardError
from dockyard.image.model import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    chain_ids,
    config_diff_ids,
    digest_hex,
    sha256_digest,
)
from dockyard.image.tarstream import DIR, END_OF_ARCHIVE, REG, TarHeader, encode_header

OpenLayer = Callable[[str], AbstractContextManager[BinaryIO]]

ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

_BLOCK = 512
_CHUNK = 1 << 20
_EPOCH_TEXT = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class SaveImage:
    """One image to save: its exact config bytes (their sha256 is the image ID), its familiar
    tags ("busybox:latest"), its layers as (diffID, uncompressed size) in config order, and
    optionally its parent image ID (written only if that parent is saved too, as docker does)."""

    config: bytes
    repo_tags: Sequence[str] = ()
    layers: Sequence[tuple[str, int]] = ()
    parent: str | None = None


@dataclass(frozen=True)
class SaveEntry:
    """One member of the outer tar: a directory, a small file (`data`), or a layer to stream."""

    name: str
    mtime: int
    data: bytes | None = None
    layer: tuple[str, int] | None = None  # (diffID, size) to fetch through open_layer

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def write_save_archive(out: BinaryIO, images: Sequence[SaveImage], open_layer: OpenLayer) -> None:
    """Write `images` to `out` as docker 25+'s `docker save` does. `open_layer(diff_id)` yields
    the uncompressed layer tar; it is hashed while streamed and must match its diffID and size."""
    writer = _TarWriter(out)
    for entry in plan_save_archive(images):
        if entry.is_dir:
            writer.add(entry.name, DIR, 0o755, entry.mtime, 0)
        elif entry.layer is not None:
            diff_id, size = entry.layer
            writer.add(entry.name, REG, 0o644, entry.mtime, size)
            with open_layer(diff_id) as stream:
                writer.copy_layer(stream, diff_id, size)
        else:
            assert entry.data is not None
            writer.add(entry.name, REG, 0o644, entry.mtime, len(entry.data))
            writer.write_data(entry.data)
    writer.close()


def plan_save_archive(images: Sequence[SaveImage]) -> list[SaveEntry]:
    """Every entry of the archive in order, with the JSON documents rendered (pure)."""
    images = _dedupe(images)
    blobs: dict[str, SaveEntry] = {}
    manifest_items: list[dict[str, Any]] = []
    index_descriptors: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    blobs_dir_mtime = 0
    image_ids = {sha256_digest(image.config) for image in images}

    for image in images:
        config = _parse_config(image)
        diff_ids = [diff_id for diff_id, _ in image.layers]
        created = _parse_go_time(config.get("created"))
        ts = created[0] if created else 0
        # docker chtimes blobs/ with each image's created time: the last image wins.
        blobs_dir_mtime = ts

        for blob in _legacy_v1_blobs(config, diff_ids):
            blobs.setdefault(digest_hex(sha256_digest(blob)), _blob(blob, ts))
        layer_sources: dict[str, dict[str, Any]] = {}
        for diff_id, size in image.layers:
            name = "blobs/sha256/" + digest_hex(diff_id)
            blobs.setdefault(digest_hex(diff_id), SaveEntry(name, ts, layer=(diff_id, size)))
            # The classic store always describes each layer (save.go's saveConfigAndLayer
            # fills in digest, size and media type), so LayerSources lists every layer.
            layer_sources[diff_id] = {"mediaType": OCI_LAYER, "size": size, "digest": diff_id}
        image_id = sha256_digest(image.config)
        blobs[digest_hex(image_id)] = _blob(image.config, ts)

        manifest = _go_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(image.config)},
                "layers": [
                    {"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in image.layers
                ],
            }
        )
        manifest_digest = sha256_digest(manifest)
        blobs[digest_hex(manifest_digest)] = _blob(manifest, 0)
        untagged = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}

        repo_tags: list[str] = []
        for tag in image.repo_tags:
            familiar, tag_name = split_tag(tag)
            if f"{familiar}:{tag_name}" in repo_tags:
                continue  # the same tag spelled twice ("x" and "docker.io/library/x:latest")
            repositories.setdefault(familiar, {})[tag_name] = digest_hex(diff_ids[-1])
            repo_tags.append(f"{familiar}:{tag_name}")
            index_descriptors.append(
                untagged
                | {
                    "annotations": {
                        ANNOTATION_IMAGE_NAME: f"{full_name(familiar)}:{tag_name}",
                        ANNOTATION_REF_NAME: tag_name,
                    }
                }
            )
        if not repo_tags:
            # save.go only adds an untagged image when nothing came before it (it tests the
            # shared list); we always list it, so every saved image is reachable from index.json.
            index_descriptors.append(untagged)

        item: dict[str, Any] = {
            "Config": "blobs/sha256/" + digest_hex(image_id),
            "RepoTags": repo_tags or None,
            "Layers": ["blobs/sha256/" + digest_hex(d) for d in diff_ids],
        }
        if image.parent and image.parent != image_id and image.parent in image_ids:
            item["Parent"] = image.parent
        item["LayerSources"] = dict(sorted(layer_sources.items()))
        manifest_items.append(item)

    entries = [SaveEntry("blobs/", blobs_dir_mtime), SaveEntry("blobs/sha256/", 0)]
    entries += [blobs[name] for name in sorted(blobs)]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_descriptors}
    entries.append(SaveEntry("index.json", 0, _go_json(index)))
    entries.append(SaveEntry("manifest.json", 0, _go_json(manifest_items) + b"\n"))
    entries.append(SaveEntry("oci-layout", 0, OCI_LAYOUT))
    if repositories:
        repos = {repo: dict(sorted(tags.items())) for repo, tags in sorted(repositories.items())}
        entries.append(SaveEntry("repositories", 0, _go_json(repos) + b"\n"))
    return entries


def split_tag(reference: str) -> tuple[str, str]:
    """("busybox", "latest") for "busybox:latest" or "docker.io/library/busybox"; the name is
    returned familiar (docker.io/ and library/ dropped), as docker writes it in RepoTags."""
    if "@" in reference:
        raise ValueError(f"cannot save a digest reference as a tag: {reference!r}")
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        name, tag = reference, "latest"
    for domain in ("docker.io/", "index.docker.io/"):
        if name.startswith(domain):
            name = name[len(domain) :]
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/") :]
            break
    return name, tag


def full_name(familiar: str) -> str:
    """docker.io/library/busybox for busybox: the name containerd and docker's index.json use
    (the domain rule of distribution/reference's splitDockerDomain)."""
    first, sep, _ = familiar.partition("/")
    if not sep:
        return "docker.io/library/" + familiar
    if "." in first or ":" in first or first == "localhost" or first.lower() != first:
        return familiar
    return "docker.io/" + familiar


# --- helpers -------------------------------------------------------------------------------


def _dedupe(images: Sequence[SaveImage]) -> list[SaveImage]:
    """One entry per image ID, tags merged in order (docker's parseNames does the same)."""
    merged: dict[str, SaveImage] = {}
    for image in images:
        key = sha256_digest(image.config)
        if key in merged:
            prev = merged[key]
            tags = list(dict.fromkeys([*prev.repo_tags, *image.repo_tags]))
            merged[key] = SaveImage(prev.config, tags, prev.layers, prev.parent or image.parent)
        else:
            merged[key] = SaveImage(
                image.config, list(dict.fromkeys(image.repo_tags)), image.layers, image.parent
            )
    return list(merged.values())


def _parse_config(image: SaveImage) -> dict[str, Any]:
    try:
        config = json.loads(image.config)
        if not isinstance(config, dict):
            raise ValueError("image config is not a JSON object")
        diff_ids = config_diff_ids(config)
    except ValueError as exc:
        raise DockyardError(f"cannot save image: {exc}") from exc
    if diff_ids != [diff_id for diff_id, _ in image.layers]:
        raise DockyardError("cannot save image: layers do not match the config's rootfs.diff_ids")
    if not diff_ids:
        raise DockyardError("empty export - not implemented")
    return config


def _blob(data: bytes, mtime: int) -> SaveEntry:
    return SaveEntry("blobs/sha256/" + digest_hex(sha256_digest(data)), mtime, data)


_HTML_ESCAPES = {c: f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}
_HTML_RE = re.compile("[<>&\u2028\u2029]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, `<>&` and U+2028/9 escaped, invalid
    surrogates replaced; dict order is the caller's (struct field order or sorted map keys)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group()], text)
    return _SURROGATE_RE.sub("\ufffd", text).encode()


_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\Z"
)


def _parse_go_time(value: Any) -> tuple[int, str] | None:
    """(unix seconds clamped to >= 0 as moby's Chtimes does, Go's RFC3339Nano re-rendering)."""
    if not isinstance(value, str):
        return None
    m = _TIME_RE.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    sign = -1 if zone[0] == "-" else 1
    offset = 0 if zone == "Z" else sign * (int(zone[1:3]) * 60 + int(zone[4:6]))
    try:
        tz = timezone(timedelta(minutes=offset))
        moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
        seconds = max(0, int(moment.timestamp()))
    except (ValueError, OverflowError):
        return None
    nanos = frac[:9].ljust(9, "0").rstrip("0")
    text = value[:19] + (f".{nanos}" if nanos else "") + ("Z" if offset == 0 else zone)
    return seconds, text


# --- legacy v1 layer JSON (save.go saveImage/saveConfig, image/v1 CreateID) -----------------
#
# docker still writes, per layer, the v1 "image JSON" it used before content addressing, as an
# unreferenced blob. Its ID chains layer IDs, so it is reproduced by re-encoding the config the
# way Go decodes it into moby's V1Image and container.Config structs and encodes it back.

_S, _B, _L, _SET, _MAP, _INT, _INTP, _HEALTH, _CFG = range(9)
# (JSON name, kind, omitempty), in moby's struct field order (api/types/container/config.go).
_CONTAINER_CONFIG = (
    ("Hostname", _S, False), ("Domainname", _S, False), ("User", _S, False),
    ("AttachStdin", _B, False), ("AttachStdout", _B, False), ("AttachStderr", _B, False),
    ("ExposedPorts", _SET, True), ("Tty", _B, False), ("OpenStdin", _B, False),
    ("StdinOnce", _B, False), ("Env", _L, False), ("Cmd", _L, False),
    ("Healthcheck", _HEALTH, True), ("ArgsEscaped", _B, True), ("Image", _S, False),
    ("Volumes", _SET, False), ("WorkingDir", _S, False), ("Entrypoint", _L, False),
    ("NetworkDisabled", _B, True), ("OnBuild", _L, True), ("Labels", _MAP, False),
    ("StopSignal", _S, True), ("StopTimeout", _INTP, True), ("Shell", _L, True),
)  # fmt: skip
_HEALTH_CONFIG = (
    ("Test", _L, True), ("Interval", _INT, True), ("Timeout", _INT, True),
    ("StartPeriod", _INT, True), ("StartInterval", _INT, True), ("Retries", _INT, True),
)  # fmt: skip
_V1_IMAGE = (
    ("id", _S, True), ("parent", _S, True), ("comment", _S, True), ("created", None, False),
    ("container", _S, True), ("container_config", _CFG, False), ("docker_version", _S, True),
    ("author", _S, True), ("config", _CFG, True), ("architecture", _S, True),
    ("variant", _S, True), ("os", _S, True), ("Size", _INT, True),
)  # fmt: skip
# image.Image's own fields shadow V1Image's "parent" and take these keys away from it.
_IMAGE_ONLY = ("parent", "rootfs", "history", "os.version", "os.features")


def _go_fields(obj: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Go's decoder: a key goes to the field of that exact name, else to the first field whose
    name matches case-insensitively; a later key overwrites an earlier one."""
    found: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in names else next((n for n in names if n.lower() == key.lower()), None)
        if name is not None:
            found[name] = value
    return found


def _go_empty(kind: Any, value: Any) -> bool:
    """Go's omitempty: false, 0, "", nil, and empty slices and maps (not pointers to zero)."""
    if value is None:
        return True
    if kind in (_INTP, _HEALTH, _CFG):
        return False
    if kind == _B:
        return value is False
    if kind == _INT:
        return value == 0
    return len(value) == 0


def _go_struct(obj: Any, fields: Sequence[tuple[str, Any, bool]]) -> dict[str, Any]:
    values = _go_fields(obj if isinstance(obj, dict) else {}, [f[0] for f in fields])
    out: dict[str, Any] = {}
    for name, kind, omitempty in fields:
        value = _go_value(kind, values.get(name))
        if not (omitempty and _go_empty(kind, value)):
            out[name] = value
    return out


def _go_value(kind: Any, raw: Any) -> Any:
    """The value Go decodes `raw` into for a field of `kind`, as it will encode it again.
    Mismatched types fall back to the zero value (docker would not have accepted the image)."""
    if kind == _S:
        return raw if isinstance(raw, str) else ""
    if kind == _B:
        return raw if isinstance(raw, bool) else False
    if kind == _INT:
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
    if kind == _INTP:
        return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if kind == _L:
        if isinstance(raw, str):  # strslice accepted a lone string
            return [raw]
        return [s for s in raw if isinstance(s, str)] if isinstance(raw, list) else None
    if kind == _SET:
        return {k: {} for k in sorted(raw)} if isinstance(raw, dict) else None
    if kind == _MAP:
        if not isinstance(raw, dict):
            return None
        return {k: v for k, v in sorted(raw.items()) if isinstance(v, str)}
    if kind == _HEALTH:
        return _go_struct(raw, _HEALTH_CONFIG) if isinstance(raw, dict) else None
    if kind == _CFG:
        return _container_config(raw) if isinstance(raw, dict) else None
    raise AssertionError(kind)


def _port_key(key: str) -> str:
    """network.Port's text form: "<number>/<lower-case proto>", tcp by default."""
    number, _, proto = key.partition("/")
    if not number.isdigit():
        return key
    return f"{int(number)}/{proto.lower() or 'tcp'}"


def _container_config(raw: dict[str, Any]) -> dict[str, Any]:
    config = _go_struct(raw, _CONTAINER_CONFIG)
    if "ExposedPorts" in config:
        ports = {_port_key(k): {} for k in config["ExposedPorts"]}
        config["ExposedPorts"] = dict(sorted(ports.items()))
    return config


def _v1_image(values: dict[str, Any]) -> dict[str, Any]:
    """Encode a V1Image (values already decoded), omitting empty omitempty fields."""
    out: dict[str, Any] = {}
    for name, kind, omitempty in _V1_IMAGE:
        value = values.get(name)
        if name == "container_config" and value is None:
            value = _container_config({})  # a struct, not a pointer: never omitted
        if not (omitempty and _go_empty(kind, value)):
            out[name] = value
    return out


def _legacy_v1_blobs(config: dict[str, Any], diff_ids: Sequence[str]) -> list[bytes]:
    """The v1 JSON of each layer: only the top one carries the image's V1Image fields."""
    names = [f[0] for f in _V1_IMAGE] + list(_IMAGE_ONLY)
    raw = {k: v for k, v in _go_fields(config, names).items() if k not in _IMAGE_ONLY}
    top: dict[str, Any] = {}
    for name, kind, _ in _V1_IMAGE:
        if name == "created":
            parsed = _parse_go_time(raw.get("created"))
            top[name] = parsed[1] if parsed else None
        elif name not in ("id", "parent"):
            top[name] = _go_value(kind, raw.get(name))
    os_name = top.get("os") or ""

    blobs: list[bytes] = []
    parent = ""
    for i, chain_id in enumerate(chain_ids(diff_ids)):
        values = dict(top) if i == len(diff_ids) - 1 else {"created": _EPOCH_TEXT}
        # CreateID: the V1Image without ID, plus layer_id and parent, keys sorted.
        id_doc = _v1_image(values)
        id_doc["layer_id"] = chain_id
        if parent:
            id_doc["parent"] = parent
        v1_id = sha256_digest(_go_json(dict(sorted(id_doc.items()))))
        values["id"] = digest_hex(v1_id)
        if parent:
            values["parent"] = digest_hex(parent)
        values["os"] = os_name
        blobs.append(_go_json(_v1_image(values)))
        parent = v1_id
    return blobs


# --- the tar stream ------------------------------------------------------------------------


class _TarWriter:
    """USTAR members as Go's archive/tar writes them; small writes are batched."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buffer = bytearray()

    def add(self, name: str, kind: str, mode: int, mtime: int, size: int) -> None:
        # A PAX record only when ustar cannot hold a field (a layer of 8 GiB or more).
        header = TarHeader(name=name, type=kind, mode=mode, size=size, mtime_ns=mtime * 10**9)
        self._write(encode_header(header))

    def write_data(self, data: bytes) -> None:
        self._write(data)
        self._pad(len(data))

    def copy_layer(self, stream: BinaryIO, diff_id: str, size: int) -> None:
        self._flush()
        digest = hashlib.sha256()
        remaining = size
        while remaining:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                raise DigestMismatch(
                    f"layer {diff_id}: stream ended after {size - remaining} of {size} bytes"
                )
            digest.update(chunk)
            self._out.write(chunk)
            remaining -= len(chunk)
        if stream.read(1):
            raise DigestMismatch(f"layer {diff_id}: stream is longer than {size} bytes")
        if "sha256:" + digest.hexdigest() != diff_id:
            raise DigestMismatch(f"layer {diff_id}: content has digest sha256:{digest.hexdigest()}")
        self._pad(size)

    def close(self) -> None:
        self._write(END_OF_ARCHIVE)  # Go's trailer: two zero blocks, no record padding
        self._flush()
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._write(bytes(_BLOCK - size % _BLOCK))

    def _write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= 1 << 16:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._out.write(bytes(self._buffer))
            self._buffer.clear()
