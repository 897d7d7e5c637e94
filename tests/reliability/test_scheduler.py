"""The build scheduler (cron and build-soon, with injected time) and the build runner's child processes."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from indexer.catalog import (
    BUILD_ALREADY_RUNNING,
    BUILD_FAILED,
    BUILD_INTERRUPTED,
    BUILD_PUBLISHED,
    BUILD_REJECTED,
    BuildRecord,
    Catalog,
)
from indexer.faults import PAUSE_AT, PAUSE_MARKER
from indexer.generation import generations_root, published_generation_id
from indexer.pipeline import BuildAlreadyRunning, Indexer
from search_api.operations.buildrunner import BuildRunner, describe_exit
from search_api.operations.scheduler import BuildScheduler, default_poll_seconds, soon_delay
from search_api.settings import ApiSettings
from tests.helpers import free_port, start_server, stop_server, wait_for
from tests.indexer.test_build_records import lock_held_by_another_build

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # a Monday, 01:00


class FakeStarter:
    """Records the builds asked for; refuses while `running` is set, as the real runner does."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.refused: list[str] = []
        self.running = False

    def busy(self) -> bool:
        return self.running

    def start(self, trigger: str, full: bool = False) -> object:
        if self.running:
            self.refused.append(trigger)
            raise BuildAlreadyRunning("a build is already running")
        self.started.append(trigger)
        return object()


def _scheduler(catalog: Catalog, starter: FakeStarter, cron: str = "0 3 * * *", soon: float = 0) -> BuildScheduler:
    return BuildScheduler(starter, catalog, cron, soon, clock=lambda: T0)


def test_cron_fires_once_at_each_scheduled_time(indexer: Indexer) -> None:
    starter = FakeStarter()
    scheduler = _scheduler(indexer.catalog, starter)
    assert scheduler.next_run == T0.replace(hour=3)
    assert scheduler.tick(T0.replace(hour=2, minute=59, second=59)) is None
    assert scheduler.tick(T0.replace(hour=3)) == "schedule"
    assert scheduler.tick(T0.replace(hour=3, second=30)) is None  # no second build for the same time
    assert scheduler.next_run == T0.replace(day=3, hour=3)
    assert scheduler.tick(T0.replace(day=3, hour=3, minute=0, second=10)) == "schedule"
    assert starter.started == ["schedule", "schedule"]


def test_times_missed_while_down_are_not_caught_up(indexer: Indexer) -> None:
    starter = FakeStarter()
    scheduler = _scheduler(indexer.catalog, starter, cron="*/15 * * * *")
    assert scheduler.tick(T0 + timedelta(days=2, minutes=7)) == "schedule"  # one build, not 192
    assert scheduler.next_run == T0 + timedelta(days=2, minutes=15)
    assert starter.started == ["schedule"]


def test_an_empty_cron_and_a_zero_delay_never_build(indexer: Indexer) -> None:
    indexer.ingest(b"A pending document about rubrics.", "pending.txt")
    starter = FakeStarter()
    scheduler = _scheduler(indexer.catalog, starter, cron="", soon=0)
    assert scheduler.next_run is None
    for days in range(1, 4):
        assert scheduler.tick(T0 + timedelta(days=days)) is None
    assert starter.started == []


def test_build_soon_waits_the_delay_from_arrival_then_from_the_last_build(indexer: Indexer) -> None:
    starter = FakeStarter()
    scheduler = _scheduler(indexer.catalog, starter, cron="", soon=300)
    assert scheduler.tick(datetime.now(UTC) + timedelta(days=1)) is None  # nothing pending
    document = indexer.ingest(b"A new practice report about peer review.", "new.txt").document
    arrived = datetime.fromisoformat(document.updated_at)
    assert scheduler.tick(arrived + timedelta(seconds=299)) is None
    assert scheduler.tick(arrived + timedelta(seconds=300)) == "soon"
    # That build started (its record) but the document is still pending (the build failed): wait again.
    indexer.catalog.start_build("soon")
    started = datetime.fromisoformat(indexer.catalog.last_build_start() or "")
    assert scheduler.tick(started + timedelta(seconds=299)) is None
    assert scheduler.tick(started + timedelta(seconds=300)) == "soon"
    assert starter.started == ["soon", "soon"]


def test_build_soon_backs_off_after_failed_builds_and_a_published_one_resets_it(indexer: Indexer) -> None:
    starter = FakeStarter()
    scheduler = BuildScheduler(starter, indexer.catalog, "", 300, clock=lambda: T0, soon_max_seconds=1000)
    indexer.ingest(b"A report that a broken build cannot index.", "stuck.txt")

    def ended(outcome: str) -> datetime:
        build = indexer.catalog.start_build("soon")
        indexer.catalog.finish_build(build, outcome, None, {})
        return datetime.fromisoformat(indexer.catalog.last_build_start() or "")

    # Oracle: 300 s after a published build, then 600, 1000 (the cap), 1000 after one, two, three failures.
    for outcome, expected in [
        (BUILD_PUBLISHED, 300),
        (BUILD_FAILED, 600),
        (BUILD_REJECTED, 1000),
        (BUILD_INTERRUPTED, 1000),
        (BUILD_PUBLISHED, 300),
    ]:
        started = ended(outcome)
        if outcome == BUILD_INTERRUPTED:  # a refused attempt is not a failure and does not reset the count
            indexer.catalog.refuse_build("schedule", "a build is already running")
        assert scheduler.tick(started + timedelta(seconds=expected - 1)) is None, outcome
        assert scheduler.tick(started + timedelta(seconds=expected)) == "soon", outcome
    assert indexer.catalog.failed_builds_in_a_row() == 0


def test_the_backoff_doubles_up_to_its_cap_and_never_below_the_delay() -> None:
    assert [soon_delay(300, n, 21600) for n in range(9)] == [300, 600, 1200, 2400, 4800, 9600, 19200, 21600, 21600]
    assert soon_delay(300, 10_000, 21600) == 21600
    assert soon_delay(300, 3, 0) == 300  # a cap below the delay keeps the delay


def test_build_soon_waits_for_a_running_build_without_a_record(indexer: Indexer) -> None:
    starter = FakeStarter()
    scheduler = _scheduler(indexer.catalog, starter, cron="", soon=60)
    document = indexer.ingest(b"Arrived while a build runs.", "late.txt").document
    starter.running = True
    later = datetime.fromisoformat(document.updated_at) + timedelta(seconds=600)
    assert scheduler.tick(later) is None and starter.refused == []
    starter.running = False
    assert scheduler.tick(later) == "soon"


def test_a_scheduled_time_reached_while_a_build_runs_is_recorded_already_running(settings: ApiSettings) -> None:
    runner = BuildRunner(settings)
    scheduler = BuildScheduler(runner, runner.catalog, "0 3 * * *", 0, clock=lambda: T0)
    try:
        with lock_held_by_another_build(settings.data_dir, pid=777):
            assert runner.running_pid() == 777 and runner.busy()
            assert scheduler.tick(T0.replace(hour=3)) is None
        [record] = runner.catalog.list_builds()
        assert (record.trigger, record.outcome) == ("schedule", BUILD_ALREADY_RUNNING)
        assert "pid 777" in (record.message or "")
        assert not runner.busy()
    finally:
        runner.close()


def test_the_scheduler_thread_ticks_with_its_clock_until_stopped(indexer: Indexer) -> None:
    starter = FakeStarter()
    now = [T0]
    scheduler = BuildScheduler(starter, indexer.catalog, "* * * * *", 0, clock=lambda: now[0], poll_seconds=0.05)
    now[0] = T0 + timedelta(minutes=1)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not starter.started and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert starter.started == ["schedule"]


def test_a_malformed_cron_expression_is_a_clear_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is not a cron expression"):
        ApiSettings(data_dir=tmp_path, build_schedule="every night at 3")
    assert ApiSettings(data_dir=tmp_path, build_schedule="  ").build_schedule == ""


def test_poll_interval_follows_the_build_soon_delay() -> None:
    assert [default_poll_seconds(soon) for soon in (0, 300, 10, 0.2)] == [30, 30, 5, 0.5]


def test_a_build_runs_in_another_process_one_at_a_time_and_publishes(settings: ApiSettings, indexer: Indexer) -> None:
    indexer.ingest(b"Calibrated peer review lets large courses grade open work.", "peer.txt")
    runner = BuildRunner(settings)
    try:
        started = runner.start("admin")
        assert started.pid != os.getpid()
        with pytest.raises(BuildAlreadyRunning, match=f"pid {started.pid}"):
            runner.start("admin")
        assert runner.wait(180) == 0
        records = {r.id: r for r in runner.catalog.list_builds()}
        built = records[started.build_id]
        assert (built.trigger, built.outcome, built.pid) == ("admin", BUILD_PUBLISHED, started.pid)
        assert built.generation_id == published_generation_id(generations_root(settings.data_dir))
        assert built.to_dict()["documents_added"] == 1
        [refused] = [r for r in records.values() if r.id != started.build_id]
        assert (refused.trigger, refused.outcome) == ("admin", BUILD_ALREADY_RUNNING)
        assert not runner.busy()
    finally:
        runner.close()


def test_a_build_is_over_once_its_record_is_finished_though_its_process_still_exits(
    settings: ApiSettings, indexer: Indexer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer.ingest(b"Calibrated peer review lets large courses grade open work.", "peer.txt")
    marker = tmp_path / "exiting"
    monkeypatch.setenv(PAUSE_AT, "exit")  # the child stops after recording its build, before it exits
    monkeypatch.setenv(PAUSE_MARKER, str(marker))
    runner = BuildRunner(settings)
    first = runner.start("admin")
    try:
        deadline = time.monotonic() + 180
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.read_text() == str(first.pid)
        assert runner.catalog.get_build(first.build_id).outcome == BUILD_PUBLISHED  # type: ignore[union-attr]
        os.kill(first.pid, 0)  # still alive
        assert runner.running_pid() is None and not runner.busy()
        monkeypatch.delenv(PAUSE_AT)
        indexer.ingest(b"Offline packages for regions with little bandwidth.", "offline.txt")
        second = runner.start("admin")
        with pytest.raises(BuildAlreadyRunning, match=f"pid {second.pid}"):
            runner.start("admin", record_refusal=False)
        assert runner.wait(180) == 0
    finally:
        os.kill(first.pid, signal.SIGKILL)
        runner.close()
    records = _records(settings)
    assert [(r.id, r.trigger, r.outcome) for r in records] == [
        (second.build_id, "admin", BUILD_PUBLISHED),
        (first.build_id, "admin", BUILD_PUBLISHED),
    ], "the unrecorded refusal left no record"
    assert records[0].to_dict()["documents_added"] == 1


def _records(settings: ApiSettings) -> list[BuildRecord]:
    """The build records of `settings`' data directory, newest first."""
    catalog = Catalog(settings.data_dir / "catalog.sqlite3")
    try:
        return catalog.list_builds()
    finally:
        catalog.close()


def test_a_build_process_killed_mid_way_is_recorded_failed_and_the_caller_lives_on(
    settings: ApiSettings, indexer: Indexer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexer.ingest(b"A document the killed build was reading.", "doc.txt")
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_AT, "extract")
    monkeypatch.setenv(PAUSE_MARKER, str(marker))
    runner = BuildRunner(settings)
    try:
        started = runner.start("schedule")
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.read_text() == str(started.pid)
        assert runner.catalog.get_build(started.build_id).outcome == "running"  # type: ignore[union-attr]
        os.kill(started.pid, signal.SIGKILL)
        assert runner.wait(30) == -signal.SIGKILL
        record = runner.catalog.get_build(started.build_id)
        assert record is not None and record.outcome == BUILD_FAILED
        assert record.message == "the build process was killed by signal SIGKILL"
        assert published_generation_id(generations_root(settings.data_dir)) is None
    finally:
        runner.close()


def test_exit_statuses_in_words() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "was killed by signal SIGKILL"


@pytest.mark.e2e
def test_serve_builds_soon_after_a_document_arrives_and_serves_it_without_restart(
    settings: ApiSettings, indexer: Indexer, tmp_path: Path
) -> None:
    indexer.ingest(b"Calibrated peer review with rubrics for large online courses.", "peer.txt")
    indexer.build()
    port = free_port()
    env = {
        **os.environ,
        "MOOCSEARCH_DATA_DIR": str(settings.data_dir),
        "MOOCSEARCH_MODEL": "hash-256",
        "MOOCSEARCH_MULTILINGUAL_MODEL": "",
        "MOOCSEARCH_PASSAGE_MAX_TOKENS": "64",
        "MOOCSEARCH_BUILD_SCHEDULE": "",
        "MOOCSEARCH_BUILD_SOON_SECONDS": "1",
        "MOOCSEARCH_RELOAD_INTERVAL_SECONDS": "0.5",
    }
    process = start_server(env, port, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    query = urllib.parse.urlencode({"q": "flipped classroom videos before class", "k": 1})
    try:
        first = wait_for(
            lambda: _get_json_when(f"{base}/health", lambda body: body.get("status") == "ok"), 60, "health", process
        )
        indexer.ingest(b"Flipped classroom: students watch short videos before class.", "flipped.txt")
        wait_for(
            lambda: _get_json_when(
                f"{base}/search?{query}", lambda body: bool(body.get("hits")) and "Flipped" in body["hits"][0]["text"]
            ),
            60,
            "the new document in search results",
            process,
        )
        assert _get_json(f"{base}/health")["generation"] != first["generation"]
        [latest, *_] = indexer.catalog.list_builds()
        assert (latest.trigger, latest.outcome) == ("soon", BUILD_PUBLISHED)
        assert latest.pid not in (None, process.pid, os.getpid())
        assert latest.to_dict()["documents_added"] == 1
    finally:
        stop_server(process)


def _get_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return {}


def _get_json_when(url: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The JSON answer of `url` once `done` holds for it, else None (for `wait_for`)."""
    body = _get_json(url)
    return body if done(body) else None
