"""The quality gate: golden queries a new generation must still answer before it is published.

A golden query names the document(s) it must find among the top N. The search itself is not done here: the
indexer (write side) must not import the search service (read side), so whoever starts a build passes in a
`GenerationSearch`, the real search path run against the unpublished generation's folder (the CLI passes
`search_api.operations.gate.generation_search`). A build whose share of passing queries falls below the threshold
is kept unpublished and reported; queries whose documents are not in the catalog (a deployment without the bundled
corpus, a deleted document) are skipped, not failed.

The gate judges as an anonymous reader over the documents it is about, and nothing else: the live public documents
its golden queries name (the first ingested under each name, the operator's corpus, which a later upload under the
same name does not replace). Searched over every row, as no one in particular, ten keyword-stuffed uploads of one
member (even member-only ones) outranked the golden documents and failed every build; whatever members upload
now, the gate's candidates and its BM25 statistics are the golden documents alone, so no contribution can hold
back a build. What it still catches is what it is for: a change of models, chunking or ranking code that stops
the golden documents from answering their queries among themselves.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from indexer.access import PUBLIC
from indexer.catalog import DELETED, Catalog


class QualityGateError(Exception):
    """A golden-query file that is missing or malformed."""


class GenerationSearch(Protocol):
    """Runs queries against the generation in `folder` (published or not) through the real search path."""

    def __call__(
        self, folder: Path, queries: Sequence[str], top_n: int, documents: Collection[str] | None = None
    ) -> list[list[tuple[str, ...]]]:
        """For each query, its top `top_n` documents, each as the ids it stands for: the document's own id
        first, then those of the near duplicates it represents. With `documents`, the search reads as an
        anonymous caller to whom only those are visible (candidates and ranking statistics alike); None: every
        document, as no one in particular."""
        ...


@dataclass(frozen=True)
class GoldenQuery:
    """A query and the file names of the documents that answer it (any one of them is enough)."""

    query: str
    documents: tuple[str, ...]


@dataclass(frozen=True)
class GoldenFailure:
    """A golden query whose documents were not in the top N, and what was found instead."""

    query: str
    expected: list[str]
    found: list[str]


@dataclass
class QualityReport:
    """The outcome of the gate for one generation."""

    generation_id: str
    passed: bool
    checked: int
    passing: int
    min_pass_rate: float
    top_n: int
    skipped: list[str] = field(default_factory=list)
    failures: list[GoldenFailure] = field(default_factory=list)
    warning: str | None = None  # set when no query could be checked: the gate then proves nothing

    @property
    def pass_rate(self) -> float:
        """Share of the checked queries that passed (1.0 when none could be checked)."""
        return self.passing / self.checked if self.checked else 1.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "pass_rate": round(self.pass_rate, 4)}

    def summary(self) -> str:
        """One line for people."""
        return (
            f"{self.passing}/{self.checked} golden queries found their document in the top {self.top_n} "
            f"({self.pass_rate:.0%}, at least {self.min_pass_rate:.0%} required), {len(self.skipped)} skipped"
        )


def load_golden_queries(path: Path) -> list[GoldenQuery]:
    """Read `{"queries": [{"query": ..., "documents": [file names]}]}`; raises QualityGateError when malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QualityGateError(f"golden queries file {path} does not exist (see golden_queries)") from None
    except (OSError, ValueError) as exc:
        raise QualityGateError(f"cannot read golden queries {path}: {exc}") from exc
    entries = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise QualityGateError(f"{path}: expected an object with a 'queries' list")
    golden = []
    for number, entry in enumerate(entries, 1):
        query = entry.get("query") if isinstance(entry, dict) else None
        documents = entry.get("documents") if isinstance(entry, dict) else None
        if not isinstance(query, str) or not query.strip():
            raise QualityGateError(f"{path}: query {number} has no 'query' text")
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
            raise QualityGateError(f"{path}: query {number} needs 'documents', a list of file names")
        golden.append(GoldenQuery(query.strip(), tuple(documents)))
    return golden


def catalog_ids_by_filename(catalog: Catalog) -> dict[str, set[str]]:
    """The id of the document the gate takes each file name for: the first ingested live public document of
    that name (a member's later upload of the same name is never taken for a golden document)."""
    ids: dict[str, set[str]] = {}
    total = sum(catalog.count_by_status().values())
    for document in catalog.list_documents(limit=max(total, 1)):  # oldest first
        if document.status != DELETED and document.metadata.visibility == PUBLIC and document.filename not in ids:
            ids[document.filename] = {document.id}
    return ids


def check_generation(
    folder: Path,
    golden: Sequence[GoldenQuery],
    known: dict[str, set[str]],
    search: GenerationSearch,
    top_n: int,
    min_pass_rate: float,
) -> QualityReport:
    """Run the golden queries whose documents are in the catalog (`known`: ids by file name) against `folder`, as
    an anonymous reader to whom only the documents the golden queries name are visible."""
    checked = [(g, set().union(*(known.get(name, set()) for name in g.documents))) for g in golden]
    runnable = [(g, ids) for g, ids in checked if ids]
    about = frozenset().union(*(ids for _, ids in checked))
    results = search(folder, [g.query for g, _ in runnable], top_n, about) if runnable else []
    names = {i: name for name, ids in known.items() for i in ids}
    failures = []
    for (query, expected), found in zip(runnable, results, strict=True):
        if not any(expected.intersection(hit) for hit in found[:top_n]):
            shown = [names.get(hit[0], hit[0]) for hit in found[:top_n] if hit]
            failures.append(GoldenFailure(query.query, list(query.documents), shown))
    report = QualityReport(
        generation_id=folder.name,
        passed=True,
        checked=len(runnable),
        passing=len(runnable) - len(failures),
        min_pass_rate=min_pass_rate,
        top_n=top_n,
        skipped=[g.query for g, ids in checked if not ids],
        failures=failures,
    )
    report.passed = report.pass_rate >= min_pass_rate
    if not runnable:
        report.warning = (
            f"the quality gate checked no golden query: none of the {len(golden)} names a document in the catalog "
            "(see golden_queries)"
        )
    return report
