"""What /health and /ready tell a caller: the served generation's counts as that caller may see them, and why
the service is degraded without the server's file paths.

A generation holds every document of the catalog, member-only ones included: its manifest counts would tell an
anonymous caller how many hidden documents exist (and, between two generations, that one was added). Each caller
gets the counts of the documents it may see now (the search filters' rule); an admin gets the manifest's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from indexer.access import Viewer
from search_api.filters import SearchFilters
from search_api.services.generations import SearchService

# An absolute path: a slash that does not continue a word, a model id or a relative path (`org/model`, `a/b`),
# up to the next blank or quote. Refusal messages carry them (an OSError's file name); callers need the name only.
_ABSOLUTE_PATH = re.compile(r"(?<![\w./~-])/[^\s'\"]*")


@dataclass(frozen=True)
class ServedCounts:
    """Documents and passages of the served generation that one caller may see."""

    documents: int
    passages: int


def served_counts(service: SearchService, viewer: Viewer) -> ServedCounts | None:
    """The served generation's documents and passages visible to `viewer` (live in the catalog and allowed to
    it); None before a generation is served. An admin sees every document the catalog has not deleted."""
    generation = service.current
    if generation is None:
        return None
    reader = generation.searcher.reader
    filters = SearchFilters().for_viewer(viewer, service.catalog.document_access(), generation.access_cache)
    mask = filters.document_mask(reader.documents)
    if mask is None:
        return ServedCounts(len(reader.documents), reader.manifest.passage_count)
    passages = int(mask[reader.row_document].sum()) if len(reader.documents) else 0
    return ServedCounts(int(mask.sum()), passages)


def public_problem(problem: str | None) -> str | None:
    """`problem` with every absolute path cut to its last component (`/srv/data/generations/g1/dense.faiss`
    becomes `dense.faiss`): the reason stays readable, the server's layout stays private."""
    if problem is None:
        return None
    return _ABSOLUTE_PATH.sub(lambda match: PurePath(match.group(0)).name or "/", problem)
