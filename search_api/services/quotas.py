"""Which uploads count against a member's pending quota, and how large it is (see indexer.catalog.fairness).

A member's key is held to the quota, so one member cannot make every build slow by uploading a lot. Admin keys are
not: the operator decides what the operator adds (as with `moocsearch ingest`, which has no quota either). What an
admin uploads on a member's behalf still counts in that member's pending total.
"""

from __future__ import annotations

from indexer.catalog import KeyHolder, PendingQuota
from search_api.settings import ApiSettings


def pending_quota(settings: ApiSettings, caller: KeyHolder) -> PendingQuota | None:
    """The quota an upload by `caller` is held to; None for admin keys, keys of no member and a disabled quota."""
    if caller.admin or caller.member_id is None:
        return None
    if settings.member_max_pending_documents == 0 and settings.member_max_pending_mb == 0:
        return None
    return PendingQuota(
        member=caller.member_id,
        max_documents=settings.member_max_pending_documents,
        max_bytes=settings.member_max_pending_mb * 1024 * 1024,
    )
