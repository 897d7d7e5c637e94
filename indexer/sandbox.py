"""Extraction in worker processes with wall-clock, CPU-time and memory limits.

Parsers are C and Python code fed untrusted bytes: a decompression bomb, a loop in a broken file or a crash in
C must cost that one document, never the batch or the indexer. Each worker is a fresh interpreter (started
like multiprocessing's "spawn", never forked from the parent, which may hold torch or BLAS threads) that
extracts one document at a time; the parent kills it when a document overruns its wall-clock time and starts
a new one. The worker caps its own address space (RLIMIT_AS) and, per document, its CPU time (RLIMIT_CPU).

The worker is started with `subprocess` rather than a multiprocessing context because both "spawn" and
"forkserver" import the parent's `__main__` in every child: under the `moocsearch` command that is the whole
CLI with numpy and its BLAS threads, whose address space would count against the worker's memory limit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from indexer.extract import Extraction, ExtractionError, ExtractionLimits, extract_document
from indexer.extract.model import RESOURCE_LIMIT, TIMEOUT, UNREADABLE

logger = logging.getLogger(__name__)

Tag = TypeVar("Tag")

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = "from indexer.sandbox import serve; serve()"
_EXIT_WAIT_S = 5.0


@dataclass(frozen=True)
class SandboxLimits:
    """What extracting one document may use: wall-clock seconds, CPU seconds, and the worker's memory."""

    timeout_seconds: float = 120.0
    cpu_seconds: int = 120
    memory_mb: int = 2048


# --- The worker process ---------------------------------------------------------------------------------------


def serve() -> None:
    """A worker's main loop: extract each document sent over the connection until the parent closes it.

    Arguments (argv): the connection's file descriptor, the address-space limit in bytes, the log level.
    """
    fd, memory_bytes, log_level = (int(arg) for arg in sys.argv[1:4])
    logging.basicConfig(
        level=log_level or logging.WARNING, format="%(levelname)s %(name)s [extract worker %(process)d]: %(message)s"
    )
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing parser leaves no core file behind
    _lower_limit(resource.RLIMIT_AS, memory_bytes)
    conn = Connection(fd)
    while True:
        try:
            filename, limits, cpu_seconds = conn.recv()
            data = conn.recv_bytes()
        except EOFError:  # the parent closed the sandbox, or died
            return
        except MemoryError:
            conn.send(("error", RESOURCE_LIMIT, "the document does not fit in the extraction's memory", True))
            return
        retire = False
        _limit_cpu_from_now(cpu_seconds)
        try:
            reply: tuple[Any, ...] = ("ok", extract_document(data, filename, limits))
        except ExtractionError as exc:
            reply = ("error", exc.reason, exc.message)
        except MemoryError:
            # The heap may be in a poor state after this: answer, then let the parent start a fresh worker.
            reply = ("error", RESOURCE_LIMIT, f"extraction needed more than {memory_bytes >> 20} MiB of memory")
            retire = True
        except RecursionError as exc:
            reply = ("error", UNREADABLE, f"the document is nested too deeply to parse: {exc}")
        except Exception as exc:  # a parser bug on one file is that file's failure
            logger.exception("extraction of %r crashed", filename)
            reply = ("error", UNREADABLE, f"{type(exc).__name__}: {exc}")
        del data
        try:
            conn.send((*reply, retire) if reply[0] == "error" else reply)
        except (BrokenPipeError, ConnectionResetError):  # the parent gave up on this document or went away
            return
        except MemoryError:
            conn.send(("error", RESOURCE_LIMIT, "the extracted text does not fit in the extraction's memory", True))
            return
        if retire:
            return


def _lower_limit(which: int, value: int) -> None:
    """Set both the soft and hard limit to `value`, unless the hard limit is lower already."""
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _limit_cpu_from_now(seconds: int) -> None:
    """Let the next document use `seconds` of CPU time: the soft RLIMIT_CPU counts the worker's whole life."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


# --- The parent's side ------------------------------------------------------------------------------------------


def exit_outcome(returncode: int | None, limits: SandboxLimits) -> tuple[str, str]:
    """The reason and message for a worker that died without answering, from its exit status."""
    if returncode == -signal.SIGXCPU:
        return TIMEOUT, f"extraction used more than {limits.cpu_seconds} s of CPU time; its process was stopped"
    if returncode == -signal.SIGKILL:  # not sent by the sandbox (that is a timeout): the kernel's OOM killer
        return RESOURCE_LIMIT, f"the extraction process was killed, most likely for memory ({limits.memory_mb} MiB)"
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return UNREADABLE, f"the parser crashed ({name})"
    return UNREADABLE, f"the extraction process exited unexpectedly (status {returncode})"


class _Worker:
    """One worker process and the parent's end of its connection; started on first use, replaced when it dies."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def extract(self, data: bytes, filename: str, limits: ExtractionLimits) -> Extraction:
        conn = self._ready()
        try:
            conn.send((filename, limits, self.limits.cpu_seconds))
            conn.send_bytes(data)
        except (BrokenPipeError, ConnectionResetError):  # it died while idle: give the document a fresh one
            self.stop()
            conn = self._ready()
            conn.send((filename, limits, self.limits.cpu_seconds))
            conn.send_bytes(data)
        if not conn.poll(self.limits.timeout_seconds):
            self.stop()
            raise ExtractionError(
                TIMEOUT,
                f"extraction took more than {self.limits.timeout_seconds:g} s of wall-clock time; "
                "its process was stopped",
            )
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            raise ExtractionError(*exit_outcome(self._reap(), self.limits)) from None
        if reply[0] == "ok":
            extraction: Extraction = reply[1]
            return extraction
        _status, reason, message, retire = reply
        if retire:
            self.stop()
        raise ExtractionError(reason, message)

    def _ready(self) -> Connection:
        if self.process is None or self.process.poll() is not None or self._conn is None:
            self.stop()
            self._start()
        assert self._conn is not None
        return self._conn

    def _start(self) -> None:
        parent_end, child_end = socket.socketpair()
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([_PACKAGE_ROOT, *([path] if path else [])])}
        args = [str(child_end.fileno()), str(self.limits.memory_mb << 20), str(logging.getLogger().getEffectiveLevel())]
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, *args],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # a stray print must not corrupt the CLI's --json output
                env=env,
                # Its own process group: a kill reaches what the worker started too (pdftoppm, tesseract).
                start_new_session=True,
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._conn = Connection(parent_end.detach())
        logger.debug("started extraction worker %d", self.process.pid)

    def _reap(self) -> int | None:
        """Wait for a worker that stopped answering to exit; its return code (None if it had to be killed)."""
        process = self.process
        returncode = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # then it is killed below
                returncode = process.wait(_EXIT_WAIT_S)
        self.stop()
        return returncode

    def stop(self) -> None:
        """Close the connection and kill the worker with everything it started; a later task starts a new one."""
        process, conn = self.process, self._conn
        self.process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it exited just now
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class ExtractionSandbox:
    """A small pool of long-lived worker processes that extract documents under `SandboxLimits`.

    `extract` raises ExtractionError with reason `timeout` (wall-clock or CPU limit), `resource_limit` (memory,
    decompression bombs), `unreadable` (a parser crash, with the signal) or the extractor's own reason. A worker
    that overran or died is replaced, so the next document is unaffected. Workers start on first use.
    """

    def __init__(self, limits: SandboxLimits | None = None, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("an extraction sandbox needs at least one worker")
        self.limits = limits or SandboxLimits()
        self.workers = workers
        self._all = [_Worker(self.limits) for _ in range(workers)]
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        for worker in self._all:
            self._idle.put(worker)

    def extract(self, data: bytes, filename: str = "", limits: ExtractionLimits | None = None) -> Extraction:
        """Extract one document in a worker (waiting for a free one); raises ExtractionError with a reason."""
        worker = self._idle.get()
        try:
            return worker.extract(data, filename, limits or ExtractionLimits())
        finally:
            self._idle.put(worker)

    def extract_many(
        self, tasks: Iterable[tuple[Tag, bytes, str, ExtractionLimits]]
    ) -> Iterator[tuple[Tag, Extraction | ExtractionError, float]]:
        """Extract (tag, data, filename, limits) tasks on every worker at once, yielding (tag, extraction or
        error, seconds) in the order of `tasks`; tasks are taken lazily, at most one per worker in flight."""
        if self.workers == 1:
            for task in tasks:
                yield self._timed(*task)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="extract") as pool:
            in_flight: deque[Future[tuple[Tag, Extraction | ExtractionError, float]]] = deque()
            for tag, data, filename, limits in tasks:
                in_flight.append(pool.submit(self._timed, tag, data, filename, limits))
                if len(in_flight) >= self.workers:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()

    def _timed(
        self, tag: Tag, data: bytes, filename: str, limits: ExtractionLimits
    ) -> tuple[Tag, Extraction | ExtractionError, float]:
        started = time.perf_counter()
        outcome: Extraction | ExtractionError
        try:
            outcome = self.extract(data, filename, limits)
        except ExtractionError as exc:
            outcome = exc
        return tag, outcome, time.perf_counter() - started

    def worker_pids(self) -> list[int]:
        """Process ids of the workers running now."""
        return [w.process.pid for w in self._all if w.process is not None and w.process.poll() is None]

    def close(self) -> None:
        """Stop every worker; a later `extract` starts new ones."""
        for worker in self._all:
            worker.stop()

    def __enter__(self) -> ExtractionSandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
