"""The generation format: the one contract between the indexer (writes) and the search API (reads).

A generation is an immutable folder `<data_dir>/generations/<id>/` holding
- `manifest.json`: format version, the encoders (model, dimension, languages, index type and parameters), counts,
  build parameters, a digest of its content, the catalog state it was built from, and the sha256 of every file;
- `dense.faiss`, `dense-1.faiss`, ...: the vectors of each encoder listed in the manifest (row i = passage i),
  exact or approximate by corpus size (`indexer/dense.py`; the encoder's `index` says which);
- `passages.sqlite3`: the passage table (row -> text, provenance) and the documents it cites;
- `lexical/`: the BM25 postings over the same rows (term counts and row lengths: scores are computed at query time
  from the rows the caller may see, `indexer/bm25.py`).
The published generation is named by the pointer file `<data_dir>/generations/CURRENT`, replaced atomically.
`<data_dir>/generations/PUBLISHED` lists the generations ever published.

Format 2 added `content_digest` and moved the passage count by language out of `parameters`; format 1 folders
(written before) are still read, with no digest. Format 3 replaced bm25s's precomputed scores in `lexical/` by raw
postings, so that no statistic of a hidden row reaches a caller's scores; format 1-2 folders are still served
(their IDF rescaled to the visible rows, their length normalisation over every row, until the next build).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from indexer.generation.rows import DocumentRow, PassageRow

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
MANIFEST_FILE = "manifest.json"
DENSE_FILE = "dense.faiss"
PASSAGES_FILE = "passages.sqlite3"
LEXICAL_DIR = "lexical"
POINTER_FILE = "CURRENT"
HISTORY_FILE = "PUBLISHED"


class GenerationError(Exception):
    """A generation that is missing, incomplete or does not match its manifest."""


def dense_file(position: int) -> str:
    """The dense index file of the encoder at `position` in the manifest's list (0: the primary encoder)."""
    return DENSE_FILE if position == 0 else f"dense-{position}.faiss"


@dataclass(frozen=True)
class DenseIndexSpec:
    """How one encoder's vectors are searched: `flat-ip` (exact) or `ivf-sq8` with its parameters and the recall
    measured at build time; `rejected` holds the figures of an approximate index refused for low recall."""

    type: str
    nlist: int | None = None
    nprobe: int | None = None
    recall_at_10: float | None = None
    recall_queries: int | None = None
    build_seconds: float | None = None
    rejected: DenseIndexSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest's form: only the fields that apply."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.to_dict() if isinstance(value, DenseIndexSpec) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DenseIndexSpec:
        """Parse the manifest's form (also what `indexer.dense.build_index` describes)."""
        values = dict(data)
        if "rejected" in values:
            values["rejected"] = cls.from_dict(values["rejected"])
        return cls(**values)


@dataclass(frozen=True)
class EncoderModel:
    """The model that made an encoder's vectors: same model, version and text, same vectors."""

    model_id: str
    version: str
    dimension: int
    languages: tuple[str, ...] | None  # those it was trained for; None: any


@dataclass(frozen=True)
class EncoderEntry:
    """One dense index of a generation: its model, its file and how it is searched."""

    model_id: str
    version: str
    dimension: int
    file: str
    languages: tuple[str, ...] | None
    index: DenseIndexSpec

    @classmethod
    def of(cls, model: EncoderModel, position: int, index: DenseIndexSpec) -> EncoderEntry:
        """The entry of the encoder at `position` (its file follows from it)."""
        return cls(model.model_id, model.version, model.dimension, dense_file(position), model.languages, index)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's form."""
        languages = list(self.languages) if self.languages is not None else None
        return {**asdict(self), "languages": languages, "index": self.index.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderEntry:
        """Parse the manifest's form."""
        languages = data["languages"]
        return cls(
            model_id=data["model_id"],
            version=data["version"],
            dimension=data["dimension"],
            file=data["file"],
            languages=tuple(languages) if languages else None,
            index=DenseIndexSpec.from_dict(data["index"]),
        )


@dataclass(frozen=True)
class LexicalParameters:
    """The BM25 index's engine and constants."""

    engine: str
    k1: float
    b: float


@dataclass(frozen=True)
class DenseParameters:
    """When the dense indexes are approximate (format 1 recorded only the threshold and the recall floor)."""

    ann_threshold: int
    recall_floor: float
    nlist: int | None = None
    nprobe: int | None = None
    recall_queries: int | None = None


@dataclass(frozen=True)
class BuildParameters:
    """How passages were cut and indexed."""

    passage_max_tokens: int
    chunker: str
    lexical: LexicalParameters
    dense: DenseParameters

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildParameters:
        """Parse the manifest's form."""
        return cls(
            passage_max_tokens=data["passage_max_tokens"],
            chunker=data["chunker"],
            lexical=LexicalParameters(**data["lexical"]),
            dense=DenseParameters(**data["dense"]),
        )


@dataclass(frozen=True)
class Manifest:
    """What a generation holds and how it was made; the primary encoder is `encoders[0]`."""

    generation_id: str
    created_at: str
    passage_count: int
    document_count: int
    encoders: tuple[EncoderEntry, ...]
    parameters: BuildParameters
    languages: dict[str, int] = field(default_factory=dict)  # passages by language ('und': unknown)
    content_digest: str | None = None  # None: a format 1 generation
    catalog_state: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def model_id(self) -> str:
        """The primary encoder's model."""
        return self.encoders[0].model_id

    @property
    def model_version(self) -> str:
        """The primary encoder's model version."""
        return self.encoders[0].version

    @property
    def dimension(self) -> int:
        """The primary encoder's dimension."""
        return self.encoders[0].dimension

    @property
    def index_type(self) -> str:
        """The primary encoder's index type."""
        return self.encoders[0].index.type

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; the primary encoder's fields are repeated at the top for people and simple tools."""
        return {
            "format_version": self.format_version,
            "generation_id": self.generation_id,
            "created_at": self.created_at,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "dimension": self.dimension,
            "index_type": self.index_type,
            "passage_count": self.passage_count,
            "document_count": self.document_count,
            "content_digest": self.content_digest,
            "encoders": [e.to_dict() for e in self.encoders],
            "parameters": asdict(self.parameters),
            "languages": self.languages,
            "catalog_state": self.catalog_state,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse a manifest of a readable format, refusing others."""
        version = data.get("format_version")
        if version not in READABLE_FORMATS:
            readable = ", ".join(map(str, READABLE_FORMATS))
            raise GenerationError(f"unsupported generation format {version!r} (this version reads {readable})")
        try:
            if version == 1:
                return _from_format_1(data)
            return cls(
                generation_id=data["generation_id"],
                created_at=data["created_at"],
                passage_count=data["passage_count"],
                document_count=data["document_count"],
                encoders=tuple(EncoderEntry.from_dict(e) for e in data["encoders"]),
                parameters=BuildParameters.from_dict(data["parameters"]),
                languages=dict(data["languages"]),
                content_digest=data["content_digest"],
                catalog_state=dict(data["catalog_state"]),
                files=dict(data["files"]),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GenerationError(f"malformed manifest: {type(exc).__name__}: {exc}") from exc


def _from_format_1(data: Mapping[str, Any]) -> Manifest:
    """A format 1 manifest: languages inside the parameters, no digest; the first ones listed no encoders (the
    primary model's fields at the top stood for its one dense index)."""
    parameters = dict(data["parameters"])
    languages = parameters.pop("languages", {})
    if "encoders" in data:
        encoders = tuple(EncoderEntry.from_dict(e) for e in data["encoders"])
    else:
        spec = DenseIndexSpec(data["index_type"])
        encoders = (EncoderEntry(data["model_id"], data["model_version"], data["dimension"], DENSE_FILE, None, spec),)
    return Manifest(
        generation_id=data["generation_id"],
        created_at=data["created_at"],
        passage_count=data["passage_count"],
        document_count=data["document_count"],
        encoders=encoders,
        parameters=BuildParameters.from_dict(parameters),
        languages=dict(languages),
        content_digest=None,
        catalog_state=dict(data["catalog_state"]),
        files=dict(data["files"]),
        format_version=1,
    )


def content_digest(
    passages: Iterable[PassageRow],
    documents: Iterable[DocumentRow],
    models: Iterable[EncoderModel],
    parameters: BuildParameters,
) -> str:
    """sha256 of what searchers see of a generation: its rows (texts, provenance, document metadata and
    visibility), the models of its vectors and its build parameters. Ids and times are left out, so two builds
    of the same catalog get the same digest."""
    digest = hashlib.sha256(f"format {FORMAT_VERSION}\n".encode())
    items: Iterable[Any] = (*models, parameters, *documents, *passages)
    for item in items:
        digest.update(json.dumps(asdict(item), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()
