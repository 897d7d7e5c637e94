"""Ranked passages for a query from one published generation: embed the query, search, cite."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.dense import search_dense
from indexer.embedding import Embedder
from indexer.generation_reader import DenseIndex, DocumentInfo, GenerationReader, PassageRecord
from indexer.language import guess_query_language
from indexer.passages import embedding_text
from search_api.filters import SearchFilters
from search_api.ranking.fusion import allocate_by_group, reciprocal_rank_fusion
from search_api.ranking.reranking import Reranker

PDF = "application/pdf"
_DIRECT_MAP_LOCK = threading.Lock()


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
        self.reranker = reranker
        self.rerank_depth = rerank_depth
        self._translations: dict[str, list[int]] = {}
        for position, document in enumerate(reader.documents):
            if document.translation_group:
                self._translations.setdefault(document.translation_group, []).append(position)

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
        allowed = (filters or SearchFilters()).row_mask(self.reader.documents, self.reader.row_document)
        wanted = offset + k
        # Fusion and grouping both need candidates beyond the page: look further down each list.
        depth = max(wanted * 8 + 50, 100) if per_document else max(wanted * 2, 100)
        dense_weight, lexical_weight = self.weights
        language = guess_query_language(query, self.corpus_languages)
        rankings: list[tuple[float | list[float], list[int]]] = []
        allocation: list[tuple[float | list[float], list[int]]] = []
        if dense_weight > 0:
            rankings, allocation = self._dense_rankings(
                lambda position, _: self.encoders[position].embed_queries([query]),
                language,
                allowed,
                depth,
                timings,
                dense_weight,
            )
        if lexical_weight > 0:
            started = time.perf_counter()
            _, lexical_rows, coverage = self.reader.lexical.search_with_coverage(query, language, depth, allowed)
            # A passage in the query's language counts as BM25 ranks it. Across languages, lexical evidence
            # counts in proportion to how much of the query a passage contains: a shared name or number must
            # not outrank a semantic match.
            same = self._in_language(lexical_rows, language)
            weights = np.where(same, 1.0, coverage) * lexical_weight
            rankings.append((weights.tolist(), lexical_rows.tolist()))
            timings["lexical"] = time.perf_counter() - started
        ranked = self._fuse(rankings, allocation, language)
        rerank_scores: dict[int, float] = {}
        if self.reranker is not None and ranked:
            started = time.perf_counter()
            ranked, rerank_scores = self._rerank(self.reranker, query, ranked)
            timings["rerank"] = time.perf_counter() - started
        hits, total = self._page(
            ranked, offset, k, per_document, filters, timings, rerank_scores=rerank_scores, language=language
        )
        seconds = {name: round(value, 6) for name, value in timings.items()}
        return SearchResult(self.generation_id, hits, total, seconds, language)

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
        row = self.reader.row_of(passage_id)
        source = self.reader.passages([row]).get(row) if row is not None else None
        if row is None or source is None:
            raise UnknownPassageError(f"no passage {passage_id} in generation {self.generation_id}")
        own = int(self.reader.row_document[row])
        # A passage the caller may not see is not revealed by asking for passages like it.
        if not SearchFilters(visibilities=filters.visibilities).matches(self.reader.documents[own]):
            raise UnknownPassageError(f"no passage {passage_id} in generation {self.generation_id}")
        copies = set(source.near_duplicates)
        excluded = frozenset({own} | {p for p, d in enumerate(self.reader.documents) if d.id in copies})
        keep = ~np.isin(self.reader.row_document, list(excluded))
        allowed = filters.row_mask(self.reader.documents, self.reader.row_document)
        allowed = keep if allowed is None else keep & allowed
        wanted = offset + k
        depth = max(wanted * 8 + 50, 100) if per_document else max(wanted * 2, 100)
        language = str(self.reader.row_language[row]) or None
        timings: dict[str, float] = {}
        rankings, allocation = self._dense_rankings(
            lambda _, dense: _stored_vector(dense.index, row), language, allowed, depth, timings
        )
        ranked = self._fuse(rankings, allocation, language)
        hits, total = self._page(
            ranked, offset, k, per_document, filters, timings, excluded=excluded, language=language
        )
        seconds = {name: round(value, 6) for name, value in timings.items()}
        return SearchResult(self.generation_id, hits, total, seconds, language, source=source)

    def _dense_rankings(
        self,
        query_vector: Callable[[int, DenseIndex], np.ndarray],
        language: str | None,
        allowed: np.ndarray | None,
        depth: int,
        timings: dict[str, float],
        weight: float = 1.0,
    ) -> tuple[list[tuple[float | list[float], list[int]]], list[tuple[float | list[float], list[int]]]]:
        """Each encoder's ranking of the rows it is routed to (see `_route`), weighted, and the multilingual
        encoders' rankings of every allowed row, which `_fuse` uses to give each language its share of places.

        `query_vector(position, dense)` is the (1, d) query of the encoder at `position`. Rows that several
        multilingual encoders rank share one `weight` among them, so that no row gets more dense evidence than
        another merely because more encoders rank it.
        """
        routes = self._route(language)
        # How many multilingual encoders rank each row: they share one weight there.
        sharing = np.zeros(len(self.reader.row_language), dtype=np.float64)
        multilingual_count = 0
        for dense, rows_mask in zip(self.reader.dense, routes, strict=True):
            if _multilingual(dense.languages) and len(routes) > 1:
                sharing += 1.0 if rows_mask is None else rows_mask
                multilingual_count += 1
        rankings: list[tuple[float | list[float], list[int]]] = []
        allocation: list[tuple[float | list[float], list[int]]] = []
        for position, (dense, rows_mask) in enumerate(zip(self.reader.dense, routes, strict=True)):
            multilingual = _multilingual(dense.languages) and len(routes) > 1
            # A multilingual encoder searches every allowed row (for the allocation); its evidence counts for
            # the rows routed to it.
            mask = (
                allowed
                if multilingual or rows_mask is None
                else (rows_mask if allowed is None else rows_mask & allowed)
            )
            if mask is not None and not mask.any():
                continue
            started = time.perf_counter()
            _, found = search_dense(
                dense.index, query_vector(position, dense), depth * 2 if multilingual else depth, mask
            )
            rows = [int(r) for r in found[0] if r >= 0]
            timings[f"dense:{dense.model_id}"] = time.perf_counter() - started
            if not multilingual:
                rankings.append((weight, rows))
                continue
            allocation.append((weight / multilingual_count, rows))
            routed = rows if rows_mask is None else [r for r in rows if rows_mask[r]]
            rankings.append(([weight / float(sharing[r]) for r in routed], routed))
        return rankings, allocation

    def _fuse(
        self,
        rankings: list[tuple[float | list[float], list[int]]],
        allocation: list[tuple[float | list[float], list[int]]],
        language: str | None,
    ) -> list[tuple[int, float]]:
        """Reciprocal rank fusion of all evidence, with places shared out between languages by the multilingual
        encoders alone.

        Passages in the query's language have more evidence (a monolingual encoder, BM25) than translations,
        which only multilingual encoders can rank; fused naively, every fair same-language match would outrank
        the best answer in another language. So the multilingual encoders, whose scores mean the same in every
        language, decide how many of the top places each language gets, and the fused ranking of each language
        decides which of its passages take them.
        """
        ranked = reciprocal_rank_fusion(rankings)
        if not allocation:
            return ranked
        languages = self.reader.row_language

        def group(row: int) -> str:
            return "" if languages[row] in ("", language) else str(languages[row])

        return allocate_by_group(ranked, reciprocal_rank_fusion(allocation), group)

    def _in_language(self, rows: np.ndarray, language: str | None) -> np.ndarray:
        """Which of `rows` are in `language` (passages of unknown language count as in the query's)."""
        found = self.reader.row_language[rows] if len(rows) else np.zeros(0, dtype=str)
        return (found == (language or "")) | (found == "")

    def _rerank(
        self, reranker: Reranker, query: str, ranked: list[tuple[int, float]]
    ) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """The best `rerank_depth` fused rows reordered by the cross-encoder's scores, then the rest as fused."""
        head, tail = ranked[: self.rerank_depth], ranked[self.rerank_depth :]
        records = self.reader.passages([row for row, _ in head])
        head = [(row, score) for row, score in head if row in records]
        texts = [rerank_text(records[row]) for row, _ in head]
        scores = reranker.score(query, texts)
        order = np.argsort(-scores, kind="stable")
        return [head[i] for i in order] + tail, {head[i][0]: float(scores[i]) for i in order}

    def _page(
        self,
        ranked: list[tuple[int, float]],
        offset: int,
        k: int,
        per_document: bool,
        filters: SearchFilters | None,
        timings: dict[str, float],
        rerank_scores: dict[int, float] | None = None,
        excluded: frozenset[int] = frozenset(),
        language: str | None = None,
    ) -> tuple[list[Hit], int]:
        """The hits ranked `offset+1 .. offset+k` of a ranking, grouped by document if asked (translations shown
        in the query's `language` where they can be), and the number of candidates (documents when grouped)
        the ranking held."""
        more_passages: dict[int, int] = {}
        also_in: dict[int, tuple[DocumentInfo, ...]] = {}
        if per_document:
            ranked, more_passages = self._best_per_document(ranked)
            ranked, also_in = self._collapse_translations(ranked, filters or SearchFilters(), excluded, language)
        page = ranked[offset : offset + k]
        started = time.perf_counter()
        records = self.reader.passages([row for row, _ in page])
        timings["fetch"] = time.perf_counter() - started
        hits = [
            Hit(
                rank=offset + i + 1,
                score=score,
                passage=records[row],
                more_passages=more_passages.get(row, 0),
                also_in=also_in.get(row, ()),
                rerank_score=(rerank_scores or {}).get(row),
            )
            for i, (row, score) in enumerate(page)
            if row in records
        ]
        return hits, len(ranked)

    def _collapse_translations(
        self,
        ranked: list[tuple[int, float]],
        filters: SearchFilters,
        excluded: frozenset[int],
        language: str | None,
    ) -> tuple[list[tuple[int, float]], dict[int, tuple[DocumentInfo, ...]]]:
        """One entry per translation group, at the place of its best-ranked document, with the group's other
        documents that the filters let through, by language: the "also in" links of that entry.

        The entry shows the group's copy in the query's `language` when that copy is among the candidates (an
        English reader gets the English report, linked to the others), else the best-ranked copy.
        """
        documents = self.reader.documents
        preferred: dict[str, int] = {}
        if language:
            for row, _ in ranked:
                document = documents[int(self.reader.row_document[row])]
                if document.translation_group is not None and document.language == language:
                    preferred.setdefault(document.translation_group, row)
        seen: set[str] = set()
        kept: list[tuple[int, float]] = []
        also_in: dict[int, tuple[DocumentInfo, ...]] = {}
        for row, score in ranked:
            position = int(self.reader.row_document[row])
            group = documents[position].translation_group
            if group is None:
                kept.append((row, score))
                continue
            if group in seen:
                continue
            seen.add(group)
            row = preferred.get(group, row)
            position = int(self.reader.row_document[row])
            kept.append((row, score))
            others = [
                documents[p]
                for p in self._translations.get(group, [])
                if p != position and p not in excluded and filters.matches(documents[p])
            ]
            also_in[row] = tuple(sorted(others, key=lambda d: (d.language or "", d.id)))
        return kept, also_in

    def _route(self, query_language: str | None) -> list[np.ndarray | None]:
        """Which rows each encoder ranks for a query in `query_language` (None: all rows).

        A monolingual encoder (MiniLM: English) ranks the passages written in the query's language when that is
        its language; every other row, notably every cross-language pair, is ranked by the multilingual
        encoders. Multilingual encoders that are also strong retrievers within one language (e5, not USE) rank
        the query's language too. Each row is thus ranked by the encoders suited to its language pair.
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
        # A multilingual encoder that also retrieves well within one language ranks every row.
        return [
            (None if encoder.same_language_retrieval else rest) if mask is None else mask
            for encoder, mask in zip(self.encoders, masks, strict=True)
        ]

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


def rerank_text(passage: PassageRecord) -> str:
    """What the cross-encoder reads of a passage: the text the retrievers indexed (context, then text)."""
    return embedding_text(passage.text, passage.title, passage.heading)


def _stored_vector(index: Any, row: int) -> np.ndarray:
    """The vector a dense index holds for `row`, as a (1, d) float32 query."""
    import faiss

    try:
        vector = index.reconstruct(row)
    except RuntimeError:
        # IVF indexes reconstruct by id only once they keep a map from ids to their lists; built once, lazily.
        with _DIRECT_MAP_LOCK:
            ivf = faiss.extract_index_ivf(index)
            if ivf.direct_map.no():
                ivf.make_direct_map()
        vector = index.reconstruct(row)
    return np.asarray(vector, dtype=np.float32).reshape(1, -1)


def _multilingual(languages: frozenset[str] | None) -> bool:
    """An encoder trained for several languages (or any), as opposed to one for a single language."""
    return languages is None or len(languages) > 1
