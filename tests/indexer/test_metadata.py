"""Metadata validation and the manifest format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.metadata import MetadataError, parse_metadata, read_manifest


def test_valid_metadata_is_normalised() -> None:
    meta = parse_metadata(
        {
            "title": "  Peer   review ",
            "member": "Cornell University",
            "resource_type": "Practice report",
            "language": "zh-CN",
            "year": "2024",
            "tags": "Rubrics, MOOC, rubrics",
            "authors": ["A", "B"],
        }
    )
    assert meta.title == "Peer review"
    assert meta.resource_type == "practice_report"
    assert meta.language == "zh"
    assert meta.year == 2024
    assert meta.tags == ("rubrics", "mooc")
    assert meta.authors == ("A", "B")
    assert meta.visibility == "public"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"resource_type": "poem"}, "resource_type"),
        ({"language": "english language"}, "language"),
        ({"year": "last year"}, "year"),
        ({"year": 1500}, "year"),
        ({"visibility": "secret"}, "visibility"),
        ({"titel": "typo"}, "unknown field"),
        ({"title": "x" * 501}, "title"),
        ({"tags": 5}, "tags"),
    ],
)
def test_invalid_metadata_names_the_field(raw: dict, field: str) -> None:
    with pytest.raises(MetadataError, match=field):
        parse_metadata(raw)


def test_manifest_entries_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"documents": [{"file": "a.txt", "member": "edX", "language": "en"}]}))
    [entry] = read_manifest(manifest)
    assert entry.path == (tmp_path / "a.txt").resolve()
    assert entry.metadata.member == "edX"


def test_manifest_errors_name_the_entry(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"documents": [{"file": "a.txt"}, {"file": "b.txt", "year": "soon"}]}))
    with pytest.raises(MetadataError, match=r"entry 2 \(b.txt\): year"):
        read_manifest(manifest)
    manifest.write_text("[]")
    with pytest.raises(MetadataError, match="documents"):
        read_manifest(manifest)


def test_settings_come_from_a_toml_file_and_the_environment_wins(tmp_path: Path, monkeypatch) -> None:
    from search_api.settings import ApiSettings

    config = tmp_path / "moocsearch.toml"
    config.write_text('data_dir = "/srv/moocsearch"\nport = 8080\npassage_max_tokens = 180\n')
    monkeypatch.setenv("MOOCSEARCH_CONFIG", str(config))
    monkeypatch.setenv("MOOCSEARCH_PORT", "9000")
    settings = ApiSettings()
    assert (settings.data_dir, settings.port, settings.passage_max_tokens) == (Path("/srv/moocsearch"), 9000, 180)
    assert ApiSettings(port=7000).port == 7000
