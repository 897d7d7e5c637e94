"""Exact and near duplicates: one stored original, near duplicates linked and shown once."""

from __future__ import annotations

import numpy as np

from indexer.fingerprint import duplicate_clusters, minhash, similarity
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.searcher import Searcher
from tests.conftest import CORPUS, make_pdf

REPORT = " ".join(
    f"In week {i} the cohort of {1000 + i} learners reviewed {3 + i % 4} design submissions each using the "
    f"calibrated rubric number {i}, and instructors audited a sample of {50 + i} reviews."
    for i in range(30)
)


def test_similarity_estimates_overlap_of_word_shingles() -> None:
    edited = REPORT.replace("week 3 ", "week three ").replace("audited", "checked", 2)
    unrelated = (CORPUS / "files" / "question-banks-cornell-en.txt").read_text()
    scores = similarity(minhash(REPORT), np.stack([minhash(REPORT), minhash(edited), minhash(unrelated)]))
    assert scores[0] == 1.0
    assert 0.8 <= scores[1] < 1.0
    assert scores[2] < 0.1


def test_unspaced_scripts_use_character_shingles() -> None:
    text = (CORPUS / "files" / "app-certificates-offline-faq-xuetangx-zh.txt").read_text()
    edited = text.replace("证书", "证明", 2)
    assert similarity(minhash(text), minhash(edited)[None, :])[0] > 0.85


def test_clusters_are_keyed_by_their_newest_member() -> None:
    order = ["a", "b", "c", "d", "e"]
    clusters = duplicate_clusters({"c": "a", "e": "c"}, order)
    assert clusters == {"b": [], "d": [], "e": ["c", "a"]}


def test_a_re_export_is_linked_and_search_shows_one_document(indexer: Indexer) -> None:
    original = indexer.ingest(REPORT.encode(), "report.txt", DocumentMetadata(member="Tsinghua University"))
    other = indexer.ingest(b"Offline packages for learners with poor connectivity. " * 20, "offline.txt")
    indexer.build()
    # The same text re-exported as a PDF: other bytes, same words.
    pages = [REPORT[: len(REPORT) // 2], REPORT[len(REPORT) // 2 :]]
    re_export = indexer.ingest(make_pdf(pages), "report.pdf", DocumentMetadata(member="Tsinghua University"))
    assert re_export.created, "different bytes are a new document"
    report = indexer.build()
    linked = indexer.catalog.get_document(re_export.document.id)
    assert linked is not None and linked.near_duplicate_of == original.document.id
    assert indexer.catalog.get_document(other.document.id).near_duplicate_of is None  # type: ignore[union-attr]
    assert report.documents_indexed == 2
    reader = open_published(indexer.data_dir)
    assert reader is not None
    assert reader.document_ids() == {re_export.document.id, other.document.id}
    hits = Searcher(reader, indexer.embedder).search("calibrated rubric design submissions", k=10).hits
    assert hits[0].passage.document_id == re_export.document.id
    assert original.document.id not in {h.passage.document_id for h in hits}
    assert hits[0].passage.near_duplicates == (original.document.id,)
    reader.close()


def test_translations_are_not_near_duplicates(indexer: Indexer) -> None:
    for name in (
        "peer-assessment-tsinghua-en.pdf",
        "peer-assessment-tsinghua-es.pdf",
        "peer-assessment-tsinghua-ru.pdf",
    ):
        indexer.ingest((CORPUS / "files" / name).read_bytes(), name)
    indexer.build()
    assert all(d.near_duplicate_of is None for d in indexer.catalog.list_documents())
