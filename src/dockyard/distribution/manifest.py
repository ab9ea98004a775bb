"""Manifests and indexes as registries serve them: parsing (hostile input), media-type
negotiation, platform matching, and the Docker schema2 manifest that a push sends.

Pure functions over bytes and dicts; the HTTP client is in client.py.
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidParameter
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
    canonical_json,
    is_digest,
)

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
CONFIG_TYPES = (DOCKER_CONFIG, OCI_CONFIG)
LAYER_TYPES = (
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER,
    OCI_LAYER_ZSTD,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)
# What a pull asks for, in docker's order of preference.
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
MAX_MANIFEST_SIZE = 4 << 20  # distribution's own limit for a manifest body


class ManifestError(InvalidParameter):
    """A manifest or index that is malformed or of a kind we do not pull."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def short(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: list[Descriptor] = field(default_factory=list)


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestError(f"invalid manifest: {where} is not an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestError(f"invalid manifest: {where} has no media type")
    if not isinstance(digest, str) or not is_digest(digest):
        raise ManifestError(f"invalid manifest: {where} has an invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"invalid manifest: {where} has an invalid size")
    plat = value.get("platform")
    parsed_platform = None
    if isinstance(plat, dict):
        parsed_platform = Platform(
            str(plat.get("os", "")),
            str(plat.get("architecture", "")),
            str(plat.get("variant", "") or ""),
            str(plat.get("os.version", "") or ""),
        )
    urls = value.get("urls") or ()
    return Descriptor(
        media_type, digest, size, parsed_platform, tuple(u for u in urls if isinstance(u, str))
    )


def parse(body: bytes, content_type: str = "") -> Manifest | Index:
    """A manifest or an index; its media type from the body, else the Content-Type header."""
    if len(body) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"manifest too big: {len(body)} bytes (limit {MAX_MANIFEST_SIZE})")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"invalid manifest: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("invalid manifest: not a JSON object")
    media_type = doc.get("mediaType") or content_type.split(";")[0].strip()
    if not media_type:  # OCI allows leaving it out: tell the kinds apart by their fields
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if doc.get("schemaVersion") != 2:
        if doc.get("schemaVersion") == 1:
            raise ManifestError(
                "unsupported manifest format: Docker Image manifest version 2, schema 1 "
                "support has been removed"
            )
        raise ManifestError("invalid manifest: schemaVersion is not 2")
    if media_type in INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise ManifestError("invalid manifest: an index without manifests")
        return Index(media_type, [_descriptor(m, f"manifests[{i}]") for i, m in enumerate(items)])
    if media_type in MANIFEST_TYPES:
        config = _descriptor(doc.get("config"), "config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("invalid manifest: layers is not a list")
        parsed = [_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
        if config.media_type not in CONFIG_TYPES:
            raise ManifestError(f"unsupported config media type: {config.media_type}")
        for layer in parsed:
            if layer.media_type not in LAYER_TYPES:
                raise ManifestError(f"unsupported layer media type: {layer.media_type}")
        return Manifest(media_type, config, parsed)
    raise ManifestError(f"unsupported manifest media type: {media_type}")


# -- platforms ---------------------------------------------------------------------------------
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def normalize(plat: Platform) -> Platform:
    """containerd's platforms.Normalize: arch aliases, arm64's default variant v8."""
    arch = _ARCH.get(plat.architecture.lower(), plat.architecture.lower())
    variant = plat.variant.lower()
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    elif arch == "arm" and variant in ("", "7"):
        variant = "v7"
    elif arch == "arm" and variant in ("5", "6", "8"):
        variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(plat.os.lower(), arch, variant, plat.os_version)


def host_platform() -> Platform:
    machine = _platform.machine()
    variant = {"armv6l": "v6", "armv7l": "v7"}.get(machine, "")
    return normalize(Platform("linux", _ARCH.get(machine, machine), variant))


def parse_platform(text: str) -> Platform:
    """ "linux/arm64/v8", "linux/amd64", "arm64" (the OS defaults to linux)."""
    parts = [p.strip() for p in text.split("/")] if text.strip() else []
    if not parts or len(parts) > 3 or not all(parts):
        raise InvalidParameter(f'"{text}": invalid platform: expected os[/arch[/variant]]')
    if len(parts) == 1:
        if parts[0].lower() in _ARCH:
            return normalize(Platform("linux", parts[0]))
        return normalize(Platform(parts[0], host_platform().architecture))
    return normalize(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def matches(want: Platform, have: Platform) -> bool:
    want, have = normalize(want), normalize(have)
    if want.os != have.os or want.architecture != have.architecture:
        return False
    return not want.variant or want.variant == have.variant


def choose(index: Index, want: Platform) -> Descriptor:
    """The index entry for a platform: an exact variant match first, then any match."""
    candidates = [
        m for m in index.manifests if m.platform is not None and m.media_type in MANIFEST_TYPES
    ]
    exact = [m for m in candidates if m.platform and normalize(m.platform) == normalize(want)]
    loose = [m for m in candidates if m.platform and matches(want, m.platform)]
    found = exact or loose
    if not found and want.variant:  # arm/v7 runs arm/v6 images, as containerd's matcher allows
        target = normalize(want)
        found = [
            m
            for m in candidates
            if m.platform
            and (have := normalize(m.platform)).os == target.os
            and have.architecture == target.architecture
            and have.variant < target.variant
        ]
    if not found:
        raise ManifestError(f"no matching manifest for {want} in the manifest list entries")
    return found[0]


# -- push --------------------------------------------------------------------------------------
def schema2(
    config_digest: str, config_size: int, layers: list[tuple[str, str, int]]
) -> tuple[str, bytes]:
    """(media type, body) of the manifest docker pushes: Docker schema2 with gzip layers as
    stored, or OCI when a layer is zstd (schema2 has no zstd). `layers`: (media type, digest,
    size)."""
    docker_types = {DOCKER_LAYER_GZIP, DOCKER_LAYER, OCI_LAYER_GZIP, OCI_LAYER}
    if all(media in docker_types for media, _, _ in layers):
        to_docker = {OCI_LAYER_GZIP: DOCKER_LAYER_GZIP, OCI_LAYER: DOCKER_LAYER}
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest},
            "layers": [
                {"mediaType": to_docker.get(media, media), "size": size, "digest": digest}
                for media, digest, size in layers
            ],
        }
        media_type = DOCKER_MANIFEST
    else:
        to_oci = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_LAYER: OCI_LAYER}
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": config_size, "digest": config_digest},
            "layers": [
                {"mediaType": to_oci.get(media, media), "size": size, "digest": digest}
                for media, digest, size in layers
            ],
        }
        media_type = OCI_MANIFEST
    # docker's manifests are indented JSON (Go's MarshalIndent with three spaces)
    body = json.dumps(doc, indent=3).encode()
    return media_type, body


def index_body(entries: list[tuple[str, str, int, Platform]]) -> bytes:
    """An OCI index (tests and tools): (media type, digest, size, platform) per entry."""
    manifests = []
    for media, digest, size, plat in entries:
        p: dict[str, str] = {"architecture": plat.architecture, "os": plat.os}
        if plat.variant:
            p["variant"] = plat.variant
        manifests.append({"mediaType": media, "digest": digest, "size": size, "platform": p})
    return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
