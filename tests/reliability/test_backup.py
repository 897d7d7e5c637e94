"""Operations: backup and restore round trip, retention of old generations, the disk-space check before a build."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sqlite3
from collections import namedtuple
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.backup import BackupError, verify_backup
from indexer.catalog import Document
from indexer.diskspace import InsufficientSpaceError, required_build_bytes
from indexer.embedding import HashEmbedder
from indexer.generation import (
    directory_size,
    generations_root,
    list_generations,
    published_generation_id,
    published_history,
)
from indexer.generation_reader import open_published
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.cli import app
from search_api.searcher import Searcher
from search_api.settings import ApiSettings
from tests.helpers import make_pdf

runner = CliRunner()
QUERIES = ("calibrated peer review of design work", "download packages for low bandwidth", "tides and the moon")
DiskUsage = namedtuple("DiskUsage", "total used free")


def _cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "--model", "hash-256", *args])
    return result.exit_code, result.stdout, result.stderr


def _top_hits(data_dir: Path) -> list[list[tuple[str, str, float]]]:
    """(document, passage, score) of the top 3 hits of each query in the published generation."""
    reader = open_published(data_dir)
    assert reader is not None
    searcher = Searcher(reader, [HashEmbedder(256)])
    try:
        return [
            [(h.passage.document_id, h.passage.passage_id, round(h.score, 6)) for h in searcher.search(q, k=3).hits]
            for q in QUERIES
        ]
    finally:
        reader.close()


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A data directory with three documents ingested and one generation published, through the CLI."""
    docs, data = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    (docs / "peer.pdf").write_bytes(make_pdf(["Cohort and context.", "Calibrated peer review of design work."]))
    (docs / "offline.md").write_text("# Offline access\n\nDownload packages for low bandwidth regions.\n")
    (docs / "tides.txt").write_text("The moon pulls the oceans: tides rise twice a day.\n")
    assert _cli(data, "ingest", str(docs))[0] == 0
    assert _cli(data, "index", "build")[0] == 0
    return data


def test_backup_restore_and_rebuild_give_the_same_top_results(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _top_hits(built)
    code, out, err = _cli(built, "backup", str(tmp_path / "backup"), "--json")
    assert code == 0, err
    manifest = json.loads(out)
    assert (manifest["documents"], manifest["originals"], manifest["documents_by_status"]) == (3, 3, {"indexed": 3})
    assert manifest["original_bytes"] == sum(p.stat().st_size for p in (tmp_path / "docs").iterdir())
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["backup.json", "catalog.sqlite3", "originals"]

    restored = tmp_path / "restored data"  # a space: the hint must quote it
    code, out, err = _cli(restored, "restore", str(tmp_path / "backup"))
    assert code == 0, err
    hint = re.search(r"run `([^`]+)`", out)
    assert hint is not None, out
    assert hint[1] == f"moocsearch --data-dir {shlex.quote(str(restored.resolve()))} index build"
    assert not (restored / "generations").exists()
    # The hint is the command to run next, as printed (the model comes from the environment, as in production).
    monkeypatch.setenv("MOOCSEARCH_MODEL", "hash-256")
    program, *args = shlex.split(hint[1])
    assert program == "moocsearch" and runner.invoke(app, args).exit_code == 0

    assert _top_hits(restored) == before
    assert before[0][0][0] == next(d.id for d in _documents(restored) if d.filename == "peer.pdf")


def _documents(data_dir: Path) -> list[Document]:
    indexer = Indexer(ApiSettings(data_dir=data_dir, model="hash-256", multilingual_model=None))
    try:
        return indexer.catalog.list_documents()
    finally:
        indexer.close()


def test_restore_refuses_a_non_empty_data_directory(built: Path, tmp_path: Path) -> None:
    assert _cli(built, "backup", str(tmp_path / "backup"))[0] == 0
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep me")
    code, _, err = _cli(occupied, "restore", str(tmp_path / "backup"))
    assert code == 1 and "is not empty" in err
    assert [p.name for p in occupied.iterdir()] == ["notes.txt"]
    # Nor does a backup overwrite an earlier one.
    code, _, err = _cli(built, "backup", str(tmp_path / "backup"))
    assert code == 1 and "is not empty" in err


def test_a_damaged_backup_is_refused_before_anything_is_restored(built: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    assert _cli(built, "backup", str(backup))[0] == 0
    original = next(p for p in (backup / "originals").rglob("*") if p.is_file())
    original.write_bytes(original.read_bytes() + b"!")
    with pytest.raises(BackupError, match=f"original {original.name} is missing or damaged"):
        verify_backup(backup)
    code, _, err = _cli(tmp_path / "restored", "restore", str(backup))
    assert code == 1 and "damaged" in err
    assert not (tmp_path / "restored").exists()
    code, _, err = _cli(tmp_path / "restored", "restore", str(tmp_path / "docs"))
    assert code == 1 and "is not a backup" in err


def test_the_catalog_copy_is_a_consistent_sqlite_database(built: Path, tmp_path: Path) -> None:
    assert _cli(built, "backup", str(tmp_path / "backup"))[0] == 0
    copy = sqlite3.connect(tmp_path / "backup" / "catalog.sqlite3")
    source = sqlite3.connect(built / "catalog.sqlite3")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        query = "SELECT id, sha256, status, passage_count FROM documents ORDER BY id"
        assert copy.execute(query).fetchall() == source.execute(query).fetchall()
        count = "SELECT COUNT(*) FROM passages"
        assert copy.execute(count).fetchone() == source.execute(count).fetchone()
    finally:
        copy.close()
        source.close()


def test_retention_keeps_the_newest_published_generations_and_the_published_one(indexer: Indexer) -> None:
    indexer.settings = indexer.settings.model_copy(update={"keep_generations": 2})
    document = indexer.ingest(b"The moon pulls the oceans.", "tides.txt").document
    root = generations_root(indexer.data_dir)

    def build_a_change(tag: str) -> str | None:  # a build with no change publishes nothing
        indexer.catalog.update_metadata(document.id, DocumentMetadata(tags=(tag,)))
        return indexer.build().generation_id

    ids = [build_a_change(f"v{n}") for n in range(4)]
    assert list_generations(root) == ids[2:]
    # A rolled-back (older) generation is protected while published, and the newest ones stay.
    indexer.rollback(ids[2])
    fifth = build_a_change("v4")
    assert list_generations(root) == [ids[3], fifth]
    indexer.rollback(ids[3])
    sixth = build_a_change("v5")
    assert list_generations(root) == [fifth, sixth]


def test_a_build_is_refused_when_the_disk_cannot_hold_a_new_generation(
    indexer: Indexer, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer.ingest(b"The moon pulls the oceans.", "tides.txt")
    first = indexer.build().generation_id
    assert first is not None
    root = generations_root(indexer.data_dir)
    size = directory_size(root / first)
    settings = indexer.settings
    needed, current = required_build_bytes(indexer.data_dir, settings.build_space_growth, settings.build_min_free_mb)
    assert current == size and needed == int(size * 1.5) + (256 << 20)

    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(1 << 40, 0, needed - 1))
    with pytest.raises(InsufficientSpaceError, match=r"MiB free, \d+ MiB needed"):
        indexer.build()
    assert list_generations(root) == [first] and published_generation_id(root) == first

    code, _, err = _cli(indexer.data_dir, "index", "build")
    assert code == 5 and "not enough free disk space" in err

    monkeypatch.setattr(shutil, "disk_usage", lambda path: DiskUsage(1 << 40, 0, needed))
    indexer.ingest(b"Waves carry energy across the sea.", "waves.txt")  # a change, so the build publishes
    assert indexer.build().outcome == "published"


def test_a_data_directory_from_before_the_publish_history_keeps_its_generations(indexer: Indexer) -> None:
    document = indexer.ingest(b"The moon pulls the oceans.", "tides.txt").document
    root = generations_root(indexer.data_dir)

    def build_a_change(tag: str) -> str | None:  # a build with no change publishes nothing
        indexer.catalog.update_metadata(document.id, DocumentMetadata(tags=(tag,)))
        return indexer.build().generation_id

    older = [build_a_change(f"v{n}") for n in range(2)]
    (root / "PUBLISHED").unlink()  # as written by a version without the history file
    newest = build_a_change("v2")
    assert list_generations(root) == [*older, newest]
    assert published_history(root) == [*older, newest]
