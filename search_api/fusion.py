"""Combining ranked lists from several retrievers into one ranking."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[tuple[float | Sequence[float], Sequence[int]]], k: int = RRF_K
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: score(row) = sum over lists of weight / (k + rank), rank from 1.

    A list's weight is one number, or one per position (evidence of varying strength within a list). Ranks,
    not raw scores, are fused, so retrievers with incomparable score scales (cosine, BM25) mix fairly. Ties
    keep the order of first appearance, so a single list passes through unchanged.
    """
    scores: dict[int, float] = defaultdict(float)
    for weight, rows in rankings:
        weights = [float(weight)] * len(rows) if isinstance(weight, int | float) else list(weight)
        for rank, (row, row_weight) in enumerate(zip(rows, weights, strict=True), start=1):
            scores[row] += row_weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])
