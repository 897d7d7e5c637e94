"""The catalog's SQLite database: one connection, its pragmas, its lock and the numbered schema migrations."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.access import display_name, name_key
from indexer.permissions import create_private_file

# The schema of the first versioned catalog, one statement each (executescript would commit the migration's
# transaction half way). IF NOT EXISTS because catalogs made before versioning already hold some of it.
_SCHEMA_1 = (
    """CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    filename TEXT NOT NULL,
    media_type TEXT,
    size_bytes INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    title TEXT,
    language TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    page_count INTEGER,
    passage_count INTEGER NOT NULL DEFAULT 0,
    truncated INTEGER NOT NULL DEFAULT 0,
    warnings TEXT NOT NULL DEFAULT '[]',
    empty_pages TEXT NOT NULL DEFAULT '[]',
    ocr_pages TEXT NOT NULL DEFAULT '[]',
    fingerprint BLOB,
    near_duplicate_of TEXT,
    chunker TEXT,
    extract_seconds REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS documents_status ON documents(status)",
    "CREATE INDEX IF NOT EXISTS documents_near_duplicate ON documents(near_duplicate_of)",
    "CREATE INDEX IF NOT EXISTS documents_updated ON documents(updated_at)",
    """CREATE TABLE IF NOT EXISTS passages (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    language TEXT,
    text TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS passages_document ON passages(document_id, ordinal)",
    """CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    generation_id TEXT,
    report TEXT,
    trigger TEXT NOT NULL DEFAULT 'cli',
    pid INTEGER,
    message TEXT
)""",
    """CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS api_keys (
    prefix TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    member_id TEXT REFERENCES members(id),
    admin INTEGER NOT NULL DEFAULT 0,
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)""",
    "CREATE INDEX IF NOT EXISTS api_keys_member ON api_keys(member_id)",
)

# Columns that catalogs made before versioning may lack, by table: (name, definition). They were added in place
# by ALTERs at every open until migrations were numbered.
_UNVERSIONED_ADDITIONS = {
    "documents": (
        ("warnings", "TEXT NOT NULL DEFAULT '[]'"),
        ("fingerprint", "BLOB"),
        ("near_duplicate_of", "TEXT"),
        ("empty_pages", "TEXT NOT NULL DEFAULT '[]'"),
        ("ocr_pages", "TEXT NOT NULL DEFAULT '[]'"),
    ),
    "builds": (
        ("trigger", "TEXT NOT NULL DEFAULT 'cli'"),
        ("pid", "INTEGER"),
        ("message", "TEXT"),
    ),
}


def _add_unversioned_columns(db: sqlite3.Connection) -> None:
    """Give the tables of a catalog made before versioning the columns added since (before the indexes on them)."""
    for table, added in _UNVERSIONED_ADDITIONS.items():
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, definition in added if columns else ():
            if name not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")


Step = str | Callable[[sqlite3.Connection], None]


def _key_member_names(db: sqlite3.Connection) -> None:
    """Give every member its canonical name key. Names that collide under it (allowed before: "Großstadt" and
    "Grossstadt") are kept, data and keys intact: the oldest member holds the key, the others get none, which
    `members list` flags until the operator renames them (`members set ID --name`); meanwhile names resolve to the
    key's holder."""
    taken: set[str] = set()
    for member_id, name in db.execute("SELECT id, name FROM members ORDER BY created_at, rowid").fetchall():
        key = name_key(name)
        if key not in taken:
            taken.add(key)
            db.execute("UPDATE members SET name_key = ? WHERE id = ?", (key, member_id))


def _own_documents_by_member(db: sqlite3.Connection) -> None:
    """Give each document the member its `member` field names, by the member's exact display name, else by the
    canonical name when one member alone has it. Documents naming no registered member (the operator's corpus
    naming institutions) or naming colliding members ambiguously get no owner: only admins change them, and a
    member-only one is seen by admins only."""
    members = db.execute("SELECT id, name FROM members").fetchall()
    exact: dict[str, list[str]] = {}
    by_key: dict[str, list[str]] = {}
    for member_id, name in members:
        exact.setdefault(display_name(name), []).append(member_id)
        by_key.setdefault(name_key(name), []).append(member_id)
    named = db.execute("SELECT id, json_extract(metadata, '$.member') AS member FROM documents").fetchall()
    for document_id, member in ((row[0], row[1]) for row in named if row[1] is not None):
        owners = exact.get(display_name(str(member)), [])
        if len(owners) != 1:
            owners = by_key.get(name_key(str(member)), [])
        if len(owners) == 1:
            db.execute("UPDATE documents SET owner_id = ? WHERE id = ?", (owners[0], document_id))


@dataclass(frozen=True)
class Migration:
    """One numbered schema change: its steps (SQL statements or functions) run in one transaction, after which
    `PRAGMA user_version` is `version`."""

    version: int
    why: str
    steps: tuple[Step, ...]


# Every schema change, in order: the next one is a new entry numbered len(MIGRATIONS) + 1. Never edit an entry
# that has shipped; a catalog at version n runs exactly the entries after n.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "the schema when migrations were numbered; a catalog made before (user_version 0) gains its missing columns",
        (_add_unversioned_columns, *_SCHEMA_1),
    ),
    Migration(
        2,
        "documents belong to a member by id, member names have one canonical form, members a default visibility",
        (
            "ALTER TABLE members ADD COLUMN name_key TEXT",
            "ALTER TABLE members ADD COLUMN default_visibility TEXT NOT NULL DEFAULT 'member'",
            "ALTER TABLE documents ADD COLUMN owner_id TEXT REFERENCES members(id)",
            _key_member_names,
            _own_documents_by_member,
            "CREATE UNIQUE INDEX members_name_key ON members(name_key)",
            "CREATE INDEX documents_owner ON documents(owner_id)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


class CatalogVersionError(RuntimeError):
    """The catalog was written by a newer release than this one; using it could lose what that release stores."""


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string, the catalog's one time format."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _refuse_newer(path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise CatalogVersionError(
            f"the catalog {path} has schema version {version}, but this release of moocsearch knows versions up to "
            f"{SCHEMA_VERSION}: it was written by a newer release. Run that release, or restore a backup made "
            "with this one; the catalog was left unchanged."
        )


def migrate(db: sqlite3.Connection, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the catalog to the newest schema, one committed transaction per migration; returns the version.

    Another process may be migrating the same file: each step re-reads the version under the write lock."""
    _refuse_newer(path, _user_version(db))
    for migration in migrations:
        if _user_version(db) >= migration.version:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _user_version(db)
            _refuse_newer(path, version)
            if version < migration.version:
                for step in migration.steps:
                    if isinstance(step, str):
                        db.execute(step)
                    else:
                        step(db)
                db.execute(f"PRAGMA user_version = {int(migration.version)}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return _user_version(db)


def _sql_name_key(name: object) -> str | None:
    """`name_key` for SQL (listings filtered by member name compare canonical forms, as everything else)."""
    return None if name is None else name_key(str(name))


class Database:
    """One connection to the catalog (WAL, synchronous=FULL: a commit survives power loss) and the lock that
    serialises its users across threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private_file(path)  # 0600 before SQLite creates it 0644; its -wal and -shm follow its mode
        self.path = path
        self.lock = threading.RLock()
        self.writes = 0  # commits through this connection (PRAGMA data_version counts only the others')
        self.connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            self.connection.row_factory = sqlite3.Row
            _refuse_newer(path, _user_version(self.connection))  # before any pragma writes to the file
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self.connection.create_function("name_key", 1, _sql_name_key, deterministic=True)
            migrate(self.connection, path)
        except BaseException:
            self.connection.close()
            raise

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.connection.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one read."""
        with self.lock:
            return self.connection.execute(sql, params).fetchall()

    def write(
        self,
        statements: Sequence[tuple[str, Sequence[Any]]],
        check: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Run (sql, params) statements in one transaction: all are committed or none. `check` runs first, inside
        the transaction (which holds the database's write lock): what it reads cannot change before the statements
        commit, and an exception from it commits nothing."""
        with self.lock:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                if check is not None:
                    check(self.connection)
                for sql, params in statements:
                    self.connection.execute(sql, params)
                self.connection.execute("COMMIT")
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            finally:
                self.writes += 1

    def version(self) -> tuple[int, int]:
        """Changes as this connection can tell them: another connection's commits, then this one's; equal values
        mean no commit happened in between."""
        with self.lock:
            return int(self.connection.execute("PRAGMA data_version").fetchone()[0]), self.writes
