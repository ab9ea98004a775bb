"""The OCI image model: media types, digests, chain IDs, configs and manifests (pure)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

# Media types (OCI image-spec and Docker schema2).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: str) -> bool:
    return bool(_DIGEST.match(value))


def digest_hex(digest: str) -> str:
    """The hex part of a `sha256:` digest; raises ValueError for anything else."""
    if not is_digest(digest):
        raise ValueError(f"invalid digest: {digest!r}")
    return digest[len("sha256:") :]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """chainID(L1) = diffID(L1); chainID(L1..n) = sha256(chainID(L1..n-1) + " " + diffID(Ln))."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append(sha256_digest(f"{chains[-1]} {diff_id}".encode()))
    return chains


def canonical_json(value: Any) -> bytes:
    """Compact JSON, the form our configs and manifests are stored and hashed in."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def new_config(
    *,
    diff_ids: Iterable[str],
    created: str,
    history: list[dict[str, Any]],
    config: dict[str, Any] | None = None,
    architecture: str = "amd64",
    os_name: str = "linux",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An OCI/Docker image config document, in the key order docker writes."""
    doc: dict[str, Any] = {"architecture": architecture}
    if config is not None:
        doc["config"] = config
    doc["created"] = created
    doc["history"] = history
    doc["os"] = os_name
    doc["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    if extra:
        doc.update(extra)
    return doc


def config_diff_ids(config: dict[str, Any]) -> list[str]:
    """The layer diffIDs a config lists, validated."""
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ValueError("image config has no layers rootfs")
    diff_ids = rootfs.get("diff_ids")
    if diff_ids is None:
        diff_ids = []
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and is_digest(d) for d in diff_ids
    ):
        raise ValueError("image config has invalid diff_ids")
    return list(diff_ids)


def descriptor(media_type: str, digest: str, size: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    doc.update({k: v for k, v in extra.items() if v})
    return doc


def new_manifest(
    config: dict[str, Any], layers: list[dict[str, Any]], media_type: str = OCI_MANIFEST
) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers}


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: fractional seconds without trailing zeros."""
    seconds, frac = divmod(ns, 10**9)
    t = time.gmtime(seconds)
    # Go pads the year to four digits (the zero time is 0001-01-01T00:00:00Z); strftime's %Y
    # does not on glibc.
    stamp = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
    return stamp + "Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for an RFC 3339 time with up to nanosecond precision."""
    main, frac, zone = text, "", ""
    for i in range(len(text) - 1, 9, -1):
        if text[i] in "Z+-":
            main, zone = text[:i], text[i:]
            break
    if "." in main:
        main, frac = main.split(".", 1)
    base = datetime.fromisoformat(main + ("+00:00" if zone in ("Z", "") else zone))
    return base.timestamp() + (float("0." + frac) if frac else 0.0)
