"""BM25 scored at query time from postings, with statistics taken only from the rows the caller may see.

A score that bakes in corpus-wide statistics tells every caller something about rows they may not see: with IDF
and the average length computed over hidden rows too, an anonymous caller who compares the score of a visible hit
for `secretword otherword` with a control learns whether, and in how many passages, member-only documents hold
`secretword`. So a generation stores raw postings (for each term, the rows holding it and how often, and every
row's length), and a query computes N, each term's document frequency and the average length over the rows the
caller may see (`Postings.statistics`, from a boolean mask over rows), and picks the best among those rows alone.

The formula is bm25s's default ("lucene"), as the index used before format 3: idf = ln(1 + (N - df + 0.5) / (df +
0.5)), term part tf / (tf + k1 * (1 - b + b * dl / avgdl)), each term's contribution rounded to float32 and summed
in float32 in query order, so with every row visible the scores are bit-identical to bm25s's (tests/indexer/
test_bm25.py holds bm25s as the oracle).

Generations of formats 1 and 2 hold bm25s's precomputed scores instead (`Postings.precomputed`): their IDF is
rescaled to the visible rows, but the length normalisation keeps the average length over every row of the
generation until the next build rewrites it in format 3 (the reader logs this once).
"""

from __future__ import annotations

import json
import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Format 3 files, in the lexical folder of a generation.
VOCABULARY_FILE = "vocabulary.json"
_ARRAYS = ("indptr", "rows", "counts", "lengths")
# bm25s's files (formats 1 and 2).
_BM25S_VOCABULARY = "vocab.index.json"
_BM25S_ARRAYS = {"indptr": "indptr.csc.index.npy", "rows": "indices.csc.index.npy", "counts": "data.csc.index.npy"}


@dataclass(frozen=True)
class Statistics:
    """What BM25 needs of the rows a caller may see: how many, their average length, and which (None: all)."""

    rows: int
    average_length: float
    visible: np.ndarray | None


@dataclass(frozen=True)
class Postings:
    """For each term (a column, by id), the rows holding it in ascending order and a value per row: the term's
    count (format 3) or, when `lengths` is None, bm25s's precomputed score (formats 1 and 2)."""

    size: int  # rows
    vocabulary: dict[str, int]
    indptr: np.ndarray
    rows: np.ndarray
    counts: np.ndarray
    lengths: np.ndarray | None  # tokens per row, as bm25s counts them

    @property
    def precomputed(self) -> bool:
        """Whether this is a bm25s index of an older generation (scores, no counts or lengths)."""
        return self.lengths is None

    @classmethod
    def of(cls, corpus: Sequence[Sequence[str]]) -> Postings:
        """The postings of tokenised rows, in row order."""
        vocabulary: dict[str, int] = {}
        # Typed arrays, not lists: a million passages hold some fifty million (term, row) pairs.
        terms, rows, counts = array("q"), array("i"), array("f")
        for row, tokens in enumerate(corpus):
            for term, count in Counter(tokens).items():
                terms.append(vocabulary.setdefault(term, len(vocabulary)))
                rows.append(row)
                counts.append(count)
        term_array = np.frombuffer(terms, dtype=np.int64)
        order = np.argsort(term_array, kind="stable")  # rows stay ascending within a term
        indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_array, minlength=len(vocabulary)), out=indptr[1:])
        return cls(
            len(corpus),
            vocabulary,
            indptr,
            np.frombuffer(rows, dtype=np.int32)[order],
            np.frombuffer(counts, dtype=np.float32)[order],
            np.asarray([len(tokens) for tokens in corpus], dtype=np.int64),
        )

    def save(self, folder: Path) -> None:
        """Write the format 3 files into `folder`."""
        (folder / VOCABULARY_FILE).write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path, size: int) -> Postings:
        """Open the files of `folder` memory-mapped: format 3 postings, or bm25s's index of an older generation."""
        if (folder / VOCABULARY_FILE).is_file():
            vocabulary = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
            arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
            return cls(size, vocabulary, arrays["indptr"], arrays["rows"], arrays["counts"], arrays["lengths"])
        vocabulary = json.loads((folder / _BM25S_VOCABULARY).read_text(encoding="utf-8"))
        arrays = {name: np.load(folder / file, mmap_mode="r") for name, file in _BM25S_ARRAYS.items()}
        return cls(size, vocabulary, arrays["indptr"], arrays["rows"], arrays["counts"], None)

    def statistics(self, visible: np.ndarray | None) -> Statistics:
        """N and the average length over the `visible` rows (None or all True: every row)."""
        if visible is not None and visible.all():
            visible = None
        rows = self.size if visible is None else int(np.count_nonzero(visible))
        if self.lengths is None or rows == 0:
            return Statistics(rows, 0.0, visible)
        # Integer sums, so the average is the same float however the rows are split (bm25s: mean of the ints).
        total = int(self.lengths.sum()) if visible is None else int(self.lengths[visible].sum())
        return Statistics(rows, total / rows, visible)

    def column(self, term: str, statistics: Statistics) -> tuple[np.ndarray, np.ndarray]:
        """The visible rows holding `term` and their values (empty for a term no visible row holds)."""
        term_id = self.vocabulary.get(term)
        if term_id is None:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        start, end = int(self.indptr[term_id]), int(self.indptr[term_id + 1])
        rows, values = np.asarray(self.rows[start:end]), np.asarray(self.counts[start:end])
        if statistics.visible is not None:
            keep = statistics.visible[rows]
            rows, values = rows[keep], values[keep]
        return rows, values


def idf(rows: int, frequency: int) -> float:
    """Lucene's IDF of a term `frequency` of `rows` rows hold (a term none holds gets the highest)."""
    return math.log(1.0 + (rows - frequency + 0.5) / (frequency + 0.5))


def score_terms(
    postings: Postings, terms: Sequence[str], statistics: Statistics, k1: float, b: float
) -> tuple[np.ndarray, np.ndarray]:
    """The visible rows holding any of `terms` (ascending) and their BM25 scores (float32)."""
    found_rows: list[np.ndarray] = []
    found_scores: list[np.ndarray] = []
    for term in terms:
        rows, values = postings.column(term, statistics)
        if not len(rows):
            continue
        weight = np.float32(idf(statistics.rows, len(rows)))
        if postings.lengths is None:
            found_scores.append(_rescaled(postings, term, values, weight))
        else:
            counts = values.astype(np.float64)
            lengths = postings.lengths[rows].astype(np.float64)
            # bm25s's expression, operation for operation: the same doubles, rounded to float32 once.
            part = counts / (k1 * ((1 - b) + b * lengths / statistics.average_length) + counts)
            found_scores.append((np.float64(weight) * part).astype(np.float32))
        found_rows.append(rows)
    if not found_rows:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    unique, position = np.unique(np.concatenate(found_rows), return_inverse=True)
    scores = np.zeros(len(unique), dtype=np.float32)
    np.add.at(scores, position, np.concatenate(found_scores))  # in query order, in float32, as bm25s sums
    return unique.astype(np.int64), scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` best `scores`, best first, picked as bm25s picks them (numpy's partial selection,
    then a sort), so that rankings, ties included, stay what they were before format 3. Its tie order depends
    on the whole array: callers pass the scores of the visible rows alone, in row order."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    chosen = np.argpartition(scores, -k)[-k:]
    return chosen[np.flip(np.argsort(scores[chosen]))]


def _rescaled(postings: Postings, term: str, values: np.ndarray, weight: np.float32) -> np.ndarray:
    """bm25s's stored scores of an older generation with the IDF of every row replaced by the visible rows'."""
    term_id = postings.vocabulary[term]
    stored = np.float32(idf(postings.size, int(postings.indptr[term_id + 1] - postings.indptr[term_id])))
    if stored == weight:
        return np.asarray(values, dtype=np.float32)
    return (values.astype(np.float64) * (float(weight) / float(stored))).astype(np.float32)
