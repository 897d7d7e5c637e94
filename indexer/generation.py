"""The index generation format: the one contract between the indexer (writes) and the search API (reads).

A generation is an immutable folder `<data_dir>/generations/<id>/` holding
- `manifest.json`: format version, model id/version/dimension, counts, index type, parameters, the catalog
  state it was built from, and the sha256 of every other file;
- `dense.faiss`, `dense-1.faiss`, ...: the vectors of each encoder listed in the manifest (row i = passage i),
  exact or approximate by corpus size (`indexer/dense.py`; the manifest's encoder entry says which);
- `passages.sqlite3`: the passage table (row -> text, provenance) and the documents it cites;
- `lexical/`: the BM25 index over the same rows.
The published generation is named by the pointer file `<data_dir>/generations/CURRENT`, replaced atomically.
`<data_dir>/generations/PUBLISHED` lists the generations ever published: retention keeps the newest of those, and
a folder that was never published (a build killed before its pointer switch, a build the quality gate rejected)
is a leftover that the next build removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.store import fsync_dir, write_durably

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
DENSE_FILE = "dense.faiss"
PASSAGES_FILE = "passages.sqlite3"
LEXICAL_DIR = "lexical"
POINTER_FILE = "CURRENT"
HISTORY_FILE = "PUBLISHED"
_BUILDING_SUFFIX = ".building"
_TEMP_PREFIX = ".tmp-"  # write_durably's temp files: a process killed mid-write leaves one behind

PASSAGE_SCHEMA = """
CREATE TABLE passages (
    row INTEGER PRIMARY KEY,
    passage_id TEXT NOT NULL,
    document_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    language TEXT,
    text TEXT NOT NULL
);
CREATE TABLE documents (
    document_id TEXT PRIMARY KEY,
    title TEXT,
    filename TEXT NOT NULL,
    media_type TEXT,
    page_count INTEGER,
    language TEXT,
    metadata TEXT NOT NULL,
    near_duplicates TEXT NOT NULL
);
CREATE INDEX passages_passage_id ON passages(passage_id);
"""


class GenerationError(Exception):
    """A generation that is missing, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class Manifest:
    """What a generation holds and how it was made."""

    generation_id: str
    created_at: str
    model_id: str
    model_version: str
    dimension: int
    passage_count: int
    document_count: int
    index_type: str
    files: dict[str, str] = field(default_factory=dict)
    encoders: list[dict[str, Any]] = field(default_factory=list)
    catalog_state: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Parse a manifest, refusing unknown format versions."""
        if data.get("format_version") != FORMAT_VERSION:
            raise GenerationError(f"unsupported generation format {data.get('format_version')!r}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise GenerationError(f"malformed manifest: {exc}") from exc


def dense_file(position: int) -> str:
    """The dense index file of the encoder at `position` in the manifest's list (0: the primary encoder)."""
    return DENSE_FILE if position == 0 else f"dense-{position}.faiss"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_generation_id() -> str:
    """A sortable, unique generation id: creation time plus random bits."""
    return datetime.now(UTC).strftime("g%Y%m%dT%H%M%S%fZ-") + secrets.token_hex(3)


def generations_root(data_dir: Path) -> Path:
    """The folder that holds every generation and the pointer."""
    return data_dir / "generations"


def start_generation(root: Path, generation_id: str) -> Path:
    """A fresh folder to build a generation in; it only gets its final name once complete."""
    folder = root / (generation_id + _BUILDING_SUFFIX)
    folder.mkdir(parents=True)
    return folder


def write_passage_table(path: Path, passages: Iterable[tuple[Any, ...]], documents: Iterable[tuple[Any, ...]]) -> None:
    """Write the passage table: rows in vector order, and the documents they belong to."""
    db = sqlite3.connect(path)
    try:
        db.executescript(PASSAGE_SCHEMA)
        db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", passages)
        db.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)", documents)
        db.commit()
    finally:
        db.close()


def finish_generation(folder: Path, manifest: Manifest) -> Path:
    """Checksum the files, write the manifest, fsync everything and give the folder its final name."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    files = {p.relative_to(folder).as_posix(): file_sha256(p) for p in paths}
    manifest = Manifest(**{**asdict(manifest), "files": files})
    for path in paths:
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    for sub in {p.parent for p in paths}:
        fsync_dir(sub)
    write_durably(folder / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2, ensure_ascii=False).encode())
    final = folder.with_name(manifest.generation_id)
    os.replace(folder, final)
    fsync_dir(final.parent)
    return final


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a generation folder."""
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GenerationError(f"{folder.name}: cannot read manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise GenerationError(f"{folder.name}: manifest is not an object")
    return Manifest.from_dict(data)


def verify_generation(folder: Path) -> Manifest:
    """Check every file against the manifest's sha256; raises GenerationError on any difference."""
    manifest = read_manifest(folder)
    for required in (DENSE_FILE, PASSAGES_FILE, f"{LEXICAL_DIR}/size"):
        if required not in manifest.files:
            raise GenerationError(f"{folder.name}: manifest lists no {required}")
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise GenerationError(f"{folder.name}: {name} is missing")
        if file_sha256(path) != expected:
            raise GenerationError(f"{folder.name}: {name} does not match its checksum")
    return manifest


def publish_generation(root: Path, generation_id: str) -> None:
    """Make a complete generation the published one, atomically, and add it to the publish history.

    The history is written first: a crash between the two writes leaves a complete generation listed as
    published (kept by retention), never a published one unlisted.
    """
    if not (root / generation_id / MANIFEST_FILE).is_file():
        raise GenerationError(f"no complete generation {generation_id}")
    on_disk = list_generations(root)
    earlier = published_history(root)
    history = [g for g in (on_disk if earlier is None else earlier) if g in on_disk and g != generation_id]
    write_durably(root / HISTORY_FILE, "".join(f"{g}\n" for g in [*history, generation_id]).encode())
    write_durably(root / POINTER_FILE, (generation_id + "\n").encode())


def published_history(root: Path) -> list[str] | None:
    """Generations published at some time, oldest publish first; None for a folder older than the history file
    (every complete generation there counts as published)."""
    try:
        text = (root / HISTORY_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


def published_generation_id(root: Path) -> str | None:
    """The id the pointer names, or None before the first publish."""
    try:
        value = (root / POINTER_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return value or None


def list_generations(root: Path) -> list[str]:
    """Ids of complete generations, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / MANIFEST_FILE).is_file())


def remove_stale_generations(root: Path, keep: int, protect: Sequence[str] = ()) -> list[str]:
    """Delete build leftovers and old generations; returns the names removed.

    Leftovers are unfinished build folders, temp files of interrupted writes and complete generations that were
    never published (killed before the pointer switch, or rejected by the quality gate). Of the published
    generations, the newest `keep` stay; the published one and any in `protect` are never removed.
    """
    if not root.is_dir():
        return []
    complete = list_generations(root)
    history = published_history(root)
    ever_published = complete if history is None else [g for g in complete if g in set(history)]
    keep_ids = set(ever_published[-keep:]) | {published_generation_id(root)} | set(protect)
    removed = []
    for path in sorted(root.iterdir()):
        if path.name in keep_ids:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(_TEMP_PREFIX):
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path.name)
    return removed


def discard_partial_generations(root: Path) -> list[str]:
    """Delete unfinished build folders and temp files (after a failed build); complete generations stay."""
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and path.name.endswith(_BUILDING_SUFFIX):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.startswith(_TEMP_PREFIX):
            path.unlink(missing_ok=True)
        else:
            continue
        removed.append(path.name)
    return removed


def directory_size(path: Path) -> int:
    """Bytes of the files under `path` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
