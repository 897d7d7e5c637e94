"""Typed settings of the search service: the indexer's settings plus the HTTP side."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from indexer.settings import IndexerSettings

BUNDLED_CORPUS = Path(__file__).resolve().parent.parent / "corpus"


class ApiSettings(IndexerSettings):
    """Everything `moocsearch serve` needs; env variables `MOOCSEARCH_*` or the TOML file set them."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    corpus_dir: Path = Field(BUNDLED_CORPUS, description="Corpus with a manifest.json, indexed on first run.")
    max_query_chars: int = Field(1000, ge=1)
    max_k: int = Field(100, ge=1)
    default_k: int = Field(10, ge=1)
    max_offset: int = Field(1000, ge=0)
    cors_origins: list[str] = Field(default_factory=list)
