"""Backup and restore of what cannot be rebuilt: the originals and the catalog.

Index generations and the embedding cache are derived from those two and are left out; after a restore,
`moocsearch index build` makes the same generation again. A backup folder holds
- `catalog.sqlite3`: a consistent copy made with SQLite's online backup API (safe while the service writes);
- `originals/ab/abcdef...`: the originals the copied catalog refers to, named by their sha256;
- `backup.json`: when it was made, counts, and the sha256 of the catalog copy, checked again on restore.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from indexer.generation import file_sha256
from indexer.store import OriginalsStore, fsync_dir

BACKUP_MANIFEST = "backup.json"
CATALOG_FILE = "catalog.sqlite3"
ORIGINALS_DIR = "originals"
BACKUP_FORMAT = 1


class BackupError(Exception):
    """A backup that cannot be made or restored; the message says why."""


@dataclass(frozen=True)
class BackupManifest:
    """What a backup holds: counts and the checksum of its catalog copy."""

    created_at: str
    documents: int
    documents_by_status: dict[str, int]
    originals: int
    original_bytes: int
    catalog_sha256: str
    format_version: int = BACKUP_FORMAT


def _empty_or_missing(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _catalog_digests(catalog: Path) -> tuple[list[str], dict[str, int]]:
    """The sha256 of every document in a catalog file, and its documents counted by status."""
    db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    try:
        digests = [row[0] for row in db.execute("SELECT sha256 FROM documents ORDER BY sha256")]
        by_status = dict(db.execute("SELECT status, COUNT(*) FROM documents GROUP BY status").fetchall())
    finally:
        db.close()
    return digests, by_status


def backup_data_dir(data_dir: Path, destination: Path) -> BackupManifest:
    """Copy the catalog (SQLite backup API) and the originals it refers to into an empty `destination`."""
    source_catalog = data_dir / CATALOG_FILE
    if not source_catalog.is_file():
        raise BackupError(f"{data_dir} holds no catalog ({CATALOG_FILE}); nothing to back up")
    if not _empty_or_missing(destination):
        raise BackupError(f"{destination} is not empty; back up into a new or empty folder")
    destination.mkdir(parents=True, exist_ok=True)
    catalog_copy = destination / CATALOG_FILE
    source = sqlite3.connect(source_catalog, timeout=30)
    target = sqlite3.connect(catalog_copy)
    try:
        source.backup(target)  # one consistent snapshot, even while the service writes
        target.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
    finally:
        target.close()
        source.close()
    # Originals are immutable and stored before their catalog row: every one the snapshot names exists.
    digests, by_status = _catalog_digests(catalog_copy)
    store, copy = OriginalsStore(data_dir / ORIGINALS_DIR), OriginalsStore(destination / ORIGINALS_DIR)
    total = 0
    for digest in digests:
        target_path = copy.path_for(digest)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.path_for(digest), target_path)
        total += target_path.stat().st_size
    manifest = BackupManifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        documents=len(digests),
        documents_by_status=by_status,
        originals=len(digests),
        original_bytes=total,
        catalog_sha256=file_sha256(catalog_copy),
    )
    (destination / BACKUP_MANIFEST).write_text(json.dumps(asdict(manifest), indent=2), encoding="utf-8")
    return manifest


def read_backup_manifest(source: Path) -> BackupManifest:
    """The manifest of a backup folder; raises BackupError when it is missing or malformed."""
    try:
        data = json.loads((source / BACKUP_MANIFEST).read_text(encoding="utf-8"))
        manifest = BackupManifest(**data)
    except FileNotFoundError:
        raise BackupError(f"{source} is not a backup: it has no {BACKUP_MANIFEST}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"{source}/{BACKUP_MANIFEST} is unreadable: {exc}") from exc
    if manifest.format_version != BACKUP_FORMAT:
        raise BackupError(f"{source}: unsupported backup format {manifest.format_version!r}")
    return manifest


def verify_backup(source: Path) -> BackupManifest:
    """Check a backup against its manifest: the catalog's checksum and every original's sha256."""
    manifest = read_backup_manifest(source)
    catalog = source / CATALOG_FILE
    if not catalog.is_file() or file_sha256(catalog) != manifest.catalog_sha256:
        raise BackupError(f"{source}: {CATALOG_FILE} is missing or does not match its checksum")
    digests, _ = _catalog_digests(catalog)
    if len(digests) != manifest.documents:
        raise BackupError(
            f"{source}: the catalog holds {len(digests)} documents, the manifest says {manifest.documents}"
        )
    originals = OriginalsStore(source / ORIGINALS_DIR)
    for digest in digests:
        path = originals.path_for(digest)
        if not path.is_file() or file_sha256(path) != digest:
            raise BackupError(f"{source}: original {digest} is missing or damaged")
    return manifest


def restore_data_dir(source: Path, data_dir: Path) -> BackupManifest:
    """Restore a verified backup into an empty (or missing) data directory; build the index afterwards.

    The files are copied into a temporary sibling folder that takes the data directory's name only when
    complete, so an interrupted restore never leaves a half-restored data directory.
    """
    if not _empty_or_missing(data_dir):
        raise BackupError(f"{data_dir} is not empty; restore only into a new or empty data directory")
    manifest = verify_backup(source)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.with_name(f".{data_dir.name}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source / ORIGINALS_DIR, staging / ORIGINALS_DIR)
    shutil.copyfile(source / CATALOG_FILE, staging / CATALOG_FILE)
    for path in staging.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    if data_dir.exists():
        data_dir.rmdir()  # empty, checked above
    os.replace(staging, data_dir)
    fsync_dir(data_dir.parent)
    return manifest
