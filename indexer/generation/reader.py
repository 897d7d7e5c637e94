"""Opening a published generation for reading: verified manifest, memory-mapped index, read-only passages."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.dense import read_dense_index
from indexer.generation.contract import (
    LEXICAL_DIR,
    PASSAGES_FILE,
    GenerationError,
    Manifest,
)
from indexer.generation.folders import generations_root, published_generation_id, verify_generation
from indexer.generation.rows import DOCUMENT_COLUMNS, PASSAGE_COLUMNS, DocumentRow, PassageRow
from indexer.lexical import LexicalIndex


@dataclass(frozen=True)
class PassageRecord:
    """A passage as stored in a generation, with the document fields a citation needs."""

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
    title: str | None
    filename: str
    media_type: str | None
    document_language: str | None
    metadata: dict[str, Any]
    near_duplicates: tuple[str, ...]


@dataclass(frozen=True)
class DenseIndex:
    """One encoder's vectors: the model that made them and the languages it was trained for (None: any)."""

    model_id: str
    index: Any
    languages: frozenset[str] | None


@dataclass(frozen=True)
class DocumentInfo:
    """The fields of a document that searches filter and group on."""

    id: str
    title: str | None
    language: str | None
    member: str | None
    resource_type: str | None
    year: int | None
    tags: tuple[str, ...]
    visibility: str
    translation_group: str | None


_PASSAGE_FIELDS = len(PASSAGE_COLUMNS.split(","))
_SELECT = (
    f"SELECT {', '.join('p.' + c.strip() for c in PASSAGE_COLUMNS.split(','))}, "
    f"{', '.join('d.' + c.strip() for c in DOCUMENT_COLUMNS.split(','))} "
    "FROM passages p JOIN documents d ON d.document_id = p.document_id"
)


def _record(passage: PassageRow, document: DocumentRow) -> PassageRecord:
    return PassageRecord(
        row=passage.row,
        passage_id=passage.passage_id,
        document_id=passage.document_id,
        ordinal=passage.ordinal,
        page=passage.page,
        heading=passage.heading,
        char_start=passage.char_start,
        char_end=passage.char_end,
        language=passage.language,
        text=passage.text,
        title=document.title,
        filename=document.filename,
        media_type=document.media_type,
        document_language=document.language,
        metadata=document.metadata.to_dict(),
        near_duplicates=document.near_duplicates,
    )


class GenerationReader:
    """One open, verified generation. Safe to share between threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest: Manifest = verify_generation(folder)
        self.dense: list[DenseIndex] = []
        for encoder in self.manifest.encoders:
            index = read_dense_index(folder / encoder.file)
            if index.ntotal != self.manifest.passage_count or index.d != encoder.dimension:
                raise GenerationError(
                    f"{folder.name}: {encoder.file} holds {index.ntotal} vectors of {index.d} dimensions, "
                    f"the manifest says {self.manifest.passage_count} of {encoder.dimension}"
                )
            languages = frozenset(encoder.languages) if encoder.languages else None
            self.dense.append(DenseIndex(encoder.model_id, index, languages))
        self.index = self.dense[0].index
        self.lexical = LexicalIndex.load(folder / LEXICAL_DIR)
        if self.lexical.size != self.manifest.passage_count:
            raise GenerationError(f"{folder.name}: lexical index holds {self.lexical.size} passages")
        uri = f"file:{folder / PASSAGES_FILE}?mode=ro&immutable=1"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self.documents, self.row_document, self.row_language = self._load_document_table()

    def _load_document_table(self) -> tuple[list[DocumentInfo], np.ndarray, np.ndarray]:
        """Every document's filterable fields; for every row the position of its document in that list and
        the passage's language (ISO 639-1, '' when unknown)."""
        documents: list[DocumentInfo] = []
        position: dict[str, int] = {}
        for values in self._db.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents ORDER BY document_id"):
            row = DocumentRow.from_sql(values)
            metadata = row.metadata
            position[row.document_id] = len(documents)
            documents.append(
                DocumentInfo(
                    id=row.document_id,
                    title=row.title,
                    language=row.language,
                    member=metadata.member,
                    resource_type=metadata.resource_type,
                    year=metadata.year,
                    tags=metadata.tags,
                    visibility=metadata.visibility,
                    translation_group=metadata.translation_group,
                )
            )
        row_document = np.zeros(self.manifest.passage_count, dtype=np.int32)
        row_language = np.zeros(self.manifest.passage_count, dtype="U3")
        for row, doc_id, language in self._db.execute("SELECT row, document_id, language FROM passages"):
            row_document[row] = position[doc_id]
            row_language[row] = language or documents[position[doc_id]].language or ""
        return documents, row_document, row_language

    @property
    def generation_id(self) -> str:
        """The id of this generation."""
        return self.manifest.generation_id

    def close(self) -> None:
        """Release the passage table."""
        self._db.close()

    def passages(self, rows: Sequence[int]) -> dict[int, PassageRecord]:
        """Passage records for vector rows."""
        wanted = [int(r) for r in rows if r >= 0]
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        with self._lock:
            found = self._db.execute(f"{_SELECT} WHERE p.row IN ({marks})", wanted).fetchall()
        out = {}
        for values in found:
            passage = PassageRow.from_sql(values[:_PASSAGE_FIELDS])
            out[passage.row] = _record(passage, DocumentRow.from_sql(values[_PASSAGE_FIELDS:]))
        return out

    def row_of(self, passage_id: str) -> int | None:
        """The vector row of a passage id, or None when this generation does not hold it."""
        with self._lock:
            found = self._db.execute("SELECT row FROM passages WHERE passage_id = ? LIMIT 1", (passage_id,)).fetchone()
        return None if found is None else int(found[0])


def open_published(data_dir: Path) -> GenerationReader | None:
    """The published generation of a data directory, or None before the first publish."""
    root = generations_root(data_dir)
    generation_id = published_generation_id(root)
    if generation_id is None:
        return None
    return GenerationReader(root / generation_id)
