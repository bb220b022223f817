"""What every ``govdata`` command shares: the consoles, the ``--home`` option and error printing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from pipelines.errors import GovdataError

out = Console()
err = Console(stderr=True)

EXIT_OK, EXIT_ERROR, EXIT_HELD = 0, 1, 2

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Workspace folder (default: $GOVDATA_HOME or ./var).", show_default=False)
]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        envvar="GOVDATA_USER",
        help="Act as this catalog user (see `govdata catalog users list`); reads without it see everything.",
        show_default=False,
    ),
]


def fail(exc: BaseException) -> NoReturn:
    """Print an error and its hint (no traceback) and exit 1."""
    message = exc.message if isinstance(exc, GovdataError) else str(exc)
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    hint = getattr(exc, "hint", None)
    if hint:
        err.print(f"[yellow]→[/] {hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_ERROR)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn govdata's own errors (and file-system refusals) into a message and exit code 1."""
    try:
        yield
    except GovdataError as exc:
        fail(exc)
    except (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        fail(exc)
