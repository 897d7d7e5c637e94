"""Documents in the catalog: their rows, listings and the access table searches check at query time."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from indexer.access import Viewer, name_key
from indexer.catalog.accounts import resolve_owner
from indexer.catalog.database import Database, utc_now
from indexer.catalog.fairness import ROUND_ROBIN_ORDER, PendingQuota, check_pending_quota
from indexer.metadata import DocumentMetadata, parse_metadata

PENDING, INDEXED, FAILED, DELETED = "pending", "indexed", "failed", "deleted"

# How far back document_access re-reads rows after a change: longer than any write transaction waits for its lock.
_ACCESS_LOOKBACK = timedelta(seconds=120)
_ACCESS_FULL_READ_SECONDS = 300.0

# The visibility rule of indexer.access.Viewer.can_see, as SQL (for paged listings): the owner by id, as there.
_VISIBLE_SQL = (
    "(json_extract(metadata, '$.visibility') IS NULL OR json_extract(metadata, '$.visibility') = 'public'"
    " OR (? AND json_extract(metadata, '$.visibility') = 'alliance')"
    " OR (owner_id IS NOT NULL AND owner_id = ?))"
)


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
    owner_id: str | None  # the member it belongs to (None: the operators'); metadata `member` is its display name


@dataclass(frozen=True)
class DocumentAccess:
    """What decides at query time whether a document may be shown: its status, visibility and owner (member id)."""

    status: str
    visibility: str
    owner: str | None


@dataclass(frozen=True)
class DocumentQuery:
    """Filters of a document listing; empty fields do not filter."""

    member: str | None = None
    status: str | None = None
    resource_type: str | None = None
    media_type: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class _AccessCache:
    """document_access's table, the database version it reflects, its newest `updated_at` and when it was last
    read in full (monotonic seconds)."""

    version: tuple[int, int]
    table: dict[str, DocumentAccess]
    newest: str
    loaded: float


def _document(row: sqlite3.Row) -> Document:
    values = dict(row)
    values["metadata"] = parse_metadata(json.loads(values["metadata"]))
    values["truncated"] = bool(values["truncated"])
    values["warnings"] = tuple(json.loads(values["warnings"]))
    values["empty_pages"] = tuple(json.loads(values["empty_pages"]))
    values["ocr_pages"] = tuple(json.loads(values["ocr_pages"]))
    values.pop("fingerprint", None)
    return Document(**values)


class Documents:
    """The documents table: what ingestion, the contributions API and the build read and change."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._access: _AccessCache | None = None

    def add(
        self,
        sha256: str,
        filename: str,
        size_bytes: int,
        metadata: DocumentMetadata,
        owner_id: str | None = None,
        quota: PendingQuota | None = None,
    ) -> tuple[Document, bool]:
        """Insert a pending document; returns (document, created). Known bytes return the existing row, except
        a deleted one, which comes back as pending with the new name and metadata. With a `quota`, a new pending
        document over it raises QuotaExceeded and changes nothing (counted in the insert's transaction).

        Its owner is `owner_id` (a member's upload: the member of its key, never found by name: names that differ
        only by the Kelvin sign are the same once NFC), else the member its `member` field names (`resolve_owner`:
        an operator's ingest or an admin's upload may name any member, or an institution that is none)."""
        with self._db.lock:
            existing = self.find_by_sha256(sha256)
            check = None if quota is None else partial(check_pending_quota, quota=quota, size=size_bytes)
            if existing is not None and existing.status == DELETED:
                return self._restore(existing.id, filename, metadata, owner_id, check), True
            if existing is not None:
                return existing, False
            now = utc_now()
            self._db.write(
                [
                    (
                        "INSERT INTO documents (id, sha256, filename, size_bytes, metadata, title, language, "
                        "status, created_at, updated_at, owner_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                            owner_id or resolve_owner(self._db, metadata.member),
                        ),
                    )
                ],
                check,
            )
            document = self.get(sha256[:16])
            assert document is not None
            return document, True

    def check_quota(self, quota: PendingQuota, sha256: str, size_bytes: int) -> None:
        """QuotaExceeded when storing these bytes would add a pending document over `quota` (known bytes that are
        not deleted add none). Before the original is written, so a refused upload stores nothing; `add` checks
        again in its transaction, which decides."""
        with self._db.lock:
            existing = self.find_by_sha256(sha256)
            if existing is None or existing.status == DELETED:
                check_pending_quota(self._db.connection, quota, size_bytes)

    def _restore(
        self,
        document_id: str,
        filename: str,
        metadata: DocumentMetadata,
        owner_id: str | None,
        check: Callable[[sqlite3.Connection], None] | None = None,
    ) -> Document:
        """Bring a deleted document back as pending (extracted again at the next build)."""
        self._db.write(
            [
                ("DELETE FROM passages WHERE document_id = ?", (document_id,)),
                (
                    "UPDATE documents SET filename = ?, metadata = ?, title = ?, language = ?, status = ?, "
                    "reason = NULL, message = NULL, passage_count = 0, chunker = NULL, fingerprint = NULL, "
                    "near_duplicate_of = NULL, updated_at = ?, owner_id = ? WHERE id = ?",
                    (
                        filename,
                        json.dumps(metadata.to_dict(), ensure_ascii=False),
                        metadata.title,
                        metadata.language,
                        PENDING,
                        utc_now(),
                        owner_id or resolve_owner(self._db, metadata.member),
                        document_id,
                    ),
                ),
            ],
            check,
        )
        document = self.get(document_id)
        assert document is not None
        return document

    def update_metadata(self, document_id: str, metadata: DocumentMetadata) -> Document | None:
        """Replace a document's metadata; a given title or language also replaces the extracted one.

        Visibility and member take effect in searches at once (see `access`); the other fields in the next
        generation. A change of `member` (an admin's) gives the document to the member it names now, or to none."""
        with self._db.lock:
            document = self.get(document_id)
            if document is None:
                return None
            owner = document.owner_id
            if metadata.member != document.metadata.member:
                owner = resolve_owner(self._db, metadata.member)
            self._db.write(
                [
                    (
                        "UPDATE documents SET metadata = ?, title = COALESCE(?, title), "
                        "language = COALESCE(?, language), updated_at = ?, owner_id = ? WHERE id = ?",
                        (
                            json.dumps(metadata.to_dict(), ensure_ascii=False),
                            metadata.title,
                            metadata.language,
                            utc_now(),
                            owner,
                            document_id,
                        ),
                    )
                ]
            )
            return self.get(document_id)

    def delete(self, document_id: str) -> Document | None:
        """Mark a document deleted (its passages leave the next generation); None if there is no such document.

        The row and the original stay, so the deletion is recorded and known bytes are still recognised.
        """
        with self._db.lock:
            if self.get(document_id) is None:
                return None
            self._db.write(
                [("UPDATE documents SET status = ?, updated_at = ? WHERE id = ?", (DELETED, utc_now(), document_id))]
            )
            return self.get(document_id)

    def find_by_sha256(self, sha256: str) -> Document | None:
        """The document stored with these bytes, if any."""
        rows = self._db.query("SELECT * FROM documents WHERE sha256 = ?", (sha256,))
        return _document(rows[0]) if rows else None

    def get(self, document_id: str) -> Document | None:
        """One document by id."""
        rows = self._db.query("SELECT * FROM documents WHERE id = ?", (document_id,))
        return _document(rows[0]) if rows else None

    def query(self, query: DocumentQuery, viewer: Viewer | None, limit: int, offset: int) -> tuple[list[Document], int]:
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
            where.append("name_key(json_extract(metadata, '$.member')) = ?")
            params.append(name_key(query.member))
        if viewer is not None and not viewer.admin:
            where.append(f"status != ? AND {_VISIBLE_SQL}")
            params += [DELETED, int(viewer.is_member), viewer.member_id]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = int(self._db.query(f"SELECT COUNT(*) FROM documents {clause}", params)[0][0])
        rows = self._db.query(
            f"SELECT * FROM documents {clause} ORDER BY created_at, rowid LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_document(row) for row in rows], total

    def access(self) -> dict[str, DocumentAccess]:
        """Status, visibility and owner of every document, as the catalog says now.

        Searches check these at query time, so a deletion or a visibility change counts at once, before the next
        generation. Costs one PRAGMA per call while the database is unchanged; after a change (here or in another
        process) only rows updated lately are read again. Every change of a document sets its `updated_at` and rows
        are never removed; the look-back window covers writers whose commit came after a later timestamp, and a
        full read every few minutes covers the rest (a clock set back). The table returned is never mutated."""
        with self._db.lock:
            version = self._db.version()
            cache = self._access
            if cache is not None and cache.version == version:
                return cache.table
            if cache is None or not cache.newest or time.monotonic() - cache.loaded > _ACCESS_FULL_READ_SECONDS:
                since, table, newest, loaded = "", {}, "", time.monotonic()
            else:
                since = (datetime.fromisoformat(cache.newest) - _ACCESS_LOOKBACK).isoformat(timespec="milliseconds")
                table, newest, loaded = dict(cache.table), cache.newest, cache.loaded
            rows = self._db.query(
                "SELECT id, status, json_extract(metadata, '$.visibility'), owner_id, "
                "updated_at FROM documents WHERE updated_at >= ?",
                (since,),
            )
            table.update((row[0], DocumentAccess(row[1], row[2] or "public", row[3])) for row in rows)
            newest = max([newest, *(row[4] for row in rows)])
            self._access = _AccessCache(version, table, newest, loaded)
            return table

    def list_by_status(self, status: str | None = None, limit: int = 1000, offset: int = 0) -> list[Document]:
        """Documents in the order they were added, optionally with one status."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self._db.query(
            f"SELECT * FROM documents {where} ORDER BY created_at, rowid LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_document(row) for row in rows]

    def count_by_status(self) -> dict[str, int]:
        """How many documents have each status."""
        return {row[0]: row[1] for row in self._db.query("SELECT status, COUNT(*) FROM documents GROUP BY status")}

    def to_extract(self, chunker: str) -> list[Document]:
        """Pending documents, and indexed ones whose passages were cut for another model or budget, taken one per
        member in turn (see `fairness`): a member's backlog never pushes another member's upload to the end."""
        rows = self._db.query(
            "SELECT * FROM documents WHERE status = ? OR (status = ? AND chunker IS NOT ?) "
            f"ORDER BY {ROUND_ROBIN_ORDER}",
            (PENDING, INDEXED, chunker),
        )
        return [_document(row) for row in rows]

    def state(self) -> dict[str, Any]:
        """What a generation was built from: document counts by status and the latest change."""
        latest = self._db.query("SELECT MAX(updated_at) FROM documents")[0][0]
        return {"documents_by_status": self.count_by_status(), "last_change": latest}

    def oldest_pending_change(self) -> str | None:
        """The time of the longest-waiting pending document, if any (what `build soon` measures)."""
        return self._db.query("SELECT MIN(updated_at) FROM documents WHERE status = ?", (PENDING,))[0][0]
