"""The rows of a generation's passage table (`passages.sqlite3`): one per passage in vector order, one per document
cited. Part of the generation contract; both the writer and the reader go through these types."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from indexer.metadata import DocumentMetadata

PASSAGE_SCHEMA = """
CREATE TABLE passages (
    row INTEGER PRIMARY KEY,
    passage_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    language TEXT,
    text TEXT NOT NULL
);
CREATE TABLE documents (
    document_id TEXT PRIMARY KEY,
    title TEXT,
    filename TEXT NOT NULL,
    media_type TEXT,
    page_count INTEGER,
    language TEXT,
    metadata TEXT NOT NULL,
    near_duplicates TEXT NOT NULL
);
CREATE INDEX passages_passage_id ON passages(passage_id);
"""
PASSAGE_COLUMNS = "row, passage_id, document_id, ordinal, page, heading, char_start, char_end, language, text"
DOCUMENT_COLUMNS = "document_id, title, filename, media_type, page_count, language, metadata, near_duplicates"


@dataclass(frozen=True)
class PassageRow:
    """One row of the passage table; `row` is the passage's row in every dense index."""

    row: int
    passage_id: str
    document_id: str
    ordinal: int
    page: int | None
    heading: tuple[str, ...]
    char_start: int
    char_end: int
    language: str | None
    text: str

    def to_sql(self) -> tuple[Any, ...]:
        """The values of an INSERT in PASSAGE_COLUMNS order."""
        heading = json.dumps(list(self.heading), ensure_ascii=False)
        return (self.row, self.passage_id, self.document_id, self.ordinal, self.page, heading, *self._tail())

    def _tail(self) -> tuple[Any, ...]:
        return (self.char_start, self.char_end, self.language, self.text)

    @classmethod
    def from_sql(cls, values: tuple[Any, ...]) -> PassageRow:
        """A row read in PASSAGE_COLUMNS order."""
        row, passage_id, document_id, ordinal, page, heading, start, end, language, text = values
        return cls(row, passage_id, document_id, ordinal, page, tuple(json.loads(heading)), start, end, language, text)


@dataclass(frozen=True)
class DocumentRow:
    """One row of the document table: what a citation, a filter and the access rules need of a document."""

    document_id: str
    title: str | None
    filename: str
    media_type: str | None
    page_count: int | None
    language: str | None
    metadata: DocumentMetadata
    near_duplicates: tuple[str, ...] = ()

    def to_sql(self) -> tuple[Any, ...]:
        """The values of an INSERT in DOCUMENT_COLUMNS order."""
        metadata = json.dumps(self.metadata.to_dict(), ensure_ascii=False)
        near = json.dumps(list(self.near_duplicates))
        return (
            self.document_id,
            self.title,
            self.filename,
            self.media_type,
            self.page_count,
            self.language,
            metadata,
            near,
        )

    @classmethod
    def from_sql(cls, values: tuple[Any, ...]) -> DocumentRow:
        """A row read in DOCUMENT_COLUMNS order."""
        document_id, title, filename, media_type, page_count, language, metadata, near = values
        return cls(
            document_id,
            title,
            filename,
            media_type,
            page_count,
            language,
            metadata_from_json(metadata),
            tuple(json.loads(near)),
        )


def metadata_from_json(text: str) -> DocumentMetadata:
    """Stored metadata back as the typed model; fields a generation predates take their defaults."""
    stored = json.loads(text)
    values: dict[str, Any] = {}
    for f in fields(DocumentMetadata):
        if f.name in stored:
            value = stored[f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return DocumentMetadata(**values)
