"""The indexing pipeline: ingest originals, extract and cut pending documents, embed, publish a generation.

One code path serves the CLI, the service, the tests, evaluation and benchmarks.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from indexer.catalog import (
    BUILD_FAILED,
    BUILD_PUBLISHED,
    BUILD_REJECTED,
    Catalog,
    Document,
    Passage,
)
from indexer.changes import count_changes
from indexer.dense import AnnOptions, build_index, write_dense_index
from indexer.diskspace import check_build_space
from indexer.embedcache import EmbeddingCache
from indexer.embedding import Embedder, load_embedder, model_list
from indexer.extract import Extraction, ExtractionError, ExtractionLimits
from indexer.extract.model import BROKEN_TEXT_ENCODING
from indexer.faults import fault_point
from indexer.fingerprint import access_scope, duplicate_clusters, minhash, most_similar, scoped_links
from indexer.generation import (
    LEXICAL_DIR,
    PASSAGES_FILE,
    GenerationError,
    Manifest,
    dense_file,
    discard_partial_generations,
    finish_generation,
    generations_root,
    new_generation_id,
    publish_generation,
    published_generation_id,
    remove_stale_generations,
    start_generation,
    verify_generation,
    write_passage_table,
)
from indexer.ingest import IngestResult, ingest_bytes
from indexer.lexical import BM25_B, BM25_K1, LexicalIndex
from indexer.metadata import DocumentMetadata
from indexer.passages import CHUNKER_VERSION, cut_passages, dominant_language, embedding_text, infer_title
from indexer.quality import GenerationSearch, catalog_ids_by_filename, check_generation, load_golden_queries
from indexer.sandbox import ExtractionSandbox, SandboxLimits
from indexer.settings import IndexerSettings
from indexer.store import OriginalsStore

logger = logging.getLogger(__name__)


class BuildAlreadyRunning(RuntimeError):
    """Another build holds the lock of this data directory."""


@dataclass(frozen=True)
class Failure:
    """A document that could not be indexed, and why."""

    document_id: str
    filename: str
    reason: str
    message: str


@dataclass
class BuildReport:
    """What a build did: counts, failures and seconds per stage (stored as the report of its build record).

    `documents_added/changed/deleted` compare the new generation with the one published before it;
    `documents_failed` counts documents this build could not read.
    """

    build_id: int | None = None
    trigger: str = "cli"
    outcome: str = BUILD_PUBLISHED  # or BUILD_REJECTED: the quality gate kept the generation unpublished
    generation_id: str | None = None
    documents_added: int = 0
    documents_changed: int = 0
    documents_deleted: int = 0
    documents_failed: int = 0
    documents_extracted: int = 0
    documents_indexed: int = 0
    passages: int = 0
    passages_embedded: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    quality: dict[str, Any] | None = None  # the quality gate's QualityReport, when the gate ran

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


BUILD_LOCK_FILE = "build.lock"


def _try_lock(handle: IO[str], attempts: int) -> bool:
    """Take the exclusive lock without blocking, trying a few times over ~0.2 s: a `build_lock_holder` probe
    holds it for an instant, and must not make a real build think another one is running."""
    for attempt in range(attempts):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.05)
    return False


def build_lock_holder(data_dir: Path) -> int | None:
    """The pid of the process building in `data_dir` (0 if it cannot be read), or None when no build runs."""
    path = data_dir / BUILD_LOCK_FILE
    if not path.exists():
        return None
    with path.open("a+") as handle:
        if _try_lock(handle, attempts=1):
            return None  # closing the file releases the probe's lock
        handle.seek(0)
        text = handle.read().strip()
        return int(text) if text.isdigit() else 0


@contextmanager
def _stage(report: BuildReport, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[name] = round(time.perf_counter() - started, 3)


class Indexer:
    """The write side of one data directory."""

    def __init__(
        self,
        settings: IndexerSettings,
        embedder: Embedder | None = None,
        extra_embedders: Sequence[Embedder] | None = None,
        quality_search: GenerationSearch | None = None,
    ) -> None:
        """`quality_search` runs the golden queries of the quality gate against a new generation before it is
        published (the read side's search, passed in by whoever starts the build); None: no gate."""
        self.settings = settings
        self.quality_search = quality_search
        self.data_dir = settings.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = OriginalsStore(self.data_dir / "originals")
        self.catalog = Catalog(self.data_dir / "catalog.sqlite3")
        self._embedder = embedder
        self._extra_embedders = list(extra_embedders) if extra_embedders is not None else None
        self._sandbox: ExtractionSandbox | None = None
        self._sandbox_lock = threading.Lock()

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
    def sandbox(self) -> ExtractionSandbox:
        """The worker processes that extract documents under the configured limits, started on first use."""
        with self._sandbox_lock:
            if self._sandbox is None:
                limits = SandboxLimits(
                    timeout_seconds=self.settings.extract_timeout_seconds,
                    cpu_seconds=self.settings.extract_cpu_seconds,
                    memory_mb=self.settings.extract_memory_mb,
                )
                self._sandbox = ExtractionSandbox(limits, workers=self.settings.extract_workers)
            return self._sandbox

    @property
    def extraction_limits(self) -> ExtractionLimits:
        """What an extractor may read of one document, from the settings."""
        return ExtractionLimits(
            max_pages=self.settings.max_pages,
            max_chars=self.settings.max_chars,
            ocr=self.settings.ocr,
            ocr_languages=self.settings.ocr_languages,
            ocr_max_pages=self.settings.ocr_max_pages,
            archive_max_members=self.settings.archive_max_members,
            archive_max_ratio=self.settings.archive_max_ratio,
            archive_max_expanded_bytes=self.settings.archive_max_expanded_mb << 20,
        )

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

    def close_sandbox(self) -> None:
        """Stop the extraction workers (they hold the memory of the largest document they read); they restart
        on the next extraction."""
        with self._sandbox_lock:
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            sandbox.close()

    def close(self) -> None:
        """Stop the extraction workers and close the catalog."""
        self.close_sandbox()
        self.catalog.close()

    def ingest(self, data: bytes, filename: str, metadata: DocumentMetadata | None = None) -> IngestResult:
        """Store one document durably as pending; known bytes return the existing document."""
        return ingest_bytes(
            self.store, self.catalog, data, filename, metadata or DocumentMetadata(), self.settings.max_file_bytes
        )

    @property
    def passage_budget(self) -> int:
        """Tokens a passage (with its context) may use: the setting, capped by the model's window."""
        return min(self.settings.passage_max_tokens, self.embedder.max_tokens)

    @property
    def chunker_key(self) -> str:
        """Identifies how passages are cut; documents cut another way are cut again."""
        return f"{self.embedder.model_id}:{self.passage_budget}:v{CHUNKER_VERSION}"

    def extract(self, document: Document) -> Failure | None:
        """Extract one document in the sandbox and cut it, recording the outcome in the catalog; never raises for
        bad input (a parser that spins, balloons or crashes costs this document only)."""
        started = time.perf_counter()
        limits = self.extraction_limits
        try:
            extraction = self.sandbox.extract(self.store.read(document.sha256), document.filename, limits)
        except ExtractionError as exc:
            self.catalog.record_failure(document.id, exc.reason, exc.message, time.perf_counter() - started)
            return Failure(document.id, document.filename, exc.reason, exc.message)
        except Exception as exc:  # a parser bug on one file must not stop the batch
            logger.exception("extraction of %s (%s) crashed", document.id, document.filename)
            message = f"{type(exc).__name__}: {exc}"
            self.catalog.record_failure(document.id, "unreadable", message, time.perf_counter() - started)
            return Failure(document.id, document.filename, "unreadable", message)
        return self._record(document, extraction, started)

    def _record(self, document: Document, extraction: Extraction, started: float) -> Failure | None:
        """Cut an extraction into passages and record them in the catalog (or the failure of a broken text layer)."""
        if BROKEN_TEXT_ENCODING in extraction.warnings:
            message = "the text layer maps glyphs to the wrong characters (broken ToUnicode map); re-export or OCR it"
            self.catalog.record_failure(
                document.id,
                BROKEN_TEXT_ENCODING,
                message,
                time.perf_counter() - started,
                media_type=extraction.media_type,
                page_count=extraction.page_count,
                warnings=extraction.warnings,
            )
            return Failure(document.id, document.filename, BROKEN_TEXT_ENCODING, message)
        metadata = document.metadata
        title = metadata.title or infer_title(extraction, document.filename)
        passages = cut_passages(
            document.id,
            document.sha256,
            extraction,
            self.embedder.count_tokens,
            self.passage_budget,
            title=title,
            default_language=metadata.language,
        )
        self.catalog.record_extraction(
            document.id,
            passages,
            media_type=extraction.media_type,
            title=title,
            language=metadata.language or dominant_language(passages),
            page_count=extraction.page_count,
            truncated=extraction.truncated,
            warnings=extraction.warnings,
            empty_pages=extraction.empty_pages,
            ocr_pages=extraction.ocr_pages,
            chunker=self.chunker_key,
            seconds=time.perf_counter() - started,
        )
        self._link_near_duplicate(document.id, extraction)
        return None

    def _link_near_duplicate(self, document_id: str, extraction: Extraction) -> None:
        """Fingerprint the text and link the document to an indexed one it nearly duplicates."""
        signature = minhash("\n".join(section.text for section in extraction.sections))
        twin = most_similar(
            signature, self.catalog.fingerprints(), self.settings.near_duplicate_threshold, exclude=document_id
        )
        self.catalog.set_fingerprint(document_id, signature.tobytes(), twin)

    def build(
        self, full: bool = False, progress: bool = False, trigger: str = "cli", build_id: int | None = None
    ) -> BuildReport:
        """Extract what is pending, embed every passage (cached), write, verify and publish a new generation.

        Every call leaves a build record: `build_id` names a record queued for this build by whoever started the
        process (the service's build runner), otherwise a new one is made. A refused call (another build holds the
        lock) is recorded as `already_running` and raises `BuildAlreadyRunning`.
        """
        with ExitStack() as stack:
            try:
                stack.enter_context(self._build_lock())
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
            try:
                self._run_build(report, full, progress)
            except BaseException as exc:
                discard_partial_generations(generations_root(self.data_dir))
                message = f"{type(exc).__name__}: {exc}"
                self.catalog.finish_build(build_id, BUILD_FAILED, None, report.to_dict(), message)
                raise
            self.catalog.finish_build(build_id, report.outcome, report.generation_id, report.to_dict())
            return report

    def rollback(self, generation_id: str) -> Manifest:
        """Publish an older (or any complete) generation again, after verifying it; waits for no build."""
        with self._build_lock():
            folder = generations_root(self.data_dir) / generation_id
            if not generation_id or "/" in generation_id or not folder.is_dir():
                raise GenerationError(f"no generation {generation_id!r}")
            manifest = verify_generation(folder)
            publish_generation(generations_root(self.data_dir), generation_id)
            return manifest

    @contextmanager
    def _build_lock(self) -> Iterator[None]:
        handle = (self.data_dir / BUILD_LOCK_FILE).open("a")
        try:
            if not _try_lock(handle, attempts=5):
                raise BuildAlreadyRunning(f"a build is already running in {self.data_dir}")
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            handle.close()

    def _run_build(self, report: BuildReport, full: bool, progress: bool) -> None:
        started = time.perf_counter()
        root = generations_root(self.data_dir)
        remove_stale_generations(root, self.settings.keep_generations)
        check_build_space(self.data_dir, self.settings.build_space_growth, self.settings.build_min_free_mb)
        with _stage(report, "extract"):
            self._extract_pending(report, full, progress)
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
        with _stage(report, "embed"):
            vectors = [self._embed(texts, embedder, report, full, progress) for embedder in self.embedders]
        generation_id = new_generation_id()
        with _stage(report, "write"):
            folder = start_generation(root, generation_id)
            dense_indexes: list[dict[str, Any]] = []
            for position, encoder_vectors in enumerate(vectors):
                built = build_index(encoder_vectors, self.ann_options)
                write_dense_index(built.index, folder / dense_file(position))
                dense_indexes.append(built.description)
                del built
            fault_point("write")
            languages = [p.language or d.language for d, p in passages]
            LexicalIndex.build(list(zip(texts, languages, strict=True))).save(folder / LEXICAL_DIR)
            write_passage_table(folder / PASSAGES_FILE, _passage_rows(passages), _document_rows(documents, clusters))
            manifest = self._manifest(generation_id, len(passages), len(documents), dense_indexes)
            manifest.parameters["languages"] = dict(Counter(language or "und" for language in languages))
            final = finish_generation(folder, manifest)
            self._count_changes(report, root, final)
        verify_generation(final)
        if not self._passes_quality_gate(report, final):
            report.seconds["total"] = round(time.perf_counter() - started, 3)
            return
        with _stage(report, "publish"):
            fault_point("publish")
            publish_generation(root, generation_id)
            fault_point("published")
            remove_stale_generations(root, self.settings.keep_generations)
        report.generation_id = generation_id
        report.seconds["total"] = round(time.perf_counter() - started, 3)

    def _duplicate_clusters(self, documents: list[Document]) -> dict[str, list[str]]:
        """Near duplicates (a re-export, a new version) are indexed once: the newest of each group linked as near
        duplicates within one access scope, as the catalog says now (so a build after a change of visibility or
        member groups the copies anew). Keyed by the document shown, listing the others."""
        scopes = {d.id: access_scope(d.metadata.visibility, d.metadata.member) for d in documents}
        links = {d.id: d.near_duplicate_of for d in documents if d.near_duplicate_of}
        signatures = dict(self.catalog.fingerprints())
        usable = scoped_links(links, scopes, signatures, self.settings.near_duplicate_threshold)
        return duplicate_clusters(usable, [d.id for d in documents])

    def _passes_quality_gate(self, report: BuildReport, final: Path) -> bool:
        """Run the golden queries against the new, unpublished generation; on a regression below the threshold
        mark the build rejected (the generation stays on disk, unpublished, until the next build)."""
        if self.quality_search is None or not self.settings.quality_gate:
            return True
        with _stage(report, "quality"):
            quality = check_generation(
                final,
                load_golden_queries(self.settings.golden_queries),
                catalog_ids_by_filename(self.catalog),
                self.quality_search,
                self.settings.quality_top_n,
                self.settings.quality_min_pass_rate,
            )
        report.quality = quality.to_dict()
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

    def _extract_pending(self, report: BuildReport, full: bool, progress: bool) -> None:
        pending = self.catalog.documents_to_extract("" if full else self.chunker_key)
        if full:
            pending = [d for d in pending if d.status != "deleted"]
        outcomes = self._extract_in_order(pending)
        try:
            for document, failure in tqdm(
                outcomes, total=len(pending), desc="extract", unit="doc", disable=not progress or not pending
            ):
                report.documents_extracted += 1
                fault_point("extract")
                if failure is not None:
                    report.failures.append(failure)
                    report.documents_failed += 1
                    logger.warning("%s (%s): %s: %s", document.id, document.filename, failure.reason, failure.message)
        finally:  # workers first: a build stopped half-way does not wait for documents in flight
            self.close_sandbox()
            outcomes.close()

    def _extract_in_order(self, documents: list[Document]) -> Generator[tuple[Document, Failure | None], None, None]:
        """Extract and record each document, in order: one at a time, or on `extract_workers` workers at once
        (recorded in order all the same, so near-duplicates link as they would one by one)."""
        if self.settings.extract_workers == 1:
            for document in documents:
                yield document, self.extract(document)
            return
        limits = self.extraction_limits
        tasks = ((d, self.store.read(d.sha256), d.filename, limits) for d in documents)
        for document, outcome, seconds in self.sandbox.extract_many(tasks):
            if isinstance(outcome, ExtractionError):
                self.catalog.record_failure(document.id, outcome.reason, outcome.message, seconds)
                yield document, Failure(document.id, document.filename, outcome.reason, outcome.message)
            else:
                yield document, self._record(document, outcome, time.perf_counter() - seconds)

    def _embed(self, texts: Sequence[str], embedder: Embedder, report: BuildReport, full: bool, progress: bool) -> Any:
        cache = EmbeddingCache(
            self.settings.embedding_cache_path,
            f"{embedder.model_id}@{embedder.version}",
            embedder.dimension,
        )
        try:
            name = embedder.model_id.rsplit("/", 1)[-1]
            with tqdm(total=len(texts), desc=f"embed {name}", unit="passage", disable=not progress or not texts) as bar:
                vectors, embedded = cache.embed(
                    texts,
                    embedder.embed_passages,
                    batch_size=self.settings.embed_commit_passages,
                    on_progress=bar.update,
                    refresh=full,
                )
        finally:
            cache.close()
        report.passages_embedded += embedded
        return vectors

    def _manifest(
        self, generation_id: str, passages: int, documents: int, dense_indexes: list[dict[str, Any]]
    ) -> Manifest:
        """The manifest of a generation; `dense_indexes` describe each encoder's index (type, parameters,
        measured recall), the primary encoder's type being the generation's `index_type`."""
        return Manifest(
            generation_id=generation_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            model_id=self.embedder.model_id,
            model_version=self.embedder.version,
            dimension=self.embedder.dimension,
            passage_count=passages,
            document_count=documents,
            index_type=dense_indexes[0]["type"],
            encoders=[
                {
                    "model_id": e.model_id,
                    "version": e.version,
                    "dimension": e.dimension,
                    "file": dense_file(position),
                    "languages": sorted(e.languages) if e.languages is not None else None,
                    "index": dense_indexes[position],
                }
                for position, e in enumerate(self.embedders)
            ],
            catalog_state=self.catalog.state(),
            parameters={
                "passage_max_tokens": self.passage_budget,
                "chunker": self.chunker_key,
                "lexical": {"engine": "bm25s", "k1": BM25_K1, "b": BM25_B},
                "dense": {"ann_threshold": self.settings.ann_threshold, "recall_floor": self.settings.ann_recall_floor},
            },
        )


def _passage_rows(passages: list[tuple[Document, Passage]]) -> Iterator[tuple[Any, ...]]:
    for row, (_document, p) in enumerate(passages):
        yield (
            row,
            p.id,
            p.document_id,
            p.ordinal,
            p.page,
            json.dumps(p.heading, ensure_ascii=False),
            p.char_start,
            p.char_end,
            p.language,
            p.text,
        )


def _document_rows(documents: list[Document], clusters: dict[str, list[str]]) -> Iterator[tuple[Any, ...]]:
    for d in documents:
        yield (
            d.id,
            d.title,
            d.filename,
            d.media_type,
            d.page_count,
            d.language,
            json.dumps(d.metadata.to_dict(), ensure_ascii=False),
            json.dumps(clusters.get(d.id, [])),
        )
