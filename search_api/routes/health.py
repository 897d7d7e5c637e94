"""Operations: GET /health (live), GET /ready (a generation is loaded) and GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from search_api.deps import ServiceDep
from search_api.errors import ApiError, error_responses
from search_api.metrics import Metrics, generation_age_seconds
from search_api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthOut)
def health(service: ServiceDep) -> HealthOut:
    """Liveness: always 200 while the process answers.

    `ok` while a generation is served, `starting` before the first, `degraded` (with the reason in `problem`)
    when a newer generation was refused, e.g. for a checksum mismatch; the previous one keeps serving.
    """
    searcher = service.current_searcher
    if searcher is None:
        return HealthOut(
            status="degraded" if service.problem else "starting",
            generation=None,
            passages=None,
            documents=None,
            model=None,
            problem=service.problem,
        )
    manifest = searcher.reader.manifest
    return HealthOut(
        status="degraded" if service.problem else "ok",
        generation=manifest.generation_id,
        passages=manifest.passage_count,
        documents=manifest.document_count,
        model=manifest.model_id,
        problem=service.problem,
    )


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses=error_responses(503, s503="No generation is loaded yet: the service cannot answer searches."),
)
def ready(service: ServiceDep) -> ReadyOut:
    """Readiness: 200 with the generation served (id, age, counts, models) once one is loaded, else 503."""
    searcher = service.current_searcher
    if searcher is None:
        reason = service.problem or "no index generation has been published yet; run a build"
        raise ApiError(503, "not_ready", reason)
    manifest = searcher.reader.manifest
    models = [encoder.model_id for encoder in manifest.encoders]
    return ReadyOut(
        status="ready",
        generation=manifest.generation_id,
        created_at=manifest.created_at,
        age_seconds=generation_age_seconds(manifest),
        passages=manifest.passage_count,
        documents=manifest.document_count,
        models=models,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format: requests, latencies, index size, documents, builds.",
        }
    },
)
def metrics(request: Request) -> Response:
    """Metrics for Prometheus to scrape."""
    app_metrics: Metrics = request.app.state.metrics
    return Response(app_metrics.render(), media_type=CONTENT_TYPE_LATEST)
