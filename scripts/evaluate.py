"""Evaluate retrieval on a BEIR-format folder; the same as `moocsearch eval` (see its --help).

.venv/bin/python scripts/evaluate.py ../shared/eval/scifact
.venv/bin/python scripts/evaluate.py ../shared/eval/xquad_r --queries zh --corpus en
"""

import sys

from search_api.cli import main

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "eval", *sys.argv[1:]]
    main()
