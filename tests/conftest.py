"""Shared fixtures (isolated data directories, the deterministic fake embedder) and the markers set per folder.

Helpers (made documents, oracles, real servers) live in `tests.helpers`. Every test under `tests/e2e/` starts
real processes and is marked `e2e` here, so a new file there cannot forget it."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.embedding import HashEmbedder
from indexer.pipeline import Indexer
from search_api.settings import ApiSettings


@pytest.fixture(autouse=True)
def _fake_models_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast suite runs on the fake embedder alone: no multilingual encoder unless a test is slow."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("MOOCSEARCH_MULTILINGUAL_MODEL", "")


@pytest.fixture
def settings(tmp_path: Path) -> ApiSettings:
    """Settings for a fresh data directory, with the fake embedder."""
    return ApiSettings(data_dir=tmp_path / "data", model="hash-256", multilingual_model=None, passage_max_tokens=64)


@pytest.fixture
def embedder() -> HashEmbedder:
    """The deterministic hashed bag-of-words embedder."""
    return HashEmbedder(256)


@pytest.fixture
def indexer(settings: ApiSettings, embedder: HashEmbedder) -> Indexer:
    """An indexer on a fresh data directory."""
    idx = Indexer(settings, embedder)
    yield idx
    idx.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in tests/e2e/ as `e2e` (real processes, real HTTP)."""
    for item in items:
        if "e2e" in item.path.parent.parts[-1:]:
            item.add_marker(pytest.mark.e2e)
