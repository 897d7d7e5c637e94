"""Where the tests find the repository, the bundled corpus and the shared evaluation data."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "corpus"
SHARED_EVAL = Path(os.environ.get("MOOCSEARCH_SHARED_EVAL", REPO.parent / "shared" / "eval"))
