"""Taking documents in: store the original durably, record it in the catalog as pending."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.catalog import Catalog, Document, PendingQuota
from indexer.metadata import DocumentMetadata, ManifestEntry
from indexer.store import OriginalsStore

logger = logging.getLogger(__name__)

_UNSAFE_NAME_RE = re.compile(r"[\x00-\x1f\x7f/\\]+")


class IngestError(Exception):
    """A file refused before it was stored; `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IngestResult:
    """The stored document, and whether these bytes were new."""

    document: Document
    created: bool

    @property
    def duplicate_of(self) -> str | None:
        """The id of the document that already held these bytes."""
        return None if self.created else self.document.id


def clean_filename(name: str) -> str:
    """A display name: the last path component, without controls, at most 200 characters."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE_NAME_RE.sub("", name).strip().lstrip(".")
    if len(name) > 200:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[: 200 - len(suffix) - 1] + dot + suffix) if dot and len(suffix) <= 10 else name[:200]
    return name or "unnamed"


def ingest_bytes(
    store: OriginalsStore,
    catalog: Catalog,
    data: bytes,
    filename: str,
    metadata: DocumentMetadata,
    max_bytes: int,
    owner_id: str | None = None,
    quota: PendingQuota | None = None,
) -> IngestResult:
    """Store bytes (fsynced) and commit their catalog row; only then is the document acknowledged. `owner_id`:
    the member whose key uploads it (None: the member its metadata names, if any).

    With a `quota` (a member's upload), a new pending document over it raises QuotaExceeded before the bytes are
    stored. Two uploads racing at the edge are decided by the check in the insert's transaction: the loser commits
    nothing, but its original may stay in the store unreferenced, as after a crash between storing and committing.
    """
    if not data:
        raise IngestError("empty_file", f"{filename}: the file is empty")
    if len(data) > max_bytes:
        raise IngestError("too_large", f"{filename}: {len(data)} bytes is over the limit of {max_bytes}")
    if quota is not None:
        catalog.check_quota(quota, hashlib.sha256(data).hexdigest(), len(data))
    sha256 = store.put(data)
    document, created = catalog.add_document(sha256, clean_filename(filename), len(data), metadata, owner_id, quota)
    return IngestResult(document, created)


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named directly, and files inside named folders (recursively, hidden ones skipped), sorted."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path)
                if child.is_file() and not any(part.startswith(".") for part in relative.parts):
                    yield child
        else:
            yield path


def entries_for_paths(paths: Iterable[Path], metadata: DocumentMetadata) -> list[ManifestEntry]:
    """Manifest entries for plain paths, all with the same metadata."""
    return [ManifestEntry(path=p, metadata=metadata) for p in iter_files(paths)]
