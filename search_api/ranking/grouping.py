"""From a ranking of passages to a page: each document's best passage, translations collapsed, then the slice.

A translation group is free text that anyone may type, so a group is one member's: documents join the same group
only when they name the same member (by its canonical name, unique among members, and a member's uploads always
carry its own name). Another member's document naming the same group can neither lead nor join it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from indexer.access import name_key
from indexer.generation_reader import DocumentInfo
from search_api.filters import SearchFilters
from search_api.ranking.types import ScoredRows


@dataclass(frozen=True, eq=False)
class DocumentRows:
    """The documents of a generation, the document of each row (a position in `documents`), the translation
    group of each document (by position) and the positions of the documents of each group."""

    documents: Sequence[DocumentInfo]
    row_document: np.ndarray
    translations: Mapping[GroupKey, list[int]] = field(default_factory=dict)
    groups: Sequence[GroupKey | None] = ()

    @classmethod
    def of(cls, documents: Sequence[DocumentInfo], row_document: np.ndarray) -> DocumentRows:
        """The table with its translation groups gathered once (every grouped search reads them)."""
        groups = [group_key(document) for document in documents]
        translations: dict[GroupKey, list[int]] = {}
        for position, key in enumerate(groups):
            if key is not None:
                translations.setdefault(key, []).append(position)
        return cls(documents, row_document, translations, groups)

    def group(self, position: int) -> GroupKey | None:
        """The translation group of the document at `position`, if any."""
        return self.groups[position] if self.groups else group_key(self.documents[position])


# A translation group as one member's: (the canonical name of the member it names, the group's name).
GroupKey = tuple[str, str]


def group_key(document: DocumentInfo) -> GroupKey | None:
    """The translation group a document belongs to, within its member; None when it names no group."""
    if not document.translation_group:
        return None
    return (name_key(document.member or ""), document.translation_group)


@dataclass(frozen=True)
class Page:
    """The rows ranked `offset+1 .. offset+k`, how many candidates (documents when grouped) the ranking held,
    and for grouped rows how many more passages of their document and which translations were found."""

    rows: ScoredRows
    total: int
    more_passages: Mapping[int, int] = field(default_factory=dict)
    also_in: Mapping[int, tuple[DocumentInfo, ...]] = field(default_factory=dict)


def page(
    ranked: ScoredRows,
    offset: int,
    k: int,
    per_document: bool,
    table: DocumentRows,
    filters: SearchFilters | None = None,
    excluded: frozenset[int] = frozenset(),
    language: str | None = None,
) -> Page:
    """The page at `offset` of a ranking, grouped by document if asked: translations are shown in the query's
    `language` where they can be, and linked to their copies that `filters` let through, but not to documents
    at the `excluded` positions."""
    if not per_document:
        return Page(ranked[offset : offset + k], len(ranked))
    ranked, more_passages = best_per_document(ranked, table.row_document)
    ranked, also_in = collapse_translations(ranked, table, filters or SearchFilters(), excluded, language)
    return Page(ranked[offset : offset + k], len(ranked), more_passages, also_in)


def best_per_document(ranked: ScoredRows, row_document: np.ndarray) -> tuple[ScoredRows, dict[int, int]]:
    """Each document's best row, in rank order, and how many more of its rows were among the candidates."""
    best: dict[int, tuple[int, float]] = {}
    more: dict[int, int] = {}
    for row, score in ranked:
        document = int(row_document[row])
        if document in best:
            more[document] += 1
        else:
            best[document], more[document] = (row, score), 0
    return list(best.values()), {row: more[int(row_document[row])] for row, _ in best.values()}


def collapse_translations(
    ranked: ScoredRows,
    table: DocumentRows,
    filters: SearchFilters,
    excluded: frozenset[int],
    language: str | None,
) -> tuple[ScoredRows, dict[int, tuple[DocumentInfo, ...]]]:
    """One entry per translation group, at the place of its best-ranked document, with the group's other
    documents that the filters let through, by language: the "also in" links of that entry.

    The entry shows the group's copy in the query's `language` when that copy is among the candidates (an
    English reader gets the English report, linked to the others), else the best-ranked copy. Documents at the
    `excluded` positions are never linked.
    """
    documents, row_document = table.documents, table.row_document
    preferred: dict[GroupKey, int] = {}
    if language:
        for row, _ in ranked:
            position = int(row_document[row])
            key = table.group(position)
            if key is not None and documents[position].language == language:
                preferred.setdefault(key, row)
    seen: set[GroupKey] = set()
    kept: ScoredRows = []
    also_in: dict[int, tuple[DocumentInfo, ...]] = {}
    for row, score in ranked:
        position = int(row_document[row])
        group = table.group(position)
        if group is None:
            kept.append((row, score))
            continue
        if group in seen:
            continue
        seen.add(group)
        row = preferred.get(group, row)
        position = int(row_document[row])
        kept.append((row, score))
        others = [
            documents[p]
            for p in table.translations.get(group, [])
            if p != position and p not in excluded and filters.matches(documents[p])
        ]
        also_in[row] = tuple(sorted(others, key=lambda d: (d.language or "", d.id)))
    return kept, also_in
