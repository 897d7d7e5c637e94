"""Crash safety of a build: `kill -9` at each stage, and a full disk, never cost the published generation.

The build runs as a real `moocsearch index build` process; the fault-injection hook of `indexer.faults`
(`MOOCSEARCH_TEST_PAUSE_AT`) makes it stop at the stage under test, where the test kills it with SIGKILL.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.embedding import HashEmbedder
from indexer.faults import ENOSPC_AT, PAUSE_AT, PAUSE_MARKER
from indexer.generation import generations_root, list_generations, published_generation_id, published_history
from indexer.generation_reader import GenerationReader
from indexer.pipeline import BuildReport, Indexer
from search_api.cli import app
from search_api.searcher import Searcher
from search_api.settings import ApiSettings

FIRST = {
    "tides.md": "# Tides\n\nThe moon pulls the oceans and makes the tides rise twice a day.\n",
    "volcano.md": "# Volcanoes\n\nMagma rises through the crust and erupts as lava.\n",
}
TOPICS = ("glaciers", "deserts")


def _long_document(topic: str) -> str:
    """Ten paragraphs about `topic`, each its own passage at 64 tokens, each with words of its own."""
    paragraphs = [f"Section {i} on {topic}: " + " ".join(f"{topic}{i}word{j}" for j in range(40)) for i in range(10)]
    return f"# {topic.title()}\n\n" + "\n\n".join(paragraphs) + "\n"


def _settings(data_dir: Path) -> ApiSettings:
    return ApiSettings(
        data_dir=data_dir, model="hash-256", multilingual_model=None, passage_max_tokens=64, embed_commit_passages=4
    )


def _build(data_dir: Path) -> BuildReport:
    indexer = Indexer(_settings(data_dir), HashEmbedder(256), [])
    try:
        return indexer.build()
    finally:
        indexer.close()


def _cached_vectors(data_dir: Path) -> int:
    db = sqlite3.connect(data_dir / "cache" / "embeddings.sqlite3")
    try:
        return int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
    finally:
        db.close()


def _top_file(data_dir: Path, generation_id: str, query: str) -> str:
    """The file of the top hit for `query` in a generation, opened (and so verified) like the service does."""
    reader = GenerationReader(generations_root(data_dir) / generation_id)
    try:
        return Searcher(reader, [HashEmbedder(256)]).search(query, k=1).hits[0].passage.filename
    finally:
        reader.close()


def _leftovers(data_dir: Path) -> list[str]:
    """Anything in the generations folder that is neither a published generation nor a pointer file."""
    root = generations_root(data_dir)
    published = set(published_history(root) or [])
    return sorted(p.name for p in root.iterdir() if p.name not in ("CURRENT", "PUBLISHED") and p.name not in published)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory with one published generation and two more documents waiting."""
    data = tmp_path / "data"
    indexer = Indexer(_settings(data), HashEmbedder(256), [])
    for name, text in FIRST.items():
        indexer.ingest(text.encode(), name)
    indexer.build()
    for topic in TOPICS:
        indexer.ingest(_long_document(topic).encode(), f"{topic}.md")
    indexer.close()
    return data


def _kill_build_at(data_dir: Path, stage: str, tmp_path: Path) -> None:
    """Start `moocsearch index build`, wait until it pauses at `stage`, then SIGKILL it."""
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "MOOCSEARCH_DATA_DIR": str(data_dir),
        "MOOCSEARCH_MODEL": "hash-256",
        "MOOCSEARCH_MULTILINGUAL_MODEL": "",
        "MOOCSEARCH_PASSAGE_MAX_TOKENS": "64",
        "MOOCSEARCH_EMBED_COMMIT_PASSAGES": "4",
        PAUSE_AT: stage,
        PAUSE_MARKER: str(marker),
    }
    executable = Path(sys.executable).with_name("moocsearch")
    log = tmp_path / "build.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(executable), "index", "build", "--json"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 180
    while not marker.exists():
        if process.poll() is not None:
            raise AssertionError(f"the build exited ({process.returncode}) before {stage}: {log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the build never reached {stage}: {log.read_text()}")
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL


@pytest.mark.e2e
@pytest.mark.parametrize("stage", ["extract", "embed", "write", "publish", "published"])
def test_kill_9_at_each_stage_keeps_serving_and_the_next_build_cleans_up_and_resumes(
    data_dir: Path, tmp_path: Path, stage: str
) -> None:
    root = generations_root(data_dir)
    first = published_generation_id(root)
    assert first is not None
    cached_before = _cached_vectors(data_dir)

    _kill_build_at(data_dir, stage, tmp_path)

    published = published_generation_id(root)
    cached_at_kill = _cached_vectors(data_dir)
    if stage == "published":
        assert published != first and _top_file(data_dir, published, "glaciers3word7") == "glaciers.md"
    else:
        assert published == first
    # Whatever is published opens, verifies and answers; the old generation is still there.
    assert _top_file(data_dir, first, "moon oceans tides") == "tides.md"
    if stage == "write":
        assert any(p.name.endswith(".building") for p in root.iterdir())  # killed half-way through writing
    if stage == "publish":
        assert len(list_generations(root)) == 2  # complete, but never published
    if stage == "embed":
        assert cached_before + 4 <= cached_at_kill < cached_before + 20  # some batches committed, not all

    report = _build(data_dir)

    # Killed after its pointer switch, the build had published this content: the next one finds nothing changed.
    assert report.outcome == ("unchanged" if stage == "published" else "published")
    assert published_generation_id(root) == report.generation_id
    assert _leftovers(data_dir) == []
    assert _top_file(data_dir, report.generation_id, "deserts4word11") == "deserts.md"
    cached_after = _cached_vectors(data_dir)
    from_zero = cached_after - cached_before  # the new documents' passages
    assert from_zero == 20
    # The next build embeds exactly what the killed one had not committed to the cache.
    assert report.vectors_embedded == cached_after - cached_at_kill
    if stage == "embed":
        assert report.passages_embedded == report.vectors_embedded < from_zero
    if stage in ("write", "publish", "published"):
        assert report.passages_embedded == report.vectors_embedded == 0


def test_disk_full_during_the_index_write_keeps_the_old_generation_and_cleans_up(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = generations_root(data_dir)
    first = published_generation_id(root)
    monkeypatch.setenv(ENOSPC_AT, "write")
    indexer = Indexer(_settings(data_dir), HashEmbedder(256), [])
    with pytest.raises(OSError) as failure:
        indexer.build()
    indexer.close()
    assert failure.value.errno == errno.ENOSPC
    assert published_generation_id(root) == first
    assert sorted(p.name for p in root.iterdir()) == sorted(["CURRENT", "PUBLISHED", first])
    assert _top_file(data_dir, first, "lava magma crust") == "volcano.md"
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    outcome, message = db.execute("SELECT outcome, message FROM builds ORDER BY id DESC LIMIT 1").fetchone()
    db.close()
    assert outcome == "failed" and "No space left on device" in message

    # The CLI says so clearly, with the exit code for a full disk.
    result = CliRunner().invoke(
        app, ["--data-dir", str(data_dir), "--model", "hash-256", "index", "build"], env={ENOSPC_AT: "write"}
    )
    assert result.exit_code == 5
    assert "the disk filled up during the build" in result.stderr and "keeps serving" in result.stderr
    assert published_generation_id(root) == first

    monkeypatch.delenv(ENOSPC_AT)
    report = _build(data_dir)
    assert report.outcome == "published" and _leftovers(data_dir) == []
