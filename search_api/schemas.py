"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict


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


class TranslationOut(BaseModel):
    """Another language version of a hit's document (linked by its `translation_group`)."""

    document_id: str
    language: str | None
    title: str | None
    link: str = Field(description="The original of this version.")


class HitOut(BaseModel):
    """A ranked passage with its citation."""

    rank: int
    score: float = Field(description="Fused relevance (reciprocal rank fusion of dense and BM25); higher is better.")
    rerank_score: float | None = Field(
        None, description="The cross-encoder's score where reranking is on and reached this hit; it sets the order."
    )
    passage_id: str = Field(description="Stable id of the passage; GET /passages/{passage_id}/similar finds more.")
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
    also_in: list[TranslationOut] = Field(
        default_factory=list,
        description="With group=document: translations of this document that the filters allow, shown as this hit.",
    )


_HIT_EXAMPLE: JsonDict = {
    "rank": 1,
    "score": 0.032787,
    "rerank_score": None,
    "passage_id": "3f2a9c1e5b7d4a60-0007",
    "text": "Peer assessment with calibrated rubrics lets thousands of learners grade design work.",
    "snippet": "<mark>Peer assessment</mark> with calibrated rubrics lets thousands of learners grade design work.",
    "highlights": [[0, 15]],
    "document_id": "3f2a9c1e5b7d4a60",
    "title": "Peer Assessment at Scale",
    "member": "Tsinghua University",
    "language": "en",
    "document_language": "en",
    "resource_type": "practice_report",
    "year": 2024,
    "tags": ["peer assessment"],
    "page": 2,
    "heading": ["Design of the course"],
    "link": "/documents/3f2a9c1e5b7d4a60/file#page=2",
    "more_passages": 0,
    "near_duplicates": [],
    "also_in": [],
}


class SearchOut(BaseModel):
    """The answer to a search; every hit comes from the one generation named."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "how to run peer assessment in a large course",
                    "generation": "g20260101T120000000000Z-1a2b3c",
                    "k": 10,
                    "offset": 0,
                    "group": "passage",
                    "query_language": "en",
                    "hits": [_HIT_EXAMPLE],
                    "took_ms": 38.5,
                }
            ]
        }
    )

    query: str
    generation: str
    k: int
    offset: int
    group: str
    query_language: str | None = Field(description="The language the query was read as (stemming, snippets).")
    hits: list[HitOut]
    took_ms: float


class SimilarOut(BaseModel):
    """Passages like a given one; every hit comes from the one generation named."""

    passage_id: str = Field(description="The passage the hits are like.")
    document_id: str = Field(description="Its document, left out of the hits with its near duplicates.")
    language: str | None = Field(description="The passage's language.")
    generation: str
    k: int
    offset: int
    group: str
    hits: list[HitOut]
    took_ms: float


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str
    message: str


class ErrorOut(BaseModel):
    """The error body of every failed request."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": {"code": "not_found", "message": "no document 0123456789abcdef"}}]}
    )

    error: ErrorDetail


class HealthOut(BaseModel):
    """Liveness and what is being served."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "degraded",
                    "generation": "g20260101T120000000000Z-1a2b3c",
                    "passages": 1250,
                    "documents": 42,
                    "model": "sentence-transformers/all-MiniLM-L6-v2",
                    "problem": "generation g20260102T120000000000Z-4d5e6f refused: checksum mismatch in dense.faiss",
                }
            ]
        }
    )

    status: Literal["ok", "degraded", "starting"] = Field(
        description="ok: serving; starting: nothing published yet; degraded: a newer generation was refused."
    )
    generation: str | None
    passages: int | None
    documents: int | None
    model: str | None
    problem: str | None = Field(None, description="Why the service is degraded.")


class ReadyOut(BaseModel):
    """The generation being served, once one is loaded."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "generation": "g20260101T120000000000Z-1a2b3c",
                    "created_at": "2026-01-01T12:00:00.000+00:00",
                    "age_seconds": 3600.5,
                    "passages": 1250,
                    "documents": 42,
                    "models": ["sentence-transformers/all-MiniLM-L6-v2"],
                }
            ]
        }
    )

    status: Literal["ready"]
    generation: str
    created_at: str = Field(description="When the generation was built (ISO 8601, UTC).")
    age_seconds: float | None = Field(description="Seconds since the generation was built.")
    passages: int
    documents: int
    models: list[str] = Field(description="The embedding models of the generation's dense indexes.")


class DocumentOut(BaseModel):
    """A document in the catalog: metadata, indexing status and whether search shows it yet."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2a9c0d1e4b5a67",
                    "filename": "peer-assessment.pdf",
                    "title": "Peer Assessment at Scale",
                    "status": "indexed",
                    "reason": None,
                    "message": None,
                    "media_type": "application/pdf",
                    "language": "en",
                    "size_bytes": 48213,
                    "sha256": "3f2a9c0d1e4b5a67" + "0" * 48,
                    "pages": 12,
                    "passages": 31,
                    "member": "Tsinghua University",
                    "visibility": "public",
                    "metadata": {"title": "Peer Assessment at Scale", "resource_type": "practice_report"},
                    "near_duplicate_of": None,
                    "generation": "g20260101T120000000000Z-1a2b3c",
                    "searchable": True,
                    "note": "searchable in generation g20260101T120000000000Z-1a2b3c",
                    "created_at": "2026-01-01T11:00:00.000+00:00",
                    "updated_at": "2026-01-01T11:58:00.000+00:00",
                }
            ]
        }
    )

    id: str
    filename: str = Field(description="The uploaded name, cleaned; the original is stored under its sha256.")
    title: str | None
    status: Literal["pending", "indexed", "failed", "deleted"]
    reason: str | None = Field(None, description="Why a failed document failed (a stable code such as `encrypted`).")
    message: str | None = Field(None, description="The failure, for people.")
    media_type: str | None = Field(description="The type read from the bytes.")
    language: str | None
    size_bytes: int
    sha256: str
    pages: int | None
    passages: int = Field(description="Passages cut from the document at its last extraction.")
    member: str | None = Field(description="The member institution the document belongs to.")
    visibility: Literal["public", "alliance", "member"]
    metadata: dict[str, Any]
    near_duplicate_of: str | None = Field(None, description="An older document this one nearly duplicates.")
    generation: str | None = Field(description="The generation being served that holds the document, if any.")
    searchable: bool = Field(description="Whether searches can return it now.")
    note: str = Field(description="For people: where the document stands, e.g. `pending next build`.")
    created_at: str
    updated_at: str


class DocumentListOut(BaseModel):
    """A page of the documents the caller may see."""

    documents: list[DocumentOut]
    total: int = Field(description="Documents matching the filters, over all pages.")
    limit: int
    offset: int


class UploadOut(BaseModel):
    """The answer to an upload: the stored (or already known) document."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2a9c0d1e4b5a67",
                    "status": "pending",
                    "filename": "peer-assessment.pdf",
                    "media_type": "application/pdf",
                    "size_bytes": 48213,
                    "sha256": "3f2a9c0d1e4b5a67" + "0" * 48,
                    "duplicate_of": None,
                    "visibility": "member",
                    "note": "stored durably; it becomes searchable after the next index build; visibility member: "
                    "only your member and the operators may find it",
                }
            ]
        }
    )

    id: str | None = Field(description="The document's id; null for a duplicate of a document you cannot see.")
    status: str
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    duplicate_of: str | None = Field(None, description="Set when these bytes were already in the catalog.")
    visibility: Literal["public", "alliance", "member"] | None = Field(
        None,
        description="Who may find the document (left out of the upload: the member's default visibility, `member` "
        "unless the operator set another); null for a duplicate of a document you cannot see.",
    )
    note: str


class DocumentPatch(BaseModel):
    """Metadata fields to change; fields left out keep their value, null clears one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Peer Assessment at Scale (2nd edition)", "visibility": "alliance"}]},
    )

    title: str | None = None
    member: str | None = Field(None, description="Admins only: the member institution.")
    authors: list[str] | None = None
    resource_type: str | None = None
    language: str | None = None
    year: int | None = None
    licence: str | None = None
    tags: list[str] | None = None
    discipline: str | None = None
    level: str | None = None
    visibility: Literal["public", "alliance", "member"] | None = None
    translation_group: str | None = None


class BuildStartedOut(BaseModel):
    """A build started in a separate process; follow it at `GET /admin/builds/{build_id}`."""

    build_id: int
    status: Literal["queued"] = "queued"
    pid: int = Field(description="The build process.")


class BuildFailureOut(BaseModel):
    """A document a build could not read."""

    document_id: str
    filename: str
    reason: str
    message: str


class DeferredOut(BaseModel):
    """Documents of one member that a build left pending for the next one (its extraction budget was spent)."""

    member: str | None = Field(description="The member; null for documents the operator ingested without one.")
    documents: int


class BuildOut(BaseModel):
    """One build record: when and why it ran, how it ended and what it changed."""

    id: int
    trigger: Literal["cli", "schedule", "soon", "admin"]
    outcome: Literal[
        "queued", "running", "published", "unchanged", "failed", "rejected", "already_running", "interrupted"
    ] = Field(
        description="`rejected`: the quality gate kept the generation unpublished; `interrupted`: the build "
        "process died without finishing (the next build noticed)."
    )
    started_at: str
    finished_at: str | None
    generation_id: str | None = Field(description="The generation the build published.")
    pid: int | None = Field(description="The build process.")
    message: str | None = Field(description="Why the build failed or was refused.")
    documents_added: int = Field(description="Documents searchable now that the previous generation lacked.")
    documents_changed: int = Field(description="Documents whose metadata or passages changed.")
    documents_deleted: int = Field(description="Documents of the previous generation left out.")
    documents_failed: int = Field(description="Documents the build could not read.")
    documents_extracted: int
    documents_deferred: int = Field(
        0,
        description="Pending documents not extracted because the build's extraction budget was spent: still pending, "
        "for the next build.",
    )
    documents_indexed: int
    passages: int
    passages_embedded: int = Field(description="Passages embedded by this build (the rest came from the cache).")
    seconds: dict[str, float] = Field(description="Seconds per stage (extract, embed, write, publish, ...) and total.")
    failures: list[BuildFailureOut]
    deferred: list[DeferredOut] = Field(
        default_factory=list, description="`documents_deferred` per member, most first."
    )
    quality: dict[str, Any] | None = Field(description="The quality gate's result, when it ran.")


class BuildListOut(BaseModel):
    """A page of build records, newest first."""

    builds: list[BuildOut]
    total: int
    limit: int
    offset: int
