"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse

from indexer.embedding import Embedder
from indexer.language import guess_query_language
from indexer.permissions import restrict_umask
from search_api.apidocs import install_docs
from search_api.errors import document_errors, error_responses, install_error_handlers
from search_api.factory import QueryModels, load_query_models
from search_api.headers import SecurityHeadersMiddleware
from search_api.limits import UNLIMITED_PATHS, BodyLimitMiddleware, RateLimitMiddleware
from search_api.metrics import Metrics
from search_api.observability import RequestMiddleware
from search_api.operations.buildrunner import BuildRunner
from search_api.operations.scheduler import BuildScheduler
from search_api.routes import admin, documents, health, search
from search_api.services.generations import SearchService
from search_api.settings import ApiSettings

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    settings: ApiSettings,
    embedders: QueryModels | Embedder | Sequence[Embedder] | None = None,
    schedule_builds: bool = False,
) -> FastAPI:
    """An app serving the published generation of `settings.data_dir`; the models load in the lifespan unless
    given (encoders given alone get the configured reranker).

    `schedule_builds` starts the build scheduler (`moocsearch serve` does; tests drive it by hand)."""
    restrict_umask()  # issue 11: whatever the service and its builds write is owner-only (files 0600)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(embedders, QueryModels):
            models = embedders
        else:
            given = None if embedders is None else list(embedders) if isinstance(embedders, Sequence) else [embedders]
            models = load_query_models(settings, given)
        for encoder in models.encoders:
            encoder.embed_queries(["warm up"])
        # Loading the query language identifier takes seconds: here, not in the first query after /ready.
        guess_query_language("warm up the language identifier", ())
        service = SearchService(settings, models)
        service.load_published()
        if settings.reload_interval_seconds > 0:
            service.watch(settings.reload_interval_seconds)
        service.on_search = app.state.metrics.observe_search
        app.state.service = service
        app.state.build_runner = runner = BuildRunner(settings)
        scheduler = BuildScheduler(
            runner,
            runner.catalog,
            settings.build_schedule,
            settings.build_soon_seconds,
            soon_max_seconds=settings.build_soon_max_seconds,
        )
        if schedule_builds:
            scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
            runner.close()
            service.close()

    app = FastAPI(
        title="moocsearch",
        version="0.1.0",
        description="Search the practice reports and teaching resources of the Global MOOC Alliance, "
        "in any language, with cited passages.",
        lifespan=lifespan,
        responses=error_responses(400, 413, 429, 500),
        docs_url=None,  # issue 11: install_docs serves them with packaged assets, never a CDN's
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.state.metrics = Metrics(lambda: getattr(app.state, "service", None))
    install_error_handlers(app)
    document_errors(app, UNLIMITED_PATHS)
    add_middleware(app, settings)
    app.include_router(search.router)
    app.include_router(documents.router)
    app.include_router(health.router)
    app.include_router(admin.router)

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app


def add_middleware(app: FastAPI, settings: ApiSettings) -> None:
    """From the outside in: security headers; request id, access log and metrics; CORS; rate limit; body limit."""
    app.add_middleware(
        BodyLimitMiddleware, request_limit=settings.max_request_bytes, upload_limit=settings.upload_body_limit
    )
    app.add_middleware(RateLimitMiddleware, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)
    app.add_middleware(SecurityHeadersMiddleware)  # issue 11: on every response, errors and 429s included
