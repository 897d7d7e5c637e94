"""Ranked passages for a query from one published generation: embed the query, search, cite.

The stages live in `search_api.ranking`; a search runs them in order: candidates (routed dense and lexical
evidence) -> fuse -> rerank -> group by document -> page.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from indexer.dense import stored_vector
from indexer.embedding import Embedder
from indexer.generation_reader import DocumentInfo, GenerationReader, PassageRecord
from indexer.language import guess_query_language
from search_api.filters import SearchFilters
from search_api.ranking.evidence import (
    DenseEvidence,
    QueryVector,
    candidate_depth,
    dense_evidence,
    lexical_evidence,
)
from search_api.ranking.fusion import fuse_by_language
from search_api.ranking.grouping import DocumentRows, Page, page
from search_api.ranking.reranking import Reranker, rerank
from search_api.ranking.routing import EncoderLanguages, route
from search_api.ranking.types import Ranking

PDF = "application/pdf"


class ModelMismatchError(RuntimeError):
    """The generation was embedded with another model than the one loaded for queries."""


class UnknownPassageError(LookupError):
    """No passage with this id in the generation (or none the caller may see)."""


def document_link(document_id: str) -> str:
    """Where a document's original opens."""
    return f"/documents/{document_id}/file"


@dataclass(frozen=True)
class Hit:
    """One ranked passage and the document it cites."""

    rank: int
    score: float
    passage: PassageRecord
    more_passages: int = 0
    also_in: tuple[DocumentInfo, ...] = ()
    rerank_score: float | None = None

    @property
    def link(self) -> str:
        """Where the original opens, at the passage's page for PDFs."""
        url = document_link(self.passage.document_id)
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
    source: PassageRecord | None = None


class Searcher:
    """Answers queries against one generation with the encoders that built it."""

    def __init__(
        self,
        reader: GenerationReader,
        embedders: Embedder | Sequence[Embedder],
        dense_weight: float = 1.0,
        lexical_weight: float = 1.0,
        reranker: Reranker | None = None,
        rerank_depth: int = 50,
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
        self.corpus_languages = sorted(c for c in manifest.languages if c != "und")
        self.document_languages = _document_languages(
            len(reader.documents), reader.row_document, reader.row_language, self.corpus_languages
        )
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        # Routing reads the languages the generation recorded for each encoder, and the loaded model's kind.
        self.routing = [
            EncoderLanguages(dense.languages, encoder.same_language_retrieval)
            for dense, encoder in zip(reader.dense, self.encoders, strict=True)
        ]
        self.document_rows = DocumentRows.of(reader.documents, reader.row_document)

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

        With `per_document`, only each document's best passage is kept, and translations of one document
        collapse into the best of them. `filters` apply inside both retrievers, so a narrow filter still gets
        full pages of results. With a reranker, the cross-encoder reorders the best `rerank_depth` fused rows.
        """
        timings: dict[str, float] = {}
        row_language = self.reader.row_language
        filters = filters or SearchFilters()
        allowed = filters.row_mask(self.reader.documents, self.reader.row_document)
        # What the caller may see, not what its filters ask for, decides every statistic a ranking reads (BM25's
        # N, df and average length, the languages a query is guessed among): a hidden document changes nothing
        # its caller can observe, and a filtered search scores a passage as the unfiltered one does.
        visible_documents = filters.visible_documents(self.reader.documents)
        visible = None if visible_documents is None else visible_documents[self.reader.row_document]
        depth = candidate_depth(offset + k, per_document)
        dense_weight, lexical_weight = self.weights
        language = guess_query_language(query, self.visible_languages(visible_documents))
        dense = DenseEvidence()
        if dense_weight > 0:
            dense = self._dense_evidence(
                lambda position, _: self.encoders[position].embed_queries([query]),
                language,
                allowed,
                depth,
                timings,
                dense_weight,
            )
        lexical: list[Ranking] = []
        if lexical_weight > 0:
            started = time.perf_counter()
            lexical.append(
                lexical_evidence(
                    self.reader.lexical, row_language, query, language, allowed, depth, lexical_weight, visible
                )
            )
            timings["lexical"] = time.perf_counter() - started
        ranked = fuse_by_language([*dense.rankings, *lexical], dense.allocation, row_language, language)
        rerank_scores: dict[int, float] = {}
        if self.reranker is not None and ranked:
            started = time.perf_counter()
            ranked, rerank_scores = rerank(self.reranker, query, ranked, self.reader.passages, self.rerank_depth)
            timings["rerank"] = time.perf_counter() - started
        grouped = page(ranked, offset, k, per_document, self.document_rows, filters, language=language)
        hits = self._hits(grouped, offset, timings, rerank_scores)
        seconds = {name: round(value, 6) for name, value in timings.items()}
        return SearchResult(self.generation_id, hits, grouped.total, seconds, language)

    def similar(
        self,
        passage_id: str,
        k: int = 10,
        offset: int = 0,
        per_document: bool = False,
        filters: SearchFilters | None = None,
    ) -> SearchResult:
        """Passages like a stored one ("more like this"), ranked by its own stored vectors.

        Each encoder searches with the passage's vector from the generation, routed and fused as a query in the
        passage's language would be, so the multilingual encoders find similar passages in other languages.
        The passage's own document and its near duplicates are left out. Raises UnknownPassageError.
        """
        filters = filters or SearchFilters()
        unknown = UnknownPassageError(f"no passage {passage_id} in generation {self.generation_id}")
        row = self.reader.row_of(passage_id)
        if row is None:
            raise unknown
        own = int(self.reader.row_document[row])
        document = self.reader.documents[own]
        # A passage the caller may not see is not revealed by asking for passages like it, nor by how long the
        # answer takes: visibility (as the catalog says now) is checked before anything else is read or searched.
        if not filters.visible(document.id) or not SearchFilters(visibilities=filters.visibilities).matches(document):
            raise unknown
        source = self.reader.passages([row]).get(row)
        if source is None:
            raise unknown
        copies = set(source.near_duplicates)
        excluded = frozenset({own} | {p for p, d in enumerate(self.reader.documents) if d.id in copies})
        keep = ~np.isin(self.reader.row_document, list(excluded))
        allowed = filters.row_mask(self.reader.documents, self.reader.row_document)
        allowed = keep if allowed is None else keep & allowed
        depth = candidate_depth(offset + k, per_document)
        language = str(self.reader.row_language[row]) or None
        timings: dict[str, float] = {}
        dense = self._dense_evidence(
            lambda _, encoder: stored_vector(encoder.index, row), language, allowed, depth, timings
        )
        ranked = fuse_by_language(dense.rankings, dense.allocation, self.reader.row_language, language)
        grouped = page(ranked, offset, k, per_document, self.document_rows, filters, excluded, language)
        hits = self._hits(grouped, offset, timings)
        seconds = {name: round(value, 6) for name, value in timings.items()}
        return SearchResult(self.generation_id, hits, grouped.total, seconds, language, source=source)

    def visible_languages(self, visible_documents: np.ndarray | None) -> list[str]:
        """The corpus languages of the documents a caller may see (None: all): a weak guess of a query's language
        picks among them, so a language only hidden documents are in must not sway it."""
        if visible_documents is None:
            return self.corpus_languages
        present = self.document_languages[visible_documents].any(axis=0)
        return [code for code, shown in zip(self.corpus_languages, present, strict=True) if shown]

    def _dense_evidence(
        self,
        query_vector: QueryVector,
        language: str | None,
        allowed: np.ndarray | None,
        depth: int,
        timings: dict[str, float],
        weight: float = 1.0,
    ) -> DenseEvidence:
        """Every encoder's evidence for the rows routed to it for a query in `language`."""
        routes = route(self.routing, self.reader.row_language, language)
        return dense_evidence(self.reader.dense, routes, query_vector, allowed, depth, timings, weight)

    def _hits(
        self, grouped: Page, offset: int, timings: dict[str, float], rerank_scores: dict[int, float] | None = None
    ) -> list[Hit]:
        """The page's rows as hits citing their passages (a row whose passage cannot be read is left out)."""
        started = time.perf_counter()
        records = self.reader.passages([row for row, _ in grouped.rows])
        timings["fetch"] = time.perf_counter() - started
        return [
            Hit(
                rank=offset + i + 1,
                score=score,
                passage=records[row],
                more_passages=grouped.more_passages.get(row, 0),
                also_in=grouped.also_in.get(row, ()),
                rerank_score=(rerank_scores or {}).get(row),
            )
            for i, (row, score) in enumerate(grouped.rows)
            if row in records
        ]


def _document_languages(
    documents: int, row_document: np.ndarray, row_language: np.ndarray, languages: Sequence[str]
) -> np.ndarray:
    """A (documents, languages) table: whether any row of the document is in the language."""
    table = np.zeros((documents, len(languages)), dtype=bool)
    for position, code in enumerate(languages):
        table[row_document[row_language == code], position] = True
    return table
