"""What went wrong, said once for every caller: the kind of a domain error, its stable code and its message.

The HTTP layer (search_api/errors.py) turns a kind into a status and the command line (search_api/cli/common.py)
into an exit code. Both read `describe`, so an error never means one thing to the API and another to the CLI.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from indexer.catalog import AccountError, QuotaExceeded
from indexer.diskspace import InsufficientSpaceError
from indexer.embedding import UnknownModelError
from indexer.extract.model import ExtractionError
from indexer.ingest import IngestError
from indexer.metadata import MetadataError
from search_api.ranking.reranking import RerankerError
from search_api.searcher import ModelMismatchError, UnknownPassageError


class ErrorKind(StrEnum):
    """What kind of refusal an error is; each caller decides once how to say each kind."""

    INVALID = "invalid"  # the input breaks a rule: fix it and retry
    UNAUTHORIZED = "unauthorized"  # a key that is malformed, unknown, revoked or of a disabled member
    FORBIDDEN = "forbidden"  # a valid caller that may not do this
    NOT_FOUND = "not_found"  # no such thing, or one the caller may not see (the two are not told apart)
    REFUSED = "refused"  # the stored state refuses the change (an account that exists or does not)
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"  # bytes of a type that is not supported, or not the type they claim
    NOT_READY = "not_ready"  # nothing published to search yet
    NO_SPACE = "no_space"  # the disk is (nearly) full
    OVER_QUOTA = "over_quota"  # the caller's share is used up until something clears it (the next build)
    MISCONFIGURED = "misconfigured"  # models or settings that do not fit the index


class ServiceError(Exception):
    """A refusal by a service function; `code` is stable (clients switch on it), the message is for people."""

    kind: ClassVar[ErrorKind]
    default_code: ClassVar[str]

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class InvalidInput(ServiceError):
    """A query, page, filter or upload that breaks a rule."""

    kind, default_code = ErrorKind.INVALID, "invalid_request"


class Unauthorized(ServiceError):
    """A key that speaks for nobody."""

    kind, default_code = ErrorKind.UNAUTHORIZED, "unauthorized"


class Forbidden(ServiceError):
    """A caller that may not do this (another member's document, an admin's change)."""

    kind, default_code = ErrorKind.FORBIDDEN, "forbidden"


class NotFound(ServiceError):
    """No such document or passage, or one the caller may not see."""

    kind, default_code = ErrorKind.NOT_FOUND, "not_found"


class TooLarge(ServiceError):
    """A file over the limit."""

    kind, default_code = ErrorKind.TOO_LARGE, "too_large"


class UnsupportedType(ServiceError):
    """Bytes (or a body) of a type the service does not take."""

    kind, default_code = ErrorKind.UNSUPPORTED, "unsupported_media_type"


class NotReady(ServiceError):
    """No generation is loaded, so there is nothing to search."""

    kind, default_code = ErrorKind.NOT_READY, "index_not_ready"


class NoSpace(ServiceError):
    """Too little free disk space to store what was sent."""

    kind, default_code = ErrorKind.NO_SPACE, "insufficient_storage"


@dataclass(frozen=True)
class ErrorInfo:
    """A domain error as every caller reports it."""

    kind: ErrorKind
    code: str
    message: str


DISK_FULL_MESSAGE = "the server ran out of disk space storing the file"
# Every exception type `describe` knows (OSError only when the disk is full): what handlers are installed for.
DOMAIN_ERRORS: tuple[type[Exception], ...] = (
    ServiceError,
    IngestError,
    MetadataError,
    ExtractionError,
    UnknownPassageError,
    AccountError,
    QuotaExceeded,
    InsufficientSpaceError,
    UnknownModelError,
    ModelMismatchError,
    RerankerError,
    OSError,
)


def describe(exc: BaseException) -> ErrorInfo | None:
    """The kind, code and message of a domain error; None for anything else (a bug, reported as such)."""
    match exc:
        case ServiceError():
            return ErrorInfo(exc.kind, exc.code, exc.message)
        case IngestError():
            kind = ErrorKind.TOO_LARGE if exc.code == "too_large" else ErrorKind.INVALID
            return ErrorInfo(kind, exc.code, exc.message)
        case MetadataError():
            return ErrorInfo(ErrorKind.INVALID, MetadataError.code, str(exc))
        case ExtractionError():
            return ErrorInfo(ErrorKind.UNSUPPORTED, UnsupportedType.default_code, exc.message)
        case UnknownPassageError():
            return ErrorInfo(ErrorKind.NOT_FOUND, NotFound.default_code, str(exc))
        case AccountError():
            return ErrorInfo(ErrorKind.REFUSED, "account_refused", str(exc))
        case QuotaExceeded():
            return ErrorInfo(ErrorKind.OVER_QUOTA, "quota_exceeded", exc.message)
        case InsufficientSpaceError():
            return ErrorInfo(ErrorKind.NO_SPACE, NoSpace.default_code, str(exc))
        case UnknownModelError() | ModelMismatchError() | RerankerError():
            return ErrorInfo(ErrorKind.MISCONFIGURED, "misconfigured", str(exc))
        case OSError() if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return ErrorInfo(ErrorKind.NO_SPACE, NoSpace.default_code, DISK_FULL_MESSAGE)
    return None
