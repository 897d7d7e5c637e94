"""The catalog as its callers see it: one object over one connection and one lock, delegating by aggregate."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from indexer.access import DEFAULT_MEMBER_VISIBILITY, Viewer
from indexer.catalog.accounts import Accounts, ApiKey, KeyHolder, Member
from indexer.catalog.builds import BUILD_RUNNING, BuildRecord, Builds
from indexer.catalog.database import Database
from indexer.catalog.documents import INDEXED, Document, DocumentAccess, DocumentQuery, Documents
from indexer.catalog.extractions import Extractions, Passage
from indexer.catalog.fairness import PendingQuota
from indexer.metadata import DocumentMetadata


class Catalog:
    """Thread-safe access to the catalog database (WAL, synchronous=FULL: a commit survives power loss); opening
    it migrates an older catalog to the current schema and refuses one written by a newer release."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = Database(path)
        self._documents = Documents(self._db)
        self._extractions = Extractions(self._db)
        self._builds = Builds(self._db)
        self._accounts = Accounts(self._db)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # Raw statements in one transaction: for tests that play another writer (a commit with a late timestamp).
    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self._db.write(statements)

    # Documents.

    def add_document(
        self,
        sha256: str,
        filename: str,
        size_bytes: int,
        metadata: DocumentMetadata,
        owner_id: str | None = None,
        quota: PendingQuota | None = None,
    ) -> tuple[Document, bool]:
        """Insert a pending document owned by `owner_id` (None: the member its `member` field names, if any);
        returns (document, created). Known bytes return the existing row, except a deleted one, which comes back
        as pending with the new name, metadata and owner. A new pending document over `quota` raises
        QuotaExceeded (checked in the insert's transaction) and changes nothing."""
        return self._documents.add(sha256, filename, size_bytes, metadata, owner_id, quota)

    def check_quota(self, quota: PendingQuota, sha256: str, size_bytes: int) -> None:
        """QuotaExceeded when storing these bytes would add a pending document over `quota` (before storing)."""
        self._documents.check_quota(quota, sha256, size_bytes)

    def update_metadata(self, document_id: str, metadata: DocumentMetadata) -> Document | None:
        """Replace a document's metadata; visibility and member count in searches at once (`document_access`)."""
        return self._documents.update_metadata(document_id, metadata)

    def delete_document(self, document_id: str) -> Document | None:
        """Mark a document deleted (its passages leave the next generation); None if there is no such document."""
        return self._documents.delete(document_id)

    def find_by_sha256(self, sha256: str) -> Document | None:
        """The document stored with these bytes, if any."""
        return self._documents.find_by_sha256(sha256)

    def get_document(self, document_id: str) -> Document | None:
        """One document by id."""
        return self._documents.get(document_id)

    def query_documents(
        self, query: DocumentQuery, viewer: Viewer | None, limit: int, offset: int
    ) -> tuple[list[Document], int]:
        """A page of the documents `viewer` may see (None: all) that match `query`, oldest first, and the total."""
        return self._documents.query(query, viewer, limit, offset)

    def document_access(self) -> dict[str, DocumentAccess]:
        """Status, visibility and owner of every document, as the catalog says now (never mutated)."""
        return self._documents.access()

    def list_documents(self, status: str | None = None, limit: int = 1000, offset: int = 0) -> list[Document]:
        """Documents in the order they were added, optionally with one status."""
        return self._documents.list_by_status(status, limit, offset)

    def count_by_status(self) -> dict[str, int]:
        """How many documents have each status."""
        return self._documents.count_by_status()

    def documents_to_extract(self, chunker: str) -> list[Document]:
        """Pending documents, and indexed ones whose passages were cut for another model or budget."""
        return self._documents.to_extract(chunker)

    def state(self) -> dict[str, Any]:
        """What a generation was built from: document counts by status and the latest change."""
        return self._documents.state()

    def oldest_pending_change(self) -> str | None:
        """The time of the longest-waiting pending document, if any (what `build soon` measures)."""
        return self._documents.oldest_pending_change()

    # Extraction: passages, outcomes, fingerprints.

    def record_extraction(
        self,
        document_id: str,
        passages: Sequence[Passage],
        *,
        media_type: str,
        title: str | None,
        language: str | None,
        page_count: int | None,
        truncated: bool,
        warnings: Sequence[str] = (),
        empty_pages: Sequence[int] = (),
        ocr_pages: Sequence[int] = (),
        chunker: str,
        seconds: float,
    ) -> None:
        """Replace a document's passages and mark it indexed, in one transaction (one deleted meanwhile stays
        deleted)."""
        self._extractions.record(
            document_id,
            passages,
            media_type=media_type,
            title=title,
            language=language,
            page_count=page_count,
            truncated=truncated,
            warnings=warnings,
            empty_pages=empty_pages,
            ocr_pages=ocr_pages,
            chunker=chunker,
            seconds=seconds,
        )

    def record_failure(
        self,
        document_id: str,
        reason: str,
        message: str,
        seconds: float,
        media_type: str | None = None,
        page_count: int | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        """Mark a document failed with a reason code; its old passages go."""
        self._extractions.record_failure(document_id, reason, message, seconds, media_type, page_count, warnings)

    def set_fingerprint(self, document_id: str, fingerprint: bytes, near_duplicate_of: str | None) -> None:
        """Store a document's text fingerprint and the document it nearly duplicates, if any."""
        self._extractions.set_fingerprint(document_id, fingerprint, near_duplicate_of)

    def fingerprints(self) -> list[tuple[str, bytes]]:
        """(id, fingerprint) of indexed documents, oldest first."""
        return self._extractions.fingerprints()

    def passages_of(self, document_id: str) -> list[Passage]:
        """A document's passages in reading order."""
        return self._extractions.passages_of(document_id)

    def indexed_passages(self) -> Iterator[tuple[Document, list[Passage]]]:
        """Every indexed document with its passages, in a stable order (the order of the index rows)."""
        for document in self.list_documents(status=INDEXED, limit=-1):
            yield document, self.passages_of(document.id)

    # Build records.

    def start_build(self, trigger: str = "cli", pid: int | None = None, outcome: str = BUILD_RUNNING) -> int:
        """Record a build as running in process `pid` (or `queued` for a process yet to start); returns its id."""
        return self._builds.start(trigger, pid, outcome)

    def mark_build_running(self, build_id: int, pid: int) -> None:
        """A queued build's process holds the lock now: record its pid and its real start."""
        self._builds.mark_running(build_id, pid)

    def finish_build(
        self,
        build_id: int,
        outcome: str,
        generation_id: str | None,
        report: dict[str, Any],
        message: str | None = None,
    ) -> None:
        """Record how a build ended (`message`: why it failed or was refused)."""
        self._builds.finish(build_id, outcome, generation_id, report, message)

    def refuse_build(self, trigger: str, message: str, build_id: int | None = None) -> int:
        """Record a build that did not start because another one was running (`build_id`: its queued record)."""
        return self._builds.refuse(trigger, message, build_id)

    def fail_unfinished_build(self, build_id: int, outcome: str, message: str) -> bool:
        """End a build that is still queued or running (its process is gone); False if it had ended."""
        return self._builds.fail_unfinished(build_id, outcome, message)

    def interrupt_stale_builds(self, keep: int | None = None) -> int:
        """Mark queued or running builds (but `keep`) interrupted; returns how many were marked."""
        return self._builds.interrupt_stale(keep)

    def get_build(self, build_id: int) -> BuildRecord | None:
        """One build record by id."""
        return self._builds.get(build_id)

    def list_builds(self, limit: int = 20, offset: int = 0) -> list[BuildRecord]:
        """Build records, newest first."""
        return self._builds.newest_first(limit, offset)

    def count_builds(self) -> int:
        """How many build records there are."""
        return self._builds.count()

    def last_build_start(self) -> str | None:
        """When the latest build that got the lock started (refused attempts do not count)."""
        return self._builds.last_start()

    def failed_builds_in_a_row(self) -> int:
        """How many of the latest builds that got the lock ended without publishing, back to the last published."""
        return self._builds.failed_in_a_row()

    def last_finished_build(self) -> dict[str, Any] | None:
        """The most recent build that ended (id, started_at, finished_at, outcome, generation_id), or None."""
        return self._builds.last_finished()

    # Members and API keys.

    def add_member(self, member_id: str, name: str, default_visibility: str = DEFAULT_MEMBER_VISIBILITY) -> Member:
        """Register an institution; its id and its canonical name must be new. Documents without an owner that
        name it become its own."""
        return self._accounts.add_member(member_id, name, default_visibility)

    def set_member(self, member_id: str, name: str | None = None, default_visibility: str | None = None) -> Member:
        """Rename a member (ownership is by id and stays) or change its uploads' default visibility."""
        return self._accounts.set_member(member_id, name, default_visibility)

    def member_by_name(self, name: str) -> Member | None:
        """The member a name designates (its exact display name, else its canonical name), if any."""
        return self._accounts.member_by_name(name)

    def get_member(self, member_id: str) -> Member | None:
        """One member by id."""
        return self._accounts.get_member(member_id)

    def list_members(self) -> list[Member]:
        """Every member, by id."""
        return self._accounts.list_members()

    def set_member_disabled(self, member_id: str, disabled: bool) -> Member:
        """Disable (or enable again) a member: a disabled member's keys stop working at once."""
        return self._accounts.set_member_disabled(member_id, disabled)

    def create_key(self, member_id: str | None, admin: bool = False, label: str | None = None) -> tuple[ApiKey, str]:
        """Make a key for a member (or an admin key); returns it and its secret, which is never shown again."""
        return self._accounts.create_key(member_id, admin, label)

    def list_keys(self, member_id: str | None = None) -> list[ApiKey]:
        """Keys (all, or one member's), oldest first, without secrets."""
        return self._accounts.list_keys(member_id)

    def revoke_key(self, prefix: str) -> ApiKey:
        """Revoke a key by its prefix; it stops working at once. Revoking twice keeps the first time."""
        return self._accounts.revoke_key(prefix)

    def authenticate(self, token: str) -> KeyHolder | None:
        """Who a presented key speaks for, or None for a malformed, unknown, revoked or disabled-member key."""
        return self._accounts.authenticate(token)
