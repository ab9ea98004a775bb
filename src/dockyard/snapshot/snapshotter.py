"""Snapshots: unpacked layers and container root filesystems, in containerd's small lifecycle.

- `prepare(key, parent)` makes an active (writable) snapshot on top of committed `parent` and
  returns its mounts; `view(key, parent)` a read-only one;
- `commit(name, key)` freezes an active snapshot under a name (a layer's chain ID);
- `remove(key)` deletes one; `usage(key)` counts its own bytes and inodes, not its parents'.

The same verbs serve every use: importing a layer is `prepare_dir` (an active snapshot whose
directory the tar is applied into, with `whiteouts`) → `commit(chain_id, key)`; a container's
root is `prepare("container/<id>", top_chain_id)`, put on a directory with `mount(key, target)`
and taken off with `unmount(target)`; `diff` writes a container's changes as a layer tar,
`changes` lists them as `docker diff` does.

The driver (`driver`: "overlay2" or "vfs") decides how a snapshot's files are laid out; it is
chosen once per data-root (`Snapshotter.open`) and stored in the database.

On disk: `<root>/<16 hex>/fs` (and `work/` for a mountable overlay2 snapshot), one row each in
the `snapshots` table naming its directory and parent.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import BinaryIO, Literal

from dockyard.content.db import Database
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.snapshot import mounts as _mounts
from dockyard.snapshot.changes import Change
from dockyard.snapshot.driver import Driver, fs_dir
from dockyard.snapshot.mounts import Mount, mount_all, unmount_under
from dockyard.snapshot.overlay import OverlayDriver, probe_overlay
from dockyard.snapshot.usage import Usage, tree_usage
from dockyard.snapshot.vfs import VfsDriver

__all__ = [
    "CONTAINER",
    "DRIVERS",
    "TRANSIENT",
    "Info",
    "Mount",
    "Snapshotter",
    "StorageDriverError",
    "Usage",
    "tree_usage",
]

log = logging.getLogger(__name__)

# Active snapshots whose key starts with this are work in progress that a crash may abandon.
TRANSIENT = "transient/"
# A container's writable layer: kept across restarts, removed with the container.
CONTAINER = "container/"

DRIVERS: dict[str, Callable[[], Driver]] = {"overlay2": OverlayDriver, "vfs": VfsDriver}
_SETTING = "storage_driver"
# a snapshot's directory and its ancestors', nearest first
_CHAIN = (
    "WITH RECURSIVE chain(key, dir, parent, depth) AS ("
    " SELECT key, dir, parent, 0 FROM snapshots WHERE key = ?"
    " UNION ALL SELECT s.key, s.dir, s.parent, chain.depth + 1"
    " FROM snapshots s JOIN chain ON s.key = chain.parent)"
    " SELECT dir FROM chain ORDER BY depth"
)
# None when overlayfs can be mounted under the given directory, else why not
Probe = Callable[[str], str | None]


class StorageDriverError(DockyardError):
    """The storage driver asked for cannot serve this data-root."""


@dataclass(frozen=True, slots=True)
class Info:
    key: str
    parent: str | None
    kind: Literal["active", "committed", "view"]
    created: str


class Snapshotter:
    def __init__(self, root: str, db: Database, driver: Driver | None = None) -> None:
        """A snapshotter over `root` with `driver` (overlay2 when None), as it is: no probe and
        no stored choice. The daemon uses `Snapshotter.open`."""
        self.root = root
        self.db = db
        self.backend = driver if driver is not None else OverlayDriver()
        self.driver: str = self.backend.name
        self.whiteouts: Literal["overlay", "delete"] = self.backend.whiteouts
        os.makedirs(root, exist_ok=True)

    @classmethod
    def open(
        cls, root: str, db: Database, driver: str | None = None, *, probe: Probe = probe_overlay
    ) -> Snapshotter:
        """The snapshotter of a data-root. `driver` None picks the one the data-root was made
        with, or for a new one overlay2 when `probe(root)` can mount an overlay there and vfs
        when not. A data-root made with one driver refuses to open with the other."""
        if driver is not None and driver not in DRIVERS:
            raise InvalidParameter(
                f"unknown storage driver {driver!r}: use one of {', '.join(DRIVERS)}"
            )
        stored = cls._stored_driver(db)
        if stored is not None and driver is not None and stored != driver:
            raise StorageDriverError(
                f"the data-root was created with storage driver {stored!r} and cannot be opened "
                f"with {driver!r}: use --storage-driver {stored} (or start on a new data-root)"
            )
        chosen = driver or stored
        if chosen is None:
            reason = probe(root)
            chosen = "overlay2" if reason is None else "vfs"
            if reason is not None:
                log.warning(
                    "overlayfs cannot be mounted (%s): using the vfs storage driver", reason
                )
        elif chosen == "overlay2":
            reason = probe(root)
            if reason is not None:
                raise StorageDriverError(
                    f"storage driver overlay2 is not usable on {root}: {reason}"
                    + ("" if stored is None else " (this data-root was created with overlay2)")
                )
        if stored is None:
            with db.tx() as tx:
                tx.execute(
                    "INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", (_SETTING, chosen)
                )
        return cls(root, db, DRIVERS[chosen]())

    @staticmethod
    def _stored_driver(db: Database) -> str | None:
        row = db.one("SELECT value FROM settings WHERE name = ?", (_SETTING,))
        if row is not None:
            return str(row["value"])
        # a data-root from before the choice was stored: overlay2 was the only layout
        return "overlay2" if db.one("SELECT 1 FROM snapshots LIMIT 1") else None

    # -- rows -------------------------------------------------------------------------------
    def _row(self, key: str) -> sqlite3.Row:
        row = self.db.one("SELECT * FROM snapshots WHERE key = ?", (key,))
        if row is None:
            raise NotFound(f"snapshot {key} does not exist")
        return row

    def _base(self, row: sqlite3.Row) -> str:
        return os.path.join(self.root, row["dir"])

    def _parents(self, parent: str | None) -> list[str]:
        """The fs directories of snapshot `parent` and its ancestors, nearest first."""
        if parent is None:
            return []
        return [f"{self.root}/{row['dir']}/fs" for row in self.db.query(_CHAIN, (parent,))]

    def path(self, key: str) -> str:
        """The directory holding this snapshot's own files (overlay2: its diff; vfs: its tree)."""
        return fs_dir(self._base(self._row(key)))

    def exists(self, key: str) -> bool:
        return self.db.one("SELECT 1 FROM snapshots WHERE key = ?", (key,)) is not None

    def stat(self, key: str) -> Info:
        row = self._row(key)
        kind = "view" if row["readonly"] else row["kind"]
        return Info(row["key"], row["parent"], kind, row["created"])

    def walk(self, prefix: str = "") -> list[Info]:
        """Snapshots whose key starts with `prefix`."""
        rows = self.db.query(
            "SELECT key FROM snapshots WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return [self.stat(row["key"]) for row in rows]

    # -- lifecycle --------------------------------------------------------------------------
    def _create(self, key: str, parent: str | None, *, readonly: bool, mountable: bool) -> str:
        """A new active snapshot's row and directory; returns the directory."""
        name = secrets.token_hex(8)
        base = os.path.join(self.root, name)
        with self.db.tx() as db:
            parent_fs = None
            if parent is not None:
                row = db.execute(
                    "SELECT dir FROM snapshots WHERE key = ? AND kind = 'committed'", (parent,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"parent snapshot {parent} does not exist")
                parent_fs = fs_dir(os.path.join(self.root, row["dir"]))
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                raise Conflict(f"snapshot {key} already exists")
            db.execute(
                "INSERT INTO snapshots (key, dir, parent, kind, created, readonly) "
                "VALUES (?, ?, ?, 'active', ?, ?)",
                (key, name, parent, datetime.now(UTC).isoformat(), int(readonly)),
            )
        # The row exists first: a parent with a child cannot be removed while it is copied.
        try:
            os.mkdir(base, 0o711)
            self.backend.create(base, parent_fs, readonly=readonly, mountable=mountable)
        except BaseException:
            with self.db.tx() as db:
                db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
            shutil.rmtree(base, ignore_errors=True)
            raise
        return base

    def prepare(self, key: str, parent: str | None) -> list[Mount]:
        """A new active snapshot on top of committed `parent` (None: empty); its mounts."""
        base = self._create(key, parent, readonly=False, mountable=True)
        return self.backend.mounts(base, self._parents(parent), readonly=False)

    def view(self, key: str, parent: str | None) -> list[Mount]:
        """A new read-only snapshot of committed `parent`; its mounts. Remove it when done."""
        base = self._create(key, parent, readonly=True, mountable=True)
        return self.backend.mounts(base, self._parents(parent), readonly=True)

    def prepare_dir(self, key: str, parent: str | None) -> str:
        """A new active snapshot to write into directly (a layer import): returns its
        directory. Apply a layer there with `apply_layer(..., whiteouts=self.whiteouts)`:
        overlay2 gives an empty directory, vfs a copy of the parent's tree."""
        return fs_dir(self._create(key, parent, readonly=False, mountable=False))

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or a view (again)."""
        row = self._row(key)
        if row["kind"] != "active":
            raise InvalidParameter(f"snapshot {key} is committed: prepare or view on it instead")
        return self.backend.mounts(
            self._base(row), self._parents(row["parent"]), readonly=bool(row["readonly"])
        )

    def mount(self, key: str, target: str, *, volatile: bool = False) -> None:
        """Put active snapshot or view `key` on directory `target`. `volatile`: the upper
        layer need not survive a host crash (a `--rm` container's), so overlay may skip
        syncing it: its unmount no longer waits for a filesystem sync (3 ms and more here)."""
        mounts = self.mounts(key)
        if volatile:
            mounts = [
                replace(m, options=(*m.options, "volatile")) if m.option("upperdir") else m
                for m in mounts
            ]
        mount_all(mounts, target)

    @staticmethod
    def unmount(target: str) -> None:
        """Take everything off `target`; fine when nothing is mounted there."""
        _mounts.unmount(target)

    def commit(self, name: str, key: str) -> bool:
        """Freeze active snapshot `key` as `name`. When `name` already exists (another import
        of the same layer won the race) the active snapshot is discarded; returns False then.
        A container's snapshot must be unmounted first."""
        if name == key:
            raise Conflict(f"snapshot {name} already exists")
        with self.db.tx() as db:
            row = db.execute(
                "SELECT dir, kind, readonly FROM snapshots WHERE key = ?", (key,)
            ).fetchone()
            if row is None or row["kind"] != "active":
                raise NotFound(f"active snapshot {key} does not exist")
            if row["readonly"]:
                raise InvalidParameter(f"snapshot {key} is a view: it cannot be committed")
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
                db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
                discard = True
            else:
                db.execute(
                    "UPDATE snapshots SET key = ?, kind = 'committed' WHERE key = ?", (name, key)
                )
                discard = False
        base = os.path.join(self.root, row["dir"])
        if discard:
            shutil.rmtree(base, ignore_errors=True)
            return False
        self.backend.committed(base)
        return True

    def remove(self, key: str) -> None:
        """Delete a snapshot and its files; fine when it does not exist. Unmount a container's
        root first: what is mounted elsewhere from it is not looked for."""
        with self.db.tx() as db:
            row = db.execute("SELECT dir FROM snapshots WHERE key = ?", (key,)).fetchone()
            if row is None:
                return
            if db.execute("SELECT 1 FROM snapshots WHERE parent = ?", (key,)).fetchone():
                raise Conflict(f"snapshot {key} has children")
            db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
        self._delete_dir(os.path.join(self.root, row["dir"]))

    @staticmethod
    def _delete_dir(path: str) -> None:
        # never let rmtree walk into a mount (it would delete what is mounted there)
        unmount_under(path)
        try:
            shutil.rmtree(path, ignore_errors=True)
        except RecursionError:  # a container made directories deeper than Python recurses
            subprocess.run(["rm", "-rf", "--one-file-system", "--", path], check=False)

    # -- what a snapshot holds --------------------------------------------------------------
    def usage(self, key: str) -> Usage:
        """Own bytes (the int value) and inodes, not its parents'. overlay2: what its diff dir
        holds; vfs: the added and changed entries of its tree (docker's vfs DiffSize)."""
        row = self._row(key)
        return self.backend.usage(self._base(row), self._parents(row["parent"]))

    def diff(self, key: str, out: BinaryIO) -> None:
        """Write what snapshot `key` changes in its parent as a layer tar (containerd's diff
        `compare`): `docker commit` and `docker export`'s layer. Unmount it or pause the
        container first for a consistent tar."""
        row = self._row(key)
        self.backend.diff(self._base(row), self._parents(row["parent"]), out)

    def changes(self, key: str) -> list[Change]:
        """What snapshot `key` changes in its parent, as `docker diff` lists it."""
        row = self._row(key)
        return self.backend.changes(self._base(row), self._parents(row["parent"]))

    def driver_data(self, key: str, merged: str | None = None) -> dict[str, str] | None:
        """GraphDriver.Data of an image's top layer or a container's snapshot, as docker's
        driver of the same name reports it; `merged`: where a container's root is mounted."""
        row = self._row(key)
        data = self.backend.driver_data(self._base(row), self._parents(row["parent"]))
        if data is not None and merged is not None and self.driver == "overlay2":
            data["MergedDir"] = merged
        return data

    def status(self) -> list[list[str]]:
        """DriverStatus for `docker info`, as docker's driver of the same name reports it."""
        return self.backend.status(self.root)

    # -- crash recovery ---------------------------------------------------------------------
    def clean(self, transient_prefix: str = TRANSIENT) -> list[str]:
        """Remove what a crash left half-done: active snapshots under the transient prefix
        (layer imports in progress) and directories no row names (after unmounting whatever is
        mounted under them). Container snapshots stay. Called at daemon start, before anything
        else uses the store."""
        removed = []
        for row in self.db.query(
            "SELECT key FROM snapshots WHERE kind = 'active' AND substr(key, 1, ?) = ?",
            (len(transient_prefix), transient_prefix),
        ):
            self.remove(row["key"])
            removed.append(row["key"])
        known = {row["dir"] for row in self.db.query("SELECT dir FROM snapshots")}
        for name in os.listdir(self.root):
            if name not in known:
                path = os.path.join(self.root, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    self._delete_dir(path)
                else:
                    os.unlink(path)
                removed.append(name)
        return removed
