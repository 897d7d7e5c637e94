"""What a new generation changes for searchers: documents added, changed and deleted since the published one.

Compared through the generations' passage tables (the documents a search can return, their metadata and
passages), so a metadata edit, a re-cut document or a deletion counts exactly when searchers will see it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from indexer.generation import PASSAGES_FILE


@dataclass(frozen=True)
class DocumentChanges:
    """How many documents a generation adds, changes and drops compared with another."""

    added: int
    changed: int
    deleted: int


def document_digests(folder: Path) -> dict[str, str]:
    """For each document in a generation, a digest of its row in the document table and its passage ids."""
    uri = f"file:{folder / PASSAGES_FILE}?mode=ro&immutable=1"
    db = sqlite3.connect(uri, uri=True)
    try:
        digests = {row[0]: hashlib.sha256(repr(row).encode()) for row in db.execute("SELECT * FROM documents")}
        for document_id, passage_id in db.execute(
            "SELECT document_id, passage_id FROM passages ORDER BY document_id, ordinal"
        ):
            digests[document_id].update(passage_id.encode())
    finally:
        db.close()
    return {document_id: digest.hexdigest() for document_id, digest in digests.items()}


def count_changes(previous: Path | None, new: Path) -> DocumentChanges:
    """Compare a new generation with the previous one (None: nothing was published, every document is new)."""
    before = document_digests(previous) if previous is not None else {}
    after = document_digests(new)
    common = before.keys() & after.keys()
    return DocumentChanges(
        added=len(after.keys() - before.keys()),
        changed=sum(before[d] != after[d] for d in common),
        deleted=len(before.keys() - after.keys()),
    )
