"""The indexing pipeline: ingest originals, extract and cut pending documents, embed, publish a generation.

One code path serves the CLI, the service, the tests, evaluation and benchmarks.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from indexer.catalog import Catalog, Document, Passage
from indexer.dense import EXACT_INNER_PRODUCT, build_dense_index, write_dense_index
from indexer.embedcache import EmbeddingCache
from indexer.embedding import Embedder, load_embedder, model_list
from indexer.extract import Extraction, ExtractionError, ExtractionLimits
from indexer.extract.model import BROKEN_TEXT_ENCODING
from indexer.fingerprint import duplicate_clusters, minhash, most_similar
from indexer.generation import (
    LEXICAL_DIR,
    PASSAGES_FILE,
    GenerationError,
    Manifest,
    dense_file,
    finish_generation,
    generations_root,
    new_generation_id,
    publish_generation,
    remove_stale_generations,
    start_generation,
    verify_generation,
    write_passage_table,
)
from indexer.ingest import IngestResult, ingest_bytes
from indexer.lexical import BM25_B, BM25_K1, LexicalIndex
from indexer.metadata import DocumentMetadata
from indexer.passages import CHUNKER_VERSION, cut_passages, dominant_language, embedding_text, infer_title
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
    """What a build did: counts, failures and seconds per stage."""

    generation_id: str | None = None
    documents_extracted: int = 0
    documents_indexed: int = 0
    passages: int = 0
    passages_embedded: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


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
    ) -> None:
        self.settings = settings
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

    def build(self, full: bool = False, progress: bool = False) -> BuildReport:
        """Extract what is pending, embed every passage (cached), write, verify and publish a new generation."""
        with self._build_lock():
            build_id = self.catalog.start_build()
            report = BuildReport()
            try:
                self._run_build(report, full, progress)
            except BaseException as exc:
                self.catalog.finish_build(build_id, "failed", None, {**report.to_dict(), "error": repr(exc)})
                raise
            self.catalog.finish_build(build_id, "published", report.generation_id, report.to_dict())
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
        handle = (self.data_dir / "build.lock").open("a")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BuildAlreadyRunning(f"a build is already running in {self.data_dir}") from None
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
        with _stage(report, "extract"):
            self._extract_pending(report, full, progress)
        documents: list[Document] = []
        passages: list[tuple[Document, Passage]] = []
        indexed = list(self.catalog.indexed_passages())
        # Near duplicates (a re-export, a new version) are indexed once: the newest of each group.
        links = {d.id: d.near_duplicate_of for d, _ in indexed if d.near_duplicate_of}
        clusters = duplicate_clusters(links, [d.id for d, _ in indexed])
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
            for position, encoder_vectors in enumerate(vectors):
                write_dense_index(build_dense_index(encoder_vectors), folder / dense_file(position))
            languages = [p.language or d.language for d, p in passages]
            LexicalIndex.build(list(zip(texts, languages, strict=True))).save(folder / LEXICAL_DIR)
            write_passage_table(folder / PASSAGES_FILE, _passage_rows(passages), _document_rows(documents, clusters))
            manifest = self._manifest(generation_id, len(passages), len(documents))
            manifest.parameters["languages"] = dict(Counter(language or "und" for language in languages))
            final = finish_generation(folder, manifest)
        with _stage(report, "publish"):
            verify_generation(final)
            publish_generation(root, generation_id)
            remove_stale_generations(root, self.settings.keep_generations)
        report.generation_id = generation_id
        report.seconds["total"] = round(time.perf_counter() - started, 3)

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
                if failure is not None:
                    report.failures.append(failure)
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
                    batch_size=max(256, self.settings.embed_batch_size),
                    on_progress=bar.update,
                    refresh=full,
                )
        finally:
            cache.close()
        report.passages_embedded += embedded
        return vectors

    def _manifest(self, generation_id: str, passages: int, documents: int) -> Manifest:
        return Manifest(
            generation_id=generation_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            model_id=self.embedder.model_id,
            model_version=self.embedder.version,
            dimension=self.embedder.dimension,
            passage_count=passages,
            document_count=documents,
            index_type=EXACT_INNER_PRODUCT,
            encoders=[
                {
                    "model_id": e.model_id,
                    "version": e.version,
                    "dimension": e.dimension,
                    "file": dense_file(position),
                    "languages": sorted(e.languages) if e.languages is not None else None,
                }
                for position, e in enumerate(self.embedders)
            ],
            catalog_state=self.catalog.state(),
            parameters={
                "passage_max_tokens": self.passage_budget,
                "chunker": self.chunker_key,
                "lexical": {"engine": "bm25s", "k1": BM25_K1, "b": BM25_B},
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
