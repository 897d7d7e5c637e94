"""GET and POST /search, and GET /passages/{passage_id}/similar ("more like this")."""

from __future__ import annotations

import re
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from indexer.metadata import RESOURCE_TYPES
from search_api.auth import OptionalCaller, viewer_of
from search_api.deps import ServiceDep, SettingsDep
from search_api.errors import ApiError
from search_api.filters import SearchFilters
from search_api.schemas import ErrorOut, FiltersIn, HitOut, SearchOut, SearchRequest, SimilarOut, TranslationOut
from search_api.searcher import Hit, UnknownPassageError, document_link
from search_api.settings import ApiSettings
from search_api.snippets import make_snippet, query_terms

router = APIRouter(tags=["search"])
_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")

_UNAUTHORIZED = {"model": ErrorOut, "description": "An API key was sent but is invalid, revoked or disabled."}
_ERRORS: dict[int | str, dict[str, object]] = {
    401: _UNAUTHORIZED,
    422: {"model": ErrorOut, "description": "Empty or over-long query, k or offset out of range, bad filter."},
    503: {"model": ErrorOut, "description": "No index generation published yet."},
}
_SIMILAR_ERRORS: dict[int | str, dict[str, object]] = {
    401: _UNAUTHORIZED,
    404: {"model": ErrorOut, "description": "No such passage in the generation being served."},
    422: {"model": ErrorOut, "description": "Malformed passage id, k or offset out of range, bad filter."},
    503: {"model": ErrorOut, "description": "No index generation published yet."},
}


def _validate(settings: ApiSettings, query: str, k: int | None, offset: int) -> tuple[str, int]:
    query = query.strip()
    if not query:
        raise ApiError(422, "invalid_query", "the query is empty")
    if len(query) > settings.max_query_chars:
        raise ApiError(422, "invalid_query", f"the query is longer than {settings.max_query_chars} characters")
    return query, _validate_page(settings, k, offset)


def _validate_page(settings: ApiSettings, k: int | None, offset: int) -> int:
    """The page size asked for (or the default), once k and offset are known to be in range."""
    k = settings.default_k if k is None else k
    if not 1 <= k <= settings.max_k:
        raise ApiError(422, "invalid_k", f"k must be between 1 and {settings.max_k}")
    if not 0 <= offset <= settings.max_offset:
        raise ApiError(422, "invalid_offset", f"offset must be between 0 and {settings.max_offset}")
    return k


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


def _hit_out(hit: Hit, query: str | None, query_language: str | None, filters: SearchFilters) -> HitOut:
    """A hit as the API shows it; without a query (more like this) its snippet marks nothing. Near duplicates
    the caller may not see are not named."""
    p = hit.passage
    terms = query_terms(query, {query_language, p.language}) if query else set()
    snippet = make_snippet(p.text, terms, p.language)
    return HitOut(
        rank=hit.rank,
        score=round(hit.score, 6),
        rerank_score=None if hit.rerank_score is None else round(hit.rerank_score, 6),
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
        near_duplicates=[d for d in p.near_duplicates if filters.visible(d)],
        also_in=[
            TranslationOut(document_id=d.id, language=d.language, title=d.title, link=document_link(d.id))
            for d in hit.also_in
        ],
    )


def _caller_filters(service: ServiceDep, caller: OptionalCaller, body: FiltersIn) -> SearchFilters:
    """The request's filters, restricted to what the caller may see as the catalog says now (deletions and
    visibility changes count before the next generation)."""
    return _filters(body).for_viewer(viewer_of(caller), service.catalog.document_access())


def run_search(service: ServiceDep, settings: ApiSettings, body: SearchRequest, caller: OptionalCaller) -> SearchOut:
    """Validate, search the generation in use, and shape the answer."""
    query, k = _validate(settings, body.query, body.k, body.offset)
    started = time.perf_counter()
    filters = _caller_filters(service, caller, body.filters)
    result = service.searcher.search(
        query, k=k, offset=body.offset, per_document=body.group == "document", filters=filters
    )
    service.record_search(result.seconds)
    return SearchOut(
        query=query,
        generation=result.generation_id,
        k=k,
        offset=body.offset,
        group=body.group,
        query_language=result.query_language,
        hits=[_hit_out(h, query, result.query_language, filters) for h in result.hits],
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def filters_query(
    member: Annotated[list[str] | None, Query(description="Member institution (repeatable).")] = None,
    language: Annotated[list[str] | None, Query(description="Document language, ISO 639-1 (repeatable).")] = None,
    resource_type: Annotated[list[str] | None, Query(description="Resource type (repeatable).")] = None,
    tag: Annotated[list[str] | None, Query(description="Tag (repeatable; any matches).")] = None,
    year_from: Annotated[int | None, Query(ge=1900, le=2100)] = None,
    year_to: Annotated[int | None, Query(ge=1900, le=2100)] = None,
) -> FiltersIn:
    """The filters of a GET request, from its (repeatable) query parameters."""
    return FiltersIn(
        member=member or [],
        language=language or [],
        resource_type=resource_type or [],
        tag=tag or [],
        year_from=year_from,
        year_to=year_to,
    )


FiltersQuery = Annotated[FiltersIn, Depends(filters_query)]
GroupQuery = Annotated[Literal["passage", "document"], Query(description="'document': best passage each.")]


@router.get("/search", response_model=SearchOut, responses=_ERRORS)
def search_get(
    service: ServiceDep,
    settings: SettingsDep,
    caller: OptionalCaller,
    q: Annotated[str, Query(description="Natural-language query, in any language.")],
    filters: FiltersQuery,
    k: Annotated[int | None, Query(description="Number of hits.")] = None,
    offset: Annotated[int, Query(description="Hits to skip.")] = 0,
    group: GroupQuery = "passage",
) -> SearchOut:
    """Ranked, cited passages for a query, optionally filtered."""
    body = SearchRequest.model_construct(query=q, k=k, offset=offset, group=group, filters=filters)
    return run_search(service, settings, body, caller)


@router.post("/search", response_model=SearchOut, responses=_ERRORS)
def search_post(service: ServiceDep, settings: SettingsDep, caller: OptionalCaller, body: SearchRequest) -> SearchOut:
    """Ranked, cited passages for a query given as JSON."""
    return run_search(service, settings, body, caller)


@router.get("/passages/{passage_id}/similar", response_model=SimilarOut, responses=_SIMILAR_ERRORS)
def similar_get(
    service: ServiceDep,
    settings: SettingsDep,
    caller: OptionalCaller,
    passage_id: Annotated[str, Path(pattern=r"^[0-9a-f]{24}$", description="A hit's `passage_id`.")],
    filters: FiltersQuery,
    k: Annotated[int | None, Query(description="Number of hits.")] = None,
    offset: Annotated[int, Query(description="Hits to skip.")] = 0,
    group: GroupQuery = "passage",
) -> SimilarOut:
    """More like this: passages (or documents) similar to a passage, in any language, with the search filters.

    The passage's own document and its near duplicates are left out.
    """
    k = _validate_page(settings, k, offset)
    started = time.perf_counter()
    search_filters = _caller_filters(service, caller, filters)
    try:
        result = service.searcher.similar(
            passage_id, k=k, offset=offset, per_document=group == "document", filters=search_filters
        )
    except UnknownPassageError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    assert result.source is not None
    if not search_filters.visible(result.source.document_id):  # a hidden passage is not revealed by its likes
        raise ApiError(404, "not_found", f"no passage {passage_id} in generation {result.generation_id}")
    return SimilarOut(
        passage_id=passage_id,
        document_id=result.source.document_id,
        language=result.query_language,
        generation=result.generation_id,
        k=k,
        offset=offset,
        group=group,
        hits=[_hit_out(h, None, None, search_filters) for h in result.hits],
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
