"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse

from indexer.embedding import Embedder, load_embedders
from search_api.errors import install_error_handlers
from search_api.routes import documents, health, search
from search_api.service import SearchService
from search_api.settings import ApiSettings

STATIC = Path(__file__).resolve().parent / "static"


def create_app(settings: ApiSettings, embedders: Embedder | Sequence[Embedder] | None = None) -> FastAPI:
    """An app serving the published generation of `settings.data_dir`; the model loads in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if embedders is None:
            models = load_embedders(settings.model, settings.multilingual_model, settings.embed_batch_size)
        else:
            models = list(embedders) if isinstance(embedders, Sequence) else [embedders]
        for model in models:
            model.embed_queries(["warm up"])
        service = SearchService(settings, models)
        service.load_published()
        if settings.reload_interval_seconds > 0:
            service.watch(settings.reload_interval_seconds)
        app.state.service = service
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="moocsearch",
        version="0.1.0",
        description="Search the practice reports and teaching resources of the Global MOOC Alliance, "
        "in any language, with cited passages.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    app.include_router(search.router)
    app.include_router(documents.router)
    app.include_router(health.router)

    @app.get("/", include_in_schema=False)
    def index_page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app
