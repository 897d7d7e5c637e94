"""Typed settings of the search service: the indexer's settings plus the HTTP side and the build schedule.

Scheduling lives here, not in the indexer's settings: the indexer builds when asked and never schedules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from croniter import croniter
from pydantic import Field, field_validator, model_validator

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
    reranker_model: str = Field(
        "", description="Local folder of a cross-encoder that reranks the fused candidates (empty: off)."
    )
    rerank_depth: int = Field(50, ge=1, le=1000, description="Fused candidates the cross-encoder rescores per query.")
    max_request_bytes: int = Field(
        64 * 1024, ge=1, description="Largest request body of every route but uploads; larger bodies get 413."
    )
    max_upload_bytes: int | None = Field(
        None, ge=1, description="Largest body of POST /documents, file and form (default: max_file_bytes + 1 MiB)."
    )
    rate_limit_per_second: float = Field(
        20.0, ge=0, description="Requests per second each API key (or, without a key, each IP) may make (0: off)."
    )
    rate_limit_burst: int = Field(60, ge=1, description="Requests a client may make at once before being slowed.")
    # Exposure (issue 11): what anonymous callers may read of the operations routes, and connection limits.
    metrics_public: bool = Field(
        False,
        description="Serve /metrics without a key, reduced to series that say nothing about the catalog "
        "(an admin key always gets every series; false: /metrics needs an admin key).",
    )
    keep_alive_timeout_seconds: int = Field(
        5, ge=1, description="`serve` closes a kept-alive connection idle this long between requests."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="`serve` closes a connection whose request line and headers have not all arrived this long "
        "after it opened (or after the first byte of a kept-alive connection's next request).",
    )
    max_connections: int = Field(
        1000, ge=1, description="Connections `serve` handles at once; requests beyond them get 503."
    )
    backlog: int = Field(1024, ge=1, description="Connections the kernel queues before `serve` accepts them.")
    log_format: Literal["json", "text"] = Field("json", description="`moocsearch serve` logs: JSON lines or text.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    upload_min_free_mb: int = Field(
        1024, ge=0, description="Free disk (MiB) the data directory must keep; uploads are refused with 507 below it."
    )
    upload_max_fields: int = Field(50, ge=1, le=1000, description="Most form fields an upload may have (400 above).")
    member_max_pending_documents: int = Field(
        200,
        ge=0,
        description="Documents one member's keys may have waiting for the next build; more uploads get 429 "
        "`quota_exceeded` until a build extracts them (0: no limit; admin keys and `moocsearch ingest` are exempt).",
    )
    member_max_pending_mb: int = Field(
        500, ge=0, description="MiB of pending documents one member's keys may have (0: no limit; as above)."
    )
    build_schedule: str = Field(
        "0 3 * * *",
        description="Cron expression (server's local time) at which `serve` starts a build (empty: never).",
    )
    build_soon_seconds: float = Field(
        300.0, ge=0, description="`serve` starts a build once a pending document has waited this long (0: never)."
    )
    build_soon_max_seconds: float = Field(
        21600.0,
        ge=0,
        description="After builds that failed in a row, the build-soon delay doubles for each, up to this long.",
    )

    @property
    def upload_body_limit(self) -> int:
        """The body limit of uploads: the file limit plus room for the form's other fields."""
        return self.max_upload_bytes if self.max_upload_bytes is not None else self.max_file_bytes + 1024 * 1024

    @field_validator("build_schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = value.strip()
        if value and not croniter.is_valid(value):
            raise ValueError(f"build_schedule {value!r} is not a cron expression (e.g. '0 3 * * *': 03:00 daily)")
        return value

    @model_validator(mode="after")
    def _some_retriever(self) -> ApiSettings:
        if self.dense_weight == 0 and self.lexical_weight == 0:
            raise ValueError("dense_weight and lexical_weight cannot both be 0")
        return self

    @model_validator(mode="after")
    def _reranker_is_a_local_folder(self) -> ApiSettings:
        # Checked here so that a typo fails at startup with a clear message, not on the first query.
        path = self.reranker_model.strip()
        if path and not Path(path).expanduser().is_dir():
            raise ValueError(
                f"reranker_model {path!r} is not a folder: give the local path of a saved cross-encoder "
                "(models are never downloaded)"
            )
        return self
