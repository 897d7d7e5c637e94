"""Ranked passages for a query from one published generation: embed the query, search, cite."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

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
    more_passages: int = 0

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
    """Answers queries against one generation with the encoders that built it."""

    def __init__(
        self,
        reader: GenerationReader,
        embedders: Embedder | Sequence[Embedder],
        dense_weight: float = 1.0,
        lexical_weight: float = 1.0,
    ) -> None:
        manifest = reader.manifest
        candidates = list(embedders) if isinstance(embedders, Sequence) else [embedders]
        loaded = {e.model_id: e for e in candidates}
        self.encoders: list[Embedder] = []
        for dense in reader.dense:
            embedder = loaded.get(dense.model_id)
            if embedder is None or embedder.dimension != dense.index.d:
                raise ModelMismatchError(
                    f"generation {manifest.generation_id} was built with {dense.model_id} ({dense.index.d} dims) "
                    f"but the loaded models are {', '.join(f'{m} ({e.dimension} dims)' for m, e in loaded.items())}"
                )
            self.encoders.append(embedder)
        self.reader = reader
        self.embedder = self.encoders[0]
        self.weights = (dense_weight, lexical_weight)
        self.corpus_languages = sorted(c for c in manifest.parameters.get("languages", {}) if c != "und")

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
        rankings: list[tuple[float | list[float], list[int]]] = []
        language = guess_query_language(query, self.corpus_languages)
        if dense_weight > 0:
            routes = self._route(language)
            # Rows that several multilingual encoders rank share one dense weight among them, so that no row
            # gets more dense evidence than another merely because more encoders rank it.
            sharing = sum(1 for dense in self.reader.dense if _multilingual(dense.languages)) or 1
            for encoder, dense, rows_mask in zip(self.encoders, self.reader.dense, routes, strict=True):
                weight = dense_weight / sharing if _multilingual(dense.languages) and len(routes) > 1 else dense_weight
                mask = rows_mask if allowed is None else (allowed if rows_mask is None else rows_mask & allowed)
                if mask is not None and not mask.any():
                    continue
                started = time.perf_counter()
                query_vector = encoder.embed_queries([query])
                _, dense_rows = search_dense(dense.index, query_vector, depth, mask)
                rankings.append((weight, [int(r) for r in dense_rows[0] if r >= 0]))
                timings[f"dense:{encoder.model_id}"] = time.perf_counter() - started
        if lexical_weight > 0:
            started = time.perf_counter()
            _, lexical_rows, coverage = self.reader.lexical.search_with_coverage(query, language, depth, allowed)
            # Lexical evidence counts in proportion to how much of the query a passage contains: a match on
            # one common word must not outrank a semantic match in another language.
            rankings.append(((lexical_weight * coverage).tolist(), lexical_rows.tolist()))
            timings["lexical"] = time.perf_counter() - started
        ranked = reciprocal_rank_fusion(rankings)
        if per_document:
            ranked, more_passages = self._best_per_document(ranked)
        else:
            more_passages = {}
        page = ranked[offset:wanted]
        started = time.perf_counter()
        records = self.reader.passages([row for row, _ in page])
        timings["fetch"] = time.perf_counter() - started
        hits = [
            Hit(rank=offset + i + 1, score=score, passage=records[row], more_passages=more_passages.get(row, 0))
            for i, (row, score) in enumerate(page)
            if row in records
        ]
        seconds = {name: round(value, 6) for name, value in timings.items()}
        return SearchResult(self.generation_id, hits, len(ranked), seconds, language)

    def _route(self, query_language: str | None) -> list[np.ndarray | None]:
        """Which rows each encoder ranks for a query in `query_language` (None: all rows).

        A monolingual encoder (MiniLM: English) ranks the passages written in the query's language when that is
        its language; every other row, notably every cross-language pair, is ranked by the multilingual
        encoders. Each row is thus ranked by the encoder best suited to its language pair, and fusion adds
        one dense rank per row.
        """
        if len(self.reader.dense) == 1:
            return [None]
        rows = self.reader.row_language
        covered = np.zeros(len(rows), dtype=bool)
        masks: list[np.ndarray | None] = []
        for dense in self.reader.dense:
            if dense.languages is None or _multilingual(dense.languages):
                masks.append(None)  # filled in below
            elif query_language in dense.languages:
                # Passages of unknown language are taken to be in the query's language.
                mask = (rows == query_language) | (rows == "")
                covered |= mask
                masks.append(mask)
            else:
                masks.append(np.zeros(len(rows), dtype=bool))
        rest = ~covered
        if all(mask is not None for mask in masks):  # no multilingual encoder: the primary ranks the rest
            first = masks[0]
            masks[0] = rest if first is None else first | rest
            return masks
        return [rest if mask is None else mask for mask in masks]

    def _best_per_document(self, ranked: list[tuple[int, float]]) -> tuple[list[tuple[int, float]], dict[int, int]]:
        """Each document's best row, in rank order, and how many more of its rows were among the candidates."""
        documents = self.reader.row_document
        best: dict[int, tuple[int, float]] = {}
        more: dict[int, int] = {}
        for row, score in ranked:
            document = int(documents[row])
            if document in best:
                more[document] += 1
            else:
                best[document], more[document] = (row, score), 0
        return list(best.values()), {row: more[int(documents[row])] for row, _ in best.values()}


def _multilingual(languages: frozenset[str] | None) -> bool:
    """An encoder trained for several languages (or any), as opposed to one for a single language."""
    return languages is None or len(languages) > 1
