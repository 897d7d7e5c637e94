"""The catalog: a SQLite database of documents, their passages, the builds made from them, members and keys.

`database` holds the connection and the numbered migrations; `documents`, `extractions`, `builds` and `accounts`
one aggregate each; `fairness` each member's share of a build (pending quota, extraction order); `Catalog` (the
facade) is what the rest of the code opens."""

from indexer.catalog.accounts import AccountError, ApiKey, KeyHolder, Member
from indexer.catalog.builds import (
    BUILD_ALREADY_RUNNING,
    BUILD_FAILED,
    BUILD_INTERRUPTED,
    BUILD_PUBLISHED,
    BUILD_QUEUED,
    BUILD_REJECTED,
    BUILD_RUNNING,
    BUILD_UNCHANGED,
    TRIGGER_ADMIN,
    TRIGGER_CLI,
    TRIGGER_SCHEDULE,
    TRIGGER_SOON,
    TRIGGERS,
    BuildRecord,
)
from indexer.catalog.database import SCHEMA_VERSION, CatalogVersionError, utc_now
from indexer.catalog.documents import DELETED, FAILED, INDEXED, PENDING, Document, DocumentAccess, DocumentQuery
from indexer.catalog.extractions import Passage
from indexer.catalog.facade import Catalog
from indexer.catalog.fairness import PendingQuota, QuotaExceeded

__all__ = [
    "BUILD_ALREADY_RUNNING",
    "BUILD_FAILED",
    "BUILD_INTERRUPTED",
    "BUILD_PUBLISHED",
    "BUILD_QUEUED",
    "BUILD_REJECTED",
    "BUILD_RUNNING",
    "BUILD_UNCHANGED",
    "DELETED",
    "FAILED",
    "INDEXED",
    "PENDING",
    "SCHEMA_VERSION",
    "TRIGGERS",
    "TRIGGER_ADMIN",
    "TRIGGER_CLI",
    "TRIGGER_SCHEDULE",
    "TRIGGER_SOON",
    "AccountError",
    "ApiKey",
    "BuildRecord",
    "Catalog",
    "CatalogVersionError",
    "Document",
    "DocumentAccess",
    "DocumentQuery",
    "KeyHolder",
    "Member",
    "Passage",
    "PendingQuota",
    "QuotaExceeded",
    "utc_now",
]
