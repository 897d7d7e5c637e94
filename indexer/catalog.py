"""The catalog: a SQLite database of documents, their passages and the builds made from them."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from indexer.access import MEMBER_ID_RE, NewKey, Viewer, digests_match, key_prefix, new_key
from indexer.metadata import DocumentMetadata, parse_metadata

PENDING, INDEXED, FAILED, DELETED = "pending", "indexed", "failed", "deleted"

# What starts a build, and how a build ends. A build row is `queued` (a process was asked to build), `running`
# (it holds the build lock), then one of the final outcomes; `interrupted` is set by the next build for a row whose
# process died without saying (kill -9, power loss).
TRIGGER_CLI, TRIGGER_SCHEDULE, TRIGGER_SOON, TRIGGER_ADMIN = "cli", "schedule", "soon", "admin"
TRIGGERS = (TRIGGER_CLI, TRIGGER_SCHEDULE, TRIGGER_SOON, TRIGGER_ADMIN)
BUILD_QUEUED, BUILD_RUNNING = "queued", "running"
BUILD_PUBLISHED, BUILD_FAILED, BUILD_REJECTED = "published", "failed", "rejected"
BUILD_ALREADY_RUNNING, BUILD_INTERRUPTED = "already_running", "interrupted"
BUILD_UNCHANGED = "unchanged"  # the build found the published generation's content again and published nothing

_SCHEMA = """
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


# Columns added after the first release: (name, definition); Catalog() adds the missing ones to old databases.
_ADDED_COLUMNS = (
    ("warnings", "TEXT NOT NULL DEFAULT '[]'"),
    ("fingerprint", "BLOB"),
    ("near_duplicate_of", "TEXT"),
    ("empty_pages", "TEXT NOT NULL DEFAULT '[]'"),
    ("ocr_pages", "TEXT NOT NULL DEFAULT '[]'"),
)


# Columns of the builds table added after the first release.
_ADDED_BUILD_COLUMNS = (
    ("trigger", "TEXT NOT NULL DEFAULT 'cli'"),
    ("pid", "INTEGER"),
    ("message", "TEXT"),
)


# How far back document_access re-reads rows after a change: longer than any write transaction waits for its lock.
_ACCESS_LOOKBACK = timedelta(seconds=120)
_ACCESS_FULL_READ_SECONDS = 300.0


@dataclass(frozen=True)
class _AccessCache:
    """document_access's table, the database version it reflects, its newest `updated_at` and when it was last
    read in full (monotonic seconds)."""

    version: tuple[int, int]
    table: dict[str, DocumentAccess]
    newest: str
    loaded: float


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string, the catalog's one time format."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Document:
    """A catalog row: one stored original, its metadata and its indexing status."""

    id: str
    sha256: str
    filename: str
    media_type: str | None
    size_bytes: int
    metadata: DocumentMetadata
    title: str | None
    language: str | None
    status: str
    reason: str | None
    message: str | None
    page_count: int | None
    passage_count: int
    truncated: bool
    warnings: tuple[str, ...]
    empty_pages: tuple[int, ...]  # pages that gave no text (no text layer, no legible OCR)
    ocr_pages: tuple[int, ...]  # pages whose text was read by OCR
    near_duplicate_of: str | None
    chunker: str | None
    extract_seconds: float | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Passage:
    """A piece of a document small enough to embed, with its provenance."""

    id: str
    document_id: str
    ordinal: int
    text: str
    page: int | None
    heading: tuple[str, ...]
    char_start: int
    char_end: int
    language: str | None


@dataclass(frozen=True)
class Member:
    """An institution of the alliance: a short id for commands, the display name its documents carry."""

    id: str
    name: str
    disabled: bool
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: its non-secret prefix and what it may do; never the secret or its digest."""

    prefix: str
    member_id: str | None
    member_name: str | None
    admin: bool
    label: str | None
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class KeyHolder:
    """Who a valid key speaks for."""

    prefix: str
    member_id: str | None
    member_name: str | None
    admin: bool

    @property
    def viewer(self) -> Viewer:
        """What this key may read."""
        return Viewer(member=self.member_name, admin=self.admin)


@dataclass(frozen=True)
class DocumentAccess:
    """What decides at query time whether a document may be shown: its status, visibility and institution."""

    status: str
    visibility: str
    member: str | None


@dataclass(frozen=True)
class DocumentQuery:
    """Filters of a document listing; empty fields do not filter."""

    member: str | None = None
    status: str | None = None
    resource_type: str | None = None
    media_type: str | None = None
    language: str | None = None


class AccountError(ValueError):
    """A members/keys request that cannot be done (unknown member, name taken, bad id)."""


def _document(row: sqlite3.Row) -> Document:
    values = dict(row)
    values["metadata"] = parse_metadata(json.loads(values["metadata"]))
    values["truncated"] = bool(values["truncated"])
    values["warnings"] = tuple(json.loads(values["warnings"]))
    values["empty_pages"] = tuple(json.loads(values["empty_pages"]))
    values["ocr_pages"] = tuple(json.loads(values["ocr_pages"]))
    values.pop("fingerprint", None)
    return Document(**values)


@dataclass(frozen=True)
class BuildRecord:
    """One build: when and why it ran, how it ended, and its report (counts and seconds per stage)."""

    id: int
    trigger: str
    outcome: str
    started_at: str
    finished_at: str | None
    generation_id: str | None
    pid: int | None
    message: str | None
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready view: the record's fields, the report's counts (0 where the build did not get that
        far), its seconds per stage, its failures and its quality-gate result."""
        values: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "report"}
        values.update({name: int(self.report.get(name) or 0) for name in _BUILD_COUNTS})
        values["seconds"] = dict(self.report.get("seconds") or {})
        values["failures"] = list(self.report.get("failures") or [])
        values["quality"] = self.report.get("quality")
        return values


# Counts of a build's report, shown in listings of build records.
_BUILD_COUNTS = (
    "documents_added",
    "documents_changed",
    "documents_deleted",
    "documents_failed",
    "documents_extracted",
    "documents_indexed",
    "passages",
    "passages_embedded",
)


def _build_record(row: sqlite3.Row) -> BuildRecord:
    values = dict(row)
    values["report"] = json.loads(values["report"]) if values["report"] else {}
    return BuildRecord(**values)


def _passage(row: sqlite3.Row) -> Passage:
    values = dict(row)
    values["heading"] = tuple(json.loads(values["heading"]))
    return Passage(**values)


_KEY_SELECT = (
    "SELECT k.prefix, k.member_id, m.name AS member_name, k.admin, k.label, k.created_at, k.revoked_at "
    "FROM api_keys k LEFT JOIN members m ON m.id = k.member_id"
)
# The visibility rule of indexer.access.Viewer.can_see, as SQL over the metadata JSON (for paged listings).
_VISIBLE_SQL = (
    "(json_extract(metadata, '$.visibility') IS NULL OR json_extract(metadata, '$.visibility') = 'public'"
    " OR (? AND json_extract(metadata, '$.visibility') = 'alliance')"
    " OR (json_extract(metadata, '$.member') = ? COLLATE NOCASE))"
)


class Catalog:
    """Thread-safe access to the catalog database (WAL, synchronous=FULL: a commit survives power loss)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._writes = 0  # commits through this connection (PRAGMA data_version counts only the others')
        self._access: _AccessCache | None = None
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._migrate_builds()
        self._db.executescript(_SCHEMA)

    def _migrate(self) -> None:
        """Add columns that databases created by older versions lack."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
        if not columns:
            return
        for name, definition in _ADDED_COLUMNS:
            if name not in columns:
                self._db.execute(f"ALTER TABLE documents ADD COLUMN {name} {definition}")

    def _migrate_builds(self) -> None:
        """Add the build-record columns that databases created by older versions lack."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(builds)")}
        for name, definition in _ADDED_BUILD_COLUMNS if columns else ():
            if name not in columns:
                self._db.execute(f"ALTER TABLE builds ADD COLUMN {name} {definition}")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._writes += 1

    def add_document(
        self, sha256: str, filename: str, size_bytes: int, metadata: DocumentMetadata
    ) -> tuple[Document, bool]:
        """Insert a pending document; returns (document, created). Known bytes return the existing row, except
        a deleted one, which comes back as pending with the new name and metadata."""
        with self._lock:
            existing = self.find_by_sha256(sha256)
            if existing is not None and existing.status == DELETED:
                return self._restore(existing.id, filename, metadata), True
            if existing is not None:
                return existing, False
            now = utc_now()
            self._write(
                [
                    (
                        "INSERT INTO documents (id, sha256, filename, size_bytes, metadata, title, language, "
                        "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            sha256[:16],
                            sha256,
                            filename,
                            size_bytes,
                            json.dumps(metadata.to_dict(), ensure_ascii=False),
                            metadata.title,
                            metadata.language,
                            PENDING,
                            now,
                            now,
                        ),
                    )
                ]
            )
            document = self.get_document(sha256[:16])
            assert document is not None
            return document, True

    def _restore(self, document_id: str, filename: str, metadata: DocumentMetadata) -> Document:
        """Bring a deleted document back as pending (extracted again at the next build)."""
        self._write(
            [
                ("DELETE FROM passages WHERE document_id = ?", (document_id,)),
                (
                    "UPDATE documents SET filename = ?, metadata = ?, title = ?, language = ?, status = ?, "
                    "reason = NULL, message = NULL, passage_count = 0, chunker = NULL, fingerprint = NULL, "
                    "near_duplicate_of = NULL, updated_at = ? WHERE id = ?",
                    (
                        filename,
                        json.dumps(metadata.to_dict(), ensure_ascii=False),
                        metadata.title,
                        metadata.language,
                        PENDING,
                        utc_now(),
                        document_id,
                    ),
                ),
            ]
        )
        document = self.get_document(document_id)
        assert document is not None
        return document

    def update_metadata(self, document_id: str, metadata: DocumentMetadata) -> Document | None:
        """Replace a document's metadata; a given title or language also replaces the extracted one.

        Visibility and member take effect in searches at once (see `document_access`); the other fields in
        the next generation."""
        with self._lock:
            if self.get_document(document_id) is None:
                return None
            self._write(
                [
                    (
                        "UPDATE documents SET metadata = ?, title = COALESCE(?, title), "
                        "language = COALESCE(?, language), updated_at = ? WHERE id = ?",
                        (
                            json.dumps(metadata.to_dict(), ensure_ascii=False),
                            metadata.title,
                            metadata.language,
                            utc_now(),
                            document_id,
                        ),
                    )
                ]
            )
            return self.get_document(document_id)

    def delete_document(self, document_id: str) -> Document | None:
        """Mark a document deleted (its passages leave the next generation); None if there is no such document.

        The row and the original stay, so the deletion is recorded and known bytes are still recognised.
        """
        with self._lock:
            if self.get_document(document_id) is None:
                return None
            self._write(
                [("UPDATE documents SET status = ?, updated_at = ? WHERE id = ?", (DELETED, utc_now(), document_id))]
            )
            return self.get_document(document_id)

    def find_by_sha256(self, sha256: str) -> Document | None:
        """The document stored with these bytes, if any."""
        rows = self._query("SELECT * FROM documents WHERE sha256 = ?", (sha256,))
        return _document(rows[0]) if rows else None

    def get_document(self, document_id: str) -> Document | None:
        """One document by id."""
        rows = self._query("SELECT * FROM documents WHERE id = ?", (document_id,))
        return _document(rows[0]) if rows else None

    def query_documents(
        self, query: DocumentQuery, viewer: Viewer | None, limit: int, offset: int
    ) -> tuple[list[Document], int]:
        """A page of the documents `viewer` may see (None: all) that match `query`, oldest first, and the total.

        Deleted documents are listed to admins (and unrestricted callers) only."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("status", query.status),
            ("json_extract(metadata, '$.resource_type')", query.resource_type),
            ("media_type", query.media_type),
            ("language", query.language),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.member is not None:
            where.append("json_extract(metadata, '$.member') = ? COLLATE NOCASE")
            params.append(query.member)
        if viewer is not None and not viewer.admin:
            where.append(f"status != ? AND {_VISIBLE_SQL}")
            params += [DELETED, int(viewer.is_member), viewer.member]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = int(self._query(f"SELECT COUNT(*) FROM documents {clause}", params)[0][0])
        rows = self._query(
            f"SELECT * FROM documents {clause} ORDER BY created_at, rowid LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_document(row) for row in rows], total

    def document_access(self) -> dict[str, DocumentAccess]:
        """Status, visibility and institution of every document, as the catalog says now.

        Searches check these at query time, so a deletion or a visibility change counts at once, before the next
        generation. Costs one PRAGMA per call while the database is unchanged; after a change (here or in another
        process) only rows updated lately are read again. Every change of a document sets its `updated_at` and rows
        are never removed; the look-back window covers writers whose commit came after a later timestamp, and a
        full read every few minutes covers the rest (a clock set back). The table returned is never mutated."""
        with self._lock:
            version = (int(self._db.execute("PRAGMA data_version").fetchone()[0]), self._writes)
            cache = self._access
            if cache is not None and cache.version == version:
                return cache.table
            if cache is None or not cache.newest or time.monotonic() - cache.loaded > _ACCESS_FULL_READ_SECONDS:
                since, table, newest, loaded = "", {}, "", time.monotonic()
            else:
                since = (datetime.fromisoformat(cache.newest) - _ACCESS_LOOKBACK).isoformat(timespec="milliseconds")
                table, newest, loaded = dict(cache.table), cache.newest, cache.loaded
            rows = self._db.execute(
                "SELECT id, status, json_extract(metadata, '$.visibility'), json_extract(metadata, '$.member'), "
                "updated_at FROM documents WHERE updated_at >= ?",
                (since,),
            ).fetchall()
            table.update((row[0], DocumentAccess(row[1], row[2] or "public", row[3])) for row in rows)
            newest = max([newest, *(row[4] for row in rows)])
            self._access = _AccessCache(version, table, newest, loaded)
            return table

    def list_documents(self, status: str | None = None, limit: int = 1000, offset: int = 0) -> list[Document]:
        """Documents in the order they were added, optionally with one status."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._query(
            f"SELECT * FROM documents {where} ORDER BY created_at, rowid LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_document(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        """How many documents have each status."""
        return {row[0]: row[1] for row in self._query("SELECT status, COUNT(*) FROM documents GROUP BY status")}

    def documents_to_extract(self, chunker: str) -> list[Document]:
        """Pending documents, and indexed ones whose passages were cut for another model or budget."""
        rows = self._query(
            "SELECT * FROM documents WHERE status = ? OR (status = ? AND chunker IS NOT ?) ORDER BY created_at, rowid",
            (PENDING, INDEXED, chunker),
        )
        return [_document(row) for row in rows]

    def record_extraction(
        self,
        document_id: str,
        passages: Sequence[Passage],
        *,
        media_type: str,
        title: str | None,
        language: str | None,
        page_count: int | None,
        truncated: bool,
        warnings: Sequence[str] = (),
        empty_pages: Sequence[int] = (),
        ocr_pages: Sequence[int] = (),
        chunker: str,
        seconds: float,
    ) -> None:
        """Replace a document's passages and mark it indexed, in one transaction (one deleted meanwhile stays
        deleted)."""
        statements: list[tuple[str, Sequence[Any]]] = [("DELETE FROM passages WHERE document_id = ?", (document_id,))]
        statements += [
            (
                "INSERT INTO passages (id, document_id, ordinal, page, heading, char_start, char_end, language, text) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.id,
                    document_id,
                    p.ordinal,
                    p.page,
                    json.dumps(p.heading, ensure_ascii=False),
                    p.char_start,
                    p.char_end,
                    p.language,
                    p.text,
                ),
            )
            for p in passages
        ]
        statements.append(
            (
                "UPDATE documents SET status = ?, reason = NULL, message = NULL, media_type = ?, title = ?, "
                "language = ?, page_count = ?, passage_count = ?, truncated = ?, warnings = ?, empty_pages = ?, "
                "ocr_pages = ?, chunker = ?, extract_seconds = ?, updated_at = ? WHERE id = ? AND status != 'deleted'",
                (
                    INDEXED,
                    media_type,
                    title,
                    language,
                    page_count,
                    len(passages),
                    int(truncated),
                    json.dumps(list(warnings)),
                    json.dumps(list(empty_pages)),
                    json.dumps(list(ocr_pages)),
                    chunker,
                    seconds,
                    utc_now(),
                    document_id,
                ),
            )
        )
        self._write(statements)

    def record_failure(
        self,
        document_id: str,
        reason: str,
        message: str,
        seconds: float,
        media_type: str | None = None,
        page_count: int | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        """Mark a document failed with a reason code; its old passages go."""
        self._write(
            [
                ("DELETE FROM passages WHERE document_id = ?", (document_id,)),
                (
                    "UPDATE documents SET status = ?, reason = ?, message = ?, media_type = COALESCE(?, media_type), "
                    "page_count = COALESCE(?, page_count), warnings = ?, empty_pages = '[]', ocr_pages = '[]', "
                    "passage_count = 0, extract_seconds = ?, updated_at = ? WHERE id = ? AND status != 'deleted'",
                    (
                        FAILED,
                        reason,
                        message[:2000],
                        media_type,
                        page_count,
                        json.dumps(list(warnings)),
                        seconds,
                        utc_now(),
                        document_id,
                    ),
                ),
            ]
        )

    def set_fingerprint(self, document_id: str, fingerprint: bytes, near_duplicate_of: str | None) -> None:
        """Store a document's text fingerprint and the document it nearly duplicates, if any."""
        self._write(
            [
                (
                    "UPDATE documents SET fingerprint = ?, near_duplicate_of = ? WHERE id = ?",
                    (fingerprint, near_duplicate_of, document_id),
                )
            ]
        )

    def fingerprints(self) -> list[tuple[str, bytes]]:
        """(id, fingerprint) of indexed documents, oldest first."""
        rows = self._query(
            "SELECT id, fingerprint FROM documents WHERE status = ? AND fingerprint IS NOT NULL "
            "ORDER BY created_at, rowid",
            (INDEXED,),
        )
        return [(row[0], bytes(row[1])) for row in rows]

    def passages_of(self, document_id: str) -> list[Passage]:
        """A document's passages in reading order."""
        rows = self._query("SELECT * FROM passages WHERE document_id = ? ORDER BY ordinal", (document_id,))
        return [_passage(row) for row in rows]

    def indexed_passages(self) -> Iterator[tuple[Document, list[Passage]]]:
        """Every indexed document with its passages, in a stable order (the order of the index rows)."""
        for document in self.list_documents(status=INDEXED, limit=-1):
            yield document, self.passages_of(document.id)

    def state(self) -> dict[str, Any]:
        """What a generation was built from: document counts by status and the latest change."""
        latest = self._query("SELECT MAX(updated_at) FROM documents")[0][0]
        return {"documents_by_status": self.count_by_status(), "last_change": latest}

    def start_build(self, trigger: str = "cli", pid: int | None = None, outcome: str = BUILD_RUNNING) -> int:
        """Record a build as running in process `pid` (or `queued` for a process yet to start); returns its id."""
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown build trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
        with self._lock:
            self._write(
                [
                    (
                        "INSERT INTO builds (started_at, outcome, trigger, pid) VALUES (?, ?, ?, ?)",
                        (utc_now(), outcome, trigger, pid),
                    )
                ]
            )
            return int(self._query("SELECT MAX(id) FROM builds")[0][0])

    def mark_build_running(self, build_id: int, pid: int) -> None:
        """A queued build's process holds the lock now: record its pid and its real start."""
        self._write(
            [
                (
                    "UPDATE builds SET outcome = ?, pid = ?, started_at = ?, finished_at = NULL WHERE id = ?",
                    (BUILD_RUNNING, pid, utc_now(), build_id),
                )
            ]
        )

    def finish_build(
        self,
        build_id: int,
        outcome: str,
        generation_id: str | None,
        report: dict[str, Any],
        message: str | None = None,
    ) -> None:
        """Record how a build ended (`message`: why it failed or was refused)."""
        self._write(
            [
                (
                    "UPDATE builds SET finished_at = ?, outcome = ?, generation_id = ?, report = ?, message = ? "
                    "WHERE id = ?",
                    (
                        utc_now(),
                        outcome,
                        generation_id,
                        json.dumps(report, ensure_ascii=False),
                        message[:2000] if message else None,
                        build_id,
                    ),
                )
            ]
        )

    def refuse_build(self, trigger: str, message: str, build_id: int | None = None) -> int:
        """Record a build that did not start because another one was running (`build_id`: its queued record)."""
        with self._lock:
            if build_id is None:
                build_id = self.start_build(trigger)
            self.finish_build(build_id, BUILD_ALREADY_RUNNING, None, {}, message)
            return build_id

    def fail_unfinished_build(self, build_id: int, outcome: str, message: str) -> bool:
        """End a build that is still queued or running (its process is gone); False if it had ended."""
        with self._lock:
            record = self.get_build(build_id)
            if record is None or record.outcome not in (BUILD_QUEUED, BUILD_RUNNING):
                return False
            self.finish_build(build_id, outcome, None, record.report, message)
            return True

    def interrupt_stale_builds(self, keep: int | None = None) -> int:
        """Mark queued or running builds (but `keep`) interrupted; called by a build holding the lock, so no other
        build can be alive. Returns how many were marked."""
        with self._lock:
            rows = self._query(
                "SELECT id FROM builds WHERE outcome IN (?, ?) AND id IS NOT ?", (BUILD_QUEUED, BUILD_RUNNING, keep)
            )
            message = "the build process stopped without finishing (killed, crashed or the machine stopped)"
            self._write(
                [
                    ("UPDATE builds SET outcome = ?, message = ? WHERE id = ?", (BUILD_INTERRUPTED, message, row[0]))
                    for row in rows
                ]
            )
            return len(rows)

    def get_build(self, build_id: int) -> BuildRecord | None:
        """One build record by id."""
        rows = self._query("SELECT * FROM builds WHERE id = ?", (build_id,))
        return _build_record(rows[0]) if rows else None

    def list_builds(self, limit: int = 20, offset: int = 0) -> list[BuildRecord]:
        """Build records, newest first."""
        rows = self._query("SELECT * FROM builds ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
        return [_build_record(row) for row in rows]

    def count_builds(self) -> int:
        """How many build records there are."""
        return int(self._query("SELECT COUNT(*) FROM builds")[0][0])

    def last_build_start(self) -> str | None:
        """When the latest build that got the lock started (refused attempts do not count)."""
        rows = self._query("SELECT MAX(started_at) FROM builds WHERE outcome != ?", (BUILD_ALREADY_RUNNING,))
        return rows[0][0]

    def failed_builds_in_a_row(self) -> int:
        """How many of the latest builds that got the lock ended without publishing (failed, rejected or
        interrupted), counted back to the last published one."""
        rows = self._query(
            "SELECT outcome FROM builds WHERE outcome NOT IN (?, ?, ?) ORDER BY id DESC LIMIT 64",
            (BUILD_ALREADY_RUNNING, BUILD_QUEUED, BUILD_RUNNING),
        )
        count = 0
        for (outcome,) in rows:
            if outcome in (BUILD_PUBLISHED, BUILD_UNCHANGED):
                break
            count += 1
        return count

    def oldest_pending_change(self) -> str | None:
        """The time of the longest-waiting pending document, if any (what `build soon` measures)."""
        return self._query("SELECT MIN(updated_at) FROM documents WHERE status = ?", (PENDING,))[0][0]

    def last_finished_build(self) -> dict[str, Any] | None:
        """The most recent build that ended (id, started_at, finished_at, outcome, generation_id), or None."""
        rows = self._query(
            "SELECT id, started_at, finished_at, outcome, generation_id FROM builds "
            "WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        )
        return dict(rows[0]) if rows else None

    # Members and API keys.

    def add_member(self, member_id: str, name: str) -> Member:
        """Register an institution; its id and (case-insensitively) its name must be new."""
        name = " ".join(name.split())
        if not MEMBER_ID_RE.match(member_id):
            raise AccountError(f"member id {member_id!r}: use 2-63 lowercase letters, digits, '-' or '_'")
        if not name:
            raise AccountError("the member's name is empty")
        with self._lock:
            if self.get_member(member_id) is not None:
                raise AccountError(f"member {member_id!r} already exists")
            if self._query("SELECT 1 FROM members WHERE name = ?", (name,)):
                raise AccountError(f"another member is already named {name!r}")
            now = utc_now()
            self._write(
                [
                    (
                        "INSERT INTO members (id, name, disabled, created_at, updated_at) VALUES (?, ?, 0, ?, ?)",
                        (member_id, name, now, now),
                    )
                ]
            )
            member = self.get_member(member_id)
            assert member is not None
            return member

    def get_member(self, member_id: str) -> Member | None:
        """One member by id."""
        rows = self._query("SELECT * FROM members WHERE id = ?", (member_id,))
        return Member(**{**dict(rows[0]), "disabled": bool(rows[0]["disabled"])}) if rows else None

    def list_members(self) -> list[Member]:
        """Every member, by id."""
        return [
            Member(**{**dict(row), "disabled": bool(row["disabled"])})
            for row in self._query("SELECT * FROM members ORDER BY id")
        ]

    def set_member_disabled(self, member_id: str, disabled: bool) -> Member:
        """Disable (or enable again) a member: a disabled member's keys stop working at once."""
        with self._lock:
            if self.get_member(member_id) is None:
                raise AccountError(f"no member {member_id!r}")
            self._write(
                [
                    (
                        "UPDATE members SET disabled = ?, updated_at = ? WHERE id = ?",
                        (int(disabled), utc_now(), member_id),
                    )
                ]
            )
            member = self.get_member(member_id)
            assert member is not None
            return member

    def create_key(self, member_id: str | None, admin: bool = False, label: str | None = None) -> tuple[ApiKey, str]:
        """Make a key for a member (or, with `admin`, for the operators); returns it and its secret, which is
        not stored and cannot be shown again."""
        if member_id is None and not admin:
            raise AccountError("a key belongs to a member unless it is an admin key")
        with self._lock:
            if member_id is not None and self.get_member(member_id) is None:
                raise AccountError(f"no member {member_id!r}")
            key: NewKey = new_key()
            while self._query("SELECT 1 FROM api_keys WHERE prefix = ?", (key.prefix,)):
                key = new_key()
            self._write(
                [
                    (
                        "INSERT INTO api_keys (prefix, digest, member_id, admin, label, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (key.prefix, key.digest, member_id, int(admin), label, utc_now()),
                    )
                ]
            )
            return self._key(key.prefix), key.token

    def _key(self, prefix: str) -> ApiKey:
        row = self._query(f"{_KEY_SELECT} WHERE k.prefix = ?", (prefix,))[0]
        return ApiKey(**{**dict(row), "admin": bool(row["admin"])})

    def list_keys(self, member_id: str | None = None) -> list[ApiKey]:
        """Keys (all, or one member's), oldest first, without secrets."""
        where, params = ("WHERE k.member_id = ?", (member_id,)) if member_id else ("", ())
        rows = self._query(f"{_KEY_SELECT} {where} ORDER BY k.created_at, k.rowid", params)
        return [ApiKey(**{**dict(row), "admin": bool(row["admin"])}) for row in rows]

    def revoke_key(self, prefix: str) -> ApiKey:
        """Revoke a key by its prefix; it stops working at once. Revoking twice keeps the first time."""
        with self._lock:
            if not self._query("SELECT 1 FROM api_keys WHERE prefix = ?", (prefix,)):
                raise AccountError(f"no key {prefix!r}")
            self._write(
                [
                    (
                        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE prefix = ?",
                        (utc_now(), prefix),
                    )
                ]
            )
            return self._key(prefix)

    def authenticate(self, token: str) -> KeyHolder | None:
        """Who a presented key speaks for, or None for a malformed, unknown, revoked or disabled-member key.

        The key is found by its non-secret prefix and its digest compared in constant time."""
        prefix = key_prefix(token)
        if prefix is None:
            return None
        rows = self._query(
            "SELECT k.digest, k.member_id, m.name, k.admin, k.revoked_at, m.disabled "
            "FROM api_keys k LEFT JOIN members m ON m.id = k.member_id WHERE k.prefix = ?",
            (prefix,),
        )
        if not rows:
            return None
        digest, member_id, member_name, admin, revoked_at, disabled = rows[0]
        if not digests_match(token, digest) or revoked_at is not None or disabled:
            return None
        return KeyHolder(prefix=prefix, member_id=member_id, member_name=member_name, admin=bool(admin))
