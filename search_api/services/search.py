"""Search and "more like this" for a viewer: the one way the API, the CLI and the pages ask the searcher.

Every search is restricted to what the viewer may see as the catalog says now (a deletion or a visibility change
counts at once, before the next build), on top of the filters asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from indexer.access import Viewer
from indexer.metadata import RESOURCE_TYPES, YEARS
from search_api.filters import SearchFilters
from search_api.searcher import SearchResult
from search_api.services.errors import InvalidInput
from search_api.services.generations import SearchService, ServedGeneration
from search_api.settings import ApiSettings

_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")
NO_FILTERS = SearchFilters()


@dataclass(frozen=True)
class SearchAnswer:
    """A page of hits and what produced it: the query as searched (None for more like this), the page, and the
    filters as applied (restricted to the viewer: a caller shows only near duplicates that pass them)."""

    query: str | None
    k: int
    offset: int
    result: SearchResult
    filters: SearchFilters


def check_query(settings: ApiSettings, query: str) -> str:
    """The query, trimmed; InvalidInput when it is empty or longer than `max_query_chars` (1000 by default)."""
    query = query.strip()
    if not query:
        raise InvalidInput("the query is empty", "invalid_query")
    if len(query) > settings.max_query_chars:
        raise InvalidInput(f"the query is longer than {settings.max_query_chars} characters", "invalid_query")
    return query


def check_page(settings: ApiSettings, k: int | None, offset: int) -> int:
    """The page size asked for (or the default), once k and offset are known to be in range."""
    k = settings.default_k if k is None else k
    if not 1 <= k <= settings.max_k:
        raise InvalidInput(f"k must be between 1 and {settings.max_k}", "invalid_k")
    if not 0 <= offset <= settings.max_offset:
        raise InvalidInput(f"offset must be between 0 and {settings.max_offset}", "invalid_offset")
    return k


def check_filters(filters: SearchFilters) -> SearchFilters:
    """The filters asked for, normalised (trimmed, lower-cased codes and tags, no repeats); InvalidInput
    (invalid_filter) for an unknown language code or resource type, or a year range out of order or bounds."""
    languages = tuple(dict.fromkeys(code.strip().lower() for code in filters.languages))
    for code in languages:
        if not _LANGUAGE_RE.match(code):
            raise InvalidInput(f"language {code!r} is not an ISO 639-1 code such as en or zh", "invalid_filter")
    unknown = sorted(set(filters.resource_types) - set(RESOURCE_TYPES))
    if unknown:
        message = f"resource_type {unknown[0]!r} is not one of {', '.join(RESOURCE_TYPES)}"
        raise InvalidInput(message, "invalid_filter")
    for year in (filters.year_from, filters.year_to):
        if year is not None and not YEARS[0] <= year <= YEARS[1]:
            raise InvalidInput(f"year {year} is outside {YEARS[0]}-{YEARS[1]}", "invalid_filter")
    if filters.year_from is not None and filters.year_to is not None and filters.year_from > filters.year_to:
        raise InvalidInput("year_from is after year_to", "invalid_filter")
    return replace(
        filters,
        members=tuple(m.strip() for m in filters.members if m.strip()),
        languages=languages,
        resource_types=tuple(filters.resource_types),
        tags=tuple(t.strip().lower() for t in filters.tags if t.strip()),
    )


def _for_viewer(
    service: SearchService, generation: ServedGeneration, viewer: Viewer, filters: SearchFilters
) -> SearchFilters:
    return filters.for_viewer(viewer, service.catalog.document_access(), generation.access_cache)


def search(
    service: SearchService,
    viewer: Viewer,
    query: str,
    *,
    k: int | None = None,
    offset: int = 0,
    per_document: bool = False,
    filters: SearchFilters = NO_FILTERS,
) -> SearchAnswer:
    """Ranked passages (or the best passage of each document) for a query, among what `viewer` may see.

    InvalidInput for a bad query, page or filter; NotReady before a generation is published."""
    query = check_query(service.settings, query)
    k = check_page(service.settings, k, offset)
    filters = check_filters(filters)
    generation = service.generation
    applied = _for_viewer(service, generation, viewer, filters)
    result = generation.searcher.search(query, k=k, offset=offset, per_document=per_document, filters=applied)
    service.record_search(result.seconds)
    return SearchAnswer(query, k, offset, result, applied)


def similar(
    service: SearchService,
    viewer: Viewer,
    passage_id: str,
    *,
    k: int | None = None,
    offset: int = 0,
    per_document: bool = False,
    filters: SearchFilters = NO_FILTERS,
) -> SearchAnswer:
    """More like this: passages similar to a passage, in any language, among what `viewer` may see; its own
    document and near duplicates left out. The same NotFound (UnknownPassageError) for an unknown passage and for
    one the viewer may not see, raised before any search runs: a hidden passage is revealed neither by its likes
    nor by the time the answer takes."""
    k = check_page(service.settings, k, offset)
    filters = check_filters(filters)
    generation = service.generation
    applied = _for_viewer(service, generation, viewer, filters)
    result = generation.searcher.similar(passage_id, k=k, offset=offset, per_document=per_document, filters=applied)
    return SearchAnswer(None, k, offset, result, applied)
