"""Generations: list, rollback, hot reload in a running app, corrupt generations refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from indexer.embedding import HashEmbedder
from indexer.generation import DENSE_FILE, GenerationError, generations_root, published_generation_id
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.cli import app as cli
from search_api.settings import ApiSettings


def _wait_for(client: TestClient, generation: str, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if health["generation"] == generation:
            return health
        time.sleep(0.05)
    raise AssertionError(f"the service did not switch to {generation}")


def test_running_service_switches_to_new_and_rolled_back_generations(tmp_path: Path, embedder: HashEmbedder) -> None:
    settings = ApiSettings(data_dir=tmp_path / "data", model="hash-256", reload_interval_seconds=0.05)
    indexer = Indexer(settings, embedder)
    indexer.ingest(b"Rubrics for peer assessment in large courses.", "peer.txt")
    first = indexer.build().generation_id
    assert first is not None
    with TestClient(create_app(settings, embedder)) as client:
        assert client.get("/health").json()["generation"] == first
        indexer.ingest(b"Virtual laboratory simulations for chemistry.", "lab.txt")
        second = indexer.build().generation_id
        assert second is not None
        health = _wait_for(client, second)
        assert health["documents"] == 2
        hits = client.get("/search", params={"q": "virtual laboratory chemistry"}).json()
        assert hits["generation"] == second and hits["hits"][0]["text"].startswith("Virtual laboratory")
        indexer.rollback(first)
        _wait_for(client, first)
        hits = client.get("/search", params={"q": "virtual laboratory chemistry"}).json()
        assert hits["generation"] == first
        assert all("laboratory" not in h["text"] for h in hits["hits"])
    indexer.close()


def test_a_corrupt_new_generation_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path, embedder: HashEmbedder
) -> None:
    settings = ApiSettings(data_dir=tmp_path / "data", model="hash-256", reload_interval_seconds=0.05)
    indexer = Indexer(settings, embedder)
    indexer.ingest(b"Rubrics for peer assessment in large courses.", "peer.txt")
    first = indexer.build().generation_id
    indexer.ingest(b"Offline access to course videos.", "offline.txt")
    second = indexer.build().generation_id
    assert first is not None and second is not None
    indexer.rollback(first)
    dense = generations_root(settings.data_dir) / second / DENSE_FILE
    data = bytearray(dense.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    dense.write_bytes(bytes(data))
    with TestClient(create_app(settings, embedder)) as client:
        assert client.get("/health").json()["status"] == "ok"
        # Publish the corrupted generation behind the indexer's back: the service refuses it.
        (generations_root(settings.data_dir) / "CURRENT").write_text(second + "\n")
        deadline = time.monotonic() + 5
        while client.get("/health").json()["status"] != "degraded" and time.monotonic() < deadline:
            time.sleep(0.05)
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["generation"] == first
        assert "checksum" in health["problem"]
        assert client.get("/search", params={"q": "rubrics"}).json()["generation"] == first
    with pytest.raises(GenerationError, match="checksum"):
        indexer.rollback(second)
    indexer.close()


def test_cli_lists_generations_and_rolls_back(tmp_path: Path, embedder: HashEmbedder) -> None:
    settings = ApiSettings(data_dir=tmp_path / "data", model="hash-256")
    indexer = Indexer(settings, embedder)
    indexer.ingest(b"First text.", "a.txt")
    first = indexer.build().generation_id
    indexer.ingest(b"Second text.", "b.txt")
    second = indexer.build().generation_id
    indexer.close()
    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir), "--model", "hash-256", "index"]
    listed = json.loads(runner.invoke(cli, [*base, "list", "--json"]).stdout)
    assert [(g["generation"], g["published"], g["documents"]) for g in listed] == [(second, True, 2), (first, False, 1)]
    result = runner.invoke(cli, [*base, "rollback", str(first)])
    assert result.exit_code == 0 and first in result.stdout
    assert published_generation_id(generations_root(settings.data_dir)) == first
    result = runner.invoke(cli, [*base, "rollback", "g-nope"])
    assert result.exit_code == 1 and "no generation" in result.stderr
    result = runner.invoke(cli, [*base, "rollback", "../../etc"])
    assert result.exit_code == 1
