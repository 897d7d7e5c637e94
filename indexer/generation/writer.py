"""Writing a generation: dense indexes, the lexical index, the passage table and the manifest, then verifying it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.dense import AnnOptions, build_index, write_dense_index
from indexer.faults import fault_point
from indexer.generation.contract import (
    LEXICAL_DIR,
    PASSAGES_FILE,
    BuildParameters,
    DenseIndexSpec,
    EncoderEntry,
    EncoderModel,
    Manifest,
    dense_file,
)
from indexer.generation.folders import finish_generation, start_generation, verify_generation
from indexer.generation.rows import PASSAGE_SCHEMA, DocumentRow, PassageRow
from indexer.lexical import LexicalIndex
from indexer.permissions import create_private_file


def write_passage_table(path: Path, passages: Iterable[PassageRow], documents: Iterable[DocumentRow]) -> None:
    """Write the passage table: rows in vector order, and the documents they belong to."""
    create_private_file(path)  # the passages' text, member-only documents' included: 0600
    db = sqlite3.connect(path)
    try:
        db.executescript(PASSAGE_SCHEMA)
        db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (p.to_sql() for p in passages))
        db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (d.to_sql() for d in documents))
        db.commit()
    finally:
        db.close()


@dataclass(frozen=True)
class GenerationContent:
    """Everything a generation holds, in row order: `texts` (what is embedded and BM25-indexed, context included)
    and `vectors` (one matrix per model) follow `passages`."""

    passages: Sequence[PassageRow]
    documents: Sequence[DocumentRow]
    texts: Sequence[str]
    models: Sequence[EncoderModel]
    vectors: Sequence[Any]
    parameters: BuildParameters
    digest: str
    catalog_state: dict[str, Any]


def write_generation(root: Path, generation_id: str, content: GenerationContent, ann: AnnOptions) -> Manifest:
    """Write and verify a complete, unpublished generation `root/generation_id`; returns its manifest."""
    folder = start_generation(root, generation_id)
    entries = []
    for position, (model, vectors) in enumerate(zip(content.models, content.vectors, strict=True)):
        built = build_index(vectors, ann)
        write_dense_index(built.index, folder / dense_file(position))
        entries.append(EncoderEntry.of(model, position, DenseIndexSpec.from_dict(built.description)))
        del built
    fault_point("write")
    documents = {d.document_id: d for d in content.documents}
    languages = [p.language or documents[p.document_id].language for p in content.passages]
    LexicalIndex.build(list(zip(content.texts, languages, strict=True))).save(folder / LEXICAL_DIR)
    write_passage_table(folder / PASSAGES_FILE, content.passages, content.documents)
    manifest = Manifest(
        generation_id=generation_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        passage_count=len(content.passages),
        document_count=len(content.documents),
        encoders=tuple(entries),
        parameters=content.parameters,
        languages=dict(Counter(language or "und" for language in languages)),
        content_digest=content.digest,
        catalog_state=content.catalog_state,
    )
    return verify_generation(finish_generation(folder, manifest))
