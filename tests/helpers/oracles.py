"""Brute-force oracles that ranking tests compare the searcher with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def lexical_coverage_oracle(reader: Any, query: str, language: str | None, rows: Sequence[int]) -> list[float]:
    """Brute force: the share of the query's IDF mass each row's indexed text contains."""
    import math

    from indexer.lexical import tokenize
    from indexer.passages import embedding_text

    records = reader.passages(range(reader.manifest.passage_count))
    row_terms = {
        row: set(tokenize(embedding_text(r.text, r.title, r.heading), r.language or r.document_language))
        for row, r in records.items()
    }
    terms = list(dict.fromkeys(tokenize(query, language)))
    total = len(row_terms)
    idf = {t: math.log(1 + (total - (df := sum(t in s for s in row_terms.values())) + 0.5) / (df + 0.5)) for t in terms}
    mass = sum(idf.values())
    return [sum(idf[t] for t in terms if t in row_terms[row]) / mass for row in rows]


def language_places_oracle(
    fused: dict[int, float], multilingual: Sequence[tuple[float, Sequence[int]]], languages: Any, query_language: str
) -> list[tuple[int, float]]:
    """Brute force of the searcher's language places: the multilingual encoders' own weighted RRF (over every
    row) decides, place by place, which language takes it; that language's best remaining row by `fused`
    (all evidence) fills it, with the multilingual score of the place. Rows never placed follow by `fused`."""
    places: dict[int, float] = {}
    for weight, ranking in multilingual:
        for rank, row in enumerate(ranking, start=1):
            places[row] = places.get(row, 0.0) + weight / (60 + rank)

    def group(row: int) -> str:
        return "" if languages[row] in ("", query_language) else str(languages[row])

    by_fused = [row for row, _ in sorted(fused.items(), key=lambda item: -item[1])]
    result: list[tuple[int, float]] = []
    for place_row, score in sorted(places.items(), key=lambda item: -item[1]):
        remaining = [r for r in by_fused if group(r) == group(place_row) and r not in {p for p, _ in result}]
        if remaining:
            result.append((remaining[0], score))
    for row in by_fused:
        if row not in {p for p, _ in result}:
            result.append((row, min(result[-1][1], fused[row]) if result else fused[row]))
    return result
