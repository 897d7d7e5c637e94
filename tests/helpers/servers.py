"""Real `moocsearch serve` processes for the e2e tests: a free port, start, wait, stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar


def free_port() -> int:
    """A local TCP port nobody listens on now, for a real server started by a test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_server(process: subprocess.Popen[Any]) -> None:
    """Ask a server process to shut down (SIGTERM); kill it if it has not ended within 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def start_server(env: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`moocsearch serve --port PORT ARGS...` as a real process with `env`, its output appended to `log`."""
    executable = Path(sys.executable).with_name("moocsearch")
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(executable), "serve", "--port", str(port), *args], env=env, stdout=output, stderr=subprocess.STDOUT
        )


T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    seconds: float,
    what: str,
    process: subprocess.Popen[Any] | None = None,
    interval: float = 0.2,
) -> T:
    """Call `check` until it returns something truthy, and return that. A refused or timed-out connection
    counts as not yet; fails when `process` (the server being waited on) exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} while waiting for {what}")
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            result = None
        if result:
            return result  # type: ignore[return-value]
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
