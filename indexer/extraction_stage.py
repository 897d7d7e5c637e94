"""The extraction stage of a build: each pending document read in the sandbox, cut into passages, recorded.

A parser that spins, balloons or crashes costs its document only: the outcome (passages or the reason it failed)
goes to the catalog, and the build goes on. Documents come one per member in turn (the catalog's round-robin
order), and once the stage has spent `build_extract_budget_seconds` the documents not yet started are deferred:
left pending, untouched, for the next build. The first round (one document of each member) always runs, so a
member's backlog can slow its own queue but never stop another member's progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from indexer.buildreport import BuildReport, Deferred, Failure
from indexer.catalog import Catalog, Document
from indexer.extract import Extraction, ExtractionError, ExtractionLimits
from indexer.extract.model import BROKEN_TEXT_ENCODING
from indexer.faults import fault_point
from indexer.fingerprint import minhash, most_similar
from indexer.passages import CHUNKER_VERSION, cut_passages, dominant_language, infer_title
from indexer.sandbox import ExtractionSandbox, SandboxLimits
from indexer.settings import IndexerSettings
from indexer.store import OriginalsStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cutting:
    """How passages are cut: the primary model's token counter and the tokens a passage (with context) may use."""

    model_id: str
    count_tokens: Callable[[str], int]
    max_tokens: int

    @property
    def key(self) -> str:
        """Identifies how passages are cut; documents cut another way are cut again."""
        return f"{self.model_id}:{self.max_tokens}:v{CHUNKER_VERSION}"


class ExtractionStage:
    """Extracts documents of one data directory in sandboxed workers, started on first use."""

    def __init__(
        self,
        settings: IndexerSettings,
        store: OriginalsStore,
        catalog: Catalog,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` measures the extraction budget (seconds; read at the start and before each document after the
        first round)."""
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self._sandbox: ExtractionSandbox | None = None
        self._sandbox_lock = threading.Lock()

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
    def limits(self) -> ExtractionLimits:
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

    def close(self) -> None:
        """Stop the extraction workers (they hold the memory of the largest document they read); they restart
        on the next extraction."""
        with self._sandbox_lock:
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            sandbox.close()

    def run(self, report: BuildReport, full: bool, progress: bool, cutting: Cutting) -> None:
        """Extract what is pending (with `full`, every document not deleted), counting into `report`; within the
        extraction budget, except for `full` builds (an operator's explicit request to extract everything)."""
        pending = self.catalog.documents_to_extract("" if full else cutting.key)
        if full:
            pending = [d for d in pending if d.status != "deleted"]
        budget = 0.0 if full else self.settings.build_extract_budget_seconds
        outcomes = self._extract_in_order(self._within_budget(pending, budget, report), cutting)
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
            self.close()
            outcomes.close()

    def extract(self, document: Document, cutting: Cutting) -> Failure | None:
        """Extract one document in the sandbox and cut it, recording the outcome in the catalog; never raises for
        bad input."""
        started = time.perf_counter()
        try:
            extraction = self.sandbox.extract(self.store.read(document.sha256), document.filename, self.limits)
        except ExtractionError as exc:
            self.catalog.record_failure(document.id, exc.reason, exc.message, time.perf_counter() - started)
            return Failure(document.id, document.filename, exc.reason, exc.message)
        except Exception as exc:  # a parser bug on one file must not stop the batch
            logger.exception("extraction of %s (%s) crashed", document.id, document.filename)
            message = f"{type(exc).__name__}: {exc}"
            self.catalog.record_failure(document.id, "unreadable", message, time.perf_counter() - started)
            return Failure(document.id, document.filename, "unreadable", message)
        return self._record(document, extraction, started, cutting)

    def _within_budget(self, documents: Sequence[Document], budget: float, report: BuildReport) -> Iterator[Document]:
        """The documents in order, until `budget` seconds (0: no limit) have passed since the first was asked for;
        the rest are counted as deferred in `report` and left as they are. Taken lazily, so documents in flight
        on other workers finish: the stage ends within the budget plus one document's `extract_timeout_seconds`
        (or one round of documents, when the first round alone takes longer)."""
        started = self.clock()
        first_round = len({d.owner_id for d in documents})
        for index, document in enumerate(documents):
            if budget and index >= first_round and self.clock() - started >= budget:
                self._defer(documents[index:], budget, report)
                return
            yield document

    def _defer(self, documents: Sequence[Document], budget: float, report: BuildReport) -> None:
        """Report documents left pending for the next build, per member (most first)."""
        counts = Counter(d.owner_id for d in documents)
        report.documents_deferred = len(documents)
        report.deferred = [Deferred(member, n) for member, n in sorted(counts.items(), key=_most_first)]
        logger.warning(
            "extraction budget of %ss spent: %d documents left pending for the next build (%s)",
            budget,
            len(documents),
            ", ".join(f"{d.member or 'operator'}: {d.documents}" for d in report.deferred),
        )

    def _extract_in_order(
        self, documents: Iterable[Document], cutting: Cutting
    ) -> Generator[tuple[Document, Failure | None], None, None]:
        """Extract and record each document, in order: one at a time, or on `extract_workers` workers at once
        (recorded in order all the same, so near-duplicates link as they would one by one)."""
        if self.settings.extract_workers == 1:
            for document in documents:
                yield document, self.extract(document, cutting)
            return
        limits = self.limits
        tasks = ((d, self.store.read(d.sha256), d.filename, limits) for d in documents)
        for document, outcome, seconds in self.sandbox.extract_many(tasks):
            if isinstance(outcome, ExtractionError):
                self.catalog.record_failure(document.id, outcome.reason, outcome.message, seconds)
                yield document, Failure(document.id, document.filename, outcome.reason, outcome.message)
            else:
                yield document, self._record(document, outcome, time.perf_counter() - seconds, cutting)

    def _record(self, document: Document, extraction: Extraction, started: float, cutting: Cutting) -> Failure | None:
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
            cutting.count_tokens,
            cutting.max_tokens,
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
            chunker=cutting.key,
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


def _most_first(item: tuple[str | None, int]) -> tuple[int, str]:
    return -item[1], item[0] or ""
