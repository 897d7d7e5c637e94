"""Build records in the catalog: counts against a known corpus, outcomes, refusals, interruptions, `index builds`."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.catalog import (
    BUILD_ALREADY_RUNNING,
    BUILD_FAILED,
    BUILD_INTERRUPTED,
    BUILD_PUBLISHED,
    BUILD_UNCHANGED,
    Catalog,
)
from indexer.faults import ENOSPC_AT
from indexer.generation import generations_root, published_generation_id
from indexer.metadata import DocumentMetadata
from indexer.pipeline import BuildAlreadyRunning, Indexer, build_lock_holder
from search_api.cli import app

DOCS = {
    "rubrics.txt": b"Calibrated peer review with rubrics lets thousands of learners grade design work fairly.",
    "offline.txt": b"Offline packages carry lecture videos to regions where bandwidth is scarce and costly.",
    "forums.txt": b"Teaching assistants moderate discussion forums and answer recurring questions weekly.",
}
LATE = b"Flipped classrooms ask students to watch short videos before the live problem-solving session."


@contextmanager
def lock_held_by_another_build(data_dir: Path, pid: int = 4242) -> Iterator[None]:
    """Hold the build lock the way a running `moocsearch index build` does (flock + its pid in the file)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "build.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.truncate(0)
        handle.write(str(pid))
        handle.flush()
        yield


def test_records_count_added_changed_deleted_failed_and_embedded_for_a_known_corpus(indexer: Indexer) -> None:
    ids = {name: indexer.ingest(data, name).document.id for name, data in DOCS.items()}
    indexer.ingest(bytes(range(256)) * 4, "mystery.bin")  # unsupported type: fails
    first = indexer.build(trigger="cli")
    passages = sum(len(indexer.catalog.passages_of(i)) for i in ids.values())
    record = indexer.catalog.get_build(first.build_id or 0)
    assert record is not None and record.outcome == BUILD_PUBLISHED and record.trigger == "cli"
    assert record.pid == os.getpid() and record.finished_at is not None and record.message is None
    assert record.generation_id == published_generation_id(generations_root(indexer.data_dir)) == first.generation_id
    counts = record.to_dict()
    assert (counts["documents_added"], counts["documents_changed"], counts["documents_deleted"]) == (3, 0, 0)
    assert counts["documents_failed"] == 1 and counts["failures"][0]["reason"] == "unsupported_type"
    assert counts["passages"] == counts["passages_embedded"] == passages  # empty cache: everything embedded
    assert {"extract", "embed", "write", "publish", "total"} <= counts["seconds"].keys()

    indexer.catalog.update_metadata(ids["rubrics.txt"], DocumentMetadata(tags=("assessment",)))
    indexer.catalog.delete_document(ids["forums.txt"])
    late = indexer.ingest(LATE, "flipped.txt").document.id
    second = indexer.build(trigger="schedule")
    counts = indexer.catalog.get_build(second.build_id or 0).to_dict()  # type: ignore[union-attr]
    assert (counts["documents_added"], counts["documents_changed"], counts["documents_deleted"]) == (1, 1, 1)
    assert counts["documents_failed"] == 0 and counts["trigger"] == "schedule"
    # A tag is not part of the embedded text: only the new document's passages are embedded.
    assert counts["passages_embedded"] == len(indexer.catalog.passages_of(late))
    assert [r.id for r in indexer.catalog.list_builds()] == [second.build_id, first.build_id]


def test_a_build_refused_by_the_lock_is_recorded_as_already_running(indexer: Indexer) -> None:
    indexer.ingest(DOCS["rubrics.txt"], "rubrics.txt")
    with lock_held_by_another_build(indexer.data_dir, pid=4242):
        assert build_lock_holder(indexer.data_dir) == 4242
        with pytest.raises(BuildAlreadyRunning, match="already running"):
            indexer.build(trigger="soon")
    assert build_lock_holder(indexer.data_dir) is None
    [record] = indexer.catalog.list_builds()
    assert (record.trigger, record.outcome) == ("soon", BUILD_ALREADY_RUNNING)
    assert "already running" in (record.message or "") and record.generation_id is None
    assert published_generation_id(generations_root(indexer.data_dir)) is None


def test_a_failed_build_is_recorded_with_its_message_and_stage_times(
    indexer: Indexer, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer.ingest(DOCS["offline.txt"], "offline.txt")
    monkeypatch.setenv(ENOSPC_AT, "write")
    with pytest.raises(OSError, match="No space left"):
        indexer.build()
    [record] = indexer.catalog.list_builds()
    assert record.outcome == BUILD_FAILED and "No space left" in (record.message or "")
    assert record.generation_id is None and "embed" in record.report["seconds"]


def test_the_next_build_marks_a_record_left_running_by_a_dead_process_interrupted(indexer: Indexer) -> None:
    dead = indexer.catalog.start_build("admin", pid=999_999)  # a build killed with -9 never finishes its record
    indexer.ingest(DOCS["forums.txt"], "forums.txt")
    report = indexer.build()
    assert indexer.catalog.get_build(dead).outcome == BUILD_INTERRUPTED  # type: ignore[union-attr]
    assert indexer.catalog.get_build(report.build_id or 0).outcome == BUILD_PUBLISHED  # type: ignore[union-attr]


def test_a_catalog_made_before_build_records_gains_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE builds (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT, "
        "outcome TEXT NOT NULL, generation_id TEXT, report TEXT)"
    )
    db.execute(
        "INSERT INTO builds (started_at, finished_at, outcome, generation_id, report) VALUES (?, ?, ?, ?, ?)",
        ("2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", "published", "g1", '{"passages": 7}'),
    )
    db.commit()
    db.close()
    catalog = Catalog(path)
    [record] = catalog.list_builds()
    catalog.close()
    assert (record.trigger, record.outcome, record.generation_id, record.pid) == ("cli", "published", "g1", None)
    assert record.to_dict()["passages"] == 7 and record.to_dict()["documents_added"] == 0


def test_a_record_rejects_an_unknown_trigger(indexer: Indexer) -> None:
    with pytest.raises(ValueError, match="unknown build trigger"):
        indexer.catalog.start_build("cronjob")


def _cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "--model", "hash-256", *args])
    return result.exit_code, result.stdout, result.stderr


def test_index_builds_lists_records_newest_first_as_a_table_and_as_json(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, data in DOCS.items():
        (docs / name).write_bytes(data)
    assert _cli(data_dir, "ingest", str(docs))[0] == 0
    code, out, _ = _cli(data_dir, "index", "build")
    assert code == 0 and "3 documents added, 0 changed, 0 deleted" in out
    code, out, _ = _cli(data_dir, "index", "build", "--trigger", "schedule")
    assert code == 0 and "nothing changed" in out and "0 embedded now" in out
    with lock_held_by_another_build(data_dir):
        code, _, err = _cli(data_dir, "index", "build")
        assert code == 3 and "already running" in err

    code, out, _ = _cli(data_dir, "index", "builds", "--json")
    assert code == 0
    records = json.loads(out)
    assert [(r["id"], r["trigger"], r["outcome"]) for r in records] == [
        (3, "cli", BUILD_ALREADY_RUNNING),
        (2, "schedule", BUILD_UNCHANGED),
        (1, "cli", BUILD_PUBLISHED),
    ]
    assert records[1]["generation_id"] == records[2]["generation_id"]  # the published one, still serving
    assert records[2]["documents_added"] == 3 and records[1]["documents_added"] == 0
    assert records[1]["passages_embedded"] == 0  # the second build found every vector in the cache

    code, out, _ = _cli(data_dir, "index", "builds", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["id", "started", "(UTC)", "trigger"]
    assert lines[1].split()[0] == "3" and "already_running" in lines[1] and "already running" in lines[2]
    assert lines[3].split()[0] == "2" and records[1]["generation_id"] in lines[3]
    assert len(lines) == 4


def test_index_build_refuses_an_unknown_trigger_and_builds_lists_nothing_yet(tmp_path: Path) -> None:
    code, _, err = _cli(tmp_path / "data", "index", "build", "--trigger", "cronjob")
    assert code == 2 and "--trigger" in err
    code, out, _ = _cli(tmp_path / "data", "index", "builds")
    assert code == 0 and "no builds yet" in out


def test_a_build_with_no_change_publishes_nothing_and_counts_as_a_success(indexer: Indexer) -> None:
    indexer.ingest(DOCS["rubrics.txt"], "rubrics.txt")
    first = indexer.build()
    failed = indexer.catalog.start_build("schedule")
    indexer.catalog.finish_build(failed, BUILD_FAILED, None, {}, "disk full")
    assert indexer.catalog.failed_builds_in_a_row() == 1
    quiet = indexer.build(trigger="schedule")
    record = indexer.catalog.get_build(quiet.build_id or 0)
    assert record is not None and record.outcome == BUILD_UNCHANGED == quiet.outcome
    assert record.generation_id == quiet.generation_id == first.generation_id
    assert record.to_dict()["passages_embedded"] == 0
    # The scheduler's back-off counts failures back to the last success: an unchanged build is one.
    assert indexer.catalog.failed_builds_in_a_row() == 0
