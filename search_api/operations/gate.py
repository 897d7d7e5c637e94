"""The read side's half of the quality gate: the searcher that serves queries, run on an unpublished generation.

The indexer may not import the search service, so whoever starts a build (`open_indexer`) hands this function to
`Indexer(quality_search=...)`: the golden queries then go through the same fusion, routing, per-document grouping
and (when configured) reranking as a user's query.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from indexer.generation_reader import GenerationReader
from indexer.quality import GenerationSearch
from search_api.factory import QueryModels, open_searcher
from search_api.searcher import Hit
from search_api.settings import ApiSettings


def generation_search(settings: ApiSettings, models: QueryModels) -> GenerationSearch:
    """A GenerationSearch with the service's settings and `models`, loaded once by the caller (a build whose gate
    is off never loads the reranker: `open_indexer` loads it only for a gated build)."""

    def search(folder: Path, queries: Sequence[str], top_n: int) -> list[list[tuple[str, ...]]]:
        reader = GenerationReader(folder)
        try:
            searcher = open_searcher(reader, settings, models)
            return [[_ids(hit) for hit in searcher.search(q, k=top_n, per_document=True).hits] for q in queries]
        finally:
            reader.close()

    return search


def _ids(hit: Hit) -> tuple[str, ...]:
    """The documents a per-document hit stands for: its own, its near duplicates', its collapsed translations'."""
    return (hit.passage.document_id, *hit.passage.near_duplicates, *(d.id for d in hit.also_in))
