"""Shared pieces of the `moocsearch` command: the Typer apps, settings, errors and JSON output.

Exit codes: 0 ok, 1 error, 2 usage or configuration, 3 a build is already running, 4 the quality gate rejected
the new generation (the published one keeps serving), 5 not enough disk space for a build.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

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

EXIT_REJECTED = 4
EXIT_NO_SPACE = 5

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
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _State.overrides = {k: v for k, v in {"data_dir": data_dir, "model": model}.items() if v is not None}
