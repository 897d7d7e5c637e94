"""GET and POST /search."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from indexer.metadata import RESOURCE_TYPES
from search_api.deps import ServiceDep, SettingsDep
from search_api.errors import ApiError
from search_api.filters import SearchFilters
from search_api.schemas import ErrorOut, FiltersIn, HitOut, SearchOut, SearchRequest
from search_api.searcher import Hit
from search_api.settings import ApiSettings
from search_api.snippets import make_snippet, query_terms

router = APIRouter(tags=["search"])
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorOut, "description": "Empty or over-long query, k or offset out of range, bad filter."},
    503: {"model": ErrorOut, "description": "No index generation published yet."},
}


def _validate(settings: ApiSettings, query: str, k: int | None, offset: int) -> tuple[str, int]:
    query = query.strip()
    if not query:
        raise ApiError(422, "invalid_query", "the query is empty")
    if len(query) > settings.max_query_chars:
        raise ApiError(422, "invalid_query", f"the query is longer than {settings.max_query_chars} characters")
    k = settings.default_k if k is None else k
    if not 1 <= k <= settings.max_k:
        raise ApiError(422, "invalid_k", f"k must be between 1 and {settings.max_k}")
    if not 0 <= offset <= settings.max_offset:
        raise ApiError(422, "invalid_offset", f"offset must be between 0 and {settings.max_offset}")
    return query, k


def _filters(body: FiltersIn) -> SearchFilters:
    languages = tuple(dict.fromkeys(code.strip().lower() for code in body.language))
    for code in languages:
        if not _LANGUAGE_RE.match(code):
            raise ApiError(422, "invalid_filter", f"language {code!r} is not an ISO 639-1 code such as en or zh")
    unknown = sorted(set(body.resource_type) - set(RESOURCE_TYPES))
    if unknown:
        raise ApiError(422, "invalid_filter", f"resource_type {unknown[0]!r} is not one of {', '.join(RESOURCE_TYPES)}")
    if body.year_from is not None and body.year_to is not None and body.year_from > body.year_to:
        raise ApiError(422, "invalid_filter", "year_from is after year_to")
    return SearchFilters(
        members=tuple(m.strip() for m in body.member if m.strip()),
        languages=languages,
        resource_types=tuple(body.resource_type),
        tags=tuple(t.strip().lower() for t in body.tag if t.strip()),
        year_from=body.year_from,
        year_to=body.year_to,
    )


def _hit_out(hit: Hit, query: str, query_language: str | None) -> HitOut:
    p = hit.passage
    snippet = make_snippet(p.text, query_terms(query, {query_language, p.language}), p.language)
    return HitOut(
        rank=hit.rank,
        score=round(hit.score, 6),
        passage_id=p.passage_id,
        text=p.text,
        snippet=snippet.html,
        highlights=list(snippet.highlights),
        document_id=p.document_id,
        title=p.title,
        member=p.metadata.get("member"),
        language=p.language,
        document_language=p.document_language,
        resource_type=p.metadata.get("resource_type"),
        year=p.metadata.get("year"),
        tags=list(p.metadata.get("tags") or []),
        page=p.page,
        heading=list(p.heading),
        link=hit.link,
        more_passages=hit.more_passages,
        near_duplicates=list(p.near_duplicates),
    )


def run_search(service: ServiceDep, settings: ApiSettings, body: SearchRequest) -> SearchOut:
    """Validate, search the generation in use, and shape the answer."""
    query, k = _validate(settings, body.query, body.k, body.offset)
    started = time.perf_counter()
    filters = _filters(body.filters)
    result = service.searcher.search(
        query, k=k, offset=body.offset, per_document=body.group == "document", filters=filters
    )
    return SearchOut(
        query=query,
        generation=result.generation_id,
        k=k,
        offset=body.offset,
        group=body.group,
        query_language=result.query_language,
        hits=[_hit_out(h, query, result.query_language) for h in result.hits],
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )


@router.get("/search", response_model=SearchOut, responses=_ERRORS)
def search_get(
    service: ServiceDep,
    settings: SettingsDep,
    q: Annotated[str, Query(description="Natural-language query, in any language.")],
    k: Annotated[int | None, Query(description="Number of hits.")] = None,
    offset: Annotated[int, Query(description="Hits to skip.")] = 0,
    group: Annotated[Literal["passage", "document"], Query(description="'document': best passage each.")] = "passage",
    member: Annotated[list[str] | None, Query(description="Member institution (repeatable).")] = None,
    language: Annotated[list[str] | None, Query(description="Document language, ISO 639-1 (repeatable).")] = None,
    resource_type: Annotated[list[str] | None, Query(description="Resource type (repeatable).")] = None,
    tag: Annotated[list[str] | None, Query(description="Tag (repeatable; any matches).")] = None,
    year_from: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    year_to: Annotated[int | None, Query(ge=1900, le=2100)] = None,
) -> SearchOut:
    """Ranked, cited passages for a query, optionally filtered."""
    filters = FiltersIn(
        member=member or [],
        language=language or [],
        resource_type=resource_type or [],
        tag=tag or [],
        year_from=year_from,
        year_to=year_to,
    )
    body = SearchRequest.model_construct(query=q, k=k, offset=offset, group=group, filters=filters)
    return run_search(service, settings, body)


@router.post("/search", response_model=SearchOut, responses=_ERRORS)
def search_post(service: ServiceDep, settings: SettingsDep, body: SearchRequest) -> SearchOut:
    """Ranked, cited passages for a query given as JSON."""
    return run_search(service, settings, body)
