"""The build cache: which image a step produced before, keyed by what determines it.

`step_key` is pure. A step's result is a function of
- the image it starts from (its ID covers every earlier step, the base image, ENV, USER,
  WORKDIR, SHELL and so on),
- the instruction after variable expansion (`describe`: its kind and every field except the
  source lines and text), plus for RUN the build args its environment gets (the `|N K=V`
  prefix of its history entry),
- for COPY/ADD the sources' content (`SourceDigest`): each copied entry's destination path,
  type, permission bits, link target and bytes. Owners are set by the instruction (root, or
  its --chown, which is in the instruction) so the sources' owners are not part of it, nor are
  mtimes. COPY --from an image or stage is keyed by that image's ID, which covers its content.
- for RUN with `--mount`s: the specs are in the instruction; what a bind (or a cache's
  `from=`) reads is the third part (runmounts.input_digest: a context source's content, a
  stage's or image's ID). What a cache mount holds is not part of the key, as in BuildKit.

The store is a table of key → image ID; a key whose image was removed is a miss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.content.db import Database

__all__ = ["CacheStore", "SourceDigest", "describe", "step_key"]

KEY_VERSION = 1
_SKIP_FIELDS = ("original", "start_line", "end_line", "mount_specs")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__kind__": type(value).__name__,
            **{
                f.name: _plain(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in _SKIP_FIELDS
            },
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def describe(instruction: object, extra: Any = None) -> str:
    """A canonical text of an (expanded) instruction: equal texts mean the same step."""
    return json.dumps([_plain(instruction), _plain(extra)], sort_keys=True, separators=(",", ":"))


def step_key(parent_id: str, description: str, sources: str | None = None) -> str:
    """The cache key of a step: sha256 over the parent image ID, the step's description and
    the digest of its sources (None for steps that read no files)."""
    doc = json.dumps([KEY_VERSION, parent_id, description, sources], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


class SourceDigest:
    """The content of a COPY/ADD's sources, fed entry by entry in the order they are copied."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def entry(self, dest: str, kind: str, mode: int, linkname: str = "") -> None:
        record = json.dumps([dest, kind, mode & 0o7777, linkname], separators=(",", ":"))
        self._hash.update(b"E" + len(record).to_bytes(4, "big") + record.encode())

    def data(self, chunk: bytes) -> None:
        self._hash.update(b"D" + len(chunk).to_bytes(8, "big"))
        self._hash.update(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class CacheStore:
    def __init__(self, db: Database, image_exists: Any) -> None:
        self.db = db
        self._image_exists = image_exists

    def get(self, key: str) -> str | None:
        row = self.db.one("SELECT image_id FROM build_cache WHERE key = ?", (key,))
        if row is None or not self._image_exists(row["image_id"]):
            return None
        return str(row["image_id"])

    def prune(self, everything: bool = False) -> list[str]:
        """Drop entries whose image is gone (or all of them): the keys dropped. The images
        themselves are pruned as images; a dropped entry is only a future cache miss."""
        rows = self.db.query("SELECT key, image_id FROM build_cache")
        gone = [r["key"] for r in rows if everything or not self._image_exists(r["image_id"])]
        with self.db.tx() as tx:
            tx.executemany("DELETE FROM build_cache WHERE key = ?", [(k,) for k in gone])
        return gone

    def put(self, key: str, image_id: str) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO build_cache (key, image_id, created) VALUES (?, ?, ?)",
                (key, image_id, time.time()),
            )
