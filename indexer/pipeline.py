"""The indexing pipeline: ingest originals, extract and cut pending documents, embed, publish a generation.

One code path serves the CLI, the service, the tests, evaluation and benchmarks. The stages live beside it
(`extraction_stage`, `embedding_stage`, `generation.writer`); this module orders them, holds the build lock and
records each build.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from indexer.buildlock import BuildAlreadyRunning, build_lock, build_lock_holder
from indexer.buildreport import BuildReport, Failure, stage
from indexer.catalog import BUILD_FAILED, BUILD_REJECTED, BUILD_UNCHANGED, Catalog, Document, Passage
from indexer.changes import count_changes
from indexer.dense import AnnOptions
from indexer.diskspace import check_build_space
from indexer.embedding import Embedder, load_embedder, model_list
from indexer.embedding_stage import embed_passages
from indexer.extraction_stage import Cutting, ExtractionStage
from indexer.faults import fault_point
from indexer.fingerprint import access_scope, duplicate_clusters, scoped_links
from indexer.generation import (
    BuildParameters,
    DenseParameters,
    DocumentRow,
    EncoderModel,
    GenerationError,
    LexicalParameters,
    Manifest,
    PassageRow,
    content_digest,
    discard_partial_generations,
    generations_root,
    new_generation_id,
    publish_generation,
    published_generation_id,
    read_manifest,
    remove_stale_generations,
    verify_generation,
)
from indexer.generation.writer import GenerationContent, write_generation
from indexer.ingest import IngestResult, ingest_bytes
from indexer.lexical import BM25_B, BM25_K1, LEXICAL_ENGINE
from indexer.metadata import DocumentMetadata
from indexer.passages import embedding_text
from indexer.permissions import secure_data_dir
from indexer.quality import GenerationSearch, catalog_ids_by_filename, check_generation, load_golden_queries
from indexer.settings import IndexerSettings
from indexer.store import OriginalsStore

__all__ = ["BuildAlreadyRunning", "BuildReport", "Failure", "Indexer", "build_lock_holder"]

logger = logging.getLogger(__name__)


class Indexer:
    """The write side of one data directory; a context manager that closes it."""

    def __init__(
        self,
        settings: IndexerSettings,
        embedder: Embedder | None = None,
        extra_embedders: Sequence[Embedder] | None = None,
        quality_search: GenerationSearch | None = None,
    ) -> None:
        """`quality_search` runs the golden queries of the quality gate against a new generation before it is
        published (the read side's search, passed in by whoever starts the build); None: no gate."""
        self.quality_search = quality_search
        self.data_dir = settings.data_dir
        secure_data_dir(self.data_dir)  # owner-only (issue 11): it holds member-only text
        self.store = OriginalsStore(self.data_dir / "originals")
        self.catalog = Catalog(self.data_dir / "catalog.sqlite3")
        self.extraction = ExtractionStage(settings, self.store, self.catalog)
        self.settings = settings
        self._embedder = embedder
        self._extra_embedders = list(extra_embedders) if extra_embedders is not None else None

    @property
    def settings(self) -> IndexerSettings:
        """The settings of this data directory (replacing them reaches the extraction stage too)."""
        return self._settings

    @settings.setter
    def settings(self, value: IndexerSettings) -> None:
        self._settings = value
        self.extraction.settings = value

    def __enter__(self) -> Indexer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        """The configured embedder, loaded on first use."""
        if self._embedder is None:
            self._embedder = load_embedder(self.settings.model, self.settings.embed_batch_size)
        return self._embedder

    @property
    def embedders(self) -> list[Embedder]:
        """Every encoder a generation gets a dense index for: the primary one first, then the multilingual one."""
        if self._extra_embedders is None:
            names = model_list(self.settings.multilingual_model)
            self._extra_embedders = [load_embedder(name, self.settings.embed_batch_size) for name in names]
        return [self.embedder, *(e for e in self._extra_embedders if e.model_id != self.embedder.model_id)]

    @property
    def ann_options(self) -> AnnOptions:
        """When and how the dense indexes are approximate, from the settings."""
        return AnnOptions(
            threshold=self.settings.ann_threshold,
            nlist=self.settings.ann_nlist,
            nprobe=self.settings.ann_nprobe,
            recall_floor=self.settings.ann_recall_floor,
            recall_queries=self.settings.ann_recall_queries,
        )

    @property
    def cutting(self) -> Cutting:
        """How passages are cut: with the primary model's tokens, up to the setting capped by its window."""
        budget = min(self.settings.passage_max_tokens, self.embedder.max_tokens)
        return Cutting(self.embedder.model_id, self.embedder.count_tokens, budget)

    def close(self) -> None:
        """Stop the extraction workers and close the catalog."""
        self.extraction.close()
        self.catalog.close()

    def ingest(self, data: bytes, filename: str, metadata: DocumentMetadata | None = None) -> IngestResult:
        """Store one document durably as pending; known bytes return the existing document."""
        return ingest_bytes(
            self.store, self.catalog, data, filename, metadata or DocumentMetadata(), self.settings.max_file_bytes
        )

    def build(
        self, full: bool = False, progress: bool = False, trigger: str = "cli", build_id: int | None = None
    ) -> BuildReport:
        """Extract what is pending, embed every passage (cached), write, verify and publish a new generation when
        its content differs from the published one's.

        Every call leaves a build record: `build_id` names a record queued for this build by whoever started the
        process (the service's build runner), otherwise a new one is made. A refused call (another build holds the
        lock) is recorded as `already_running` and raises `BuildAlreadyRunning`.
        """
        with ExitStack() as stack:
            try:
                stack.enter_context(build_lock(self.data_dir))
            except BuildAlreadyRunning as exc:
                self.catalog.refuse_build(trigger, str(exc), build_id)
                raise
            # Holding the lock, no other build is alive: records still "running" belong to dead processes.
            self.catalog.interrupt_stale_builds(keep=build_id)
            if build_id is None:
                build_id = self.catalog.start_build(trigger, os.getpid())
            else:
                self.catalog.mark_build_running(build_id, os.getpid())
            report = BuildReport(build_id=build_id, trigger=trigger)
            started = time.perf_counter()
            try:
                self._run_build(report, full, progress)
            except BaseException as exc:
                discard_partial_generations(generations_root(self.data_dir))
                message = f"{type(exc).__name__}: {exc}"
                self.catalog.finish_build(build_id, BUILD_FAILED, None, report.to_dict(), message)
                raise
            report.seconds["total"] = round(time.perf_counter() - started, 3)
            self.catalog.finish_build(build_id, report.outcome, report.generation_id, report.to_dict())
            return report

    def rollback(self, generation_id: str) -> Manifest:
        """Publish an older (or any complete) generation again, after verifying it; waits for no build."""
        with build_lock(self.data_dir):
            folder = generations_root(self.data_dir) / generation_id
            if not generation_id or "/" in generation_id or not folder.is_dir():
                raise GenerationError(f"no generation {generation_id!r}")
            manifest = verify_generation(folder)
            publish_generation(generations_root(self.data_dir), generation_id)
            return manifest

    def _run_build(self, report: BuildReport, full: bool, progress: bool) -> None:
        root = generations_root(self.data_dir)
        remove_stale_generations(root, self.settings.keep_generations)
        check_build_space(self.data_dir, self.settings.build_space_growth, self.settings.build_min_free_mb)
        with stage(report, "extract"):
            self.extraction.run(report, full, progress, self.cutting)
        documents: list[Document] = []
        passages: list[tuple[Document, Passage]] = []
        indexed = list(self.catalog.indexed_passages())
        clusters = self._duplicate_clusters([d for d, _ in indexed])
        for document, document_passages in indexed:
            if document.id in clusters:
                documents.append(document)
                passages.extend((document, p) for p in document_passages)
        report.documents_indexed, report.passages = len(documents), len(passages)
        # Dense and lexical retrieval both see a passage with its context (title, headings).
        texts = [embedding_text(p.text, d.title, p.heading) for d, p in passages]
        with stage(report, "embed"):
            embedded = embed_passages(texts, self.embedders, self.settings, full, progress)
        report.passages_embedded, report.vectors_embedded = embedded.passages_embedded, embedded.vectors_embedded
        content = self._content(passages, documents, clusters, texts, embedded.vectors)
        unchanged = self._published_with_digest(root, content.digest)
        if unchanged is not None:
            report.outcome, report.generation_id = BUILD_UNCHANGED, unchanged
            logger.info("nothing changed since generation %s: nothing published", unchanged)
            return
        generation_id = new_generation_id()
        with stage(report, "write"):
            write_generation(root, generation_id, content, self.ann_options)
            self._count_changes(report, root, root / generation_id)
        if not self._passes_quality_gate(report, root / generation_id):
            return
        with stage(report, "publish"):
            fault_point("publish")
            publish_generation(root, generation_id)
            fault_point("published")
            remove_stale_generations(root, self.settings.keep_generations)
        report.generation_id = generation_id

    def _content(
        self,
        passages: list[tuple[Document, Passage]],
        documents: list[Document],
        clusters: dict[str, list[str]],
        texts: list[str],
        vectors: Sequence[Any],
    ) -> GenerationContent:
        """The rows, models and parameters of the generation this build would write, with their digest."""
        passage_rows = [
            PassageRow(
                row, p.id, p.document_id, p.ordinal, p.page, p.heading, p.char_start, p.char_end, p.language, p.text
            )
            for row, (_document, p) in enumerate(passages)
        ]
        document_rows = [
            DocumentRow(
                d.id, d.title, d.filename, d.media_type, d.page_count, d.language, d.metadata, tuple(clusters[d.id])
            )
            for d in documents
        ]
        models = [
            EncoderModel(e.model_id, e.version, e.dimension, tuple(sorted(e.languages)) if e.languages else None)
            for e in self.embedders
        ]
        ann = self.ann_options
        parameters = BuildParameters(
            passage_max_tokens=self.cutting.max_tokens,
            chunker=self.cutting.key,
            lexical=LexicalParameters(LEXICAL_ENGINE, BM25_K1, BM25_B),
            dense=DenseParameters(ann.threshold, ann.recall_floor, ann.nlist, ann.nprobe, ann.recall_queries),
        )
        digest = content_digest(passage_rows, document_rows, models, parameters)
        return GenerationContent(
            passage_rows, document_rows, texts, models, vectors, parameters, digest, self.catalog.state()
        )

    def _published_with_digest(self, root: Path, digest: str) -> str | None:
        """The published generation's id when it holds exactly this content and still verifies; None otherwise
        (a damaged published generation is replaced by the new one)."""
        published = published_generation_id(root)
        if published is None:
            return None
        try:
            if read_manifest(root / published).content_digest != digest:
                return None
            verify_generation(root / published)
        except GenerationError as exc:
            logger.warning("published generation %s does not verify (%s): publishing a new one", published, exc)
            return None
        return published

    def _duplicate_clusters(self, documents: list[Document]) -> dict[str, list[str]]:
        """Near duplicates (a re-export, a new version) are indexed once: the newest of each group linked as near
        duplicates within one scope (visibility and owner), as the catalog says now (so a build after a change of
        visibility or owner groups the copies anew). Keyed by the document shown, listing the others."""
        scopes = {d.id: access_scope(d.metadata.visibility, d.owner_id) for d in documents}
        links = {d.id: d.near_duplicate_of for d in documents if d.near_duplicate_of}
        signatures = dict(self.catalog.fingerprints())
        usable = scoped_links(links, scopes, signatures, self.settings.near_duplicate_threshold)
        return duplicate_clusters(usable, [d.id for d in documents])

    def _passes_quality_gate(self, report: BuildReport, final: Path) -> bool:
        """Run the golden queries against the new, unpublished generation; on a regression below the threshold
        mark the build rejected (the generation stays on disk, unpublished, until the next build)."""
        if self.quality_search is None or not self.settings.quality_gate:
            return True
        with stage(report, "quality"):
            quality = check_generation(
                final,
                load_golden_queries(self.settings.golden_queries),
                catalog_ids_by_filename(self.catalog),
                self.quality_search,
                self.settings.quality_top_n,
                self.settings.quality_min_pass_rate,
            )
        report.quality = quality.to_dict()
        if quality.warning:
            report.warnings.append(quality.warning)
            logger.warning("generation %s: %s", final.name, quality.warning)
        if quality.passed:
            return True
        report.outcome = BUILD_REJECTED
        logger.error("generation %s rejected by the quality gate: %s", final.name, quality.summary())
        return False

    def _count_changes(self, report: BuildReport, root: Path, final: Path) -> None:
        """Documents added, changed and deleted by this generation, compared with the published one."""
        published = published_generation_id(root)
        try:
            changes = count_changes(root / published if published else None, final)
        except (OSError, sqlite3.Error) as exc:  # an unreadable old generation must not stop the new one
            logger.warning("could not compare with generation %s: %s", published, exc)
            return
        report.documents_added, report.documents_changed = changes.added, changes.changed
        report.documents_deleted = changes.deleted
