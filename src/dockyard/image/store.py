"""Image metadata: images, their layers and the names (references) that point at them.

Rows only; blobs live in the content store and unpacked layers in snapshots. Callers group
several calls into one transaction with `db.tx()` and pass the connection in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field

from dockyard.content.db import Database


@dataclass(frozen=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    parent: str | None
    blob: str
    blob_size: int
    media_type: str
    tar_size: int
    size: int


@dataclass(frozen=True)
class ImageRecord:
    id: str
    created: str
    created_unix: float
    parent: str | None
    size: int
    last_tag_time: str
    chain_ids: list[str] = field(default_factory=list)

    @property
    def top_layer(self) -> str | None:
        return self.chain_ids[-1] if self.chain_ids else None


@dataclass(frozen=True)
class RefRecord:
    ref: str  # normalized string, e.g. docker.io/library/busybox:latest
    name: str  # docker.io/library/busybox
    kind: str  # "tag" or "digest"
    image_id: str


def _layer(row: sqlite3.Row) -> LayerRecord:
    return LayerRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118 - Row has no iterator of keys


class ImageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- layers --------------------------------------------------------------------------------
    def layer(self, chain_id: str) -> LayerRecord | None:
        row = self.db.one("SELECT * FROM layers WHERE chain_id = ?", (chain_id,))
        return _layer(row) if row else None

    def layers(self) -> dict[str, LayerRecord]:
        return {r["chain_id"]: _layer(r) for r in self.db.query("SELECT * FROM layers")}

    @staticmethod
    def add_layer(tx: sqlite3.Connection, layer: LayerRecord) -> bool:
        """Insert a layer row; False when it was there already."""
        cursor = tx.execute(
            "INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, blob, blob_size, media_type,"
            " tar_size, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                layer.chain_id,
                layer.diff_id,
                layer.parent,
                layer.blob,
                layer.blob_size,
                layer.media_type,
                layer.tar_size,
                layer.size,
            ),
        )
        return cursor.rowcount > 0

    # -- images --------------------------------------------------------------------------------
    def _records(self, where: str = "", args: tuple[object, ...] = ()) -> list[ImageRecord]:
        """Images matching `where` (on images.id and friends) with their layers in order."""
        rows = self.db.query(f"SELECT * FROM images {where}", args)
        chains: dict[str, list[str]] = {}
        layer_rows = self.db.query(
            "SELECT image_id, chain_id FROM image_layers WHERE image_id IN "
            f"(SELECT id FROM images {where}) ORDER BY image_id, position",
            args,
        )
        for row in layer_rows:
            chains.setdefault(row["image_id"], []).append(row["chain_id"])
        return [
            ImageRecord(
                id=r["id"],
                created=r["created"],
                created_unix=r["created_unix"],
                parent=r["parent"],
                size=r["size"],
                last_tag_time=r["last_tag_time"],
                chain_ids=chains.get(r["id"], []),
            )
            for r in rows
        ]

    def get(self, image_id: str) -> ImageRecord | None:
        found = self._records("WHERE id = ?", (image_id,))
        return found[0] if found else None

    def all(self) -> list[ImageRecord]:
        return self._records()

    def search(self, prefix: str) -> str | None:
        """The image ID that a hex prefix names, or None when it names none or several."""
        prefix = prefix.removeprefix("sha256:")
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        rows = self.db.query(
            "SELECT id FROM images WHERE substr(id, 8, ?) = ? LIMIT 2", (len(prefix), prefix)
        )
        return rows[0]["id"] if len(rows) == 1 else None

    @staticmethod
    def add_image(tx: sqlite3.Connection, image: ImageRecord) -> bool:
        """Insert an image; False when it already exists (same config, same ID)."""
        if tx.execute("SELECT 1 FROM images WHERE id = ?", (image.id,)).fetchone():
            return False
        tx.execute(
            "INSERT INTO images (id, created, created_unix, parent, size, last_tag_time)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                image.id,
                image.created,
                image.created_unix,
                image.parent,
                image.size,
                image.last_tag_time,
            ),
        )
        tx.executemany(
            "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?, ?, ?)",
            [(image.id, i, chain) for i, chain in enumerate(image.chain_ids)],
        )
        return True

    def children(self, image_id: str) -> list[str]:
        return [
            r["id"] for r in self.db.query("SELECT id FROM images WHERE parent = ?", (image_id,))
        ]

    def parents_with_children(self) -> set[str]:
        rows = self.db.query("SELECT DISTINCT parent FROM images WHERE parent IS NOT NULL")
        return {r["parent"] for r in rows}

    @staticmethod
    def delete_image(
        tx: sqlite3.Connection, image_id: str, keep: Collection[str] = ()
    ) -> list[LayerRecord]:
        """Delete the image row; returns the layers no image uses any more (their rows are
        deleted too, top layer first: the caller removes their snapshots and blobs). Layers in
        `keep` stay even when unused (an operation in progress holds them)."""
        chains = [
            r["chain_id"]
            for r in tx.execute(
                "SELECT chain_id FROM image_layers WHERE image_id = ? ORDER BY position DESC",
                (image_id,),
            )
        ]
        tx.execute("DELETE FROM image_layers WHERE image_id = ?", (image_id,))
        tx.execute("DELETE FROM images WHERE id = ?", (image_id,))
        released = []
        for chain in chains:
            if chain in keep:
                continue
            if tx.execute(
                "SELECT 1 FROM image_layers WHERE chain_id = ? LIMIT 1", (chain,)
            ).fetchone():
                continue
            if tx.execute("SELECT 1 FROM layers WHERE parent = ? LIMIT 1", (chain,)).fetchone():
                continue
            row = tx.execute("SELECT * FROM layers WHERE chain_id = ?", (chain,)).fetchone()
            if row is None:
                continue
            tx.execute("DELETE FROM layers WHERE chain_id = ?", (chain,))
            released.append(_layer(row))
        return released

    @staticmethod
    def delete_layer_if_unused(tx: sqlite3.Connection, chain_id: str) -> bool:
        """Delete a layer row that no image and no other layer uses; True when deleted."""
        if tx.execute(
            "SELECT 1 FROM image_layers WHERE chain_id = ? LIMIT 1", (chain_id,)
        ).fetchone():
            return False
        if tx.execute("SELECT 1 FROM layers WHERE parent = ? LIMIT 1", (chain_id,)).fetchone():
            return False
        return tx.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,)).rowcount > 0

    @staticmethod
    def blob_in_use(tx: sqlite3.Connection, blob: str) -> bool:
        return (
            tx.execute("SELECT 1 FROM layers WHERE blob = ? LIMIT 1", (blob,)).fetchone()
            is not None
        )

    # -- references ----------------------------------------------------------------------------
    def refs(self, image_id: str | None = None) -> list[RefRecord]:
        if image_id is None:
            rows = self.db.query("SELECT * FROM refs ORDER BY ref")
        else:
            rows = self.db.query("SELECT * FROM refs WHERE image_id = ? ORDER BY ref", (image_id,))
        return [RefRecord(r["ref"], r["name"], r["kind"], r["image_id"]) for r in rows]

    def resolve(self, ref: str) -> str | None:
        row = self.db.one("SELECT image_id FROM refs WHERE ref = ?", (ref,))
        return row["image_id"] if row else None

    @staticmethod
    def set_ref(tx: sqlite3.Connection, ref: RefRecord, tag_time: str) -> str | None:
        """Point ref at an image; returns the image it pointed at before, if another."""
        row = tx.execute("SELECT image_id FROM refs WHERE ref = ?", (ref.ref,)).fetchone()
        tx.execute(
            "INSERT OR REPLACE INTO refs (ref, name, kind, image_id) VALUES (?, ?, ?, ?)",
            (ref.ref, ref.name, ref.kind, ref.image_id),
        )
        tx.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (tag_time, ref.image_id))
        previous = row["image_id"] if row else None
        return previous if previous != ref.image_id else None

    @staticmethod
    def delete_ref(tx: sqlite3.Connection, ref: str) -> bool:
        return tx.execute("DELETE FROM refs WHERE ref = ?", (ref,)).rowcount > 0
