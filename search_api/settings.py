"""Typed settings of the search service: the indexer's settings plus the HTTP side."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

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
    reload_interval_seconds: float = Field(
        2.0, ge=0, description="How often the service looks for a newly published generation (0: never)."
    )
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in rank fusion (0: off).")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in rank fusion (0: off).")

    @model_validator(mode="after")
    def _some_retriever(self) -> ApiSettings:
        if self.dense_weight == 0 and self.lexical_weight == 0:
            raise ValueError("dense_weight and lexical_weight cannot both be 0")
        return self
