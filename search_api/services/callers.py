"""Who is asking: an API key checked against the catalog, or nobody (an anonymous reader)."""

from __future__ import annotations

from indexer.access import ANONYMOUS, Viewer
from indexer.catalog import Catalog, KeyHolder
from search_api.services.errors import Unauthorized


def authenticate(catalog: Catalog, token: str) -> KeyHolder:
    """The holder of a presented key; Unauthorized for a key that is malformed, unknown, revoked or belongs to a
    disabled member (a bad key is an error, never a silent fall back to anonymous)."""
    holder = catalog.authenticate(token)
    if holder is None:
        raise Unauthorized("the API key is invalid, revoked or belongs to a disabled member")
    return holder


def viewer_of(caller: KeyHolder | None) -> Viewer:
    """What a caller may read (None: an anonymous reader, who sees public documents)."""
    return ANONYMOUS if caller is None else caller.viewer
