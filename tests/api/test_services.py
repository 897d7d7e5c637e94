"""The service layer: one meaning per domain error for the API and the CLI, and caches that live with the
generation they were derived from."""

from __future__ import annotations

import errno

import pytest

from indexer.access import ANONYMOUS
from indexer.catalog import AccountError
from indexer.diskspace import InsufficientSpaceError
from indexer.embedding import HashEmbedder, UnknownModelError
from indexer.extract.model import UNSUPPORTED_TYPE, ExtractionError
from indexer.extract.sniff import claimed_type_conflict
from indexer.ingest import IngestError
from indexer.metadata import DocumentMetadata, MetadataError, check_owned
from indexer.pipeline import Indexer
from search_api.cli.common import EXIT_CODES, exit_code
from search_api.errors import HTTP_STATUS
from search_api.factory import QueryModels
from search_api.searcher import UnknownPassageError
from search_api.services.errors import ErrorKind, Forbidden, InvalidInput, NotFound, NotReady, Unauthorized, describe
from search_api.services.generations import SearchService
from search_api.services.search import search
from search_api.settings import ApiSettings


def test_every_kind_of_error_has_one_http_status_and_one_exit_code() -> None:
    assert set(HTTP_STATUS) == set(ErrorKind) == set(EXIT_CODES)


@pytest.mark.parametrize(
    ("error", "status", "code", "exit"),
    [
        (InvalidInput("the query is empty", "invalid_query"), 422, "invalid_query", 2),
        (Unauthorized("bad key"), 401, "unauthorized", 2),
        (Forbidden("another member's"), 403, "forbidden", 1),
        (NotFound("no document"), 404, "not_found", 1),
        (NotReady("nothing published"), 503, "index_not_ready", 1),
        (IngestError("too_large", "too big"), 413, "too_large", 1),
        (IngestError("empty_file", "empty"), 422, "empty_file", 2),
        (MetadataError("year: not a number"), 422, "invalid_metadata", 2),
        (ExtractionError(UNSUPPORTED_TYPE, "binary data"), 415, "unsupported_media_type", 1),
        (UnknownPassageError("no passage"), 404, "not_found", 1),
        (AccountError("no member 'x'"), 409, "account_refused", 1),
        (InsufficientSpaceError("short of space"), 507, "insufficient_storage", 5),
        (OSError(errno.ENOSPC, "No space left on device"), 507, "insufficient_storage", 5),
        (UnknownModelError("unknown model"), 503, "misconfigured", 2),
    ],
)
def test_domain_errors_map_to_a_status_and_an_exit_code(error: Exception, status: int, code: str, exit: int) -> None:
    info = describe(error)
    assert info is not None and (HTTP_STATUS[info.kind], info.code, exit_code(error)) == (status, code, exit)


def test_other_errors_are_bugs_not_domain_errors() -> None:
    assert describe(OSError(errno.EACCES, "Permission denied")) is None
    assert describe(ValueError("oops")) is None and exit_code(ValueError("oops")) == 1


def test_a_name_or_declared_type_of_another_family_than_the_bytes_is_a_conflict() -> None:
    pdf, text = "application/pdf", "text/plain"
    assert claimed_type_conflict(pdf, "report.pdf", "application/pdf") is None
    assert claimed_type_conflict(text, "notes.md", "text/html; charset=utf-8") is None  # one family
    assert claimed_type_conflict(pdf, "report.docx", None) == f"the file name says {_docx()} but the bytes are {pdf}"
    assert claimed_type_conflict(text, "x.bin", "application/pdf") is not None
    assert claimed_type_conflict(text, "x.unknown", "application/x-whatever") is None


def _docx() -> str:
    return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def test_member_visibility_needs_a_member() -> None:
    with pytest.raises(MetadataError, match="needs the document's member"):
        check_owned(DocumentMetadata(visibility="member"))
    assert check_owned(DocumentMetadata(visibility="member", member="Tsinghua University")).member


def test_the_access_cache_lives_with_the_generation_it_was_built_for(
    settings: ApiSettings, embedder: HashEmbedder
) -> None:
    indexer = Indexer(settings, embedder)
    indexer.ingest(b"Peer review rubrics for large courses.", "peer.txt", DocumentMetadata())
    indexer.build()
    service = SearchService(settings, QueryModels((embedder,)))
    with pytest.raises(NotReady):
        search(service, ANONYMOUS, "peer review")
    service.load_published()
    first = service.current
    assert first is not None
    search(service, ANONYMOUS, "peer review")
    search(service, ANONYMOUS, "rubrics")
    assert len(first.access_cache) == 1  # one catalog state: built once, reused
    indexer.ingest(b"Offline packages for low bandwidth.", "offline.txt", DocumentMetadata())
    indexer.build()
    indexer.close()
    service.load_published()
    second = service.current
    assert second is not None and second is not first and len(second.access_cache) == 0
    assert len(search(service, ANONYMOUS, "offline bandwidth").result.hits) >= 1
    assert len(second.access_cache) == 1
    service.close()
