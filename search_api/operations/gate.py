"""The read side's half of the quality gate: the searcher that serves queries, run on an unpublished generation.

The indexer may not import the search service, so `moocsearch index build` (and `serve`'s builds) hand this
function to `Indexer(quality_search=...)`: the golden queries then go through the same fusion, routing,
per-document grouping and (when configured) reranking as a user's query.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from indexer.embedding import Embedder
from indexer.generation_reader import GenerationReader
from indexer.quality import GenerationSearch
from search_api.factory import load_query_models, open_searcher
from search_api.searcher import Hit
from search_api.settings import ApiSettings


def generation_search(settings: ApiSettings, embedders: Sequence[Embedder]) -> GenerationSearch:
    """A GenerationSearch with the service's settings and models (the reranker is loaded on the gate's first use,
    so a build whose gate is off never loads it)."""

    def search(folder: Path, queries: Sequence[str], top_n: int) -> list[list[tuple[str, ...]]]:
        reader = GenerationReader(folder)
        try:
            searcher = open_searcher(reader, settings, load_query_models(settings, embedders))
            return [[_ids(hit) for hit in searcher.search(q, k=top_n, per_document=True).hits] for q in queries]
        finally:
            reader.close()

    return search


def _ids(hit: Hit) -> tuple[str, ...]:
    """The documents a per-document hit stands for: its own, its near duplicates', its collapsed translations'."""
    return (hit.passage.document_id, *hit.passage.near_duplicates, *(d.id for d in hit.also_in))
