"""The generation format as a typed contract: manifest round trip, format 1 folders, publish only on change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.catalog import BUILD_PUBLISHED, BUILD_UNCHANGED
from indexer.embedding import HashEmbedder
from indexer.generation import (
    DENSE_FILE,
    FORMAT_VERSION,
    BuildParameters,
    DenseIndexSpec,
    DenseParameters,
    EncoderEntry,
    GenerationError,
    LexicalParameters,
    Manifest,
    generations_root,
    list_generations,
    publish_generation,
    published_generation_id,
    published_history,
    read_manifest,
)
from indexer.generation_reader import GenerationReader, open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.cli.build import print_build_report
from search_api.settings import ApiSettings

# Written by the code of format 1 (before the typed contract): two documents, a primary and a language-bound
# encoder; see test_a_format_1_generation_still_opens for what it holds.
FORMAT_1 = Path(__file__).parents[1] / "fixtures" / "generation-v1"


def test_a_manifest_survives_its_json_form() -> None:
    ivf = DenseIndexSpec("ivf-sq8", nlist=40, nprobe=8, recall_at_10=0.97, recall_queries=100, build_seconds=1.5)
    manifest = Manifest(
        generation_id="g1",
        created_at="2026-01-01T00:00:00+00:00",
        passage_count=3,
        document_count=1,
        encoders=(
            EncoderEntry("m", "1.0", 8, DENSE_FILE, None, ivf),
            EncoderEntry("e5", "2", 4, "dense-1.faiss", ("en", "fr"), DenseIndexSpec("flat-ip", rejected=ivf)),
        ),
        parameters=BuildParameters(64, "m:64:v1", LexicalParameters("bm25s", 0.9, 0.4), DenseParameters(10, 0.9)),
        languages={"en": 2, "und": 1},
        content_digest="abc",
        catalog_state={"documents_by_status": {"indexed": 1}, "last_change": None},
        files={"dense.faiss": "00"},
    )
    stored = json.loads(json.dumps(manifest.to_dict()))
    assert Manifest.from_dict(stored) == manifest
    assert (stored["model_id"], stored["dimension"], stored["index_type"]) == ("m", 8, "ivf-sq8")
    assert stored["encoders"][0]["index"]["recall_at_10"] == 0.97 and "nlist" not in stored["encoders"][1]["index"]
    with pytest.raises(GenerationError, match="unsupported generation format 99"):
        Manifest.from_dict({**stored, "format_version": 99})
    del stored["encoders"]
    with pytest.raises(GenerationError, match="malformed manifest"):
        Manifest.from_dict(stored)


def test_a_format_1_generation_still_opens() -> None:
    reader = GenerationReader(FORMAT_1)
    try:
        manifest = reader.manifest
        assert manifest.format_version == 1 < FORMAT_VERSION and manifest.content_digest is None
        assert [(e.model_id, e.dimension, e.file, e.languages, e.index) for e in manifest.encoders] == [
            ("hash-64", 64, "dense.faiss", None, DenseIndexSpec("flat-ip")),
            ("hash-32-en-fr", 32, "dense-1.faiss", ("en", "fr"), DenseIndexSpec("flat-ip")),
        ]
        assert manifest.languages == {"en": 1, "fr": 1}
        assert manifest.parameters == BuildParameters(
            64, "hash-64:64:v1", LexicalParameters("bm25s", 0.9, 0.4), DenseParameters(200000, 0.95)
        )
        assert [(d.model_id, d.languages) for d in reader.dense] == [
            ("hash-64", None),
            ("hash-32-en-fr", frozenset({"en", "fr"})),
        ]
        peer, labs = (reader.passages([0, 1])[row] for row in (0, 1))
        assert peer.text.startswith("Peer review in large courses.") and peer.title == "Peer review"
        assert peer.metadata["member"] == "University of Toronto" and peer.metadata["tags"] == ["assessment"]
        assert (labs.language, labs.filename, labs.heading, labs.near_duplicates) == ("fr", "labs.txt", (), ())
        assert [(d.member, d.visibility, d.tags, d.year) for d in reader.documents] == [
            ("University of Toronto", "member", ("assessment",), 2021),
            (None, "public", (), None),
        ]
        assert list(reader.row_language) == ["en", "fr"]
    finally:
        reader.close()


def test_a_format_1_generation_s_bm25s_index_is_still_searched() -> None:
    """Formats 1-2 hold bm25s's precomputed scores (format 3: postings); they are served until the next build."""
    reader = GenerationReader(FORMAT_1)
    try:
        assert reader.lexical.precomputed
        scores, rows = reader.lexical.search("peer review in large courses", "en", 10)
        assert rows.tolist() == [0] and scores[0] > 0
        assert reader.lexical.search("peer review", "en", 10, visible=np.array([False, True]))[1].tolist() == []
    finally:
        reader.close()


def test_a_build_over_a_published_format_1_generation_publishes_a_new_one_once(settings: ApiSettings) -> None:
    """A format 1 generation has no content digest: the first build after an upgrade publishes, the next does not."""
    root = generations_root(settings.data_dir)
    old = read_manifest(FORMAT_1).generation_id
    shutil.copytree(FORMAT_1, root / old)
    publish_generation(root, old)
    with Indexer(settings, HashEmbedder(256)) as indexer:
        indexer.ingest(b"Peer review in large courses.", "peer.txt")
        first = indexer.build()
        assert first.outcome == BUILD_PUBLISHED and first.generation_id != old
        assert indexer.build().outcome == BUILD_UNCHANGED
    assert list_generations(root) == [old, first.generation_id]


def test_quiet_builds_publish_nothing_and_the_rollback_target_survives(settings: ApiSettings) -> None:
    config = settings.model_copy(update={"keep_generations": 2})
    with Indexer(config, HashEmbedder(256)) as indexer:
        indexer.ingest(b"Rubrics make peer grading fair.", "rubrics.txt")
        older = indexer.build()
        indexer.ingest(b"Offline video packages for low bandwidth.", "offline.txt")
        newer = indexer.build()
        quiet = [indexer.build(trigger="schedule") for _ in range(4)]
        assert [(r.outcome, r.generation_id) for r in quiet] == [(BUILD_UNCHANGED, newer.generation_id)] * 4
        root = generations_root(settings.data_dir)
        assert list_generations(root) == [older.generation_id, newer.generation_id]
        assert published_history(root) == [older.generation_id, newer.generation_id]
        assert indexer.rollback(older.generation_id or "").generation_id == older.generation_id
        assert published_generation_id(root) == older.generation_id


def test_any_change_searchers_would_see_is_published(settings: ApiSettings) -> None:
    """Visibility (not in the embedded text) and the index parameters count as content; a damaged published
    generation is replaced even when the catalog did not change."""
    with Indexer(settings, HashEmbedder(256)) as indexer:
        document = indexer.ingest(b"Labs run in the browser.", "labs.txt").document
        first = indexer.build()
        indexer.catalog.update_metadata(document.id, DocumentMetadata(visibility="alliance"))
        hidden = indexer.build()
        assert hidden.outcome == BUILD_PUBLISHED and hidden.documents_changed == 1
        indexer.settings = indexer.settings.model_copy(update={"ann_threshold": 100_000})
        assert indexer.build().outcome == BUILD_PUBLISHED
        root = generations_root(settings.data_dir)
        published = root / (published_generation_id(root) or "")
        (published / DENSE_FILE).write_bytes(b"damaged")
        repaired = indexer.build()
        assert repaired.outcome == BUILD_PUBLISHED and first.generation_id not in list_generations(root)
        reader = open_published(settings.data_dir)
        assert reader is not None and reader.documents[0].visibility == "alliance"
        reader.close()


def test_the_report_counts_passages_and_vectors_embedded_apart(
    settings: ApiSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    """With two encoders a new passage costs two vectors: the report says both, and the CLI line too."""
    second_encoder = HashEmbedder(128, languages=frozenset({"en"}))
    with Indexer(settings, HashEmbedder(256), [second_encoder]) as indexer:
        indexer.ingest(b"Peer review.\n\nRubrics.\n\n" + b"Grading at scale. " * 40, "peer.txt")
        first = indexer.build()
        assert first.passages > 1
        assert first.passages_embedded == first.passages and first.vectors_embedded == 2 * first.passages
        indexer.ingest(b"Virtual labs.", "labs.txt")
        second = indexer.build()
        assert (second.passages_embedded, second.vectors_embedded) == (1, 2)
    print_build_report(second)
    assert "1 embedded now, 2 vectors" in capsys.readouterr().out
