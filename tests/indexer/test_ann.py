"""The approximate dense index (IVF-SQ8) against brute-force numpy search: recall, nprobe tuning, fallback to
exact search, filters inside retrieval, memory mapping and the manifest of a generation that gets one."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer.dense import (
    EXACT_INNER_PRODUCT,
    IVF_SQ8,
    AnnOptions,
    build_index,
    default_nlist,
    read_dense_index,
    recall_at_k,
    search_dense,
    self_query_ground_truth,
    write_dense_index,
)
from indexer.generation import DenseIndexSpec
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.filters import SearchFilters
from search_api.searcher import Searcher

# Threshold 0: every index in these tests is approximate unless a test says otherwise.
ANN = AnnOptions(threshold=0, recall_queries=200)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _clustered(rng: np.random.Generator, n: int, dim: int = 32, clusters: int = 80) -> np.ndarray:
    """Unit vectors around random centres, like embeddings of a corpus with topics."""
    centres = _unit(rng.standard_normal((clusters, dim)))
    return _unit(centres[rng.integers(clusters, size=n)] + 0.4 * rng.standard_normal((n, dim)) / np.sqrt(dim))


def _brute_force(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray]:
    """20,000 indexed vectors and 100 held-out queries from the same distribution."""
    rng = np.random.default_rng(11)
    vectors = _clustered(rng, 20_100)
    return vectors[:20_000], vectors[20_000:]


@pytest.fixture(scope="module")
def ivf(corpus: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, object, dict]:
    built = build_index(corpus[0], ANN)
    return corpus[0], built.index, built.description


def test_recall_at_k_is_the_mean_share_of_true_neighbours_found() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, -1]])
    found = np.array([[4, 3, 9, 8], [7, 6, 5, 0]])
    # Query 1: 2 of 4; query 2: all 3 of its 3 true neighbours.
    assert recall_at_k(found, exact) == pytest.approx((2 / 4 + 3 / 3) / 2)


def test_exact_search_up_to_the_threshold(corpus: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = corpus
    built = build_index(vectors[:500], AnnOptions(threshold=500))
    assert built.description == {"type": EXACT_INNER_PRODUCT}
    _, rows = search_dense(built.index, queries, 10)
    np.testing.assert_array_equal(rows, _brute_force(queries, vectors[:500], 10))


def test_above_the_threshold_the_index_is_ivf_sq8_with_recall_against_brute_force(
    ivf: tuple[np.ndarray, object, dict], corpus: tuple[np.ndarray, np.ndarray]
) -> None:
    vectors, index, description = ivf
    assert faiss.try_extract_index_ivf(index) is not None
    assert description["type"] == IVF_SQ8
    assert description["nlist"] == default_nlist(len(vectors)) == 282
    assert description["nprobe"] == index.nprobe
    assert description["recall_queries"] == 200
    assert description["recall_at_10"] >= ANN.recall_floor
    # Held-out queries, never in the index: recall against numpy brute force reaches the floor too.
    queries = corpus[1]
    _, rows = search_dense(index, queries, 10)
    assert recall_at_k(rows, _brute_force(queries, vectors, 10)) >= 0.95


def test_build_time_ground_truth_is_brute_force_without_the_query_itself(
    ivf: tuple[np.ndarray, object, dict],
) -> None:
    vectors = ivf[0]
    rows, exact = self_query_ground_truth(vectors, 50, seed=3)
    expected = _brute_force(vectors[rows], vectors, 11)
    assert (expected[:, 0] == rows).all()  # a vector is its own nearest neighbour ...
    np.testing.assert_array_equal(exact, expected[:, 1:])  # ... and is left out of its ground truth


def test_nprobe_is_raised_to_the_smallest_that_reaches_the_floor(corpus: tuple[np.ndarray, np.ndarray]) -> None:
    vectors = corpus[0]
    options = AnnOptions(threshold=0, nprobe=1, recall_floor=0.97, recall_queries=200)
    built = build_index(vectors, options)
    nprobe = built.description["nprobe"]
    assert nprobe > 1 and built.description["recall_at_10"] >= 0.97
    # Half that nprobe (the step before in the doubling) measures below the floor on the same queries.
    rows, exact = self_query_ground_truth(vectors, options.recall_queries, options.seed)
    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe // 2
    _, found = built.index.search(vectors[rows], 11, params=params)
    found_others = np.array([[r for r in line if r != own][:10] for line, own in zip(found, rows, strict=True)])
    assert recall_at_k(found_others, exact) < 0.97


def test_build_falls_back_to_exact_search_below_the_recall_floor() -> None:
    # Uniform random vectors have no clusters and near-tied neighbours: 8-bit codes swap some of them
    # even when every list is probed, so a floor of 1.0 cannot be met.
    vectors = _unit(np.random.default_rng(5).standard_normal((3000, 64)))
    built = build_index(vectors, AnnOptions(threshold=0, recall_floor=1.0, recall_queries=200))
    assert built.index_type == EXACT_INNER_PRODUCT
    rejected = built.description["rejected"]
    assert rejected["type"] == IVF_SQ8 and rejected["nprobe"] == rejected["nlist"]
    assert rejected["recall_at_10"] < 1.0
    queries = vectors[:20]
    np.testing.assert_array_equal(search_dense(built.index, queries, 10)[1], _brute_force(queries, vectors, 10))


@pytest.mark.parametrize("share", [0.001, 0.02, 0.3])
def test_filters_stay_inside_ivf_retrieval(
    ivf: tuple[np.ndarray, object, dict], corpus: tuple[np.ndarray, np.ndarray], share: float
) -> None:
    vectors, index, _ = ivf
    queries = corpus[1]
    allowed = np.random.default_rng(2).random(len(vectors)) < share
    subset = np.flatnonzero(allowed)
    assert len(subset) >= 10
    _, rows = search_dense(index, queries, 10, allowed)
    # Every hit passes the filter and every page is full, however narrow the filter ...
    assert allowed[rows].all()
    # ... and the hits are the brute-force top 10 of the allowed rows.
    assert recall_at_k(rows, subset[_brute_force(queries, vectors[subset], 10)]) >= 0.95


def test_a_filter_narrower_than_the_page_returns_exactly_the_allowed_rows(
    ivf: tuple[np.ndarray, object, dict], corpus: tuple[np.ndarray, np.ndarray]
) -> None:
    vectors, index, _ = ivf
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[[3, 4_000, 19_999]] = True
    _, rows = search_dense(index, corpus[1][:5], 10, allowed)
    assert all(sorted(r for r in line if r >= 0) == [3, 4_000, 19_999] for line in rows.tolist())
    assert search_dense(index, corpus[1][:5], 10, np.zeros(len(vectors), dtype=bool))[1].shape == (5, 0)


def test_a_deep_unfiltered_search_fills_every_slot(ivf: tuple[np.ndarray, object, dict]) -> None:
    vectors, index, _ = ivf
    # 5,000 candidates are more than the probed lists hold: the search widens to every list.
    _, rows = search_dense(index, vectors[:2], 5_000)
    assert (rows >= 0).all() and len(set(rows[0].tolist())) == 5_000


def test_index_files_are_read_memory_mapped(tmp_path: Path, ivf: tuple[np.ndarray, object, dict]) -> None:
    vectors, index, _ = ivf
    flat = build_index(vectors, AnnOptions()).index
    for name, original in (("flat.faiss", flat), ("ivf.faiss", index)):
        write_dense_index(original, tmp_path / name)
        opened = read_dense_index(tmp_path / name)
        ivf_part = faiss.try_extract_index_ivf(opened)
        if ivf_part is None:
            assert not opened.codes.is_owned  # the vectors are a view of the mapped file
        else:
            assert not faiss.downcast_InvertedLists(ivf_part.invlists).codes.at(0).is_owned
            assert ivf_part.nprobe == index.nprobe  # the tuned nprobe travels in the file
        np.testing.assert_array_equal(
            search_dense(opened, vectors[:20], 10)[1], search_dense(original, vectors[:20], 10)[1]
        )


DOCS = [
    (f"course-{i}.txt", f"Course {i} about {topic}.", DocumentMetadata(member=member))
    for i, (topic, member) in enumerate(
        [
            ("peer assessment rubrics and calibration of reviewers", "Tsinghua University"),
            ("flipped classroom videos watched before class", "University of Toronto"),
            ("offline access for learners on low bandwidth", "Universidad de Chile"),
            ("captions and screen readers for accessibility", "Tsinghua University"),
            ("virtual laboratory simulations of experiments", "Politecnico di Milano"),
            ("randomised question banks and exam integrity", "University of Toronto"),
        ]
    )
]


def test_a_generation_over_the_threshold_publishes_an_ivf_index(indexer: Indexer) -> None:
    for name, text, metadata in DOCS:
        body = "\n\n".join(f"{text} Paragraph {j} adds detail number {j * 13}." for j in range(40))
        indexer.ingest(body.encode(), name, metadata)
    # Oracle: the same passages indexed exactly (the default threshold), then the rows' vectors.
    indexer.build()
    exact_reader = open_published(indexer.data_dir)
    assert exact_reader is not None and exact_reader.manifest.index_type == EXACT_INNER_PRODUCT
    assert exact_reader.manifest.encoders[0].index == DenseIndexSpec(EXACT_INNER_PRODUCT)
    vectors = exact_reader.index.reconstruct_n(0, exact_reader.index.ntotal)
    exact_passages = {row: p.passage_id for row, p in exact_reader.passages(range(len(vectors))).items()}
    exact_reader.close()

    # The fake embedder's bag-of-words vectors tie often, which costs 8-bit codes recall: the floor is lowered
    # so that this generation keeps its IVF index (the fallback to exact search has its own test above).
    indexer.settings = indexer.settings.model_copy(
        update={"ann_threshold": 20, "ann_nprobe": 1, "ann_recall_floor": 0.8}
    )
    indexer.build()
    reader = open_published(indexer.data_dir)
    assert reader is not None
    manifest = reader.manifest
    assert manifest.passage_count == len(vectors) > 100
    assert {row: p.passage_id for row, p in reader.passages(range(len(vectors))).items()} == exact_passages
    description = manifest.encoders[0].index
    assert manifest.index_type == description.type == IVF_SQ8
    assert description.nlist == default_nlist(len(vectors))
    assert (description.recall_at_10 or 0) >= 0.8 and description.recall_queries == len(vectors)
    assert (manifest.parameters.dense.ann_threshold, manifest.parameters.dense.recall_floor) == (20, 0.8)
    ivf_part = faiss.try_extract_index_ivf(reader.index)
    assert ivf_part is not None and ivf_part.nprobe == description.nprobe

    # A filtered dense search through the Searcher: only the member's passages, the brute-force best of them.
    embedder = indexer.embedder
    query = "captions for screen reader users"
    cosine = vectors @ embedder.embed_queries([query])[0]
    dense_only = Searcher(reader, embedder, 1.0, 0.0)
    hits = dense_only.search(query, k=10, filters=SearchFilters(members=("Tsinghua University",))).hits
    assert len(hits) == 10 and {h.passage.metadata["member"] for h in hits} == {"Tsinghua University"}
    allowed = np.array([reader.documents[d].member == "Tsinghua University" for d in reader.row_document])
    best = np.sort(cosine[allowed])[::-1][:10]
    np.testing.assert_allclose(np.sort(cosine[[h.passage.row for h in hits]])[::-1], best, atol=0.02)
    reader.close()

    # A floor the IVF index cannot reach: the generation falls back to exact search and says why.
    indexer.settings = indexer.settings.model_copy(update={"ann_recall_floor": 1.0})
    indexer.build()
    reader = open_published(indexer.data_dir)
    assert reader is not None
    fallback = reader.manifest.encoders[0].index
    assert reader.manifest.index_type == fallback.type == EXACT_INNER_PRODUCT
    assert fallback.rejected is not None and fallback.rejected.type == IVF_SQ8
    assert (fallback.rejected.recall_at_10 or 0) < 1.0
    assert faiss.try_extract_index_ivf(reader.index) is None
    reader.close()
