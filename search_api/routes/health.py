"""GET /health: is the service up, and what does it serve."""

from __future__ import annotations

from fastapi import APIRouter

from search_api.deps import ServiceDep
from search_api.schemas import HealthOut

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthOut)
def health(service: ServiceDep) -> HealthOut:
    """`ok` while a generation is served, `starting` before the first, `degraded` when a newer one was refused."""
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
