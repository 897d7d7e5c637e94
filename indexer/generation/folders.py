"""Generation folders on disk: building one under a temporary name, verifying, publishing, retention.

Retention keeps the newest of the generations ever published (`PUBLISHED`); a folder that was never published
(a build killed before its pointer switch, a build the quality gate rejected) is a leftover that the next build
removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from indexer.generation.contract import (
    DENSE_FILE,
    HISTORY_FILE,
    LEXICAL_DIR,
    MANIFEST_FILE,
    PASSAGES_FILE,
    POINTER_FILE,
    GenerationError,
    Manifest,
)
from indexer.store import fsync_dir, write_durably

_BUILDING_SUFFIX = ".building"
_TEMP_PREFIX = ".tmp-"  # write_durably's temp files: a process killed mid-write leaves one behind


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


def finish_generation(folder: Path, manifest: Manifest) -> Path:
    """Checksum the files, write the manifest, fsync everything and give the folder its final name."""
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    files = {p.relative_to(folder).as_posix(): file_sha256(p) for p in paths}
    manifest = replace(manifest, files=files)
    for path in paths:
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    for sub in {p.parent for p in paths}:
        fsync_dir(sub)
    write_durably(folder / MANIFEST_FILE, json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False).encode())
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
    encoder_files = [e.file for e in manifest.encoders]
    for required in dict.fromkeys((DENSE_FILE, *encoder_files, PASSAGES_FILE, f"{LEXICAL_DIR}/size")):
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
