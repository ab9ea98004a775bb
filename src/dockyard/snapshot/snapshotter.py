"""Snapshots: unpacked layers and writable layers, in containerd's small lifecycle.

prepare(key, parent) makes an active snapshot and returns the directory to write into;
commit(name, key) freezes it under a name (a layer's chain ID); remove(key) deletes it;
usage(key) counts its own bytes, not its parents'. In the overlay layout a snapshot's `fs/`
holds only its own diff (whiteouts as overlay whiteouts); its parents are the lower layers.
"""

from __future__ import annotations

import os
import secrets
import shutil
from datetime import UTC, datetime

from dockyard.content.db import Database
from dockyard.errors import Conflict, NotFound

# Active snapshots whose key starts with this are work in progress that a crash may abandon.
TRANSIENT = "transient/"


def tree_usage(path: str) -> int:
    """Bytes of the non-directory entries under path, each inode counted once (docker's
    directory.Size, which is what it reports as a layer's size)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we walk (a running container's upper dir)
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total


class Snapshotter:
    driver = "overlay2"

    def __init__(self, root: str, db: Database) -> None:
        self.root = root
        self.db = db
        os.makedirs(root, exist_ok=True)

    def _dir(self, key: str) -> str:
        row = self.db.one("SELECT dir FROM snapshots WHERE key = ?", (key,))
        if row is None:
            raise NotFound(f"snapshot {key} does not exist")
        return os.path.join(self.root, row["dir"])

    def path(self, key: str) -> str:
        """The directory holding this snapshot's own files."""
        return os.path.join(self._dir(key), "fs")

    def exists(self, key: str) -> bool:
        return self.db.one("SELECT 1 FROM snapshots WHERE key = ?", (key,)) is not None

    def prepare(self, key: str, parent: str | None) -> str:
        """A new, empty, active snapshot on top of parent; returns its fs directory."""
        name = secrets.token_hex(8)
        base = os.path.join(self.root, name)
        os.makedirs(os.path.join(base, "fs"))
        try:
            with self.db.tx() as db:
                if (
                    parent is not None
                    and not db.execute(
                        "SELECT 1 FROM snapshots WHERE key = ? AND kind = 'committed'", (parent,)
                    ).fetchone()
                ):
                    raise NotFound(f"parent snapshot {parent} does not exist")
                if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                    raise Conflict(f"snapshot {key} already exists")
                db.execute(
                    "INSERT INTO snapshots (key, dir, parent, kind, created) "
                    "VALUES (?, ?, ?, 'active', ?)",
                    (key, name, parent, datetime.now(UTC).isoformat()),
                )
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return os.path.join(base, "fs")

    def commit(self, name: str, key: str) -> bool:
        """Freeze active snapshot `key` as `name`. When `name` already exists (another import
        of the same layer won the race) the active snapshot is discarded; returns False then."""
        if name == key:
            raise Conflict(f"snapshot {name} already exists")
        with self.db.tx() as db:
            row = db.execute("SELECT dir, kind FROM snapshots WHERE key = ?", (key,)).fetchone()
            if row is None or row["kind"] != "active":
                raise NotFound(f"active snapshot {key} does not exist")
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
                db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
                discard = os.path.join(self.root, row["dir"])
            else:
                db.execute(
                    "UPDATE snapshots SET key = ?, kind = 'committed' WHERE key = ?", (name, key)
                )
                discard = None
        if discard is not None:
            shutil.rmtree(discard, ignore_errors=True)
            return False
        return True

    def remove(self, key: str) -> None:
        with self.db.tx() as db:
            row = db.execute("SELECT dir FROM snapshots WHERE key = ?", (key,)).fetchone()
            if row is None:
                return
            if db.execute("SELECT 1 FROM snapshots WHERE parent = ?", (key,)).fetchone():
                raise Conflict(f"snapshot {key} has children")
            db.execute("DELETE FROM snapshots WHERE key = ?", (key,))
        shutil.rmtree(os.path.join(self.root, row["dir"]), ignore_errors=True)

    def usage(self, key: str) -> int:
        return tree_usage(self.path(key))

    def clean(self, transient_prefix: str = TRANSIENT) -> list[str]:
        """Remove what a crash left half-done: active snapshots under the transient prefix
        (layer imports in progress) and directories no row names. Called at daemon start,
        before anything else uses the store."""
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
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
                removed.append(name)
        return removed
