"""What the routes work with: the searcher of the published generation, the catalog and the originals."""

from __future__ import annotations

import logging
import threading

from indexer.catalog import Catalog
from indexer.embedding import Embedder
from indexer.generation import GenerationError, generations_root, published_generation_id
from indexer.generation_reader import GenerationReader
from indexer.store import OriginalsStore
from search_api.errors import ApiError
from search_api.searcher import ModelMismatchError, Searcher
from search_api.settings import ApiSettings

logger = logging.getLogger(__name__)


class SearchService:
    """Holds the one generation in use; a newly published one replaces it between requests."""

    def __init__(self, settings: ApiSettings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self.catalog = Catalog(settings.data_dir / "catalog.sqlite3")
        self.store = OriginalsStore(settings.data_dir / "originals")
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()
        self.problem: str | None = None

    def close(self) -> None:
        """Release the generation and the catalog."""
        if self._searcher is not None:
            self._searcher.reader.close()
        self.catalog.close()

    def load_published(self) -> None:
        """Open the published generation if it differs from the one in use; keep the old one on failure."""
        root = generations_root(self.settings.data_dir)
        generation_id = published_generation_id(root)
        current = self._searcher.generation_id if self._searcher else None
        if generation_id is None or generation_id == current:
            return
        try:
            searcher = Searcher(
                GenerationReader(root / generation_id),
                self.embedder,
                self.settings.dense_weight,
                self.settings.lexical_weight,
            )
        except (GenerationError, ModelMismatchError, OSError, RuntimeError) as exc:
            self.problem = f"generation {generation_id} refused: {exc}"
            logger.error("%s; still serving %s", self.problem, current)
            return
        with self._lock:
            self._searcher, self.problem = searcher, None
        logger.info("serving generation %s (%d passages)", generation_id, searcher.reader.manifest.passage_count)

    @property
    def searcher(self) -> Searcher:
        """The searcher for this request; 503 until a generation is published."""
        searcher = self._searcher
        if searcher is None:
            raise ApiError(503, "index_not_ready", "no index generation has been published yet; run a build")
        return searcher

    @property
    def current_searcher(self) -> Searcher | None:
        """The searcher in use, or None."""
        return self._searcher
