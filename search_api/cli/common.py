"""Shared pieces of the `moocsearch` command: the Typer apps, settings, errors and JSON output.

Exit codes: 0 ok, 1 error, 2 usage or configuration (an invalid API key included), 3 a build is already running,
4 the quality gate rejected the new generation (the published one keeps serving), 5 not enough disk space.
Domain errors get the code of their kind (`EXIT_CODES`), as the API gives them the status of their kind.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from indexer.permissions import restrict_umask
from search_api.services.errors import DOMAIN_ERRORS, ErrorKind, describe
from search_api.settings import ApiSettings

app = typer.Typer(
    help="Multilingual search over the Global MOOC Alliance's documents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
index_app = typer.Typer(help="Build the search index.", no_args_is_help=True)
documents_app = typer.Typer(help="Inspect and delete documents in the catalog.", no_args_is_help=True)
app.add_typer(index_app, name="index")
app.add_typer(documents_app, name="documents")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REJECTED = 4
EXIT_NO_SPACE = 5

# The exit code of each kind of domain error; every kind has one (as every kind has an HTTP status).
EXIT_CODES: dict[ErrorKind, int] = {
    ErrorKind.INVALID: EXIT_USAGE,
    ErrorKind.UNAUTHORIZED: EXIT_USAGE,
    ErrorKind.FORBIDDEN: EXIT_ERROR,
    ErrorKind.NOT_FOUND: EXIT_ERROR,
    ErrorKind.REFUSED: EXIT_ERROR,
    ErrorKind.TOO_LARGE: EXIT_ERROR,
    ErrorKind.UNSUPPORTED: EXIT_ERROR,
    ErrorKind.NOT_READY: EXIT_ERROR,
    ErrorKind.NO_SPACE: EXIT_NO_SPACE,
    ErrorKind.OVER_QUOTA: EXIT_ERROR,
    ErrorKind.MISCONFIGURED: EXIT_USAGE,
}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class _State:
    overrides: dict[str, Any] = {}  # noqa: RUF012 - set once by the callback, per process


def settings() -> ApiSettings:
    """Settings from the environment/TOML file, with the global options applied."""
    try:
        return ApiSettings(**_State.overrides)
    except Exception as exc:
        fail(f"invalid settings: {exc}", code=2)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error for people and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def exit_code(exc: BaseException | None) -> int:
    """The exit code for an error: its kind's for a domain error, 1 for anything else."""
    info = None if exc is None else describe(exc)
    return EXIT_ERROR if info is None else EXIT_CODES[info.kind]


@contextmanager
def reported() -> Iterator[None]:
    """Report domain errors raised inside as `error: <message>` with the exit code of their kind; anything else
    (a bug) goes on as a traceback."""
    try:
        yield
    except DOMAIN_ERRORS as exc:
        info = describe(exc)
        if info is None:
            raise
        fail(info.message, EXIT_CODES[info.kind])


def emit(data: Any) -> None:
    """Print JSON."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@app.callback()
def main_options(
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (default ./data).")] = None,
    model: Annotated[str | None, typer.Option(help="Embedding model id or local model folder.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Global options."""
    restrict_umask()  # everything a command writes (data, backups, builds it spawns) is owner-only
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _State.overrides = {k: v for k, v in {"data_dir": data_dir, "model": model}.items() if v is not None}
