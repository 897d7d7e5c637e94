"""The data directory is its owner's alone: files 0600, folders 0700 (issue 11, defect 6).

The catalog and the passage tables hold the text of member-only documents, the originals store their bytes;
created under the usual umask (022) they were readable by every user of the machine. Three layers:
- `restrict_umask` at the entry points (the `moocsearch` command, the app factory), so that whatever a library
  writes there (faiss, bm25s, SQLite's journals, backups) is created owner-only;
- `create_private_file` before SQLite creates a database, so the catalog and the passage tables are 0600 even
  in a process that did not set the umask (SQLite gives its -wal and -shm files the database's mode);
- `secure_data_dir` when an indexer or the service opens a data directory: a new one is created 0700, and one
  open to others (made by an earlier version) is tightened once, with a warning saying how many paths changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

OWNER_ONLY_UMASK = 0o077
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def restrict_umask() -> int:
    """Make this process create files 0600 and folders 0700 from now on; returns the previous umask."""
    previous = os.umask(OWNER_ONLY_UMASK)
    os.umask(previous | OWNER_ONLY_UMASK)
    return previous


def create_private_file(path: Path) -> None:
    """Create `path` empty and owner-only unless it exists (an existing file keeps its mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _tighten(path: Path) -> bool:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode) or not mode & _OTHERS:
        return False
    path.chmod(stat.S_IMODE(mode) & ~_OTHERS)
    return True


def secure_data_dir(data_dir: Path) -> list[Path]:
    """Create `data_dir` owner-only; if it exists and others may enter it, take group and other permissions off
    it and everything below (symbolic links are not followed). Returns the paths changed, after logging a
    warning; a data directory already 0700 is not walked (what is below is out of others' reach)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not data_dir.stat().st_mode & _OTHERS:
        return []
    changed = [data_dir] if _tighten(data_dir) else []
    for root, folders, files in os.walk(data_dir):
        for name in folders + files:
            path = Path(root) / name
            if _tighten(path):
                changed.append(path)
    if changed:
        logger.warning(
            "the data directory %s was open to other users: removed group and other permissions from %d paths",
            data_dir,
            len(changed),
        )
    return changed
