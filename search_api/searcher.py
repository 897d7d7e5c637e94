"""Ranked passages for a query from one published generation: embed the query, search, cite."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from indexer.dense import search_dense
from indexer.embedding import Embedder
from indexer.generation_reader import GenerationReader, PassageRecord

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


class Searcher:
    """Answers queries against one generation with the embedder that built it."""

    def __init__(self, reader: GenerationReader, embedder: Embedder) -> None:
        manifest = reader.manifest
        if (manifest.model_id, manifest.dimension) != (embedder.model_id, embedder.dimension):
            raise ModelMismatchError(
                f"generation {manifest.generation_id} was built with {manifest.model_id} "
                f"({manifest.dimension} dims) but the loaded model is {embedder.model_id} ({embedder.dimension} dims)"
            )
        self.reader = reader
        self.embedder = embedder

    @property
    def generation_id(self) -> str:
        """The generation every answer of this searcher comes from."""
        return self.reader.generation_id

    def search(self, query: str, k: int = 10, offset: int = 0, per_document: bool = False) -> SearchResult:
        """The hits ranked `offset+1 .. offset+k`; with `per_document`, only each document's best passage."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        query_vector = self.embedder.embed_queries([query])
        timings["embed"] = time.perf_counter() - started
        wanted = offset + k
        # Documents have several passages: look further down the list when one hit per document is asked for.
        candidates = wanted * 8 + 50 if per_document else wanted
        started = time.perf_counter()
        scores, rows = search_dense(self.reader.index, query_vector, candidates)
        timings["dense"] = time.perf_counter() - started
        ranked = _ranked(scores[0], rows[0])
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
        return SearchResult(self.generation_id, hits, len(ranked), {k: round(v, 6) for k, v in timings.items()})

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


def _ranked(scores: np.ndarray, rows: np.ndarray) -> list[tuple[int, float]]:
    return [(int(r), float(s)) for s, r in zip(scores, rows, strict=True) if r >= 0]
