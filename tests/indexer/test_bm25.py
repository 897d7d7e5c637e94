"""BM25 from postings at query time, with bm25s (the index used before format 3) as the oracle."""

from __future__ import annotations

import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from indexer.bm25 import Postings, score_terms
from indexer.lexical import BM25_B, BM25_K1, LexicalIndex

WORDS = [f"w{i}" for i in range(60)]


def _corpus(seed: int, size: int = 300) -> list[list[str]]:
    rng = random.Random(seed)
    # Zipf-like word choice, so some terms are common and many rare; some rows have one placeholder token.
    weights = [1.0 / (i + 1) for i in range(len(WORDS))]
    rows = [rng.choices(WORDS, weights, k=rng.randint(1, 40)) for _ in range(size)]
    # Copies (exact ties) and one-word rows (ties among rows of one length), as real corpora have.
    return [rows[rng.randrange(i)] if i and rng.random() < 0.2 else row for i, row in enumerate(rows)] + [
        [rng.choice(WORDS[:5])] for _ in range(size // 10)
    ]


def _bm25s(corpus: list[list[str]]) -> bm25s.BM25:
    retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    retriever.index(corpus, show_progress=False)
    return retriever


def _oracle_scores(retriever: bm25s.BM25, terms: list[str], size: int) -> np.ndarray:
    known = [t for t in terms if t in retriever.vocab_dict]
    return retriever.get_scores(known) if known else np.zeros(size, np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_with_every_row_visible_the_scores_are_bm25s_bit_for_bit(seed: int) -> None:
    corpus = _corpus(seed)
    retriever, postings = _bm25s(corpus), Postings.of(corpus)
    rng = random.Random(seed)
    for _ in range(30):
        terms = list(dict.fromkeys(rng.choices([*WORDS, "absent"], k=rng.randint(1, 6))))
        expected = _oracle_scores(retriever, terms, len(corpus))
        rows, scores = score_terms(postings, terms, postings.statistics(None), BM25_K1, BM25_B)
        full = np.zeros(len(corpus), np.float32)
        full[rows] = scores
        assert full.tobytes() == expected.tobytes()
        assert set(rows.tolist()) == set(np.flatnonzero(expected).tolist())


@pytest.mark.parametrize("seed", range(5))
def test_with_a_mask_the_scores_are_those_of_bm25s_over_the_visible_rows_alone(seed: int) -> None:
    corpus = _corpus(seed)
    rng = np.random.default_rng(seed)
    visible = rng.random(len(corpus)) < 0.6
    postings = Postings.of(corpus)
    oracle = _bm25s([tokens for tokens, shown in zip(corpus, visible, strict=True) if shown])
    positions = np.flatnonzero(visible)
    for query in (["w0", "w7"], ["w3"], ["w50", "w1", "w59"], ["w12", "w12b"]):
        expected = _oracle_scores(oracle, query, len(positions))
        rows, scores = score_terms(postings, query, postings.statistics(visible), BM25_K1, BM25_B)
        assert visible[rows].all()
        full = np.zeros(len(corpus), np.float32)
        full[rows] = scores
        assert full[positions].tobytes() == expected.tobytes()


def _oracle_ranking(retriever: bm25s.BM25, query: str, k: int, mask: np.ndarray | None = None) -> list[int]:
    terms = [t for t in dict.fromkeys(query.split()) if t in retriever.vocab_dict]
    weights = None if mask is None else mask.astype(np.float32)
    found, scores = retriever.retrieve([terms], k=k, show_progress=False, n_threads=1, weight_mask=weights)
    return found[0][scores[0] > 0].tolist()


@pytest.mark.parametrize("seed", range(3))
def test_the_ranking_is_bm25s_s_ties_included_over_the_visible_rows_alone(seed: int) -> None:
    """Every row visible, the ranking is bm25s's as the index used it before; with hidden rows, it is the
    ranking bm25s gives over the visible rows alone (so where hidden rows lie does not reorder ties)."""
    corpus = _corpus(seed)
    index = LexicalIndex.build([(" ".join(tokens), None) for tokens in corpus])  # such words are their own terms
    rng = np.random.default_rng(seed)
    visible = rng.random(len(corpus)) < 0.5
    allowed = visible & (rng.random(len(corpus)) < 0.7)
    positions = np.flatnonzero(visible)
    everything, alone = _bm25s(corpus), _bm25s([corpus[r] for r in positions])
    for query in ("w0 w4", "w9", "w2 w30 w31", "w44 w45", "w1"):
        assert index.search(query, None, 100)[1].tolist() == _oracle_ranking(everything, query, 100)
        assert index.search(query, None, 100, allowed)[1].tolist() == _oracle_ranking(everything, query, 100, allowed)
        expected = positions[_oracle_ranking(alone, query, 100, allowed[visible])].tolist()
        assert index.search(query, None, 100, allowed, visible)[1].tolist() == expected


def test_an_older_generation_s_bm25s_index_is_served_with_the_visible_rows_idf(tmp_path: Path) -> None:
    """Formats 1-2 stored bm25s's scores: every row visible, they are served as they are; with hidden rows,
    each term's IDF is the visible rows' (the length normalisation keeps every row's average)."""
    corpus = _corpus(3, size=50)
    _bm25s(corpus).save(str(tmp_path), show_progress=False)
    (tmp_path / "size").write_text(str(len(corpus)))
    index = LexicalIndex.load(tmp_path)
    assert index.precomputed
    current = LexicalIndex.build([(" ".join(tokens), None) for tokens in corpus])
    for query in ("w0 w4", "w9", "w2 w30 w31"):
        old, new = index.search_with_coverage(query, None, 100), current.search_with_coverage(query, None, 100)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(old, new, strict=True))
    visible = np.arange(len(corpus)) % 2 == 0
    _, rows, coverage = index.search_with_coverage("w0 w4", None, 100, visible=visible)
    _, expected_rows, expected_coverage = current.search_with_coverage("w0 w4", None, 100, visible=visible)
    assert set(rows.tolist()) == set(expected_rows.tolist()) and visible[rows].all()
    assert sorted(coverage.tolist()) == sorted(expected_coverage.tolist())
