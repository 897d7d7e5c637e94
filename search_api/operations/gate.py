"""The read side's half of the quality gate: the searcher that serves queries, run on an unpublished generation.

The indexer may not import the search service, so whoever starts a build (`open_indexer`) hands this function to
`Indexer(quality_search=...)`: the golden queries then go through the same fusion, routing, per-document grouping
and (when configured) reranking as a user's query, as an anonymous reader to whom only the documents the gate is
about are visible (see `indexer.quality`): no member's upload is a candidate or moves a ranking statistic.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from indexer.access import ANONYMOUS, PUBLIC
from indexer.catalog import INDEXED, DocumentAccess
from indexer.generation_reader import GenerationReader
from indexer.quality import GenerationSearch
from search_api.factory import QueryModels, open_searcher
from search_api.filters import SearchFilters
from search_api.searcher import Hit
from search_api.settings import ApiSettings


def generation_search(settings: ApiSettings, models: QueryModels) -> GenerationSearch:
    """A GenerationSearch with the service's settings and `models`, loaded once by the caller (a build whose gate
    is off never loads the reranker: `open_indexer` loads it only for a gated build)."""

    def search(
        folder: Path, queries: Sequence[str], top_n: int, documents: Collection[str] | None = None
    ) -> list[list[tuple[str, ...]]]:
        reader = GenerationReader(folder)
        try:
            searcher = open_searcher(reader, settings, models)
            filters = SearchFilters() if documents is None else _only(documents)
            return [
                [_ids(hit) for hit in searcher.search(q, k=top_n, per_document=True, filters=filters).hits]
                for q in queries
            ]
        finally:
            reader.close()

    return search


def _only(documents: Collection[str]) -> SearchFilters:
    """Filters for an anonymous reader who may see `documents` alone: any other is absent from its access table,
    so it counts as deleted (neither a candidate nor part of BM25's statistics)."""
    visible = DocumentAccess(INDEXED, PUBLIC, None)
    return SearchFilters().for_viewer(ANONYMOUS, dict.fromkeys(documents, visible))


def _ids(hit: Hit) -> tuple[str, ...]:
    """The documents a per-document hit stands for: its own, its near duplicates', its collapsed translations'."""
    return (hit.passage.document_id, *hit.passage.near_duplicates, *(d.id for d in hit.also_in))
