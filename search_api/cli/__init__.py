"""The `moocsearch` command."""

from search_api.cli import accounts, backup, build, documents, query, serve  # noqa: F401 - each module registers its commands
from search_api.cli.common import app


def main() -> None:
    """Entry point of the console script."""
    app(prog_name="moocsearch")
