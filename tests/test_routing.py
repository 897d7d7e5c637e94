"""Language-aware routing between a monolingual and a multilingual encoder, against a hand-fused oracle."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from indexer.dense import search_dense
from indexer.embedding import HashEmbedder
from indexer.generation import MANIFEST_FILE, GenerationError, file_sha256
from indexer.generation_reader import DenseIndex, GenerationReader, open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.searcher import ModelMismatchError, Searcher, _centred_ranking
from search_api.settings import ApiSettings
from tests.conftest import centred_ranking_oracle, language_places_oracle, lexical_coverage_oracle

ENGLISH = HashEmbedder(256, languages=frozenset({"en"}))
# Like USE: multilingual with an explicit list of languages (which includes English).
MULTILINGUAL = HashEmbedder(128, languages=frozenset({"en", "es", "zh"}))
TEXTS = {
    "peer-en.txt": ("en", "Peer assessment with calibrated rubrics in large engineering courses works well."),
    "lab-en.txt": ("en", "Virtual laboratories let engineering students repeat experiments at home."),
    "peer-zh.txt": ("zh", "在大规模工程课程中使用校准评分量表进行同伴互评效果良好。"),
    "peer-es.txt": (
        "es",
        "La evaluación entre pares con rúbricas calibradas funciona en cursos masivos de ingeniería.",
    ),
}


@pytest.fixture
def built(settings: ApiSettings) -> Iterator[tuple[Indexer, Searcher]]:
    indexer = Indexer(settings, ENGLISH, [MULTILINGUAL])
    for name, (language, text) in TEXTS.items():
        indexer.ingest(text.encode(), name, DocumentMetadata(language=language))
    report = indexer.build()
    assert report.passages == 4 and report.passages_embedded == 8, "every passage embedded by both encoders"
    reader = open_published(settings.data_dir)
    assert reader is not None
    yield indexer, Searcher(reader, [ENGLISH, MULTILINGUAL])
    reader.close()
    indexer.close()


def test_the_manifest_lists_both_encoders_with_their_languages(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    encoders = searcher.reader.manifest.encoders
    assert [(e["model_id"], e["file"], e["languages"]) for e in encoders] == [
        ("hash-256-en", "dense.faiss", ["en"]),
        ("hash-128-en-es-zh", "dense-1.faiss", ["en", "es", "zh"]),
    ]


def test_the_generation_records_the_multilingual_encoders_language_means(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    reader = searcher.reader
    english_entry, multilingual_entry = reader.manifest.encoders
    assert english_entry["language_means"] is None and reader.dense[0].language_means is None
    assert multilingual_entry["language_means"] == {"file": "language-means-1.npy", "languages": ["en", "es", "zh"]}
    assert "language-means-1.npy" in reader.manifest.files  # checksummed like every file
    vectors = reader.dense[1].index.reconstruct_n(0, reader.dense[1].index.ntotal).astype(np.float64)
    means = reader.dense[1].language_means
    assert means is not None and sorted(means) == ["en", "es", "zh"]
    for language, mean in means.items():
        np.testing.assert_allclose(mean, vectors[reader.row_language == language].mean(axis=0), atol=1e-12)


def test_a_language_means_file_that_does_not_fit_the_manifest_is_refused(built: tuple[Indexer, Searcher]) -> None:
    folder = built[1].reader.folder
    np.save(folder / "language-means-1.npy", np.zeros((2, 128)), allow_pickle=False)  # three languages listed
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["files"]["language-means-1.npy"] = file_sha256(folder / "language-means-1.npy")
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(GenerationError, match=r"language-means-1\.npy holds"):
        GenerationReader(folder)


def test_centring_takes_each_languages_share_of_the_query_off_its_rows() -> None:
    # Hand-computed: q . mean(en) = 0.8 and q . mean(zh) = 0.3, so the centred scores are en 0.9 - 0.8 = 0.1,
    # en 0.85 - 0.8 = 0.05, zh 0.7 - 0.3 = 0.4: the Chinese row first, the English rows in their order.
    means = {"en": np.array([1.0, 0.0]), "zh": np.array([0.0, 0.5])}
    dense = DenseIndex("multilingual", None, None, means)
    query = np.array([[0.8, 0.6]], dtype=np.float32)
    scores = np.array([0.9, 0.85, 0.7, -1.0], dtype=np.float32)
    found = np.array([0, 1, 2, -1])
    languages = np.array(["en", "en", "zh"])
    assert _centred_ranking(dense, query, scores, found, languages) == [2, 0, 1]
    # Without means, or with one language only, the encoder's own order.
    assert _centred_ranking(DenseIndex("m", None, None), query, scores, found, languages) == [0, 1, 2]
    one = DenseIndex("m", None, None, {"en": means["en"]})
    assert _centred_ranking(one, query, scores, found, languages) == [0, 1, 2]


def test_each_row_is_ranked_by_the_encoder_for_its_language_pair(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    languages = searcher.reader.row_language.tolist()
    english_rows = {row for row, language in enumerate(languages) if language == "en"}
    english, multilingual = searcher._route("en")
    assert english is not None and multilingual is not None
    assert set(np.flatnonzero(english)) == english_rows
    assert set(np.flatnonzero(multilingual)) == set(range(4)) - english_rows
    # A Chinese query: the English-only encoder ranks nothing, the multilingual one everything.
    english, multilingual = searcher._route("zh")
    assert english is not None and not english.any() and multilingual is not None and multilingual.all()


def test_search_fuses_the_routed_dense_rankings_with_bm25(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    query = "calibrated rubrics for peer assessment in engineering courses"
    languages = searcher.reader.row_language
    oracle: dict[int, float] = {}
    multilingual: list[tuple[float, list[int]]] = []

    def add(ranking: list[int], weights: list[float] | None = None) -> None:
        for rank, row in enumerate(ranking, start=1):
            oracle[row] = oracle.get(row, 0.0) + (weights[rank - 1] if weights else 1.0) / (60 + rank)

    for encoder, dense, keep in (
        (ENGLISH, searcher.reader.dense[0], languages == "en"),
        (MULTILINGUAL, searcher.reader.dense[1], languages != "en"),
    ):
        vectors = dense.index.reconstruct_n(0, dense.index.ntotal)
        query_vector = encoder.embed_queries([query])[0]
        # The multilingual encoder's scores are centred per language; the English encoder's are cosines.
        ranking = (
            centred_ranking_oracle(vectors, query_vector, languages)
            if encoder is MULTILINGUAL
            else [int(r) for r in np.argsort(-(vectors @ query_vector), kind="stable")]
        )
        add([r for r in ranking if keep[r]])
        if encoder is MULTILINGUAL:
            multilingual.append((1.0, ranking))
    lexical_rows = searcher.reader.lexical.search(query, "en", 100)[1].tolist()
    # BM25 counts in full for English rows, by query coverage for rows in other languages.
    coverage = lexical_coverage_oracle(searcher.reader, query, "en", lexical_rows)
    add(lexical_rows, [1.0 if languages[r] == "en" else c for r, c in zip(lexical_rows, coverage, strict=True)])
    expected = language_places_oracle(oracle, multilingual, languages, "en")[:4]
    result = searcher.search(query, k=4)
    assert [h.passage.row for h in result.hits] == [row for row, _ in expected]
    assert [round(h.score, 9) for h in result.hits] == [round(score, 9) for _, score in expected]
    assert result.hits[0].passage.filename == "peer-en.txt"


def test_a_searcher_needs_every_encoder_of_the_generation(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    with pytest.raises(ModelMismatchError, match="hash-128-en-es-zh"):
        Searcher(searcher.reader, ENGLISH)


def test_two_multilingual_encoders_share_one_dense_weight(settings: ApiSettings) -> None:
    second = HashEmbedder(64)  # multilingual (no language list)
    indexer = Indexer(settings, ENGLISH, [MULTILINGUAL, second])
    for name, (language, text) in TEXTS.items():
        indexer.ingest(text.encode(), name, DocumentMetadata(language=language))
    indexer.build()
    reader = open_published(settings.data_dir)
    assert reader is not None
    searcher = Searcher(reader, [ENGLISH, MULTILINGUAL, second], dense_weight=1.0, lexical_weight=0.0)
    query = "rubrics calibrated peer assessment"
    languages = reader.row_language
    oracle: dict[int, float] = {}
    multilingual: list[tuple[float, list[int]]] = []
    for encoder, dense, keep, weight in (
        (ENGLISH, reader.dense[0], languages == "en", 1.0),
        (MULTILINGUAL, reader.dense[1], languages != "en", 0.5),
        (second, reader.dense[2], languages != "en", 0.5),
    ):
        vectors = dense.index.reconstruct_n(0, dense.index.ntotal)
        query_vector = encoder.embed_queries([query])[0]
        ranking = (
            [int(r) for r in np.argsort(-(vectors @ query_vector), kind="stable")]
            if encoder is ENGLISH
            else centred_ranking_oracle(vectors, query_vector, languages)
        )
        for rank, row in enumerate([r for r in ranking if keep[r]], start=1):
            oracle[row] = oracle.get(row, 0.0) + weight / (60 + rank)
        if encoder is not ENGLISH:
            multilingual.append((weight, ranking))
    expected = language_places_oracle(oracle, multilingual, languages, "en")[:4]
    hits = searcher.search(query, k=4).hits
    # The Chinese and Spanish rows share no token with the query: their cosines tie, so their order is open.
    assert [round(h.score, 9) for h in hits] == [round(s, 9) for _, s in expected]
    assert {h.passage.row for h in hits} == {row for row, _ in expected}
    reader.close()
    indexer.close()


def test_a_multilingual_retriever_also_ranks_the_query_language(settings: ApiSettings) -> None:
    # e5-like: strong within one language too; USE-like: cross-language only.
    retriever = HashEmbedder(96, same_language_retrieval=True)
    similarity = HashEmbedder(64)
    indexer = Indexer(settings, ENGLISH, [retriever, similarity])
    for name, (language, text) in TEXTS.items():
        indexer.ingest(text.encode(), name, DocumentMetadata(language=language))
    indexer.build()
    reader = open_published(settings.data_dir)
    assert reader is not None
    searcher = Searcher(reader, [ENGLISH, retriever, similarity], dense_weight=1.0, lexical_weight=0.0)
    query = "rubrics calibrated peer assessment engineering"
    languages = reader.row_language
    english = languages == "en"
    oracle: dict[int, float] = {}
    multilingual: list[tuple[float, list[int]]] = []
    # English rows: the English encoder and the retriever (the only multilingual encoder ranking them, so its
    # weight is whole); other rows: the two multilingual encoders, sharing one weight.
    for encoder, dense, keep, weights in (
        (ENGLISH, reader.dense[0], english, {True: 1.0}),
        (retriever, reader.dense[1], np.ones(len(languages), dtype=bool), {True: 1.0, False: 0.5}),
        (similarity, reader.dense[2], ~english, {False: 0.5}),
    ):
        # Each encoder's own ranking (FAISS, whose exactness test_dense checks: here cosines tie, and FAISS
        # breaks ties its own way), the multilingual ones re-sorted by centred score; the oracle is for the
        # centring, weights, routes and places.
        query_vector = encoder.embed_queries([query])
        ranking = search_dense(dense.index, query_vector, len(languages))[1][0].tolist()
        if encoder is not ENGLISH:
            vectors = dense.index.reconstruct_n(0, dense.index.ntotal)
            ranking = centred_ranking_oracle(vectors, query_vector[0], languages, ranking)
        for rank, row in enumerate([r for r in ranking if keep[r]], start=1):
            oracle[row] = oracle.get(row, 0.0) + weights[bool(english[row])] / (60 + rank)
        if encoder is not ENGLISH:
            multilingual.append((0.5, ranking))
    expected = language_places_oracle(oracle, multilingual, languages, "en")[:4]
    hits = searcher.search(query, k=4).hits
    assert [(h.passage.row, round(h.score, 9)) for h in hits] == [(row, round(s, 9)) for row, s in expected]
    reader.close()
    indexer.close()
