"""GET and POST /search, and GET /passages/{passage_id}/similar ("more like this")."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from search_api.auth import OptionalCaller, viewer_of
from search_api.deps import ServiceDep
from search_api.filters import SearchFilters
from search_api.schemas import ErrorOut, FiltersIn, HitOut, SearchOut, SearchRequest, SimilarOut, TranslationOut
from search_api.searcher import Hit, document_link
from search_api.services.search import search, similar
from search_api.snippets import make_snippet, query_terms

router = APIRouter(tags=["search"])

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


def _filters(body: FiltersIn) -> SearchFilters:
    """The filters as asked (the service checks and normalises them)."""
    return SearchFilters(
        members=tuple(body.member),
        languages=tuple(body.language),
        resource_types=tuple(body.resource_type),
        tags=tuple(body.tag),
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


def run_search(service: ServiceDep, body: SearchRequest, caller: OptionalCaller) -> SearchOut:
    """Search the generation in use as the caller, and shape the answer."""
    started = time.perf_counter()
    answer = search(
        service,
        viewer_of(caller),
        body.query,
        k=body.k,
        offset=body.offset,
        per_document=body.group == "document",
        filters=_filters(body.filters),
    )
    result = answer.result
    return SearchOut(
        query=answer.query or "",
        generation=result.generation_id,
        k=answer.k,
        offset=answer.offset,
        group=body.group,
        query_language=result.query_language,
        hits=[_hit_out(h, answer.query, result.query_language, answer.filters) for h in result.hits],
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
    caller: OptionalCaller,
    q: Annotated[str, Query(description="Natural-language query, in any language.")],
    filters: FiltersQuery,
    k: Annotated[int | None, Query(description="Number of hits.")] = None,
    offset: Annotated[int, Query(description="Hits to skip.")] = 0,
    group: GroupQuery = "passage",
) -> SearchOut:
    """Ranked, cited passages for a query, optionally filtered."""
    body = SearchRequest.model_construct(query=q, k=k, offset=offset, group=group, filters=filters)
    return run_search(service, body, caller)


@router.post("/search", response_model=SearchOut, responses=_ERRORS)
def search_post(service: ServiceDep, caller: OptionalCaller, body: SearchRequest) -> SearchOut:
    """Ranked, cited passages for a query given as JSON."""
    return run_search(service, body, caller)


@router.get("/passages/{passage_id}/similar", response_model=SimilarOut, responses=_SIMILAR_ERRORS)
def similar_get(
    service: ServiceDep,
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
    started = time.perf_counter()
    answer = similar(
        service,
        viewer_of(caller),
        passage_id,
        k=k,
        offset=offset,
        per_document=group == "document",
        filters=_filters(filters),
    )
    result = answer.result
    assert result.source is not None  # the service answers NotFound otherwise
    return SimilarOut(
        passage_id=passage_id,
        document_id=result.source.document_id,
        language=result.query_language,
        generation=result.generation_id,
        k=answer.k,
        offset=answer.offset,
        group=group,
        hits=[_hit_out(h, None, None, answer.filters) for h in result.hits],
        took_ms=round((time.perf_counter() - started) * 1000, 2),
    )
