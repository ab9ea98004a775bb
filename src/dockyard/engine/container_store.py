"""Container rows: one per container, its inspect document kept as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.content.db import Database
from dockyard.errors import Conflict, NotFound

ZERO_TIME = "0001-01-01T00:00:00Z"


def new_state() -> dict[str, Any]:
    return {
        "Status": "created",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 0,
        "Error": "",
        "StartedAt": ZERO_TIME,
        "FinishedAt": ZERO_TIME,
    }


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    created: str
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> dict[str, Any]:
        return self.doc["State"]

    @property
    def config(self) -> dict[str, Any]:
        return self.doc["Config"]

    @property
    def host_config(self) -> dict[str, Any]:
        return self.doc["HostConfig"]

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    @property
    def snapshot_key(self) -> str:
        return f"container/{self.id}"


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _from_row(row: Any) -> Container:
        return Container(
            row["id"], row["name"], row["image_id"], row["created"], json.loads(row["doc"])
        )

    def add(self, container: Container) -> None:
        with self.db.tx() as tx:
            if tx.execute("SELECT 1 FROM containers WHERE name = ?", (container.name,)).fetchone():
                raise self.name_conflict(container.name)
            tx.execute(
                "INSERT INTO containers (id, name, image_id, created, doc) VALUES (?, ?, ?, ?, ?)",
                (
                    container.id,
                    container.name,
                    container.image_id,
                    container.created,
                    json.dumps(container.doc),
                ),
            )

    def name_conflict(self, name: str) -> Conflict:
        row = self.db.one("SELECT id FROM containers WHERE name = ?", (name,))
        owner = row["id"] if row else ""
        return Conflict(
            f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
            "You have to remove (or rename) that container to be able to reuse that name."
        )

    def save(self, container: Container) -> None:
        with self.db.tx() as tx:
            tx.execute(
                "UPDATE containers SET doc = ?, name = ? WHERE id = ?",
                (json.dumps(container.doc), container.name, container.id),
            )

    def rename(self, container: Container, name: str) -> None:
        with self.db.tx() as tx:
            if tx.execute("SELECT 1 FROM containers WHERE name = ?", (name,)).fetchone():
                raise self.name_conflict(name)
            container.name = name
            container.doc["Name"] = "/" + name
            tx.execute(
                "UPDATE containers SET doc = ?, name = ? WHERE id = ?",
                (json.dumps(container.doc), name, container.id),
            )

    def delete(self, container_id: str) -> None:
        with self.db.tx() as tx:
            tx.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def name_taken(self, name: str) -> bool:
        return self.db.one("SELECT 1 FROM containers WHERE name = ?", (name,)) is not None

    def get(self, container_id: str) -> Container | None:
        row = self.db.one("SELECT * FROM containers WHERE id = ?", (container_id,))
        return self._from_row(row) if row else None

    def find(self, ref: str) -> Container:
        """docker's lookup: the full ID, then a name, then a unique ID prefix."""
        ref = ref.removeprefix("/") if not ref.startswith("//") else ref
        if not ref:
            raise NotFound("No such container: ")
        row = self.db.one("SELECT * FROM containers WHERE id = ?", (ref,))
        if row is None:
            row = self.db.one("SELECT * FROM containers WHERE name = ?", (ref,))
        if row is None and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.query(
                "SELECT * FROM containers WHERE substr(id, 1, ?) = ? LIMIT 2", (len(ref), ref)
            )
            if len(rows) > 1:
                raise NotFound(f"Multiple IDs found with provided prefix: {ref}")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {ref}")
        return self._from_row(row)

    def all(self) -> list[Container]:
        return [
            self._from_row(r)
            for r in self.db.query("SELECT * FROM containers ORDER BY created DESC, rowid DESC")
        ]

    def image_ids_in_use(self) -> set[str]:
        return {r["image_id"] for r in self.db.query("SELECT DISTINCT image_id FROM containers")}

    def using_image(self, image_id: str) -> list[Container]:
        rows = self.db.query(
            "SELECT * FROM containers WHERE image_id = ? ORDER BY created", (image_id,)
        )
        return [self._from_row(r) for r in rows]
