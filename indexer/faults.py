"""Fault injection for the crash-safety tests: make a build stop at a named point of its work.

A build calls `fault_point(name)` at each point where a crash must leave the published generation intact:
`extract` (one document extracted and recorded), `embed` (one batch of vectors committed to the cache), `write`
(a generation folder half written), `publish` (a complete, verified generation not yet published) and
`published` (the pointer switched, old generations not yet removed). Storing an original has one more,
`original` (its temp file written and fsynced, not yet renamed: an upload killed there must leave no row and, after
a restart, no file), and `moocsearch index build` one more, `exit` (its build recorded and the lock released, the
process not yet exited, as while it closes its workers and models). Two test-only environment variables act on
those points; neither is ever set in production, where a fault point costs one dictionary lookup:

- `MOOCSEARCH_TEST_PAUSE_AT=<point>`: write the process id to the file named by `MOOCSEARCH_TEST_PAUSE_MARKER`
  and sleep, so that a test can `kill -9` the build exactly there;
- `MOOCSEARCH_TEST_ENOSPC_AT=<point>`: raise `OSError(ENOSPC)` there, as a full disk would.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

PAUSE_AT = "MOOCSEARCH_TEST_PAUSE_AT"
PAUSE_MARKER = "MOOCSEARCH_TEST_PAUSE_MARKER"
ENOSPC_AT = "MOOCSEARCH_TEST_ENOSPC_AT"


def fault_point(name: str) -> None:
    """Pause here or fail here with ENOSPC when a crash-safety test asks for it; otherwise do nothing."""
    if os.environ.get(ENOSPC_AT) == name:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected at {name})")
    if os.environ.get(PAUSE_AT) != name:
        return
    marker = os.environ.get(PAUSE_MARKER)
    if marker:
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    while True:  # until the test kills the process
        time.sleep(60)
