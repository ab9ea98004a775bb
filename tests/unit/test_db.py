"""The metadata database (dockyard.content.db): migrations, reopen, transactions, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from dockyard.content import db as dbmod
from dockyard.content.db import MIGRATIONS, Database

TABLES = {"images", "image_layers", "layers", "refs", "snapshots"}


def tables(db: Database) -> set[str]:
    rows = db.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row["name"] for row in rows}


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database(str(tmp_path / "dockyard.db"))
    yield database
    database.close()


def test_new_database_is_migrated_to_the_current_version(db: Database) -> None:
    assert db.version == len(MIGRATIONS)
    assert tables(db) >= TABLES
    assert db.one("PRAGMA journal_mode")[0] == "wal"
    assert db.one("PRAGMA foreign_keys")[0] == 1


def test_reopen_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = str(tmp_path / "dockyard.db")
    first = Database(path)
    with first.tx() as tx:
        tx.execute(
            "INSERT INTO images (id, created, created_unix, size) VALUES ('sha256:a', '', 0, 1)"
        )
    first.close()
    again = Database(path)
    try:
        assert again.version == len(MIGRATIONS)
        assert [row["id"] for row in again.query("SELECT id FROM images")] == ["sha256:a"]
    finally:
        again.close()


def test_migrates_from_an_older_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "dockyard.db")
    Database(path).close()  # version 1
    extra = "CREATE TABLE extra (x TEXT NOT NULL); -- a comment; with a semicolon\n"
    extra += "INSERT INTO extra (x) VALUES ('a;b');"
    monkeypatch.setattr(dbmod, "MIGRATIONS", [*MIGRATIONS, extra])
    db = Database(path)
    try:
        assert db.version == len(MIGRATIONS) + 1
        assert [row["x"] for row in db.query("SELECT x FROM extra")] == ["a;b"]
    finally:
        db.close()


def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "dockyard.db")
    Database(path).close()
    broken = "CREATE TABLE half (x TEXT);\nINSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(dbmod, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        Database(path)
    monkeypatch.setattr(dbmod, "MIGRATIONS", MIGRATIONS)
    db = Database(path)
    try:
        assert db.version == len(MIGRATIONS)
        assert "half" not in tables(db)
    finally:
        db.close()


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = str(tmp_path / "dockyard.db")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="is newer than this dockyard"):
        Database(path)


@pytest.mark.parametrize("attempt", range(5))
def test_two_processes_opening_a_new_database_migrate_it_once(tmp_path: Path, attempt: int) -> None:
    # Each Database has its own connection, as two daemons racing at start would.
    path = str(tmp_path / "dockyard.db")
    barrier = threading.Barrier(8)
    opened: list[Database] = []
    errors: list[BaseException] = []

    def open_db() -> None:
        barrier.wait()
        try:
            opened.append(Database(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_db) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert [d.version for d in opened] == [len(MIGRATIONS)] * 8
    finally:
        for d in opened:
            d.close()


def test_transaction_commits(db: Database) -> None:
    with db.tx() as tx:
        tx.execute("INSERT INTO images (id, created, created_unix, size) VALUES ('a', '', 0, 1)")
        tx.execute("INSERT INTO images (id, created, created_unix, size) VALUES ('b', '', 0, 2)")
    assert db.one("SELECT count(*) FROM images")[0] == 2


def test_transaction_rolls_back_on_exception(db: Database) -> None:
    with pytest.raises(ValueError, match="boom"), db.tx() as tx:
        tx.execute("INSERT INTO images (id, created, created_unix, size) VALUES ('a', '', 0, 1)")
        raise ValueError("boom")
    assert db.one("SELECT count(*) FROM images")[0] == 0
    # The connection is usable afterwards.
    with db.tx() as tx:
        tx.execute("INSERT INTO images (id, created, created_unix, size) VALUES ('a', '', 0, 1)")
    assert db.one("SELECT count(*) FROM images")[0] == 1


def test_constraint_violation_rolls_back_the_whole_transaction(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError), db.tx() as tx:
        tx.execute("INSERT INTO images (id, created, created_unix, size) VALUES ('a', '', 0, 1)")
        tx.execute(  # foreign keys are enforced
            "INSERT INTO refs (ref, name, kind, image_id) VALUES ('r', 'n', 'tag', 'missing')"
        )
    assert db.one("SELECT count(*) FROM images")[0] == 0


def test_a_failed_commit_rolls_back_and_leaves_the_connection_usable(db: Database) -> None:
    with db.tx() as tx:
        tx.execute("CREATE TABLE parent (id TEXT PRIMARY KEY)")
        tx.execute(
            "CREATE TABLE child (p TEXT REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    # A deferred foreign key is only checked at COMMIT.
    with pytest.raises(sqlite3.IntegrityError), db.tx() as tx:
        tx.execute("INSERT INTO child (p) VALUES ('nobody')")
    assert db.one("SELECT count(*) FROM child")[0] == 0
    with db.tx() as tx:
        tx.execute("INSERT INTO parent (id) VALUES ('p')")
        tx.execute("INSERT INTO child (p) VALUES ('p')")
    assert db.one("SELECT count(*) FROM child")[0] == 1


def test_rollback_after_sqlite_already_ended_the_transaction(db: Database) -> None:
    # The original error must come out, not "cannot rollback - no transaction is active".
    with pytest.raises(KeyError), db.tx() as tx:
        tx.execute("ROLLBACK")
        raise KeyError("original")
    with db.tx() as tx:
        tx.execute("INSERT INTO images (id, created, created_unix, size) VALUES ('a', '', 0, 1)")
    assert db.one("SELECT count(*) FROM images")[0] == 1


def test_threads_share_one_connection_safely(db: Database) -> None:
    def work(n: int) -> None:
        for i in range(25):
            with db.tx() as tx:
                tx.execute(
                    "INSERT INTO images (id, created, created_unix, size) VALUES (?, '', 0, 0)",
                    (f"{n}-{i}",),
                )
                # Read-modify-write inside the transaction is not interleaved with other threads.
                count = tx.execute("SELECT count(*) FROM images").fetchone()[0]
                tx.execute("UPDATE images SET size = ? WHERE id = ?", (count, f"{n}-{i}"))
            assert db.one("SELECT 1 FROM images WHERE id = ?", (f"{n}-{i}",)) is not None

    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Every transaction saw exactly the rows committed before it plus its own.
    sizes = sorted(row[0] for row in db.query("SELECT size FROM images"))
    assert sizes == list(range(1, 201))


def test_query_and_one(db: Database) -> None:
    with db.tx() as tx:
        tx.execute("INSERT INTO images (id, created, created_unix, size) VALUES ('a', 'c', 1.5, 7)")
    row = db.one("SELECT * FROM images WHERE id = ?", ("a",))
    assert row is not None and row["created"] == "c" and row["size"] == 7
    assert db.one("SELECT * FROM images WHERE id = ?", ("zzz",)) is None
    assert [r["id"] for r in db.query("SELECT id FROM images")] == ["a"]
