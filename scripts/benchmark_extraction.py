"""Extraction throughput (pages/s) of the production extractor on a folder of PDFs.

.venv/bin/python scripts/benchmark_extraction.py ../shared/eval/edu_pdfs/files
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from indexer.extract import ExtractionError, ExtractionLimits, extract_document


def main() -> None:
    """Extract every PDF once and print per-file and total pages/s."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--no-ocr", action="store_true", help="Leave pages without a text layer empty.")
    args = parser.parse_args()
    limits = ExtractionLimits(ocr=not args.no_ocr)
    total_pages, total_seconds = 0, 0.0
    for path in sorted(args.folder.glob("*.pdf")):
        data = path.read_bytes()
        started = time.perf_counter()
        try:
            extraction = extract_document(data, path.name, limits)
            pages, outcome = extraction.page_count or 0, f"{extraction.char_count} chars"
        except ExtractionError as exc:
            pages, outcome = 0, f"{exc.reason}"
        seconds = time.perf_counter() - started
        total_pages += pages
        total_seconds += seconds
        print(f"{path.name:60} {pages:4} pages {seconds:7.2f}s  {outcome}")
    print(f"total: {total_pages} pages in {total_seconds:.1f}s = {total_pages / max(total_seconds, 1e-9):.1f} pages/s")


if __name__ == "__main__":
    main()
