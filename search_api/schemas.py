"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class FiltersIn(BaseModel):
    """Which documents to search. Values within a field are alternatives; fields combine."""

    member: list[str] = Field(default_factory=list, examples=[["Tsinghua University"]])
    language: list[str] = Field(default_factory=list, description="ISO 639-1 codes.", examples=[["en", "zh"]])
    resource_type: list[str] = Field(
        default_factory=list,
        description="practice_report, teaching_resource, syllabus, slides, dataset or other.",
    )
    tag: list[str] = Field(default_factory=list, description="Documents with any of these tags.")
    year_from: int | None = Field(default=None, ge=1900, le=2100)
    year_to: int | None = Field(default=None, ge=1900, le=2100)


class SearchRequest(BaseModel):
    """A search with a JSON body (the same parameters as GET /search)."""

    query: str = Field(
        ...,
        description="Natural-language query, in any language.",
        examples=["how to run peer assessment in a large course"],
    )
    k: int | None = Field(None, ge=1, description="Number of hits (default 10, at most the configured maximum).")
    offset: int = Field(0, ge=0, description="Hits to skip, for paging.")
    group: Literal["passage", "document"] = Field("passage", description="'document': best passage per document.")
    filters: FiltersIn = Field(default_factory=lambda: FiltersIn())


class HitOut(BaseModel):
    """A ranked passage with its citation."""

    rank: int
    score: float = Field(description="Fused relevance (reciprocal rank fusion of dense and BM25); higher is better.")
    passage_id: str
    text: str
    snippet: str = Field(description="HTML-escaped excerpt with <mark> around the query's terms.")
    highlights: list[tuple[int, int]] = Field(description="Character spans of the query's terms in `text`.")
    document_id: str
    title: str | None
    member: str | None
    language: str | None = Field(description="Language of the passage (ISO 639-1).")
    document_language: str | None
    resource_type: str | None
    year: int | None
    tags: list[str]
    page: int | None = Field(description="Page of a PDF, slide of a PPTX; null for unpaged formats.")
    heading: list[str]
    link: str = Field(description="The original, opened at the passage's page where the format allows.")
    more_passages: int = Field(0, description="With group=document: further matching passages of this document.")
    near_duplicates: list[str] = Field(description="Ids of near-duplicate documents (older versions) not shown.")


class SearchOut(BaseModel):
    """The answer to a search; every hit comes from the one generation named."""

    query: str
    generation: str
    k: int
    offset: int
    group: str
    query_language: str | None = Field(description="The language the query was read as (stemming, snippets).")
    hits: list[HitOut]
    took_ms: float


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str
    message: str


class ErrorOut(BaseModel):
    """The error body of every failed request."""

    error: ErrorDetail


class HealthOut(BaseModel):
    """Liveness and what is being served."""

    status: Literal["ok", "degraded", "starting"]
    generation: str | None
    passages: int | None
    documents: int | None
    model: str | None
    problem: str | None = None
