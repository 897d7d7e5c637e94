"""The catalog: a SQLite database of documents, their passages and the builds made from them."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.metadata import DocumentMetadata, parse_metadata

PENDING, INDEXED, FAILED, DELETED = "pending", "indexed", "failed", "deleted"

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
    report TEXT
);
"""


# Columns added after the first release: (name, definition); Catalog() adds the missing ones to old databases.
_ADDED_COLUMNS = (
    ("warnings", "TEXT NOT NULL DEFAULT '[]'"),
    ("fingerprint", "BLOB"),
    ("near_duplicate_of", "TEXT"),
    ("empty_pages", "TEXT NOT NULL DEFAULT '[]'"),
    ("ocr_pages", "TEXT NOT NULL DEFAULT '[]'"),
)


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


def _document(row: sqlite3.Row) -> Document:
    values = dict(row)
    values["metadata"] = parse_metadata(json.loads(values["metadata"]))
    values["truncated"] = bool(values["truncated"])
    values["warnings"] = tuple(json.loads(values["warnings"]))
    values["empty_pages"] = tuple(json.loads(values["empty_pages"]))
    values["ocr_pages"] = tuple(json.loads(values["ocr_pages"]))
    values.pop("fingerprint", None)
    return Document(**values)


def _passage(row: sqlite3.Row) -> Passage:
    values = dict(row)
    values["heading"] = tuple(json.loads(values["heading"]))
    return Passage(**values)


class Catalog:
    """Thread-safe access to the catalog database (WAL, synchronous=FULL: a commit survives power loss)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._db.executescript(_SCHEMA)

    def _migrate(self) -> None:
        """Add columns that databases created by older versions lack."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(documents)")}
        if not columns:
            return
        for name, definition in _ADDED_COLUMNS:
            if name not in columns:
                self._db.execute(f"ALTER TABLE documents ADD COLUMN {name} {definition}")

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

    def add_document(
        self, sha256: str, filename: str, size_bytes: int, metadata: DocumentMetadata
    ) -> tuple[Document, bool]:
        """Insert a pending document; returns (document, created). Known bytes return the existing row."""
        with self._lock:
            existing = self.find_by_sha256(sha256)
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

    def find_by_sha256(self, sha256: str) -> Document | None:
        """The document stored with these bytes, if any."""
        rows = self._query("SELECT * FROM documents WHERE sha256 = ?", (sha256,))
        return _document(rows[0]) if rows else None

    def get_document(self, document_id: str) -> Document | None:
        """One document by id."""
        rows = self._query("SELECT * FROM documents WHERE id = ?", (document_id,))
        return _document(rows[0]) if rows else None

    def list_documents(self, status: str | None = None, limit: int = 1000, offset: int = 0) -> list[Document]:
        """Documents in the order they were added, optionally with one status."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._query(
            f"SELECT * FROM documents {where} ORDER BY created_at, id LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_document(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        """How many documents have each status."""
        return {row[0]: row[1] for row in self._query("SELECT status, COUNT(*) FROM documents GROUP BY status")}

    def documents_to_extract(self, chunker: str) -> list[Document]:
        """Pending documents, and indexed ones whose passages were cut for another model or budget."""
        rows = self._query(
            "SELECT * FROM documents WHERE status = ? OR (status = ? AND chunker IS NOT ?) ORDER BY created_at, id",
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
        """Replace a document's passages and mark it indexed, in one transaction."""
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
                "ocr_pages = ?, chunker = ?, extract_seconds = ?, updated_at = ? WHERE id = ?",
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
                    "passage_count = 0, extract_seconds = ?, updated_at = ? WHERE id = ?",
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
            "ORDER BY created_at, id",
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

    def start_build(self) -> int:
        """Record a build as running; returns its id."""
        with self._lock:
            self._write([("INSERT INTO builds (started_at, outcome) VALUES (?, 'running')", (utc_now(),))])
            return int(self._query("SELECT MAX(id) FROM builds")[0][0])

    def finish_build(self, build_id: int, outcome: str, generation_id: str | None, report: dict[str, Any]) -> None:
        """Record how a build ended."""
        self._write(
            [
                (
                    "UPDATE builds SET finished_at = ?, outcome = ?, generation_id = ?, report = ? WHERE id = ?",
                    (utc_now(), outcome, generation_id, json.dumps(report, ensure_ascii=False), build_id),
                )
            ]
        )
