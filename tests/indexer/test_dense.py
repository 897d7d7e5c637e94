"""FAISS search against a brute-force numpy oracle, directly and through a published generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.dense import (
    build_dense_index,
    read_dense_index,
    search_dense,
    stored_vector,
    train_ivf_sq8,
    write_dense_index,
)
from indexer.embedding import HashEmbedder
from indexer.generation_reader import open_published
from indexer.language import guess_query_language
from indexer.pipeline import Indexer
from search_api.searcher import Searcher
from tests.helpers import lexical_coverage_oracle


def _unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_flat_index_equals_brute_force_inner_product() -> None:
    rng = np.random.default_rng(7)
    vectors, queries = _unit_rows(rng, 2000, 48), _unit_rows(rng, 25, 48)
    scores, rows = search_dense(build_dense_index(vectors), queries, 10)
    oracle = queries @ vectors.T
    expected_rows = np.argsort(-oracle, axis=1)[:, :10]
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, np.take_along_axis(oracle, expected_rows, axis=1), rtol=1e-5, atol=1e-5)


def test_k_larger_than_the_index_returns_every_vector_once() -> None:
    vectors = _unit_rows(np.random.default_rng(1), 5, 8)
    _, rows = search_dense(build_dense_index(vectors), vectors[:1], 50)
    assert sorted(rows[0].tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("kind", ["flat", "ivf-sq8"])
def test_a_stored_vector_reads_back_as_it_was_added(tmp_path: Path, kind: str) -> None:
    """Oracle: the vectors added. Read back memory-mapped, as readers do; IVF reconstructs only with an id map,
    built on first use, and gives its 8-bit quantised copy."""
    vectors = _unit_rows(np.random.default_rng(0), 400, 16)
    index = build_dense_index(vectors) if kind == "flat" else train_ivf_sq8(vectors, 4, seed=1)
    if kind != "flat":
        index.add(vectors)
    write_dense_index(index, tmp_path / "dense.faiss")
    stored = read_dense_index(tmp_path / "dense.faiss")
    for row in (0, 123, 399):
        vector = stored_vector(stored, row)
        assert vector.shape == (1, 16) and vector.dtype == np.float32
        if kind == "flat":
            np.testing.assert_array_equal(vector[0], vectors[row])
        else:
            np.testing.assert_allclose(vector[0], vectors[row], atol=0.02)


def test_searcher_ranks_passages_like_brute_force_over_the_published_vectors(indexer: Indexer) -> None:
    topics = [
        "peer assessment rubrics calibration",
        "flipped classroom videos before class",
        "offline access low bandwidth download",
        "accessibility captions screen reader",
        "virtual laboratory simulation experiment",
        "question bank randomised exam integrity",
    ]
    for i, topic in enumerate(topics):
        body = "\n\n".join(f"Paragraph {j} of report {i} on {topic} with detail {j * 7 + i}." for j in range(6))
        indexer.ingest(body.encode(), f"report-{i}.txt")
    indexer.build()
    reader = open_published(indexer.data_dir)
    assert reader is not None
    embedder = indexer.embedder
    assert isinstance(embedder, HashEmbedder)
    searcher = Searcher(reader, embedder)
    query = "captions for screen reader users"
    result = searcher.search(query, k=8)
    # Oracle: brute-force cosine over the published vectors, BM25 for the lexical list, fused by hand.
    vectors = reader.index.reconstruct_n(0, reader.index.ntotal)
    cosine = vectors @ embedder.embed_queries([query])[0]
    _, dense_rows = search_dense(reader.index, embedder.embed_queries([query]), 100)
    # FAISS returns the brute-force top 100 (rows may swap only where scores tie exactly).
    np.testing.assert_allclose(cosine[dense_rows[0]], np.sort(cosine)[::-1][:100], rtol=1e-5, atol=1e-6)
    dense_order = dense_rows[0].tolist()
    language = guess_query_language(query, searcher.corpus_languages)
    assert language == "en"
    _, lexical_rows = reader.lexical.search(query, language, 100)
    coverage = lexical_coverage_oracle(reader, query, language, lexical_rows.tolist())
    assert all(0 < share <= 1 for share in coverage)
    fused: dict[int, float] = {}
    for rank, row in enumerate(dense_order, start=1):
        fused[row] = fused.get(row, 0.0) + 1.0 / (60 + rank)
    # BM25 counts in full for rows in the query's language, by query coverage for the others.
    for rank, (row, share) in enumerate(zip(lexical_rows.tolist(), coverage, strict=True), start=1):
        weight = 1.0 if reader.row_language[row] in ("en", "") else share
        fused[row] = fused.get(row, 0.0) + weight / (60 + rank)
    expected = sorted(fused.items(), key=lambda item: -item[1])[:8]
    assert [h.passage.row for h in result.hits] == [row for row, _ in expected]
    np.testing.assert_allclose([h.score for h in result.hits], [score for _, score in expected], rtol=1e-6)
    assert "accessibility captions screen reader" in result.hits[0].passage.text
    # Either retriever alone: its own ranking, unchanged.
    assert [h.passage.row for h in Searcher(reader, embedder, 1.0, 0.0).search(query, k=8).hits] == dense_order[:8]
    lexical_only = Searcher(reader, embedder, 0.0, 1.0).search(query, k=8).hits
    pairs = zip(lexical_rows.tolist(), coverage, strict=True)
    weighted = sorted(((row, share / (60 + rank)) for rank, (row, share) in enumerate(pairs, 1)), key=lambda i: -i[1])
    assert [h.passage.row for h in lexical_only] == [row for row, _ in weighted][:8]
    # One hit per document: the best passage of each, in score order.
    grouped = searcher.search(query, k=6, per_document=True)
    assert len({h.passage.document_id for h in grouped.hits}) == 6
    assert grouped.hits[0].passage.row == expected[0][0]
    reader.close()
