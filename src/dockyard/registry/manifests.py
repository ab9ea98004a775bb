"""Manifest checks before a manifest is stored (pure: bytes in, a parsed summary out)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .errors import RegistryError
from .names import valid_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
# Content-Types that say nothing: the body's own mediaType decides.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream"})
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass
class Manifest:
    media_type: str
    blobs: list[str] = field(default_factory=list)  # config and layers that must be present
    children: list[str] = field(default_factory=list)  # index entries that must be present
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


def _invalid(detail: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", detail)


def _descriptor(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(f"{where}: not a descriptor")
    digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType")
    if not isinstance(digest, str) or not valid_digest(digest):
        raise _invalid(f"{where}: invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}: invalid size {size!r}")
    if media_type is not None and not isinstance(media_type, str):
        raise _invalid(f"{where}: invalid mediaType")
    return value


def _skips_check(desc: dict) -> bool:
    """Non-distributable ("foreign") layers live elsewhere: the registry need not have them."""
    media_type = desc.get("mediaType") or ""
    return "nondistributable" in media_type or "foreign" in media_type


def parse_manifest(data: bytes, content_type: str) -> Manifest:
    """The manifest's type and what it references; RegistryError for anything we refuse."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise RegistryError(
            "MANIFEST_INVALID", f"manifest larger than {MAX_MANIFEST_SIZE} bytes", status=413
        )
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest is not a JSON object")
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType is not a string")
    header = content_type.split(";", 1)[0].strip().lower()
    if header in _GENERIC_TYPES:
        media_type = declared or (OCI_MANIFEST if "config" in doc else "")
        if media_type == "" and "manifests" in doc:
            media_type = OCI_INDEX
    else:
        media_type = header
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(
            "MANIFEST_INVALID", f"unsupported manifest media type {media_type or content_type!r}"
        )
    if declared is not None and declared != media_type:
        raise _invalid(f"mediaType {declared!r} does not match Content-Type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    result = Manifest(media_type)
    if media_type in IMAGE_TYPES:
        config = _descriptor(doc.get("config"), "config")
        result.blobs.append(config["digest"])
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        for i, layer in enumerate(layers):
            desc = _descriptor(layer, f"layers[{i}]")
            if not _skips_check(desc):
                result.blobs.append(desc["digest"])
        artifact_type = doc.get("artifactType") or config.get("mediaType")
    else:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("manifests must be a list")
        for i, entry in enumerate(entries):
            result.children.append(_descriptor(entry, f"manifests[{i}]")["digest"])
        artifact_type = doc.get("artifactType")
    if isinstance(artifact_type, str):
        result.artifact_type = artifact_type
    annotations = doc.get("annotations")
    if isinstance(annotations, dict):
        result.annotations = annotations
    if doc.get("subject") is not None:
        result.subject = _descriptor(doc["subject"], "subject")["digest"]
    return result


def referrer_descriptor(manifest: Manifest, digest: str, size: int) -> dict:
    """The entry the referrers API lists for a manifest with a subject."""
    desc: dict = {"mediaType": manifest.media_type, "digest": digest, "size": size}
    if manifest.artifact_type:
        desc["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        desc["annotations"] = manifest.annotations
    return desc


def references(data: bytes) -> list[str]:
    """Every digest a stored manifest points at (for the garbage collector); [] if unreadable."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(doc, dict):
        return []
    found = []
    for key in ("config",):
        if isinstance(doc.get(key), dict) and isinstance(doc[key].get("digest"), str):
            found.append(doc[key]["digest"])
    for key in ("layers", "manifests", "blobs"):
        for entry in doc.get(key) or []:
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                found.append(entry["digest"])
    return found
