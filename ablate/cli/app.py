"""The app and what every command shares: the consoles, the common options, the error line.

Tables go to stdout; progress, warnings and errors to stderr. A known error prints one
`Error: ...` line and exits 2; ABLATE_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ablate.errors import AblateError

app = typer.Typer(
    help="End-of-training data ablations: plan leave-one-out variants, run them, report deltas with CIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build MDS shards from raw text; write the embedded demo corpus.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# Piped output is read by people too (pasted into docs, CI logs): don't squeeze it into 80 columns.
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True)

RecipeOpt = Annotated[
    Path | None,
    typer.Option(
        "--recipe",
        "-r",
        help="Recipe YAML; `ablate init DIR` writes one of your own",
        show_default="$ABLATE_RECIPE, else ./recipes/demo.yaml, else the packaged demo recipe (study `demo`)",
    ),
]
StudyOpt = Annotated[str | None, typer.Option("--study", help="Study name", show_default="the last one planned")]


@app.callback()
def _root() -> None:
    """Keeps `ablate <command>` a command group even while one command exists."""


def main() -> None:
    """Run the app; bad input becomes one line on stderr and exit code 2 (click's usage code)."""
    try:
        code = app(standalone_mode=False)
    except AblateError as exc:
        if os.environ.get("ABLATE_DEBUG"):
            raise
        _fail(str(exc))
    except typer.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors: unknown option, bad value, ...
        if not hasattr(exc, "format_message"):
            raise
        if not exc.format_message():  # `ablate` alone: the help was the answer
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx else "ablate"
        _fail(f"{exc.format_message()}; see '{where} --help'", getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]Error:[/bold red] {message}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)
