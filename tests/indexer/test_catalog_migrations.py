"""Catalog migrations: an old data directory's catalog upgrades in place on open, keeps every row and works; a
catalog from a newer release is refused; a failed migration leaves the catalog as it was."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from indexer.access import Viewer
from indexer.catalog import (
    BUILD_PUBLISHED,
    DELETED,
    INDEXED,
    PENDING,
    SCHEMA_VERSION,
    TRIGGER_ADMIN,
    Catalog,
    CatalogVersionError,
    DocumentAccess,
    DocumentQuery,
)
from indexer.catalog.database import MIGRATIONS, Migration, migrate
from indexer.metadata import DocumentMetadata

# The tables as the last release before versioned migrations (2dfffee) created them, at user_version 0.
_PASSAGES_MEMBERS_KEYS = """
CREATE TABLE IF NOT EXISTS passages (
    id TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    language TEXT,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_document ON passages(document_id, ordinal);
CREATE TABLE IF NOT EXISTS members (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    prefix TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    member_id TEXT REFERENCES members(id),
    admin INTEGER NOT NULL DEFAULT 0,
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_member ON api_keys(member_id);
"""

PREVIOUS_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS documents (
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
);
CREATE INDEX IF NOT EXISTS documents_status ON documents(status);
CREATE INDEX IF NOT EXISTS documents_near_duplicate ON documents(near_duplicate_of);
CREATE INDEX IF NOT EXISTS documents_updated ON documents(updated_at);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    generation_id TEXT,
    report TEXT,
    trigger TEXT NOT NULL DEFAULT 'cli',
    pid INTEGER,
    message TEXT
);
"""
    + _PASSAGES_MEMBERS_KEYS
)

# The same catalog before the columns that 2dfffee still added by ALTER at every open (warnings, fingerprint,
# near_duplicate_of, empty_pages, ocr_pages; the builds' trigger, pid and message): the oldest layout to upgrade.
BEFORE_ADDED_COLUMNS_SCHEMA = (
    """
CREATE TABLE documents (
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
    chunker TEXT,
    extract_seconds REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX documents_status ON documents(status);
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL,
    generation_id TEXT,
    report TEXT
);
"""
    + _PASSAGES_MEMBERS_KEYS
)

# A member's key whose secret the test knows: the digest is sha256 of the token, as indexer.access.hash_key makes it.
TOKEN = "msk_0a1b2c3d_" + "A" * 43
ROWS = f"""
INSERT INTO documents (id, sha256, filename, media_type, size_bytes, metadata, title, language, status, reason,
    message, page_count, passage_count, truncated, chunker, extract_seconds, created_at, updated_at) VALUES
  ('aaaaaaaaaaaaaaaa', '{"a" * 64}', 'rubrics.txt', 'text/plain', 42,
   '{{"member": "Tsinghua University", "visibility": "alliance"}}', 'Rubrics', 'en', 'indexed', NULL, NULL, NULL,
   2, 0, 'hash-256/200', 0.5, '2025-01-01T00:00:00.000+00:00', '2025-01-01T00:00:01.000+00:00'),
  ('bbbbbbbbbbbbbbbb', '{"b" * 64}', 'scan.pdf', 'application/pdf', 900, '{{}}', NULL, NULL, 'failed', 'no_text',
   'no text layer', 3, 0, 0, NULL, 1.5, '2025-01-02T00:00:00.000+00:00', '2025-01-02T00:00:01.000+00:00'),
  ('cccccccccccccccc', '{"c" * 64}', 'old.md', NULL, 7, '{{}}', NULL, NULL, 'deleted', NULL, NULL, NULL, 0, 0,
   NULL, NULL, '2025-01-03T00:00:00.000+00:00', '2025-01-04T00:00:00.000+00:00'),
  ('dddddddddddddddd', '{"d" * 64}', 'new.txt', NULL, 11, '{{"title": "Forums"}}', 'Forums', NULL, 'pending', NULL,
   NULL, NULL, 0, 0, NULL, NULL, '2025-01-05T00:00:00.000+00:00', '2025-01-05T00:00:00.000+00:00');
INSERT INTO passages VALUES
  ('aaaaaaaaaaaaaaaa:0', 'aaaaaaaaaaaaaaaa', 0, NULL, '["Rubrics"]', 0, 20, 'en', 'Calibrated peer review'),
  ('aaaaaaaaaaaaaaaa:1', 'aaaaaaaaaaaaaaaa', 1, NULL, '[]', 21, 42, 'en', 'with rubrics, fairly.');
INSERT INTO builds (started_at, finished_at, outcome, generation_id, report) VALUES
  ('2025-01-01T01:00:00.000+00:00', '2025-01-01T01:00:05.000+00:00', 'published', 'g1',
   '{{"documents_added": 2, "passages": 2}}'),
  ('2025-01-02T01:00:00.000+00:00', '2025-01-02T01:00:01.000+00:00', 'failed', NULL, NULL);
INSERT INTO members VALUES
  ('tsinghua', 'Tsinghua University', 0, '2025-01-01T00:00:00.000+00:00', '2025-01-01T00:00:00.000+00:00'),
  ('gone', 'Gone College', 1, '2025-01-01T00:00:00.000+00:00', '2025-01-06T00:00:00.000+00:00');
INSERT INTO api_keys VALUES
  ('0a1b2c3d', '451833c60b0406580864fe9867534318aad883d1444ec53498691ff347deaf57', 'tsinghua', 0, 'alice',
   '2025-01-01T00:00:00.000+00:00', NULL),
  ('deadbeef', 'not-a-digest', NULL, 1, 'ops', '2025-01-01T00:00:00.000+00:00', '2025-01-02T00:00:00.000+00:00');
"""

TABLES = ("documents", "passages", "builds", "members", "api_keys")
SCHEMAS = {"previous release": PREVIOUS_SCHEMA, "before the added columns": BEFORE_ADDED_COLUMNS_SCHEMA}


def _make_old_catalog(path: Path, schema: str) -> None:
    db = sqlite3.connect(path)
    db.executescript(schema + ROWS)
    db.close()


def _rows(path: Path, columns_of: dict[str, list[str]]) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, restricted to the given columns, in rowid order."""
    db = sqlite3.connect(path)
    try:
        return {
            table: db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid").fetchall()
            for table, columns in columns_of.items()
        }
    finally:
        db.close()


def _layout(path: Path) -> tuple[int, dict[str, dict[str, tuple[object, ...]]], set[str]]:
    """The schema as SQLite reports it: user_version, each table's columns (type, not null, default), indexes."""
    db = sqlite3.connect(path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns: dict[str, dict[str, tuple[object, ...]]] = {
            table: {row[1]: (row[2], row[3], row[4]) for row in db.execute(f"PRAGMA table_info({table})")}
            for table in TABLES
        }
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        }
        return version, columns, indexes
    finally:
        db.close()


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_an_old_catalog_is_upgraded_on_open_keeps_every_row_and_works(tmp_path: Path, schema: str) -> None:
    path = tmp_path / "catalog.sqlite3"
    _make_old_catalog(path, schema)
    old_version, old_columns, _ = _layout(path)
    assert old_version == 0
    before = _rows(path, {table: list(columns) for table, columns in old_columns.items()})

    catalog = Catalog(path)
    # The upgraded layout is the one a new catalog gets, and the old columns hold the old values.
    fresh = Catalog(tmp_path / "fresh.sqlite3")
    fresh.close()
    assert _layout(path) == _layout(tmp_path / "fresh.sqlite3") and _layout(path)[0] == SCHEMA_VERSION
    assert _rows(path, {table: list(columns) for table, columns in old_columns.items()}) == before

    # Columns the old catalog lacked read as their defaults.
    rubrics = catalog.get_document("aaaaaaaaaaaaaaaa")
    assert rubrics is not None and rubrics.metadata.member == "Tsinghua University"
    assert (rubrics.warnings, rubrics.empty_pages, rubrics.ocr_pages, rubrics.near_duplicate_of) == ((), (), (), None)
    assert [p.text for p in catalog.passages_of(rubrics.id)] == ["Calibrated peer review", "with rubrics, fairly."]
    assert catalog.count_by_status() == {INDEXED: 1, "failed": 1, DELETED: 1, PENDING: 1}
    [failed, published] = catalog.list_builds()
    assert (published.trigger, published.outcome, published.generation_id, published.pid) == (
        "cli",
        "published",
        "g1",
        None,
    )
    assert published.to_dict()["documents_added"] == 2 and failed.report == {}

    # And it works: documents, listings with visibility, access, keys, builds.
    added, created = catalog.add_document("e" * 64, "late.txt", 5, DocumentMetadata(title="Late"))
    assert created and added.status == PENDING
    assert [d.filename for d in catalog.list_documents()] == [
        "rubrics.txt",
        "scan.pdf",
        "old.md",
        "new.txt",
        "late.txt",
    ]
    restored, created = catalog.add_document("c" * 64, "again.md", 7, DocumentMetadata())
    assert created and restored.id == "cccccccccccccccc" and restored.status == PENDING
    anonymous, total = catalog.query_documents(DocumentQuery(), Viewer(), limit=10, offset=0)
    assert total == 4 and "rubrics.txt" not in {d.filename for d in anonymous}  # alliance-only stays hidden
    member, _ = catalog.query_documents(DocumentQuery(), Viewer(member_id="tsinghua"), 10, 0)
    assert "rubrics.txt" in {d.filename for d in member}
    assert catalog.document_access()["aaaaaaaaaaaaaaaa"] == DocumentAccess(INDEXED, "alliance", "tsinghua")
    holder = catalog.authenticate(TOKEN)
    assert holder is not None and (holder.member_id, holder.member_name, holder.admin) == (
        "tsinghua",
        "Tsinghua University",
        False,
    )
    assert [(k.prefix, k.revoked_at is not None) for k in catalog.list_keys()] == [
        ("0a1b2c3d", False),
        ("deadbeef", True),
    ]
    _, secret = catalog.create_key("tsinghua", label="bob")
    assert catalog.authenticate(secret) is not None
    catalog.set_member_disabled("tsinghua", True)
    assert catalog.authenticate(TOKEN) is None
    build = catalog.start_build(TRIGGER_ADMIN, pid=1234)
    catalog.finish_build(build, BUILD_PUBLISHED, "g3", {"passages": 2})
    record = catalog.get_build(build)
    assert record is not None and (record.id, record.trigger, record.outcome, record.pid) == (
        3,
        "admin",
        "published",
        1234,
    )
    assert catalog.failed_builds_in_a_row() == 0 and catalog.count_builds() == 3
    catalog.close()


def test_opening_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    _make_old_catalog(path, BEFORE_ADDED_COLUMNS_SCHEMA)
    Catalog(path).close()
    layout = _layout(path)
    rows = _rows(path, {table: list(columns) for table, columns in layout[1].items()})
    Catalog(path).close()
    assert _layout(path) == layout and layout[0] == SCHEMA_VERSION
    assert _rows(path, {table: list(columns) for table, columns in layout[1].items()}) == rows


def test_an_old_catalog_opened_by_several_at_once_is_upgraded_once(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    _make_old_catalog(path, BEFORE_ADDED_COLUMNS_SCHEMA)
    start = threading.Barrier(4)
    errors: list[Exception] = []
    opened: list[Catalog] = []

    def open_catalog() -> None:
        start.wait()
        try:
            opened.append(Catalog(path))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_catalog) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for catalog in opened:
        catalog.close()
    assert errors == [] and len(opened) == 4
    assert _layout(path)[0] == SCHEMA_VERSION and _rows(path, {"documents": ["id"]})["documents"] == [
        ("aaaaaaaaaaaaaaaa",),
        ("bbbbbbbbbbbbbbbb",),
        ("cccccccccccccccc",),
        ("dddddddddddddddd",),
    ]


def test_a_catalog_from_a_newer_release_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    stored = path.read_bytes()
    with pytest.raises(CatalogVersionError, match=rf"schema version {SCHEMA_VERSION + 1}.*newer release"):
        Catalog(path)
    assert path.read_bytes() == stored


def test_migrations_are_numbered_one_by_one_from_1() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_a_failed_migration_leaves_the_catalog_at_the_last_version_that_completed(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()
    broken = Migration(
        SCHEMA_VERSION + 1, "a test step that fails half way", ("CREATE TABLE notes (text TEXT)", "NOT SQL")
    )
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, path, [*MIGRATIONS, broken])
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'notes'").fetchall() == []
    db.close()
