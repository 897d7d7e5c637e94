"""schemathesis against the app's own OpenAPI schema (in-process, fake embedder): no 5xx, no schema violations.

Every operation gets generated requests; each answer must be a status the operation declares, with the declared
content type and a body matching the declared model (errors included: the JSON error shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from indexer.embedding import HashEmbedder
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.app import create_app
from search_api.settings import ApiSettings

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class Target:
    """The schema of the app under test and a member's valid key."""

    schema: BaseSchema
    member_key: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """An app serving a small published generation, without rate limiting, with one member and its key."""
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    config = ApiSettings(
        data_dir=data_dir, model="hash-256", multilingual_model=None, rate_limit_per_second=0, reload_interval_seconds=0
    )
    embedder = HashEmbedder(256)
    indexer = Indexer(config, embedder)
    indexer.ingest(
        b"Peer assessment with calibrated rubrics lets thousands of learners grade design work.",
        "peer.txt",
        DocumentMetadata(title="Peer assessment", member="Tsinghua University", language="en", year=2024),
    )
    indexer.ingest(b"Offline packages let learners download lecture videos.", "offline.txt")
    indexer.build()
    indexer.catalog.add_member("fuzz", "Fuzz University")
    _, secret = indexer.catalog.create_key("fuzz")
    indexer.close()
    return Target(schemathesis.openapi.from_asgi("/openapi.json", create_app(config, embedder)), secret)


def _failures(operation: APIOperation, mode: GenerationMode, examples: int, key: str | None) -> list[str]:
    """Run `examples` generated requests against one operation (with `key`, if given, instead of the generated
    credentials); the failures, described."""
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {key}", "X-API-Key": key} if key else None

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters): no negative cases
        pass
    except (Exception, BaseExceptionGroup) as exc:  # the shrunk failure: keep it, go on to the next operation
        failures.append(f"{operation.label} ({mode.value}, {'member key' if key else 'generated key'}): {exc}")
    return failures


def test_every_operation_answers_as_its_schema_says(target: Target) -> None:
    # schemathesis' own pytest plugin does not run under this pytest version; drive hypothesis directly.
    failures: list[str] = []
    operations = [result.ok() for result in target.schema.get_all_operations()]
    assert len(operations) >= 5
    for operation in operations:
        for key in (None, target.member_key):
            failures += _failures(operation, GenerationMode.POSITIVE, 20, key)
            failures += _failures(operation, GenerationMode.NEGATIVE, 8, key)
    assert not failures, "\n\n".join(failures)
