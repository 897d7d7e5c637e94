"""The originals store: temp files name their writer, and a cleanup removes only those of writers that are gone."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexer import store as store_module
from indexer.faults import ENOSPC_AT
from indexer.store import OriginalsStore

CONTENT = b"Cohort-based MOOCs: weekly live sessions halve the drop-out rate."


def test_put_writes_through_a_temp_file_named_with_the_writer_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, list[str]]] = []
    store = OriginalsStore(tmp_path)
    folder = tmp_path / hashlib.sha256(CONTENT).hexdigest()[:2]
    monkeypatch.setattr(store_module, "fault_point", lambda name: seen.append((name, sorted(os.listdir(folder)))))
    digest = store.put(CONTENT)
    assert digest == hashlib.sha256(CONTENT).hexdigest() and store.read(digest) == CONTENT
    [(point, names)] = seen  # the fault point sits between the temp file's fsync and its rename
    assert point == "original" and len(names) == 1 and names[0].startswith(f".tmp-{os.getpid()}-")
    assert sorted(os.listdir(folder)) == [digest]


def test_a_failed_write_leaves_neither_the_original_nor_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENOSPC_AT, "original")
    with pytest.raises(OSError) as caught:
        OriginalsStore(tmp_path).put(CONTENT)
    assert caught.value.errno == errno.ENOSPC
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_stale_temp_files_are_removed_and_those_of_a_running_writer_kept(tmp_path: Path) -> None:
    store = OriginalsStore(tmp_path)
    digest = store.put(CONTENT)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(30)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = tmp_path / "ab"
        folder.mkdir()
        dead = folder / f".tmp-{finished.pid}-k2j4x9"  # a writer killed mid-write
        mine = folder / f".tmp-{os.getpid()}-q8w1e3"  # an earlier process that had this process's id
        legacy = folder / ".tmp-z7y6x5w4"  # named before temp files carried a process id
        alive = folder / f".tmp-{running.pid}-a1s2d3"  # another process is writing it right now
        for path in (dead, mine, legacy, alive):
            path.write_bytes(b"half a file")
        assert store.remove_stale_temp_files() == sorted([dead, mine, legacy])
        assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted([alive, store.path_for(digest)])
        assert store.read(digest) == CONTENT
    finally:
        running.kill()
        running.wait(30)


def test_cleanup_of_an_empty_or_missing_store_removes_nothing(tmp_path: Path) -> None:
    assert OriginalsStore(tmp_path / "not-yet").remove_stale_temp_files() == []
    assert not (tmp_path / "not-yet").exists()
