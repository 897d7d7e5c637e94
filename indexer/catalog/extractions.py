"""What a build's extraction writes into the catalog: a document's passages, its outcome and its fingerprint."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from indexer.catalog.database import Database, utc_now
from indexer.catalog.documents import FAILED, INDEXED


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


def _passage(row: sqlite3.Row) -> Passage:
    values = dict(row)
    values["heading"] = tuple(json.loads(values["heading"]))
    return Passage(**values)


class Extractions:
    """Passages, extraction outcomes and fingerprints of documents; a document deleted meanwhile stays deleted."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
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
        self._db.write(statements)

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
        self._db.write(
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
        self._db.write(
            [
                (
                    "UPDATE documents SET fingerprint = ?, near_duplicate_of = ? WHERE id = ?",
                    (fingerprint, near_duplicate_of, document_id),
                )
            ]
        )

    def fingerprints(self) -> list[tuple[str, bytes]]:
        """(id, fingerprint) of indexed documents, oldest first."""
        rows = self._db.query(
            "SELECT id, fingerprint FROM documents WHERE status = ? AND fingerprint IS NOT NULL "
            "ORDER BY created_at, rowid",
            (INDEXED,),
        )
        return [(row[0], bytes(row[1])) for row in rows]

    def passages_of(self, document_id: str) -> list[Passage]:
        """A document's passages in reading order."""
        rows = self._db.query("SELECT * FROM passages WHERE document_id = ? ORDER BY ordinal", (document_id,))
        return [_passage(row) for row in rows]
