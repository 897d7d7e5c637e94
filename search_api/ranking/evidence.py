"""The candidates of a query: each retriever's ranking of the rows it may return, weighted as evidence."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.dense import search_dense
from indexer.generation_reader import DenseIndex
from indexer.lexical import LexicalIndex
from search_api.ranking.routing import in_language, is_multilingual
from search_api.ranking.types import Ranking

# The (1, d) query vector of the encoder at a position of the generation's encoders.
QueryVector = Callable[[int, DenseIndex], np.ndarray]


@dataclass(frozen=True)
class DenseEvidence:
    """Each encoder's ranking of the rows routed to it, and the multilingual encoders' rankings of every allowed
    row, by which fusion gives each language its share of places (empty with fewer than two encoders)."""

    rankings: tuple[Ranking, ...] = ()
    allocation: tuple[Ranking, ...] = ()


def candidate_depth(wanted: int, per_document: bool) -> int:
    """How far down each retriever's list to look for a page ending at rank `wanted`: fusion needs candidates
    beyond the page (2x, at least 100), grouping by document many more (8x + 50)."""
    return max(wanted * 8 + 50, 100) if per_document else max(wanted * 2, 100)


def dense_evidence(
    dense: Sequence[DenseIndex],
    routes: Sequence[np.ndarray | None],
    query_vector: QueryVector,
    allowed: np.ndarray | None,
    depth: int,
    timings: dict[str, float],
    weight: float = 1.0,
) -> DenseEvidence:
    """Each encoder's ranking of the rows `routes` give it (see `routing.route`), weighted, and the multilingual
    encoders' rankings of every `allowed` row for the allocation.

    Rows that several multilingual encoders rank share one `weight` among them, so that no row gets more dense
    evidence than another merely because more encoders rank it. Each search's seconds go into `timings`.
    """
    row_count = int(dense[0].index.ntotal) if dense else 0  # every index holds every row of the generation
    # How many multilingual encoders rank each row: they share one weight there.
    sharing = np.zeros(row_count, dtype=np.float64)
    multilingual_count = 0
    for encoder, rows_mask in zip(dense, routes, strict=True):
        if is_multilingual(encoder.languages) and len(routes) > 1:
            sharing += 1.0 if rows_mask is None else rows_mask
            multilingual_count += 1
    rankings: list[Ranking] = []
    allocation: list[Ranking] = []
    for position, (encoder, rows_mask) in enumerate(zip(dense, routes, strict=True)):
        multilingual = is_multilingual(encoder.languages) and len(routes) > 1
        # A multilingual encoder searches every allowed row (for the allocation); its evidence counts for
        # the rows routed to it.
        mask = allowed if multilingual or rows_mask is None else (rows_mask if allowed is None else rows_mask & allowed)
        if mask is not None and not mask.any():
            continue
        started = time.perf_counter()
        _, found = search_dense(
            encoder.index, query_vector(position, encoder), depth * 2 if multilingual else depth, mask
        )
        rows = tuple(int(r) for r in found[0] if r >= 0)
        timings[f"dense:{encoder.model_id}"] = time.perf_counter() - started
        if not multilingual:
            rankings.append(Ranking(weight, rows))
            continue
        allocation.append(Ranking(weight / multilingual_count, rows))
        routed = rows if rows_mask is None else tuple(r for r in rows if rows_mask[r])
        rankings.append(Ranking(tuple(weight / float(sharing[r]) for r in routed), routed))
    return DenseEvidence(tuple(rankings), tuple(allocation))


def lexical_evidence(
    lexical: LexicalIndex,
    row_language: np.ndarray,
    query: str,
    language: str | None,
    allowed: np.ndarray | None,
    depth: int,
    weight: float = 1.0,
    visible: np.ndarray | None = None,
) -> Ranking:
    """BM25's ranking of the `allowed` rows, each weighted by the language it is in.

    A passage in the query's language counts as BM25 ranks it. Across languages, lexical evidence counts in
    proportion to how much of the query a passage contains: a shared name or number must not outrank a
    semantic match. BM25's statistics and the coverage's IDF come from the `visible` rows (those the caller
    may see; None: every row), so nothing a caller may not see moves a score or a weight.
    """
    _, rows, coverage = lexical.search_with_coverage(query, language, depth, allowed, visible)
    same = in_language(row_language, rows, language)
    weights = np.where(same, 1.0, coverage) * weight
    return Ranking(tuple(weights.tolist()), tuple(rows.tolist()))
