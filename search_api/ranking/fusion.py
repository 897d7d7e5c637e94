"""Combining ranked lists from several retrievers into one ranking."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from search_api.ranking.types import Ranking, ScoredRows

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = RRF_K) -> ScoredRows:
    """Weighted reciprocal rank fusion: score(row) = sum over lists of weight / (k + rank), rank from 1.

    A list's weight is one number, or one per position (evidence of varying strength within a list). Ranks,
    not raw scores, are fused, so retrievers with incomparable score scales (cosine, BM25) mix fairly. Ties
    keep the order of first appearance, so a single list passes through unchanged.
    """
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        weight, rows = ranking.weights, ranking.rows
        weights = [float(weight)] * len(rows) if isinstance(weight, int | float) else list(weight)
        for rank, (row, row_weight) in enumerate(zip(rows, weights, strict=True), start=1):
            scores[row] += row_weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def allocate_by_group(ranked: ScoredRows, allocation: ScoredRows, group: Callable[[int], Hashable]) -> ScoredRows:
    """`ranked` reordered so that each group holds the positions a language-neutral `allocation` gives it.

    Walking down `allocation`, each position goes to the group of the row found there and is filled with that
    group's best row in `ranked` not placed yet, with the allocation's score. Within a group the order of
    `ranked` (the richest evidence) is kept; between groups, `allocation` decides. Rows the walk does not reach
    follow in the order of `ranked`, with scores capped so that scores never increase down the list.
    """
    queues: dict[Hashable, list[int]] = defaultdict(list)
    for row, _ in ranked:
        queues[group(row)].append(row)
    heads: dict[Hashable, int] = defaultdict(int)
    placed: set[int] = set()
    result: ScoredRows = []
    for row, score in allocation:
        key = group(row)
        queue = queues.get(key, [])
        while heads[key] < len(queue) and queue[heads[key]] in placed:
            heads[key] += 1
        if heads[key] < len(queue):
            chosen = queue[heads[key]]
            heads[key] += 1
            placed.add(chosen)
            result.append((chosen, score))
    floor = result[-1][1] if result else float("inf")
    for row, score in ranked:
        if row not in placed:
            floor = min(floor, score)
            result.append((row, floor))
    return result


def fuse_by_language(
    rankings: Sequence[Ranking], allocation: Sequence[Ranking], row_language: np.ndarray, language: str | None
) -> ScoredRows:
    """Reciprocal rank fusion of all evidence, with places shared out between languages by the multilingual
    encoders' `allocation` alone (no allocation: plain fusion).

    Passages in the query's language have more evidence (a monolingual encoder, BM25) than translations,
    which only multilingual encoders can rank; fused naively, every fair same-language match would outrank
    the best answer in another language. So the multilingual encoders, whose scores mean the same in every
    language, decide how many of the top places each language gets, and the fused ranking of each language
    decides which of its passages take them. Rows of unknown language count as in the query's `language`.
    """
    ranked = reciprocal_rank_fusion(rankings)
    if not allocation:
        return ranked

    def group(row: int) -> str:
        return "" if row_language[row] in ("", language) else str(row_language[row])

    return allocate_by_group(ranked, reciprocal_rank_fusion(allocation), group)
