"""Ranked passages for a query from one published generation: embed the query, search, cite."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from indexer.dense import search_dense
from indexer.embedding import Embedder
from indexer.generation_reader import GenerationReader, PassageRecord
from indexer.language import guess_query_language
from search_api.filters import SearchFilters
from search_api.fusion import reciprocal_rank_fusion

PDF = "application/pdf"


class ModelMismatchError(RuntimeError):
    """The generation was embedded with another model than the one loaded for queries."""


@dataclass(frozen=True)
class Hit:
    """One ranked passage and the document it cites."""

    rank: int
    score: float
    passage: PassageRecord

    @property
    def link(self) -> str:
        """Where the original opens, at the passage's page for PDFs."""
        url = f"/documents/{self.passage.document_id}/file"
        if self.passage.media_type == PDF and self.passage.page:
            url += f"#page={self.passage.page}"
        return url


@dataclass(frozen=True)
class SearchResult:
    """The hits of one query, all from one generation."""

    generation_id: str
    hits: list[Hit]
    total_candidates: int
    seconds: dict[str, float] = field(default_factory=dict)
    query_language: str | None = None


class Searcher:
    """Answers queries against one generation with the embedder that built it."""

    def __init__(
        self, reader: GenerationReader, embedder: Embedder, dense_weight: float = 1.0, lexical_weight: float = 1.0
    ) -> None:
        manifest = reader.manifest
        if (manifest.model_id, manifest.dimension) != (embedder.model_id, embedder.dimension):
            raise ModelMismatchError(
                f"generation {manifest.generation_id} was built with {manifest.model_id} "
                f"({manifest.dimension} dims) but the loaded model is {embedder.model_id} ({embedder.dimension} dims)"
            )
        self.reader = reader
        self.embedder = embedder
        self.weights = (dense_weight, lexical_weight)
        self.corpus_languages = [c for c in manifest.parameters.get("languages", {}) if c != "und"]

    @property
    def generation_id(self) -> str:
        """The generation every answer of this searcher comes from."""
        return self.reader.generation_id

    def search(
        self,
        query: str,
        k: int = 10,
        offset: int = 0,
        per_document: bool = False,
        filters: SearchFilters | None = None,
    ) -> SearchResult:
        """The hits ranked `offset+1 .. offset+k`: dense and BM25 candidates fused by reciprocal rank.

        With `per_document`, only each document's best passage is kept. `filters` apply inside both
        retrievers, so a narrow filter still gets full pages of results.
        """
        timings: dict[str, float] = {}
        allowed = (filters or SearchFilters()).row_mask(self.reader.documents, self.reader.row_document)
        wanted = offset + k
        # Fusion and grouping both need candidates beyond the page: look further down each list.
        depth = max(wanted * 8 + 50, 100) if per_document else max(wanted * 2, 100)
        dense_weight, lexical_weight = self.weights
        rankings: list[tuple[float, list[int]]] = []
        if dense_weight > 0:
            started = time.perf_counter()
            query_vector = self.embedder.embed_queries([query])
            timings["embed"] = time.perf_counter() - started
            started = time.perf_counter()
            _, dense_rows = search_dense(self.reader.index, query_vector, depth, allowed)
            rankings.append((dense_weight, [int(r) for r in dense_rows[0] if r >= 0]))
            timings["dense"] = time.perf_counter() - started
        language = guess_query_language(query, self.corpus_languages)
        if lexical_weight > 0:
            started = time.perf_counter()
            _, lexical_rows = self.reader.lexical.search(query, language, depth, allowed)
            rankings.append((lexical_weight, lexical_rows.tolist()))
            timings["lexical"] = time.perf_counter() - started
        ranked = reciprocal_rank_fusion(rankings)
        if per_document:
            ranked = self._best_per_document(ranked)
        page = ranked[offset:wanted]
        started = time.perf_counter()
        records = self.reader.passages([row for row, _ in page])
        timings["fetch"] = time.perf_counter() - started
        hits = [
            Hit(rank=offset + i + 1, score=score, passage=records[row])
            for i, (row, score) in enumerate(page)
            if row in records
        ]
        seconds = {name: round(value, 6) for name, value in timings.items()}
        return SearchResult(self.generation_id, hits, len(ranked), seconds, language)

    def _best_per_document(self, ranked: list[tuple[int, float]]) -> list[tuple[int, float]]:
        records = self.reader.passages([row for row, _ in ranked])
        seen: set[str] = set()
        best = []
        for row, score in ranked:
            document_id = records[row].document_id
            if document_id not in seen:
                seen.add(document_id)
                best.append((row, score))
        return best
