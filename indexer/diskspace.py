"""Disk-space check before a build: refuse to start one that could fill the disk half-way through."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from indexer.generation import directory_size, generations_root, published_generation_id

DiskUsage = Callable[[Path], Any]  # shutil.disk_usage's signature: a result with a `.free` attribute (bytes)


class InsufficientSpaceError(RuntimeError):
    """Not enough free disk space for a new generation."""


def required_build_bytes(data_dir: Path, growth: float, min_free_mb: int) -> tuple[int, int]:
    """(bytes a build needs free, size of the published generation): the new generation is estimated at the
    published one's size times `growth` (nothing before the first build), plus `min_free_mb` kept free."""
    root = generations_root(data_dir)
    published = published_generation_id(root)
    current = directory_size(root / published) if published else 0
    return int(current * growth) + (min_free_mb << 20), current


def check_build_space(data_dir: Path, growth: float, min_free_mb: int, disk_usage: DiskUsage | None = None) -> None:
    """Raise InsufficientSpaceError when the file system of `data_dir` has less free space than a build needs
    (`disk_usage`: shutil.disk_usage, looked up at each call)."""
    needed, current = required_build_bytes(data_dir, growth, min_free_mb)
    free = int((disk_usage or shutil.disk_usage)(data_dir).free)
    if free < needed:
        raise InsufficientSpaceError(
            f"not enough free disk space for a new generation in {data_dir}: {free >> 20} MiB free, "
            f"{needed >> 20} MiB needed (published generation {current >> 20} MiB x {growth:g} "
            f"+ {min_free_mb} MiB margin); free some space or lower keep_generations, then build again"
        )
