"""Test helpers: made documents, oracles, real servers, paths (import from here)."""

from tests.helpers.documents import FONT, make_docx, make_pdf, make_pptx
from tests.helpers.oracles import language_places_oracle, lexical_coverage_oracle
from tests.helpers.paths import CORPUS, REPO, SHARED_EVAL
from tests.helpers.servers import free_port, start_server, stop_server, wait_for

__all__ = [
    "CORPUS",
    "FONT",
    "REPO",
    "SHARED_EVAL",
    "free_port",
    "language_places_oracle",
    "lexical_coverage_oracle",
    "make_docx",
    "make_pdf",
    "make_pptx",
    "start_server",
    "stop_server",
    "wait_for",
]
