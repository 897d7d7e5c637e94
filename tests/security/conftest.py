"""The security tests' fixture: a served data directory with members (see `sites`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from indexer.catalog import Catalog
from indexer.embedding import HashEmbedder
from search_api.app import create_app
from search_api.settings import ApiSettings
from tests.security.sites import Site, SiteMaker, catalog_with_members, served_settings


@pytest.fixture
def site_of(settings: ApiSettings, embedder: HashEmbedder) -> Iterator[SiteMaker]:
    """Makes a Site whose catalog holds the given members (registered as the previous release allowed)."""
    clients: list[TestClient] = []

    def make(members: dict[str, str]) -> Site:
        config = served_settings(settings)
        catalog_with_members(config.data_dir / "catalog.sqlite3", members)
        catalog = Catalog(config.data_dir / "catalog.sqlite3")
        keys = {member_id: catalog.create_key(member_id)[1] for member_id in members}
        keys["admin"] = catalog.create_key(None, admin=True)[1]
        catalog.close()
        client = TestClient(create_app(config, embedder))
        client.__enter__()
        clients.append(client)
        return Site(client, config, embedder, keys)

    yield make
    for client in clients:
        client.__exit__(None, None, None)
