"""Search filters: which documents a search may return, applied inside retrieval as a mask over rows.

Two kinds of condition meet in one mask: the caller's filters on metadata (as of the generation), and access
(as the catalog says now): a deleted document, or one the viewer may not see, is never a candidate of either
retriever, so hiding it cannot leave a page short or leak through ranking.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from indexer.access import ALLIANCE, PUBLIC, Viewer, name_key
from indexer.catalog import DELETED, DocumentAccess
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
    # Access: with a viewer, only documents that `access` (the catalog now) shows as live and visible to it pass.
    # No viewer: no access check (evaluation and the quality gate read everything).
    viewer: Viewer | None = None
    access: Mapping[str, DocumentAccess] | None = None
    # Where the generation being searched keeps its access arrays between queries; None: built for this query.
    access_cache: AccessCache | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.viewer is not None and self.access is None:
            raise ValueError("a viewer needs the catalog's document access table")

    @property
    def active(self) -> bool:
        """Whether any condition is set."""
        return any((self.members, self.languages, self.resource_types, self.tags, self.visibilities)) or (
            self.year_from,
            self.year_to,
        ) != (None, None)

    def matches(self, document: DocumentInfo) -> bool:
        """Whether a document passes every condition, access included."""
        return self._matches_metadata(document) and self.visible(document.id)

    @cached_property
    def _member_keys(self) -> frozenset[str]:
        """The canonical forms of the `members` asked for (names match in any spelling that reads the same)."""
        return frozenset(name_key(m) for m in self.members)

    def _matches_metadata(self, document: DocumentInfo) -> bool:
        return (
            (not self.members or name_key(document.member or "") in self._member_keys)
            and (not self.languages or document.language in self.languages)
            and (not self.resource_types or document.resource_type in self.resource_types)
            and (not self.tags or bool(set(self.tags) & set(document.tags)))
            and (self.year_from is None or (document.year is not None and document.year >= self.year_from))
            and (self.year_to is None or (document.year is not None and document.year <= self.year_to))
            and (not self.visibilities or document.visibility in self.visibilities)
        )

    def for_viewer(
        self, viewer: Viewer, access: Mapping[str, DocumentAccess], cache: AccessCache | None = None
    ) -> SearchFilters:
        """These filters, restricted to what `viewer` may see according to the catalog's `access` table (`cache`:
        the searched generation's, so the table is turned into arrays once per catalog state, not per query)."""
        return replace(self, viewer=viewer, access=access, access_cache=cache)

    def visible(self, document_id: str) -> bool:
        """Whether the viewer may see a document at all (live in the catalog and visible to it)."""
        if self.viewer is None:
            return True
        access = (self.access or {}).get(document_id)
        return access is not None and access.status != DELETED and self.viewer.can_see(access.visibility, access.owner)

    def document_mask(self, documents: Sequence[DocumentInfo]) -> np.ndarray | None:
        """Which of a generation's documents pass, or None when all do."""
        masks = []
        if self.active:
            masks.append(np.fromiter(map(self._matches_metadata, documents), dtype=bool, count=len(documents)))
        if self.viewer is not None:
            assert self.access is not None
            cache = self.access_cache
            arrays = _AccessArrays(documents, self.access) if cache is None else cache.arrays(documents, self.access)
            masks.append(arrays.visible_to(self.viewer))
        if not masks:
            return None
        mask = np.logical_and.reduce(masks) if len(masks) > 1 else masks[0]
        return None if mask.all() else mask

    def visible_documents(self, documents: Sequence[DocumentInfo]) -> np.ndarray | None:
        """Which of a generation's documents the viewer may see at all (live, visible to it), whatever the other
        filters ask; None when all are (or there is no viewer). Ranking statistics come from these alone."""
        if self.viewer is None:
            return None
        assert self.access is not None
        cache = self.access_cache
        arrays = _AccessArrays(documents, self.access) if cache is None else cache.arrays(documents, self.access)
        mask = arrays.visible_to(self.viewer)
        return None if mask.all() else mask

    def row_mask(self, documents: Sequence[DocumentInfo], row_document: np.ndarray) -> np.ndarray | None:
        """A boolean mask over index rows, or None when nothing is filtered."""
        document_mask = self.document_mask(documents)
        if document_mask is None:
            return None
        return document_mask[row_document] if len(documents) else np.zeros(len(row_document), dtype=bool)


class _AccessArrays:
    """A generation's documents' access, as arrays in document order, so a viewer's mask is a few vector ops."""

    def __init__(self, documents: Sequence[DocumentInfo], access: Mapping[str, DocumentAccess]) -> None:
        found = [access.get(d.id) for d in documents]
        # A document the catalog does not know is treated as deleted: fail closed.
        self.live = np.array([a is not None and a.status != DELETED for a in found], dtype=bool)
        self.visibility = np.array([a.visibility if a else "" for a in found], dtype=object)
        # Owner ids ("" for none, which no viewer's id equals): the same comparison as Viewer.owns.
        self.owner = np.array([(a.owner or "") if a else "" for a in found], dtype=object)

    def visible_to(self, viewer: Viewer) -> np.ndarray:
        """Live documents the viewer may see (the rule of Viewer.can_see)."""
        if viewer.admin:
            return self.live.copy()
        allowed = self.visibility == PUBLIC
        if viewer.is_member:
            allowed |= self.visibility == ALLIANCE
        if viewer.member_id:
            allowed |= self.owner == viewer.member_id
        return self.live & allowed


class AccessCache:
    """The access arrays of one generation's documents for the last few catalog states; it lives (and goes) with
    the generation it belongs to.

    A catalog state is a `document_access()` table, replaced and never mutated when the catalog changes, so its
    identity is the key; an entry holds its table alive, so the identity is not reused while cached."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._entries: dict[tuple[int, int], tuple[Sequence[DocumentInfo], Mapping[str, DocumentAccess], _AccessArrays]]
        self._entries = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def arrays(self, documents: Sequence[DocumentInfo], access: Mapping[str, DocumentAccess]) -> _AccessArrays:
        """The arrays for these documents and this catalog state, built once and reused by every query until the
        catalog changes."""
        key = (id(documents), id(access))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return entry[2]
        arrays = _AccessArrays(documents, access)
        with self._lock:
            while len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (documents, access, arrays)
        return arrays
