"""A served data directory with members registered as the release before canonical names allowed, and their keys:
what the member-identity and result-takeover tests attack."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from indexer.catalog.database import MIGRATIONS, migrate, utc_now
from indexer.embedding import HashEmbedder
from indexer.pipeline import Indexer
from search_api.settings import ApiSettings

SiteMaker = Callable[[dict[str, str]], "Site"]


def served_settings(settings: ApiSettings) -> ApiSettings:
    changes = {"reload_interval_seconds": 0, "rate_limit_per_second": 0, "upload_min_free_mb": 0, "quality_gate": False}
    return settings.model_copy(update=changes)


def catalog_with_members(path: Path, members: dict[str, str]) -> None:
    """A catalog at schema version 1 holding `members` (id: name) as that release let them be registered: the
    release before names had canonical forms accepted every one of these pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, path, MIGRATIONS[:1])
    now = utc_now()
    for member_id, name in members.items():
        db.execute("INSERT INTO members (id, name, disabled, created_at, updated_at) VALUES (?, ?, 0, ?, ?)",
                   (member_id, name, now, now))  # fmt: skip
    db.close()


@dataclass
class Site:
    """A served data directory with member keys."""

    client: TestClient
    settings: ApiSettings
    embedder: HashEmbedder
    keys: dict[str, str]

    def auth(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}

    def upload(self, who: str, text: str, **fields: str) -> str:
        response = self.client.post(
            "/documents", files={"file": ("r.txt", text.encode(), "text/plain")}, data=fields, headers=self.auth(who)
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def build(self) -> None:
        indexer = Indexer(self.settings, self.embedder)
        try:
            indexer.build()
        finally:
            indexer.close()
        self.client.app.state.service.load_published()  # type: ignore[attr-defined]

    def listed(self, who: str | None) -> set[str]:
        response = self.client.get("/documents", params={"limit": 100}, headers=self.auth(who))
        assert response.status_code == 200, response.text
        return {d["id"] for d in response.json()["documents"]}

    def shown(self, who: str | None, ids: set[str]) -> set[str]:
        return {i for i in ids if self.client.get(f"/documents/{i}", headers=self.auth(who)).status_code == 200}

    def found(self, who: str | None, query: str) -> set[str]:
        return {h["document_id"] for h in self.hits(who, query)}

    def hits(self, who: str | None, query: str, **params: str) -> list[dict[str, object]]:
        response = self.client.get("/search", params={"q": query, "k": 50, **params}, headers=self.auth(who))
        assert response.status_code == 200, response.text
        return list(response.json()["hits"])
