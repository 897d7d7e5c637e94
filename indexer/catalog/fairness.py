"""Each member's share of the build: a quota of pending documents and bytes, and the round-robin extraction order.

A build extracts what is pending; without a share per member, one member uploading a thousand files makes every
build slow and puts everyone else's single upload at the end of the queue. Two rules keep the cost shared:
- at upload, a member may have at most `max_documents` pending documents of `max_bytes` in all (checked inside the
  insert's write transaction, so two concurrent uploads cannot both pass at the edge);
- at extraction, pending documents are taken one per member in turn (each member's oldest first, then each
  member's second...), so another member's upload waits at most one round, not for the whole backlog.

Whose document it is: its `owner_id`, the member whose key uploaded it (NULL for the operator's documents).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

# Who owns a document, for quotas and the extraction order: the member its uploader's key spoke for, NULL for
# operator-ingested documents without a registered member (which form their own queue).
OWNER_SQL = "owner_id"

# The order documents are extracted in: round by round, one document of each owner per round (its oldest waiting
# first); within a round, in upload order. NULL owners form one partition (SQLite), the operator's queue.
ROUND_ROBIN_ORDER = f"ROW_NUMBER() OVER (PARTITION BY {OWNER_SQL} ORDER BY created_at, rowid), created_at, rowid"

_MB = 1024 * 1024


@dataclass(frozen=True)
class PendingQuota:
    """What one member may have waiting for the next build; 0 disables a limit.

    `member` is the owning member's id (`documents.owner_id`)."""

    member: str
    max_documents: int
    max_bytes: int


class QuotaExceeded(Exception):
    """An upload that would take its member over its pending quota; nothing was stored."""

    def __init__(self, quota: PendingQuota, pending_documents: int, pending_bytes: int, size: int) -> None:
        limits = []
        if quota.max_documents:
            limits.append(f"{quota.max_documents} documents")
        if quota.max_bytes:
            limits.append(f"{quota.max_bytes / _MB:.0f} MB")
        message = (
            f"upload quota exceeded: {quota.member} has {pending_documents} documents "
            f"({pending_bytes / _MB:.1f} MB) waiting for the next index build, and this file ({size / _MB:.1f} MB) "
            f"would go over the limit of {' and '.join(limits)} pending per member; the quota clears as the next "
            "build extracts them, then upload again"
        )
        super().__init__(message)
        self.message = message
        self.pending_documents = pending_documents
        self.pending_bytes = pending_bytes


def check_pending_quota(connection: sqlite3.Connection, quota: PendingQuota, size: int) -> None:
    """QuotaExceeded when one more pending document of `size` bytes would take `quota.member` over its quota.

    Run it in the write transaction that inserts the document (`Database.write(check=...)`): the count then sees
    every committed upload and no other writer can commit before the insert, so the quota is never overshot."""
    count, total = connection.execute(
        f"SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM documents WHERE status = 'pending' AND {OWNER_SQL} = ?",
        (quota.member,),
    ).fetchone()
    over_count = quota.max_documents > 0 and count + 1 > quota.max_documents
    over_bytes = quota.max_bytes > 0 and total + size > quota.max_bytes
    if over_count or over_bytes:
        raise QuotaExceeded(quota, int(count), int(total), size)
