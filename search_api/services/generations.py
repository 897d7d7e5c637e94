"""What every service function works with: the generation in use (its searcher and its caches), the catalog and
the originals.

A generation is replaced as a whole: the caches derived from it live on its `ServedGeneration` and go with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from functools import cached_property

from indexer.catalog import Catalog
from indexer.generation import GenerationError, generations_root, published_generation_id
from indexer.generation_reader import GenerationReader
from indexer.permissions import secure_data_dir
from indexer.store import OriginalsStore
from search_api.factory import QueryModels, open_searcher
from search_api.filters import AccessCache
from search_api.searcher import ModelMismatchError, Searcher
from search_api.services.errors import NotReady
from search_api.settings import ApiSettings

logger = logging.getLogger(__name__)
NOT_PUBLISHED = "no index generation has been published yet; run a build"


class ServedGeneration:
    """A loaded generation: its searcher and what is derived from it once and reused by every request."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.access_cache = AccessCache()  # its documents' access arrays per catalog state (search filters)

    @property
    def generation_id(self) -> str:
        """The generation's id."""
        return self.searcher.generation_id

    @cached_property
    def document_ids(self) -> frozenset[str]:
        """The ids of the documents it holds (computing it twice in a race is harmless)."""
        return frozenset(d.id for d in self.searcher.reader.documents)


class SearchService:
    """Holds the one generation in use; a newly published one replaces it between requests."""

    def __init__(self, settings: ApiSettings, models: QueryModels) -> None:
        self.settings = settings
        self.models = models
        secure_data_dir(settings.data_dir)  # owner-only (issue 11): it holds member-only text
        self.catalog = Catalog(settings.data_dir / "catalog.sqlite3")
        self.store = OriginalsStore(settings.data_dir / "originals")
        for leftover in self.store.remove_stale_temp_files():  # of an upload killed while its file was written
            logger.warning("removed %s, left by an unfinished write", leftover.name)
        self._generation: ServedGeneration | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._refused: str | None = None
        self.problem: str | None = None
        self.refusal: Exception | None = None  # why the last generation tried was refused, with `problem`
        # Called with each search's per-stage timings (the app's metrics); None: not recorded.
        self.on_search: Callable[[Mapping[str, float]], None] | None = None

    def close(self) -> None:
        """Stop watching and release the catalog; the generation is released with the last reference."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.catalog.close()

    def watch(self, interval: float) -> None:
        """Check the published pointer every `interval` seconds in a background thread and switch to a new
        generation between requests (requests in flight keep the searcher they started with)."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.load_published()
                except Exception:  # the watcher must survive anything a broken generation throws
                    logger.exception("checking for a new generation failed")

        self._watcher = threading.Thread(target=loop, name="generation-watcher", daemon=True)
        self._watcher.start()

    def load_published(self) -> None:
        """Open the published generation if it differs from the one in use; keep the old one on failure."""
        root = generations_root(self.settings.data_dir)
        generation_id = published_generation_id(root)
        current = self._generation.generation_id if self._generation else None
        if generation_id is None or generation_id in (current, self._refused):
            return
        try:
            searcher = open_searcher(GenerationReader(root / generation_id), self.settings, self.models)
        except (GenerationError, ModelMismatchError, OSError, RuntimeError) as exc:
            self.problem, self.refusal = f"generation {generation_id} refused: {exc}", exc
            self._refused = generation_id
            logger.error("%s; still serving %s", self.problem, current)
            return
        with self._lock:
            self._generation, self.problem, self.refusal = ServedGeneration(searcher), None, None
            self._refused = None
        logger.info("serving generation %s (%d passages)", generation_id, searcher.reader.manifest.passage_count)

    def record_search(self, seconds: Mapping[str, float]) -> None:
        """Pass a search's per-stage timings (SearchResult.seconds) on to whoever records them."""
        if self.on_search is not None:
            self.on_search(seconds)

    @property
    def generation(self) -> ServedGeneration:
        """The generation for this request (it keeps it to the end); NotReady until one is published."""
        generation = self._generation
        if generation is None:
            raise NotReady(NOT_PUBLISHED)
        return generation

    @property
    def current(self) -> ServedGeneration | None:
        """The generation in use, or None."""
        return self._generation

    @property
    def searcher(self) -> Searcher:
        """The searcher for this request; NotReady until a generation is published."""
        return self.generation.searcher

    @property
    def current_searcher(self) -> Searcher | None:
        """The searcher in use, or None."""
        generation = self._generation
        return None if generation is None else generation.searcher
