"""What a build did, as stored in its build record and printed by `moocsearch index build`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from indexer.catalog import BUILD_PUBLISHED


@dataclass(frozen=True)
class Failure:
    """A document that could not be indexed, and why."""

    document_id: str
    filename: str
    reason: str
    message: str


@dataclass(frozen=True)
class Deferred:
    """Documents of one member (by id; None: the operator's, owned by no member) left pending for the next build
    because the build's extraction budget was spent."""

    member: str | None
    documents: int


@dataclass
class BuildReport:
    """What a build did: counts, failures and seconds per stage (stored as the report of its build record).

    `outcome` is `published`, `rejected` (the quality gate kept the new generation unpublished) or `unchanged`
    (the catalog gave the content of the published generation again: nothing was written, `generation_id` names
    the published one). `documents_added/changed/deleted` compare the new generation with the one published
    before it; `documents_failed` counts documents this build could not read; `documents_deferred` those it did not
    start because its extraction budget was spent (still pending, for the next build), per member in `deferred`.
    `passages_embedded` counts passages that got at least one new vector, `vectors_embedded` the vectors computed
    over all encoders (the rest came from the embedding cache).
    """

    build_id: int | None = None
    trigger: str = "cli"
    outcome: str = BUILD_PUBLISHED
    generation_id: str | None = None
    documents_added: int = 0
    documents_changed: int = 0
    documents_deleted: int = 0
    documents_failed: int = 0
    documents_extracted: int = 0
    documents_deferred: int = 0
    documents_indexed: int = 0
    passages: int = 0
    passages_embedded: int = 0
    vectors_embedded: int = 0
    failures: list[Failure] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    quality: dict[str, Any] | None = None  # the quality gate's QualityReport, when the gate ran
    warnings: list[str] = field(default_factory=list)  # what a person should know although the build succeeded

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@contextmanager
def stage(report: BuildReport, name: str) -> Iterator[None]:
    """Record the seconds a stage of the build takes, also when it fails."""
    started = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[name] = round(time.perf_counter() - started, 3)
