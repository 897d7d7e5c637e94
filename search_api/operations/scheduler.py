"""The build scheduler inside `moocsearch serve`: a build at the times of a cron expression, and a build soon
after contributions arrive.

`tick(now)` makes every decision for one moment, so tests drive it with the times they choose; `start()` runs it
in a background thread. Builds themselves run in a child process (`BuildRunner`), one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from croniter import croniter

from indexer.catalog import TRIGGER_SCHEDULE, TRIGGER_SOON, Catalog
from indexer.pipeline import BuildAlreadyRunning

logger = logging.getLogger(__name__)

MAX_POLL_SECONDS = 30.0


class BuildStarter(Protocol):
    """What the scheduler needs of a build runner."""

    def busy(self) -> bool:
        """Whether a build is running."""
        ...

    def start(self, trigger: str, full: bool = False) -> object:
        """Start a build; raises `BuildAlreadyRunning` when one is running."""
        ...


def local_now() -> datetime:
    """The current time with the server's UTC offset: cron expressions read in local time, as cron does."""
    return datetime.now().astimezone()


def default_poll_seconds(soon_seconds: float) -> float:
    """How often to tick: often enough to start a build soon after its delay, at most every 30 s."""
    if soon_seconds <= 0:
        return MAX_POLL_SECONDS
    return min(MAX_POLL_SECONDS, max(0.5, soon_seconds / 2))


def soon_delay(soon_seconds: float, failures: int, max_seconds: float) -> float:
    """The build-soon delay after `failures` builds in a row ended without publishing: doubled for each, up to
    `max_seconds` (never below `soon_seconds`), so a build that keeps failing is not retried every few minutes."""
    return max(soon_seconds, min(soon_seconds * 2.0 ** min(failures, 32), max_seconds))


class BuildScheduler:
    """Decides when builds start: at each time of `cron` (empty: never), and when a pending document has waited
    `soon_seconds` (0: never) since it arrived or since the last build started, whichever is later. After builds
    that failed in a row, the wait doubles for each, up to `soon_max_seconds`; a published build resets it."""

    def __init__(
        self,
        starter: BuildStarter,
        catalog: Catalog,
        cron: str,
        soon_seconds: float,
        clock: Callable[[], datetime] = local_now,
        poll_seconds: float | None = None,
        soon_max_seconds: float = 6 * 3600.0,
    ) -> None:
        """`clock` gives the time the thread ticks with; `poll_seconds` how often (default: from the delay)."""
        self.starter = starter
        self.catalog = catalog
        self.cron = cron.strip()
        self.soon_seconds = soon_seconds
        self.soon_max_seconds = soon_max_seconds
        self._clock = clock
        self.poll_seconds = poll_seconds if poll_seconds is not None else default_poll_seconds(soon_seconds)
        self.next_run: datetime | None = self._after(clock()) if self.cron else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _after(self, moment: datetime) -> datetime:
        after: datetime = croniter(self.cron, moment).get_next(datetime)
        return after

    def tick(self, now: datetime) -> str | None:
        """Start the build that is due at `now` (an aware datetime), if any; returns its trigger, else None.

        A scheduled time missed while the service was down is not caught up; one reached while a build runs is
        recorded as `already_running`. A document waiting while a build runs waits for that build to end.
        """
        if self.next_run is not None and now >= self.next_run:
            self.next_run = self._after(now)
            return self._start(TRIGGER_SCHEDULE)
        if self._waited_long_enough(now) and not self.starter.busy():
            return self._start(TRIGGER_SOON)
        return None

    def _waited_long_enough(self, now: datetime) -> bool:
        if self.soon_seconds <= 0:
            return False
        pending = self.catalog.oldest_pending_change()
        if pending is None:
            return False
        since = datetime.fromisoformat(pending)
        delay = self.soon_seconds
        last_build = self.catalog.last_build_start()
        if last_build is not None:
            since = max(since, datetime.fromisoformat(last_build))
            delay = soon_delay(self.soon_seconds, self.catalog.failed_builds_in_a_row(), self.soon_max_seconds)
        return (now - since).total_seconds() >= delay

    def _start(self, trigger: str) -> str | None:
        try:
            self.starter.start(trigger)
        except BuildAlreadyRunning as exc:
            logger.warning("%s build not started: %s", trigger, exc)
            return None
        return trigger

    def start(self) -> None:
        """Tick in a background thread until `stop()`."""
        if self.next_run is None and self.soon_seconds <= 0:
            return
        logger.info(
            "build scheduler: cron %r (next %s), build soon after %ss",
            self.cron,
            self.next_run.isoformat() if self.next_run else "never",
            self.soon_seconds,
        )
        self._thread = threading.Thread(target=self._loop, name="build-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.tick(self._clock())
            except Exception:  # the scheduler must outlive a bad tick (a locked catalog, a failed spawn)
                logger.exception("build scheduler tick failed")

    def stop(self) -> None:
        """Stop ticking (a running build goes on)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
