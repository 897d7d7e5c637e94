"""Time of an incremental rebuild after changing a share of the documents, against the full build's time.

    .venv/bin/python scripts/benchmark_incremental.py ../shared/eval/scifact [--change 0.01] [--data-dir DIR]

Runs the production pipeline with the configured encoders (the default: MiniLM, USE, multilingual-e5-small):

1. full build: ingest every corpus entry as a text document (as `moocsearch eval` does) into an empty data
   directory with an empty embedding cache, then build (extract, embed with every encoder, write, publish);
2. change: for a seeded random share of the documents, a member uploads a new version (one sentence edited and
   one added) and the old version is deleted; then an incremental build, which extracts and embeds only the new
   versions and drops the deleted ones.

With `--data-dir`, the directory (and its embedding cache) is kept; a run finding a built directory there skips
step 1 and reuses the full build's time recorded in `benchmark-incremental.json`, so step 2 can be repeated.
The embedding cache can then serve `moocsearch eval --cache-dir DIR/cache`.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from indexer.pipeline import BuildReport
from search_api.operations.evaluation import BeirDocument, ingest_corpus, ingest_document, load_beir
from search_api.operations.indexers import open_indexer
from search_api.settings import ApiSettings

RECORD = "benchmark-incremental.json"


def revised(doc: BeirDocument, number: int) -> BeirDocument:
    """A new version of a document: its first sentence reworded and a sentence added at the end."""
    first, dot, rest = doc.text.partition(". ")
    text = f"{first} (revised){dot}{rest} This version {number} adds a correction from the authors."
    return BeirDocument(doc.doc_id, doc.title, text)


def describe(name: str, report: BuildReport, seconds: float) -> str:
    """One line per build: wall time, passages embedded and the time per stage."""
    return (
        f"{name}: {seconds:.1f}s wall; {report.documents_extracted} documents extracted, "
        f"{report.passages_embedded} passages embedded of {report.passages}; stages {report.seconds}"
    )


def main() -> None:
    """Build, change a share of the documents, rebuild, and print both times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="A BEIR-format folder (corpus.jsonl, queries, qrels).")
    parser.add_argument("--change", type=float, default=0.01, help="Share of documents changed (default 0.01).")
    parser.add_argument("--data-dir", type=Path, default=None, help="Keep the data directory here.")
    parser.add_argument("--seed", type=int, default=7, help="Which documents change.")
    args = parser.parse_args()
    if not 0 < args.change <= 1:
        parser.error("--change must be in (0, 1]")
    data = load_beir(args.dataset)
    with tempfile.TemporaryDirectory(prefix="moocsearch-incremental-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = ApiSettings(data_dir=data_dir, cache_dir=data_dir / "cache")
        indexer = open_indexer(settings, gate=False)  # timed without the quality gate, as eval indexes
        record_path = data_dir / RECORD
        if record_path.is_file():
            record = json.loads(record_path.read_text(encoding="utf-8"))
            print(f"full build recorded in {record_path}: {record['full_seconds']}s")
        else:
            started = time.perf_counter()
            beir_ids = ingest_corpus(indexer, data)
            full = indexer.build(progress=True)
            full_seconds = time.perf_counter() - started
            print(describe(f"full build of {len(beir_ids)} documents (ingest included)", full, full_seconds))
            record = {"full_seconds": round(full_seconds, 1), "full": full.to_dict(), "changes": []}
            record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
        changed = random.Random(args.seed + len(record["changes"])).sample(
            data.corpus, max(1, round(args.change * len(data.corpus)))
        )
        started = time.perf_counter()
        for doc in changed:
            old_id = ingest_document(indexer, doc)
            ingest_document(indexer, revised(doc, len(record["changes"]) + 1))
            indexer.catalog.delete_document(old_id)
        incremental = indexer.build(progress=True)
        incremental_seconds = time.perf_counter() - started
        indexer.close()
        ratio = incremental_seconds / record["full_seconds"]
        print(describe(f"incremental build after changing {len(changed)} documents", incremental, incremental_seconds))
        print(f"incremental / full = {incremental_seconds:.1f}s / {record['full_seconds']}s = {ratio:.1%}")
        record["changes"].append(
            {"documents": len(changed), "seconds": round(incremental_seconds, 1), "ratio": round(ratio, 4)}
        )
        record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
