"""Typed settings of the write side, read from `MOOCSEARCH_*` variables and an optional TOML file."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_MODEL = "all-minilm-l6-v2"
BUNDLED_GOLDEN_QUERIES = Path(__file__).resolve().parent.parent / "corpus" / "golden_queries.json"


class IndexerSettings(BaseSettings):
    """Where the data lives, which model embeds it and how documents are cut into passages."""

    model_config = SettingsConfigDict(env_prefix="MOOCSEARCH_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Originals, catalog, caches and index generations.")
    model: str = Field(DEFAULT_MODEL, description="Embedding model id (see `moocsearch models`) or local path.")
    multilingual_model: str | None = Field(
        "use-multilingual-v3,multilingual-e5-small",
        description="Multilingual encoder(s), comma-separated, for other languages and cross-language pairs "
        "(empty: none). e5 is the slower of the two to embed (~5-10 passages/s on 2 cores) and the more accurate.",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024)
    passage_max_tokens: int = Field(
        200, ge=16, le=2048, description="Upper bound of a passage in model tokens (capped by the model)."
    )
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1)
    max_pages: int = Field(2000, ge=1)
    max_chars: int = Field(5_000_000, ge=1000, description="Extracted characters kept per document.")
    extract_timeout_seconds: float = Field(
        120.0, gt=0, description="Wall-clock seconds one document may take to extract; its worker is then killed."
    )
    extract_cpu_seconds: int = Field(120, ge=1, description="CPU seconds one document may use in its worker.")
    extract_memory_mb: int = Field(
        2048, ge=256, description="Address space (RLIMIT_AS) of each extraction worker process, in MiB."
    )
    extract_workers: int = Field(1, ge=1, le=64, description="Worker processes extracting documents in parallel.")
    build_extract_budget_seconds: float = Field(
        3600.0,
        ge=0,
        description="Seconds a build may spend extracting (0: no limit). Once spent, the documents not yet started "
        "stay pending for the next build, which this one reports; each member's first waiting document is always "
        "extracted, so every member gets one per build. `--full` builds ignore it.",
    )
    archive_max_members: int = Field(10_000, ge=1, description="Most members a DOCX/PPTX package may have.")
    archive_max_ratio: int = Field(200, ge=1, description="Most bytes a DOCX/PPTX may expand to per byte of file.")
    archive_max_expanded_mb: int = Field(512, ge=1, description="Most MiB a DOCX/PPTX package may expand to.")
    ocr: bool = Field(True, description="OCR PDF pages without a text layer, where `tesseract` is installed.")
    ocr_languages: str = Field(
        "eng+chi_sim", pattern=r"^[A-Za-z_/]+(\+[A-Za-z_/]+)*$", description="Tesseract languages, joined by '+'."
    )
    ocr_max_pages: int = Field(
        15, ge=0, description="Pages of one PDF read by OCR (3-5 s each); the rest stay reported as empty pages."
    )
    keep_generations: int = Field(3, ge=1, description="Published generations kept on disk.")
    embed_commit_passages: int = Field(
        256, ge=1, description="Passages embedded between commits to the embedding cache (a killed build resumes)."
    )
    quality_gate: bool = Field(True, description="Check the golden queries before publishing a generation.")
    golden_queries: Path = Field(
        BUNDLED_GOLDEN_QUERIES, description="Golden queries (JSON) a new generation must answer before it is published."
    )
    quality_top_n: int = Field(5, ge=1, description="A golden query passes when its document is in the top N.")
    quality_min_pass_rate: float = Field(
        0.8, ge=0, le=1, description="Share of the checked golden queries that must pass for a build to be published."
    )
    build_space_growth: float = Field(
        1.5, ge=1, description="Free space a build needs, as a multiple of the published generation's size."
    )
    build_min_free_mb: int = Field(256, ge=0, description="MiB that must stay free on top of the new generation.")
    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="Estimated Jaccard similarity of word 5-grams above which documents are linked."
    )
    cache_dir: Path | None = Field(None, description="Embedding cache folder (default: <data_dir>/cache).")
    ann_threshold: int = Field(
        200_000,
        ge=0,
        description="Passages up to which dense search is exact (flat inner product); above it, an approximate "
        "IVF index with 8-bit scalar quantisation whose recall@10 is measured at build time.",
    )
    ann_nlist: int = Field(0, ge=0, description="Inverted lists of the approximate index (0: about 2 sqrt(passages)).")
    ann_nprobe: int = Field(
        16, ge=1, description="Lists probed per query; the build raises it until recall@10 reaches the floor."
    )
    ann_recall_floor: float = Field(
        0.95, ge=0, le=1, description="Least recall@10 against exact search; below it at every nprobe, exact search."
    )
    ann_recall_queries: int = Field(
        1000, ge=10, description="Sampled passage vectors that measure recall at build time."
    )

    @property
    def embedding_cache_path(self) -> Path:
        """The SQLite file of cached passage vectors."""
        return (self.cache_dir or self.data_dir / "cache") / "embeddings.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Constructor arguments win, then the environment, then `MOOCSEARCH_CONFIG` (a TOML file)."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("MOOCSEARCH_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"MOOCSEARCH_CONFIG names {config_file}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)
