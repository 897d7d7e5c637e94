"""The indexing pipeline: ingest originals, extract and cut pending documents, embed, publish a generation.

One code path serves the CLI, the service, the tests, evaluation and benchmarks.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from indexer.catalog import Catalog, Document, Passage
from indexer.dense import EXACT_INNER_PRODUCT, build_dense_index, write_dense_index
from indexer.embedcache import EmbeddingCache
from indexer.embedding import Embedder, load_embedder
from indexer.extract import Extraction, ExtractionError, ExtractionLimits, extract_document
from indexer.extract.model import BROKEN_TEXT_ENCODING
from indexer.fingerprint import duplicate_clusters, minhash, most_similar
from indexer.generation import (
    DENSE_FILE,
    LEXICAL_DIR,
    PASSAGES_FILE,
    GenerationError,
    Manifest,
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

    def __init__(self, settings: IndexerSettings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = OriginalsStore(self.data_dir / "originals")
        self.catalog = Catalog(self.data_dir / "catalog.sqlite3")
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        """The configured embedder, loaded on first use."""
        if self._embedder is None:
            self._embedder = load_embedder(self.settings.model, self.settings.embed_batch_size)
        return self._embedder

    def close(self) -> None:
        """Close the catalog."""
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
        """Extract and cut one document, recording the outcome in the catalog; never raises for bad input."""
        started = time.perf_counter()
        limits = ExtractionLimits(max_pages=self.settings.max_pages, max_chars=self.settings.max_chars)
        try:
            extraction = extract_document(self.store.read(document.sha256), document.filename, limits)
        except ExtractionError as exc:
            self.catalog.record_failure(document.id, exc.reason, exc.message, time.perf_counter() - started)
            return Failure(document.id, document.filename, exc.reason, exc.message)
        except Exception as exc:  # a parser bug on one file must not stop the batch
            logger.exception("extraction of %s (%s) crashed", document.id, document.filename)
            message = f"{type(exc).__name__}: {exc}"
            self.catalog.record_failure(document.id, "unreadable", message, time.perf_counter() - started)
            return Failure(document.id, document.filename, "unreadable", message)
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
            vectors = self._embed(texts, report, full, progress)
        generation_id = new_generation_id()
        with _stage(report, "write"):
            folder = start_generation(root, generation_id)
            write_dense_index(build_dense_index(vectors), folder / DENSE_FILE)
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
        for document in tqdm(pending, desc="extract", unit="doc", disable=not progress or not pending):
            failure = self.extract(document)
            report.documents_extracted += 1
            if failure is not None:
                report.failures.append(failure)
                logger.warning("%s (%s): %s: %s", document.id, document.filename, failure.reason, failure.message)

    def _embed(self, texts: Sequence[str], report: BuildReport, full: bool, progress: bool) -> Any:
        embedder = self.embedder
        cache = EmbeddingCache(
            self.settings.embedding_cache_path,
            f"{embedder.model_id}@{embedder.version}",
            embedder.dimension,
        )
        try:
            with tqdm(total=len(texts), desc="embed", unit="passage", disable=not progress or not texts) as bar:
                vectors, embedded = cache.embed(
                    texts,
                    embedder.embed_passages,
                    batch_size=max(256, self.settings.embed_batch_size),
                    on_progress=bar.update,
                    refresh=full,
                )
        finally:
            cache.close()
        report.passages_embedded = embedded
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
