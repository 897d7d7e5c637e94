"""The originals store: uploaded bytes kept by their sha256, written durably before anyone is told "stored"."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from indexer.faults import fault_point

TEMP_PREFIX = ".tmp-"  # write_durably's temp files are named `.tmp-<pid of the writer>-<random>`


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename or a new file in it survives power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, fault: str | None = None) -> None:
    """Write bytes to `path` atomically: temp file, fsync, rename, fsync the folder.

    The temp file's name carries the writer's process id, so that a cleanup can tell the leftover of a killed
    writer from the file of one still writing. `fault` names the fault point (see `indexer.faults`) between the
    fsync and the rename, where a crash leaves a complete temp file and no `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if fault is not None:
            fault_point(fault)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _writer_alive(temp_name: str) -> bool:
    """Whether the process that named this temp file still runs (and is not this one); False when unnamed."""
    pid = temp_name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


class OriginalsStore:
    """Content-addressed files under `root/ab/abcdef...`; the same bytes are stored once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        """Where the original with this digest lives (whether or not it exists)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store bytes durably and return their sha256; a no-op when they are already there."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if not path.exists():
            write_durably(path, data, fault="original")
        return digest

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the temp files of writes that never finished (writer killed between creating and renaming).

        A temp file whose writer still runs (another process storing an original, e.g. `moocsearch ingest`) is
        left alone. Call it before this process stores anything: a temp file named with this process's id is
        then the leftover of an earlier process that had the same id (a restarted container's server).
        """
        removed = []
        for path in sorted(self.root.glob(f"*/{TEMP_PREFIX}*")):
            if path.is_file() and not _writer_alive(path.name):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def read(self, sha256: str) -> bytes:
        """The stored bytes for a digest."""
        return self.path_for(sha256).read_bytes()
