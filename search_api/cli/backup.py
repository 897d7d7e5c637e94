"""`moocsearch backup` and `moocsearch restore`: copies of the originals and the catalog, and back."""

from __future__ import annotations

import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from indexer.backup import BackupError, backup_data_dir, restore_data_dir
from search_api.cli.common import JsonOpt, app, emit, fail, settings


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="A new or empty folder to write the backup into.")],
    as_json: JsonOpt = False,
) -> None:
    """Back up the originals and a consistent copy of the catalog (safe while the service runs)."""
    try:
        manifest = backup_data_dir(settings().data_dir, destination)
    except BackupError as exc:
        fail(str(exc))
    if as_json:
        emit(asdict(manifest))
        return
    typer.echo(
        f"backed up {manifest.documents} documents ({manifest.original_bytes} bytes of originals) to {destination}"
    )


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A folder written by `moocsearch backup`.")],
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into an empty data directory; then run `moocsearch --data-dir DIR index build`."""
    data_dir = settings().data_dir
    try:
        manifest = restore_data_dir(source, data_dir)
    except BackupError as exc:
        fail(str(exc))
    if as_json:
        emit(asdict(manifest))
        return
    command = f"moocsearch --data-dir {shlex.quote(str(data_dir.resolve()))} index build"
    typer.echo(f"restored {manifest.documents} documents into {data_dir}; run `{command}` to index them")
