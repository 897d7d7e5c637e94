"""One build at a time per data directory: an exclusive `flock` on `build.lock`, which also names the holder's pid."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

BUILD_LOCK_FILE = "build.lock"


class BuildAlreadyRunning(RuntimeError):
    """Another build holds the lock of this data directory."""


def _try_lock(handle: IO[str], attempts: int) -> bool:
    """Take the exclusive lock without blocking, trying a few times over ~0.2 s: a `build_lock_holder` probe
    holds it for an instant, and must not make a real build think another one is running."""
    for attempt in range(attempts):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(0.05)
    return False


def build_lock_holder(data_dir: Path) -> int | None:
    """The pid of the process building in `data_dir` (0 if it cannot be read), or None when no build runs."""
    path = data_dir / BUILD_LOCK_FILE
    if not path.exists():
        return None
    with path.open("a+") as handle:
        if _try_lock(handle, attempts=1):
            return None  # closing the file releases the probe's lock
        handle.seek(0)
        text = handle.read().strip()
        return int(text) if text.isdigit() else 0


@contextmanager
def build_lock(data_dir: Path) -> Iterator[None]:
    """Hold the build lock of `data_dir`, writing our pid into it; raises BuildAlreadyRunning when it is held."""
    handle = (data_dir / BUILD_LOCK_FILE).open("a")
    try:
        if not _try_lock(handle, attempts=5):
            raise BuildAlreadyRunning(f"a build is already running in {data_dir}")
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
