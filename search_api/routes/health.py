"""Operations: GET /health (live), GET /ready (a generation is loaded) and GET /metrics (Prometheus).

What these tell depends on the caller (issue 11): counts are of the documents the caller may see and paths are
cut from `problem`, except for an admin key, which gets the generation's own counts and the full reason.
/metrics needs an admin key unless `metrics_public` serves a reduced set without one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from indexer.catalog import KeyHolder
from search_api.auth import OptionalCaller, presented_key, viewer_of
from search_api.deps import ServiceDep, SettingsDep
from search_api.errors import ApiError, error_responses
from search_api.metrics import Metrics, generation_age_seconds
from search_api.schemas import HealthOut, ReadyOut
from search_api.services.errors import Forbidden, Unauthorized
from search_api.services.generations import SearchService
from search_api.services.status import ServedCounts, public_problem, served_counts

router = APIRouter(tags=["operations"])


def probe_caller(request: Request, service: ServiceDep) -> KeyHolder | None:
    """The holder of a valid key, else None: a probe answers whatever key it carries (a bad key gets the
    anonymous answer, never a 401: liveness means 200 while the process answers)."""
    token = presented_key(request)
    return None if token is None else service.catalog.authenticate(token)


ProbeCaller = Annotated[KeyHolder | None, Depends(probe_caller)]


def _is_admin(caller: KeyHolder | None) -> bool:
    return caller is not None and caller.admin


def _problem(service: SearchService, caller: KeyHolder | None) -> str | None:
    return service.problem if _is_admin(caller) else public_problem(service.problem)


def _counts(service: SearchService, caller: KeyHolder | None) -> ServedCounts | None:
    """The generation's own counts for an admin; for anyone else, those of the documents it may see now."""
    searcher = service.current_searcher
    if searcher is not None and _is_admin(caller):
        manifest = searcher.reader.manifest
        return ServedCounts(manifest.document_count, manifest.passage_count)
    return served_counts(service, viewer_of(caller))


@router.get("/health", response_model=HealthOut)
def health(service: ServiceDep, caller: ProbeCaller) -> HealthOut:
    """Liveness: always 200 while the process answers.

    `ok` while a generation is served, `starting` before the first, `degraded` (with the reason in `problem`)
    when a newer generation was refused, e.g. for a checksum mismatch; the previous one keeps serving.
    `documents` and `passages` count what the caller may see (everything served, for an admin key).
    """
    searcher = service.current_searcher
    problem = _problem(service, caller)
    if searcher is None:
        return HealthOut(
            status="degraded" if service.problem else "starting",
            generation=None,
            passages=None,
            documents=None,
            model=None,
            problem=problem,
        )
    manifest = searcher.reader.manifest
    counts = _counts(service, caller)
    return HealthOut(
        status="degraded" if service.problem else "ok",
        generation=manifest.generation_id,
        passages=counts.passages if counts else None,
        documents=counts.documents if counts else None,
        model=manifest.model_id,
        problem=problem,
    )


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses=error_responses(503, s503="No generation is loaded yet: the service cannot answer searches."),
)
def ready(service: ServiceDep, caller: ProbeCaller) -> ReadyOut:
    """Readiness: 200 with the generation served (id, age, counts of what the caller may see, models) once one
    is loaded, else 503."""
    searcher = service.current_searcher
    counts = _counts(service, caller)
    if searcher is None or counts is None:
        reason = _problem(service, caller) or "no index generation has been published yet; run a build"
        raise ApiError(503, "not_ready", reason)
    manifest = searcher.reader.manifest
    models = [encoder.model_id for encoder in manifest.encoders]
    return ReadyOut(
        status="ready",
        generation=manifest.generation_id,
        created_at=manifest.created_at,
        age_seconds=generation_age_seconds(manifest),
        passages=counts.passages,
        documents=counts.documents,
        models=models,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format: requests, latencies, index size, documents, builds.",
        },
        **error_responses(
            401, 403, s401="No admin key, and `metrics_public` is off.", s403="The key is a member's, not an admin's."
        ),
    },
)
def metrics(request: Request, caller: OptionalCaller, settings: SettingsDep) -> Response:
    """Metrics for Prometheus to scrape, with an admin key (`Authorization: Bearer <key>`).

    With `metrics_public`, callers without an admin key get the series that say nothing about the catalog:
    request rates and latencies of the public read routes, search stage latencies, whether the service is
    degraded, the generation's age and the last build's outcome."""
    app_metrics: Metrics = request.app.state.metrics
    if _is_admin(caller):
        return Response(app_metrics.render(), media_type=CONTENT_TYPE_LATEST)
    if settings.metrics_public:
        return Response(app_metrics.render_public(), media_type=CONTENT_TYPE_LATEST)
    if caller is None:
        raise Unauthorized("/metrics needs an admin key: send `Authorization: Bearer <key>`")
    raise Forbidden("/metrics needs an admin key")
