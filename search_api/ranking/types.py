"""The values that pass between the ranking stages: one retriever's evidence, and a scored ranking of rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

# Rows of a generation with their scores, best first: what fusion, reranking and grouping hand on.
ScoredRows: TypeAlias = list[tuple[int, float]]


@dataclass(frozen=True)
class Ranking:
    """One retriever's evidence for a query: the rows it found, best first, and how much each place counts.

    `weights` is one number for the whole list, or one per row (evidence of varying strength within a list).
    """

    weights: float | tuple[float, ...]
    rows: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.weights, tuple) and len(self.weights) != len(self.rows):
            raise ValueError(f"{len(self.weights)} weights for {len(self.rows)} rows")
