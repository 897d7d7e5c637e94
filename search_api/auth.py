"""Who is calling: API keys from `Authorization: Bearer <key>` or `X-API-Key`, checked against the catalog.

Three dependencies for routes: `optional_caller` (anonymous allowed; a key that is presented must be valid),
`require_member` (any valid key: 401 otherwise) and `require_admin` (401 without a valid key, 403 for a member
key). Keys are never logged or echoed; only their non-secret prefix identifies them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from indexer.catalog import KeyHolder
from search_api.deps import ServiceDep
from search_api.services.callers import authenticate, viewer_of
from search_api.services.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer msk_...`.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, as an alternative header.")
__all__ = ["AdminCaller", "MemberCaller", "OptionalCaller", "presented_key", "viewer_of"]


def presented_key(request: Request) -> str | None:
    """The key a request carries (Bearer first, then X-API-Key), or None."""
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


def optional_caller(
    request: Request,
    service: ServiceDep,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _api_key: Annotated[str | None, Depends(_header)],
) -> KeyHolder | None:
    """The key holder, or None for an anonymous request; 401 for a key that is malformed, unknown, revoked or
    belongs to a disabled member (a bad key is an error, not a silent fall back to anonymous)."""
    token = presented_key(request)
    if token is None:
        return None
    holder = authenticate(service.catalog, token)
    request.state.api_key_prefix = holder.prefix  # for logs and rate limits: the id, never the secret
    return holder


def require_member(caller: Annotated[KeyHolder | None, Depends(optional_caller)]) -> KeyHolder:
    """A valid key (a member's or an admin's); 401 without one."""
    if caller is None:
        raise Unauthorized("this route needs an API key: send `Authorization: Bearer <key>`")
    return caller


def require_admin(caller: Annotated[KeyHolder, Depends(require_member)]) -> KeyHolder:
    """An admin key; 401 without a valid key, 403 for a member's key."""
    if not caller.admin:
        raise Forbidden("this route needs an admin key")
    return caller


OptionalCaller = Annotated[KeyHolder | None, Depends(optional_caller)]
MemberCaller = Annotated[KeyHolder, Depends(require_member)]
AdminCaller = Annotated[KeyHolder, Depends(require_admin)]
