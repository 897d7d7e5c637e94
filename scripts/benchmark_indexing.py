"""Wall time of indexing the bundled corpus from scratch with the configured model, stage by stage.

    .venv/bin/python scripts/benchmark_indexing.py [--model all-minilm-l6-v2]

Runs the production pipeline (ingest, extract, embed, publish) into a temporary data directory, then a second,
incremental build that should embed nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from indexer.metadata import read_manifest
from search_api.factory import QueryModels, load_encoders
from search_api.operations.indexers import open_indexer
from search_api.settings import ApiSettings


def main() -> None:
    """Index the bundled corpus twice and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Model id (default: the configured model).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moocsearch-bench-") as tmp:
        overrides = {"data_dir": Path(tmp)} | ({"model": args.model} if args.model else {})
        settings = ApiSettings(**overrides)
        started = time.perf_counter()
        embedders = load_encoders(settings)
        for embedder in embedders:
            embedder.embed_queries(["load"])
        load_seconds = time.perf_counter() - started
        indexer = open_indexer(settings, QueryModels(embedders), gate=False)  # timed without the quality gate
        entries = read_manifest(settings.corpus_dir / "manifest.json")
        started = time.perf_counter()
        for entry in entries:
            indexer.ingest(entry.path.read_bytes(), entry.path.name, entry.metadata)
        ingest_seconds = time.perf_counter() - started
        first = indexer.build()
        second = indexer.build()
        indexer.close()
    print(f"models {', '.join(e.model_id for e in embedders)}: loaded in {load_seconds:.1f}s")
    print(f"ingest: {len(entries)} documents in {ingest_seconds:.2f}s")
    print(
        f"first build: {first.documents_indexed} documents, {first.passages} passages, "
        f"{len(first.failures)} failed; seconds {first.seconds}; "
        f"{first.passages_embedded / max(first.seconds['embed'], 1e-9):.1f} passages/s embedded"
    )
    print(f"incremental build, nothing changed: {second.passages_embedded} embedded; seconds {second.seconds}")


if __name__ == "__main__":
    main()
