"""Search filters: which documents a search may return, applied inside retrieval as a mask over rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.generation_reader import DocumentInfo


@dataclass(frozen=True)
class SearchFilters:
    """Conditions on documents; empty fields do not filter. Values within a field are alternatives (OR),
    fields combine with AND. Tags match when the document has any of them."""

    members: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    resource_types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    visibilities: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """Whether any condition is set."""
        return any((self.members, self.languages, self.resource_types, self.tags, self.visibilities)) or (
            self.year_from,
            self.year_to,
        ) != (None, None)

    def matches(self, document: DocumentInfo) -> bool:
        """Whether a document passes every condition."""
        members = {m.casefold() for m in self.members}
        return (
            (not members or (document.member or "").casefold() in members)
            and (not self.languages or document.language in self.languages)
            and (not self.resource_types or document.resource_type in self.resource_types)
            and (not self.tags or bool(set(self.tags) & set(document.tags)))
            and (self.year_from is None or (document.year is not None and document.year >= self.year_from))
            and (self.year_to is None or (document.year is not None and document.year <= self.year_to))
            and (not self.visibilities or document.visibility in self.visibilities)
        )

    def row_mask(self, documents: Sequence[DocumentInfo], row_document: np.ndarray) -> np.ndarray | None:
        """A boolean mask over index rows, or None when nothing is filtered."""
        if not self.active:
            return None
        document_mask = np.fromiter((self.matches(d) for d in documents), dtype=bool, count=len(documents))
        return document_mask[row_document] if len(documents) else np.zeros(len(row_document), dtype=bool)
