"""The distribution-spec grammar for repository names, tags and digests (pure)."""

from __future__ import annotations

import hashlib
import re

# distribution-spec: <name> is path components of [a-z0-9]+ joined by separators, with "/".
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
NAME_MAX = 255
# The algorithms we store, with the length of their lowercase hex encoding.
ALGORITHMS = {"sha256": 64, "sha512": 128}


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME_RE.fullmatch(name) is not None


def valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def looks_like_digest(reference: str) -> bool:
    """A manifest reference is a digest when it has a colon (tags cannot)."""
    return ":" in reference


def valid_digest(digest: str) -> bool:
    """Syntactically valid and of an algorithm we support, with a well-formed hex part."""
    if DIGEST_RE.fullmatch(digest) is None:
        return False
    algo, _, hexpart = digest.partition(":")
    length = ALGORITHMS.get(algo)
    return length is not None and len(hexpart) == length and _is_lower_hex(hexpart)


def _is_lower_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def new_hash(algorithm: str) -> hashlib._Hash:
    return hashlib.new(algorithm)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
