"""Language-aware routing between a monolingual and a multilingual encoder, against a hand-fused oracle."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from indexer.dense import search_dense
from indexer.embedding import HashEmbedder
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.ranking.routing import route
from search_api.searcher import ModelMismatchError, Searcher
from search_api.settings import ApiSettings
from tests.helpers import language_places_oracle, lexical_coverage_oracle

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


@contextmanager
def _indexed(
    settings: ApiSettings, multilingual: list[HashEmbedder], **weights: float
) -> Iterator[tuple[Indexer, Searcher]]:
    """TEXTS indexed with the English encoder and `multilingual`, and a searcher over the published generation."""
    indexer = Indexer(settings, ENGLISH, multilingual)
    try:
        for name, (language, text) in TEXTS.items():
            indexer.ingest(text.encode(), name, DocumentMetadata(language=language))
        report = indexer.build()
        encoders = 1 + len(multilingual)
        assert (report.passages, report.passages_embedded, report.vectors_embedded) == (4, 4, 4 * encoders)
        reader = open_published(settings.data_dir)
        assert reader is not None
        try:
            yield indexer, Searcher(reader, [ENGLISH, *multilingual], **weights)
        finally:
            reader.close()
    finally:
        indexer.close()


@pytest.fixture
def built(settings: ApiSettings) -> Iterator[tuple[Indexer, Searcher]]:
    with _indexed(settings, [MULTILINGUAL]) as pair:
        yield pair


def test_the_manifest_lists_both_encoders_with_their_languages(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    encoders = searcher.reader.manifest.encoders
    assert [(e.model_id, e.file, e.languages) for e in encoders] == [
        ("hash-256-en", "dense.faiss", ("en",)),
        ("hash-128-en-es-zh", "dense-1.faiss", ("en", "es", "zh")),
    ]


def test_each_row_is_ranked_by_the_encoder_for_its_language_pair(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    languages = searcher.reader.row_language.tolist()
    english_rows = {row for row, language in enumerate(languages) if language == "en"}
    english, multilingual = route(searcher.routing, searcher.reader.row_language, "en")
    assert english is not None and multilingual is not None
    assert set(np.flatnonzero(english)) == english_rows
    assert set(np.flatnonzero(multilingual)) == set(range(4)) - english_rows
    # A Chinese query: the English-only encoder ranks nothing, the multilingual one everything.
    english, multilingual = route(searcher.routing, searcher.reader.row_language, "zh")
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
        scores = vectors @ encoder.embed_queries([query])[0]
        ranking = [int(r) for r in np.argsort(-scores, kind="stable")]
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
    with _indexed(settings, [MULTILINGUAL, second], dense_weight=1.0, lexical_weight=0.0) as (_, searcher):
        reader = searcher.reader
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
            scores = vectors @ encoder.embed_queries([query])[0]
            ranking = [int(r) for r in np.argsort(-scores, kind="stable")]
            for rank, row in enumerate([r for r in ranking if keep[r]], start=1):
                oracle[row] = oracle.get(row, 0.0) + weight / (60 + rank)
            if encoder is not ENGLISH:
                multilingual.append((weight, ranking))
        expected = language_places_oracle(oracle, multilingual, languages, "en")[:4]
        hits = searcher.search(query, k=4).hits
        # The Chinese and Spanish rows share no token with the query: their cosines tie, so their order is open.
        assert [round(h.score, 9) for h in hits] == [round(s, 9) for _, s in expected]
        assert {h.passage.row for h in hits} == {row for row, _ in expected}


def test_a_multilingual_retriever_also_ranks_the_query_language(settings: ApiSettings) -> None:
    # e5-like: strong within one language too; USE-like: cross-language only.
    retriever = HashEmbedder(96, same_language_retrieval=True)
    similarity = HashEmbedder(64)
    with _indexed(settings, [retriever, similarity], dense_weight=1.0, lexical_weight=0.0) as (_, searcher):
        reader = searcher.reader
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
            # breaks ties its own way); the oracle is for the weights, routes and places.
            ranking = search_dense(dense.index, encoder.embed_queries([query]), len(languages))[1][0].tolist()
            for rank, row in enumerate([r for r in ranking if keep[r]], start=1):
                oracle[row] = oracle.get(row, 0.0) + weights[bool(english[row])] / (60 + rank)
            if encoder is not ENGLISH:
                multilingual.append((0.5, ranking))
        expected = language_places_oracle(oracle, multilingual, languages, "en")[:4]
        hits = searcher.search(query, k=4).hits
        assert [(h.passage.row, round(h.score, 9)) for h in hits] == [(row, round(s, 9)) for row, s in expected]
