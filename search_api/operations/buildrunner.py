"""Builds the service starts (on a schedule or for an admin), each in a child process, one at a time.

The child is `moocsearch index build` itself (`python -m search_api.cli index build --settings-stdin ...`): the
same code path as a build from system cron, reading the service's exact settings from a pipe. A build that
crashes or is killed for memory costs that build only; the service keeps serving the published generation.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass

from indexer.catalog import BUILD_FAILED, BUILD_QUEUED, Catalog
from indexer.pipeline import BuildAlreadyRunning, build_lock_holder
from search_api.settings import ApiSettings

# BuildAlreadyRunning is re-exported: routes start builds through the runner and never import the pipeline.
__all__ = ["BuildAlreadyRunning", "BuildRunner", "StartedBuild", "describe_exit"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartedBuild:
    """A build whose process was started: its record in the catalog and the child's pid."""

    build_id: int
    pid: int


def describe_exit(returncode: int) -> str:
    """An exit status in words: `exited with code 1`, `was killed by signal SIGKILL`."""
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class BuildRunner:
    """Starts builds of one data directory in child processes and makes sure each ends with a record."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.catalog = Catalog(settings.data_dir / "catalog.sqlite3")
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._build_id: int | None = None
        self._watcher: threading.Thread | None = None
        self._closed = False

    def running_pid(self) -> int | None:
        """The pid of a build running in this data directory: this runner's child until its record is finished,
        or any process holding the build lock (`moocsearch index build` from cron); None when none runs.

        A child whose record is finished has released the build lock and is only exiting (closing its workers and
        models can take seconds); the next build may start, and the watcher still reaps the old child."""
        process, build_id = self._process, self._build_id
        if process is not None and process.poll() is None and not self._recorded_finished(build_id):
            return process.pid
        return build_lock_holder(self.settings.data_dir)

    def _recorded_finished(self, build_id: int | None) -> bool:
        record = self.catalog.get_build(build_id) if build_id is not None else None
        return record is not None and record.finished_at is not None

    def busy(self) -> bool:
        """Whether a build is running in this data directory."""
        return self.running_pid() is not None

    def start(self, trigger: str, full: bool = False, record_refusal: bool = True) -> StartedBuild:
        """Queue a build record and start its process; raises `BuildAlreadyRunning` when a build is running.

        A refusal is recorded as `already_running` when `record_refusal` (a scheduled time that passed without its
        build must show in the records); an admin's refused request is answered with 409 and leaves no record, so
        retries do not pile up records."""
        with self._lock:
            holder = self.running_pid()
            if holder is not None:
                message = f"a build is already running in {self.settings.data_dir} (pid {holder})"
                if record_refusal:
                    self.catalog.refuse_build(trigger, message)
                raise BuildAlreadyRunning(message)
            build_id = self.catalog.start_build(trigger, outcome=BUILD_QUEUED)
            try:
                process = self._spawn(build_id, trigger, full)
            except OSError as exc:
                self.catalog.finish_build(build_id, BUILD_FAILED, None, {}, f"could not start the build: {exc}")
                raise
            self._process, self._build_id = process, build_id
            self._watcher = threading.Thread(
                target=self._watch, args=(build_id, process), name=f"build-{build_id}", daemon=True
            )
            self._watcher.start()
            logger.info("build %d (%s) started in process %d", build_id, trigger, process.pid)
            return StartedBuild(build_id, process.pid)

    def _spawn(self, build_id: int, trigger: str, full: bool) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "search_api.cli", "index", "build", "--settings-stdin"]
        command += ["--trigger", trigger, "--build-id", str(build_id), *(["--full"] if full else [])]
        # The child inherits stdout/stderr: its log lines join the service's log.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, text=True)
        assert process.stdin is not None
        try:
            process.stdin.write(self.settings.model_dump_json())
            process.stdin.close()
        except BrokenPipeError:  # the child died at once; the watcher records how
            pass
        return process

    def _watch(self, build_id: int, process: subprocess.Popen[str]) -> None:
        """Wait for the child; a child that died without recording its outcome (killed, out of memory) gets a
        `failed` record saying how it ended."""
        returncode = process.wait()
        if self._closed:
            return  # the service stopped; the next build marks an unfinished record interrupted
        try:
            if returncode != 0 and self.catalog.fail_unfinished_build(
                build_id, BUILD_FAILED, f"the build process {describe_exit(returncode)}"
            ):
                logger.error("build %d: the build process %s", build_id, describe_exit(returncode))
            record = self.catalog.get_build(build_id)
        except sqlite3.Error:
            logger.exception("could not record the end of build %d", build_id)
            return
        if record is not None:
            logger.info("build %d ended: %s %s", build_id, record.outcome, record.message or "")

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for this runner's latest build to end and be recorded; its exit status, None if still running."""
        watcher, process = self._watcher, self._process
        if watcher is None or process is None:
            return None
        watcher.join(timeout)
        return None if watcher.is_alive() else process.returncode

    def close(self) -> None:
        """Forget the child (a running build goes on, and records its own outcome) and close the catalog."""
        with self._lock:
            self._closed = True
            self.catalog.close()
