"""The metadata database: one SQLite file in WAL mode with a versioned schema.

Every change is a transaction. One connection is shared by the daemon's threads behind a lock:
the daemon is the only writer (DESIGN.md, "one writer") and metadata operations are short.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

_BUSY_TIMEOUT_MS = 5000

# Each entry migrates the schema from version N to N+1; never edit an entry that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE images (
        id            TEXT PRIMARY KEY,   -- sha256 of the config JSON
        created       TEXT NOT NULL,      -- RFC 3339 from the config ('' when absent)
        created_unix  REAL NOT NULL,
        parent        TEXT,               -- image ID of a locally built parent, or NULL
        size          INTEGER NOT NULL,   -- bytes of all layers, unpacked
        last_tag_time TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        PRIMARY KEY (image_id, position)
    );
    CREATE INDEX image_layers_chain ON image_layers(chain_id);
    CREATE TABLE layers (
        chain_id   TEXT PRIMARY KEY,
        diff_id    TEXT NOT NULL,
        parent     TEXT REFERENCES layers(chain_id),
        blob       TEXT NOT NULL,        -- digest of the stored (compressed) blob
        blob_size  INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        tar_size   INTEGER NOT NULL,     -- bytes of the uncompressed tar
        size       INTEGER NOT NULL      -- bytes of the unpacked files (docker's DiffSize)
    );
    CREATE TABLE refs (
        ref      TEXT PRIMARY KEY,       -- normalized: docker.io/library/busybox:latest or name@digest
        name     TEXT NOT NULL,          -- docker.io/library/busybox
        kind     TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE INDEX refs_image ON refs(image_id);
    CREATE TABLE snapshots (
        key     TEXT PRIMARY KEY,        -- a chain ID for committed layers, any name for active ones
        dir     TEXT NOT NULL UNIQUE,    -- short directory name under snapshots/
        parent  TEXT REFERENCES snapshots(key),
        kind    TEXT NOT NULL CHECK (kind IN ('active', 'committed')),
        created TEXT NOT NULL
    );
    """,
    """
    -- read-only snapshots (containerd's views) are active ones that can never be committed
    ALTER TABLE snapshots ADD COLUMN readonly INTEGER NOT NULL DEFAULT 0;
    -- choices made once for a data-root, e.g. storage_driver = 'overlay2' | 'vfs'
    CREATE TABLE settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    -- no foreign key to images: `rmi -f` may remove the image of a stopped container, whose
    -- layers then live on as the parents of its writable layer (as in docker)
    CREATE TABLE containers (
        id       TEXT PRIMARY KEY,       -- 64 hex digits
        name     TEXT NOT NULL UNIQUE,   -- without docker's leading /
        image_id TEXT NOT NULL,
        created  TEXT NOT NULL,          -- RFC 3339, for ordering
        doc      TEXT NOT NULL           -- JSON: Config, HostConfig, State and the rest
    );
    CREATE INDEX containers_image ON containers(image_id);
    """,
    """
    -- the build cache: a step's key (build/cache.py step_key) → the image it produced; no
    -- foreign key: removing the image makes the entry a miss
    CREATE TABLE build_cache (
        key      TEXT PRIMARY KEY,
        image_id TEXT NOT NULL,
        created  REAL NOT NULL
    );
    CREATE INDEX build_cache_image ON build_cache(image_id);
    """,
    """
    -- which repositories of a registry a blob came from or went to: a push mounts it from one
    -- of them instead of sending it (engine/pull.py BlobSources). IF NOT EXISTS: data-roots
    -- of the first pull code made it without a migration.
    CREATE TABLE IF NOT EXISTS blob_sources (
        digest     TEXT NOT NULL,
        registry   TEXT NOT NULL,
        repository TEXT NOT NULL,
        PRIMARY KEY (digest, registry, repository)
    );
    """,
]


def _statements(script: str) -> list[str]:
    """A migration script split into its SQL statements."""
    statements: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


class Database:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._enable_wal()
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except BaseException:
            self._conn.close()
            raise

    def _enable_wal(self) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
        # locked" at once instead of waiting when another connection is opening it too.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @property
    def version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the schema to the current version. The version is read inside the write
        transaction, so two processes opening a new database at once migrate it once."""
        with self._lock:
            if self.version == len(MIGRATIONS):
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                current = self.version
                if current > len(MIGRATIONS):
                    raise RuntimeError(
                        f"{self.path}: schema version {current} is newer than this dockyard "
                        f"({len(MIGRATIONS)})"
                    )
                for version in range(current, len(MIGRATIONS)):
                    for statement in _statements(MIGRATIONS[version]):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {version + 1}")
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # SQLite may already have rolled back on its own (e.g. after SQLITE_FULL).
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
