"""Build records: when and why each build ran, how it ended and its report."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from indexer.catalog.database import Database, utc_now

# What starts a build, and how a build ends. A build row is `queued` (a process was asked to build), `running`
# (it holds the build lock), then one of the final outcomes; `interrupted` is set by the next build for a row whose
# process died without saying (kill -9, power loss).
TRIGGER_CLI, TRIGGER_SCHEDULE, TRIGGER_SOON, TRIGGER_ADMIN = "cli", "schedule", "soon", "admin"
TRIGGERS = (TRIGGER_CLI, TRIGGER_SCHEDULE, TRIGGER_SOON, TRIGGER_ADMIN)
BUILD_QUEUED, BUILD_RUNNING = "queued", "running"
BUILD_PUBLISHED, BUILD_FAILED, BUILD_REJECTED = "published", "failed", "rejected"
BUILD_ALREADY_RUNNING, BUILD_INTERRUPTED = "already_running", "interrupted"
BUILD_UNCHANGED = "unchanged"  # the build found the published generation's content again and published nothing

# Counts of a build's report, shown in listings of build records.
_BUILD_COUNTS = (
    "documents_added",
    "documents_changed",
    "documents_deleted",
    "documents_failed",
    "documents_extracted",
    "documents_deferred",
    "documents_indexed",
    "passages",
    "passages_embedded",
)


@dataclass(frozen=True)
class BuildRecord:
    """One build: when and why it ran, how it ended, and its report (counts and seconds per stage)."""

    id: int
    trigger: str
    outcome: str
    started_at: str
    finished_at: str | None
    generation_id: str | None
    pid: int | None
    message: str | None
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready view: the record's fields, the report's counts (0 where the build did not get that
        far), its seconds per stage, its failures, the documents it deferred per member and its quality-gate
        result."""
        values: dict[str, Any] = {k: v for k, v in asdict(self).items() if k != "report"}
        values.update({name: int(self.report.get(name) or 0) for name in _BUILD_COUNTS})
        values["seconds"] = dict(self.report.get("seconds") or {})
        values["failures"] = list(self.report.get("failures") or [])
        values["deferred"] = list(self.report.get("deferred") or [])
        values["quality"] = self.report.get("quality")
        return values


def _build_record(row: sqlite3.Row) -> BuildRecord:
    values = dict(row)
    values["report"] = json.loads(values["report"]) if values["report"] else {}
    return BuildRecord(**values)


class Builds:
    """The builds table: what the build runner, the scheduler and the admin routes record and read."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(self, trigger: str = TRIGGER_CLI, pid: int | None = None, outcome: str = BUILD_RUNNING) -> int:
        """Record a build as running in process `pid` (or `queued` for a process yet to start); returns its id."""
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown build trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
        with self._db.lock:
            self._db.write(
                [
                    (
                        "INSERT INTO builds (started_at, outcome, trigger, pid) VALUES (?, ?, ?, ?)",
                        (utc_now(), outcome, trigger, pid),
                    )
                ]
            )
            return int(self._db.query("SELECT MAX(id) FROM builds")[0][0])

    def mark_running(self, build_id: int, pid: int) -> None:
        """A queued build's process holds the lock now: record its pid and its real start."""
        self._db.write(
            [
                (
                    "UPDATE builds SET outcome = ?, pid = ?, started_at = ?, finished_at = NULL WHERE id = ?",
                    (BUILD_RUNNING, pid, utc_now(), build_id),
                )
            ]
        )

    def finish(
        self,
        build_id: int,
        outcome: str,
        generation_id: str | None,
        report: dict[str, Any],
        message: str | None = None,
    ) -> None:
        """Record how a build ended (`message`: why it failed or was refused)."""
        self._db.write(
            [
                (
                    "UPDATE builds SET finished_at = ?, outcome = ?, generation_id = ?, report = ?, message = ? "
                    "WHERE id = ?",
                    (
                        utc_now(),
                        outcome,
                        generation_id,
                        json.dumps(report, ensure_ascii=False),
                        message[:2000] if message else None,
                        build_id,
                    ),
                )
            ]
        )

    def refuse(self, trigger: str, message: str, build_id: int | None = None) -> int:
        """Record a build that did not start because another one was running (`build_id`: its queued record)."""
        with self._db.lock:
            if build_id is None:
                build_id = self.start(trigger)
            self.finish(build_id, BUILD_ALREADY_RUNNING, None, {}, message)
            return build_id

    def fail_unfinished(self, build_id: int, outcome: str, message: str) -> bool:
        """End a build that is still queued or running (its process is gone); False if it had ended."""
        with self._db.lock:
            record = self.get(build_id)
            if record is None or record.outcome not in (BUILD_QUEUED, BUILD_RUNNING):
                return False
            self.finish(build_id, outcome, None, record.report, message)
            return True

    def interrupt_stale(self, keep: int | None = None) -> int:
        """Mark queued or running builds (but `keep`) interrupted; called by a build holding the lock, so no other
        build can be alive. Returns how many were marked."""
        with self._db.lock:
            rows = self._db.query(
                "SELECT id FROM builds WHERE outcome IN (?, ?) AND id IS NOT ?", (BUILD_QUEUED, BUILD_RUNNING, keep)
            )
            message = "the build process stopped without finishing (killed, crashed or the machine stopped)"
            self._db.write(
                [
                    ("UPDATE builds SET outcome = ?, message = ? WHERE id = ?", (BUILD_INTERRUPTED, message, row[0]))
                    for row in rows
                ]
            )
            return len(rows)

    def get(self, build_id: int) -> BuildRecord | None:
        """One build record by id."""
        rows = self._db.query("SELECT * FROM builds WHERE id = ?", (build_id,))
        return _build_record(rows[0]) if rows else None

    def newest_first(self, limit: int = 20, offset: int = 0) -> list[BuildRecord]:
        """Build records, newest first."""
        rows = self._db.query("SELECT * FROM builds ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
        return [_build_record(row) for row in rows]

    def count(self) -> int:
        """How many build records there are."""
        return int(self._db.query("SELECT COUNT(*) FROM builds")[0][0])

    def last_start(self) -> str | None:
        """When the latest build that got the lock started (refused attempts do not count)."""
        rows = self._db.query("SELECT MAX(started_at) FROM builds WHERE outcome != ?", (BUILD_ALREADY_RUNNING,))
        return rows[0][0]

    def failed_in_a_row(self) -> int:
        """How many of the latest builds that got the lock ended without publishing (failed, rejected or
        interrupted), counted back to the last published one."""
        rows = self._db.query(
            "SELECT outcome FROM builds WHERE outcome NOT IN (?, ?, ?) ORDER BY id DESC LIMIT 64",
            (BUILD_ALREADY_RUNNING, BUILD_QUEUED, BUILD_RUNNING),
        )
        count = 0
        for (outcome,) in rows:
            if outcome in (BUILD_PUBLISHED, BUILD_UNCHANGED):
                break
            count += 1
        return count

    def last_finished(self) -> dict[str, Any] | None:
        """The most recent build that ended (id, started_at, finished_at, outcome, generation_id), or None."""
        rows = self._db.query(
            "SELECT id, started_at, finished_at, outcome, generation_id FROM builds "
            "WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        )
        return dict(rows[0]) if rows else None
