"""Issue 11, defect 4: no member's uploads can stop all publishing through the quality gate.

The attack: ten keyword-stuffed uploads (public and member-only), stuffed with the golden queries' words, took the
top places of every golden query when the gate searched every row as no one in particular, so every build was
rejected (exit 4). The gate now judges as an anonymous reader over the documents its queries name: the same
uploads leave its outcome, and each query's answer, as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

from indexer.embedding import HashEmbedder
from indexer.metadata import DocumentMetadata
from indexer.pipeline import Indexer
from search_api.factory import QueryModels
from search_api.operations.gate import generation_search
from search_api.settings import ApiSettings

DOCS = {
    "biology.md": "# Plants\n\nPhotosynthesis: chlorophyll in green leaves turns sunlight into sugar.\n",
    "astronomy.md": "# Sky\n\nTelescopes show distant galaxies and the orbits of stars.\n",
    "cooking.md": "# Kitchen\n\nBread needs flour, water, yeast and a hot oven.\n",
}
GOLDEN = [
    {"query": "chlorophyll in green leaves", "documents": ["biology.md"]},
    {"query": "telescopes and galaxies", "documents": ["astronomy.md"]},
    {"query": "bread flour yeast oven", "documents": ["cooking.md"]},
]
STUFFING = " ".join(["chlorophyll green leaves telescopes galaxies bread flour yeast oven"] * 40)


def test_keyword_stuffed_uploads_of_one_member_do_not_hold_back_the_build(
    settings: ApiSettings, tmp_path: Path
) -> None:
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps({"queries": GOLDEN}), encoding="utf-8")
    config = settings.model_copy(update={"golden_queries": golden, "quality_top_n": 1, "quality_min_pass_rate": 1.0})
    embedder = HashEmbedder(256)
    with Indexer(config, embedder, [], quality_search=generation_search(config, QueryModels((embedder,)))) as indexer:
        for name, text in DOCS.items():
            indexer.ingest(text.encode(), name)
        first = indexer.build()
        assert first.outcome == "published" and first.quality is not None and first.quality["passing"] == 3

        # Ten stuffed uploads of one member: public, member-only, alliance, and one under a golden file name.
        for number in range(10):
            visibility = ("public", "member", "alliance")[number % 3]
            name = "cooking.md" if number == 9 else f"stuffed-{number}.md"
            metadata = DocumentMetadata(member="Mallory College", visibility=visibility, title="golden answers")
            indexer.ingest(f"# Everything\n\n{STUFFING} {number}\n".encode(), name, metadata)

        report = indexer.build()
        assert report.outcome == "published", report.quality
        assert report.quality is not None
        assert (report.quality["checked"], report.quality["passing"], report.quality["failures"]) == (3, 3, [])
