"""Ingest, build and publish: durability, duplicates, failures as data, incremental builds, generations."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from indexer.catalog import BUILD_PUBLISHED, BUILD_UNCHANGED, FAILED, INDEXED, PENDING
from indexer.generation import (
    DENSE_FILE,
    DenseIndexSpec,
    GenerationError,
    LexicalParameters,
    generations_root,
    list_generations,
    published_generation_id,
    read_manifest,
    verify_generation,
)
from indexer.ingest import IngestError, clean_filename
from indexer.metadata import DocumentMetadata
from indexer.pipeline import BuildAlreadyRunning, Indexer
from tests.helpers import make_pdf


def test_ingest_stores_the_original_by_sha256_and_records_a_pending_row(indexer: Indexer) -> None:
    data = b"Peer assessment in large courses.\n\nCalibrated reviewers grade better."
    result = indexer.ingest(data, "report.txt", DocumentMetadata(member="edX", language="en"))
    assert result.created and result.duplicate_of is None
    document = result.document
    assert document.status == PENDING and document.metadata.member == "edX"
    assert indexer.store.read(document.sha256) == data
    assert indexer.store.path_for(document.sha256).parent.parent == indexer.data_dir / "originals"
    # The row is committed: another connection sees it.
    with sqlite3.connect(indexer.catalog.path) as other:
        assert other.execute("SELECT status FROM documents WHERE id = ?", (document.id,)).fetchone() == (PENDING,)


def test_the_same_bytes_twice_are_one_document(indexer: Indexer) -> None:
    first = indexer.ingest(b"same text twice", "a.txt", DocumentMetadata(member="edX"))
    second = indexer.ingest(b"same text twice", "b.txt", DocumentMetadata(member="Cornell University"))
    assert not second.created and second.duplicate_of == first.document.id
    assert len(indexer.catalog.list_documents()) == 1


def test_empty_and_oversized_files_are_refused_before_storing(indexer: Indexer) -> None:
    with pytest.raises(IngestError) as empty:
        indexer.ingest(b"", "empty.txt")
    assert empty.value.code == "empty_file"
    indexer.settings = indexer.settings.model_copy(update={"max_file_bytes": 10})
    with pytest.raises(IngestError) as large:
        indexer.ingest(b"x" * 11, "big.txt")
    assert large.value.code == "too_large"
    assert indexer.catalog.list_documents() == []
    assert not [p for p in (indexer.data_dir / "originals").rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/abs/path/x.pdf", "x.pdf"),
        ("a\x00b.pdf", "ab.pdf"),
        ("", "unnamed"),
        ("..", "unnamed"),
        ("C:\\Users\\me\\r.docx", "r.docx"),
    ],
)
def test_clean_filename_keeps_only_a_safe_display_name(name: str, expected: str) -> None:
    assert clean_filename(name) == expected


def test_long_filenames_keep_their_extension() -> None:
    cleaned = clean_filename("a" * 1000 + ".pdf")
    assert len(cleaned) == 200 and cleaned.endswith(".pdf")


def test_one_bad_document_does_not_stop_the_batch(indexer: Indexer) -> None:
    good_pdf = indexer.ingest(make_pdf(["Page one about rubrics.", "Page two about calibration."]), "good.pdf")
    broken = indexer.ingest(b"%PDF-1.7\n garbage without objects", "broken.pdf")
    binary = indexer.ingest(bytes(range(256)) * 4, "mystery.bin")
    text = indexer.ingest(b"Plain notes on offline access.", "notes.txt")
    report = indexer.build()
    statuses = {d.id: (d.status, d.reason) for d in indexer.catalog.list_documents()}
    assert statuses[good_pdf.document.id] == (INDEXED, None)
    assert statuses[text.document.id] == (INDEXED, None)
    assert statuses[broken.document.id] == (FAILED, "unreadable")
    assert statuses[binary.document.id] == (FAILED, "unsupported_type")
    assert {f.reason for f in report.failures} == {"unreadable", "unsupported_type"}
    assert report.documents_indexed == 2 and report.generation_id == published_generation_id(
        generations_root(indexer.data_dir)
    )
    pages = {p.page for p in indexer.catalog.passages_of(good_pdf.document.id)}
    assert pages == {1, 2}


def test_build_publishes_a_verified_generation_with_a_complete_manifest(indexer: Indexer) -> None:
    indexer.ingest(
        b"Flipped classroom report.\n\nStudents watch videos before class.",
        "f.txt",
        DocumentMetadata(title="Flipped", member="University of Toronto"),
    )
    report = indexer.build()
    root = generations_root(indexer.data_dir)
    folder = root / report.generation_id
    manifest = verify_generation(folder)
    assert manifest.model_id == "hash-256" and manifest.dimension == 256
    assert manifest.passage_count == report.passages == 1 and manifest.document_count == 1
    assert {"dense.faiss", "passages.sqlite3", "lexical/size", "lexical/vocabulary.json"} <= set(manifest.files)
    assert all((folder / name).is_file() for name in manifest.files)
    assert manifest.parameters.lexical == LexicalParameters(engine="bm25-postings", k1=0.9, b=0.4)
    assert manifest.catalog_state["documents_by_status"] == {"indexed": 1}
    assert [(e.model_id, e.file, e.index) for e in manifest.encoders] == [
        ("hash-256", DENSE_FILE, DenseIndexSpec("flat-ip"))
    ]
    assert manifest.languages == {"en": 1} and manifest.content_digest and manifest.format_version == 3
    stored = json.loads((folder / "manifest.json").read_text())
    assert stored["generation_id"] == report.generation_id
    assert stored["parameters"]["lexical"] == {"engine": "bm25-postings", "k1": 0.9, "b": 0.4}


def test_a_changed_file_fails_verification(indexer: Indexer) -> None:
    indexer.ingest(b"Some text to index.", "t.txt")
    folder = generations_root(indexer.data_dir) / indexer.build().generation_id
    data = bytearray((folder / DENSE_FILE).read_bytes())
    data[-1] ^= 0xFF
    (folder / DENSE_FILE).write_bytes(bytes(data))
    with pytest.raises(GenerationError, match="checksum"):
        verify_generation(folder)


def test_rebuild_embeds_only_new_passages_and_keeps_old_generations_up_to_the_limit(indexer: Indexer) -> None:
    first_id = indexer.ingest(b"First document about peer review.\n\nIt has two paragraphs.", "one.txt").document.id
    first = indexer.build()
    assert first.passages_embedded == first.vectors_embedded == first.passages > 0
    second = indexer.build()
    assert second.passages_embedded == 0 and second.documents_extracted == 0
    assert (second.outcome, second.generation_id) == (BUILD_UNCHANGED, first.generation_id)
    indexer.ingest(b"A second document on virtual labs.", "two.txt")
    third = indexer.build()
    assert third.documents_extracted == 1 and third.passages_embedded == 1 and third.outcome == BUILD_PUBLISHED
    full = indexer.build(full=True)  # everything extracted and embedded again: the same content
    assert full.passages_embedded == full.passages == third.passages
    assert (full.outcome, full.generation_id) == (BUILD_UNCHANGED, third.generation_id)
    root = generations_root(indexer.data_dir)
    assert list_generations(root) == [first.generation_id, third.generation_id]
    later = []
    for tag in ("a", "b"):  # a metadata edit is a change: published, nothing embedded
        indexer.catalog.update_metadata(first_id, DocumentMetadata(tags=(tag,)))
        later.append(indexer.build())
        assert later[-1].outcome == BUILD_PUBLISHED and later[-1].passages_embedded == 0
    assert published_generation_id(root) == later[-1].generation_id
    assert list_generations(root) == [third.generation_id, *(r.generation_id for r in later)]  # keep_generations 3
    assert read_manifest(root / later[-1].generation_id).passage_count == third.passages


def test_unfinished_build_folders_are_removed_by_the_next_build(indexer: Indexer) -> None:
    indexer.ingest(b"Some text.", "t.txt")
    root = generations_root(indexer.data_dir)
    (root / "g-crashed.building").mkdir(parents=True)
    (root / "g-crashed.building" / "dense.faiss").write_bytes(b"partial")
    indexer.build()
    assert not (root / "g-crashed.building").exists()


def test_a_second_build_at_the_same_time_is_told_one_is_running(indexer: Indexer) -> None:
    indexer.ingest(b"Some text.", "t.txt")
    entered, release = threading.Event(), threading.Event()
    original = indexer.extraction.run

    def slow_extract(*args: object) -> None:
        entered.set()
        release.wait(10)
        original(*args)  # type: ignore[arg-type]

    indexer.extraction.run = slow_extract  # type: ignore[method-assign]
    worker = threading.Thread(target=indexer.build)
    worker.start()
    assert entered.wait(10)
    with Indexer(indexer.settings, indexer.embedder) as other, pytest.raises(BuildAlreadyRunning):
        other.build()
    release.set()
    worker.join(10)
    assert published_generation_id(generations_root(indexer.data_dir)) is not None
