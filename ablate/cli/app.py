"""The app and what every command shares: the consoles, the common options, the error line.

Tables go to stdout; progress, warnings and errors to stderr. A known error prints one
`Error: ...` line and exits 2; ABLATE_DEBUG=1 shows the traceback instead.

One convention for every command: a flag that takes several values is repeated, and each value may
also be a comma-separated list (`--seeds 1 --seeds 2` = `--seeds 1,2`), except --slurm, whose values
(Slurm's own fields) may hold commas. A phase is written the same way wherever a flag names one: a
fraction of the run (0.1), a percentage (10%) or the label its variants carry (p10).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ablate.errors import AblateError

if TYPE_CHECKING:
    from ablate.run.runner import Outcome

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


def stop_on_failures(failed: Sequence[Outcome], stopped: str, rerun: str) -> None:
    """Each failed job's summary in red, then what `stopped` and the command that retries them; exit 1.
    Nothing where no job failed."""
    if not failed:
        return
    from rich.markup import escape

    from ablate.run.view import summary_line

    for outcome in failed:
        err.print(f"[red]{escape(summary_line(outcome))}[/red]", soft_wrap=True)
    err.print(f"{stopped} with {len(failed)} failed job(s); {rerun} to retry them", soft_wrap=True)
    raise typer.Exit(1)


def listed(values: list[str] | None) -> list[str]:
    """A repeatable flag's values with comma-separated lists split: the one list convention."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def parsed(values: list[str] | None, flag: str, kind: type, example: str) -> list | None:
    """A repeatable flag's values as `kind`; None when not given; one line naming the flag when bad."""
    if not values:
        return None
    try:
        return [kind(part) for part in listed(values)]
    except ValueError:
        raise AblateError(f"{flag} {','.join(values)}: use {example}") from None


def phase_fraction(text: str, flag: str) -> float:
    """'0.1', '10%' or 'p10' → 0.1: the one phase notation; one line naming the flag when bad."""
    given = text.strip()
    try:
        if given.startswith("p"):
            return float(given[1:]) / 100
        if given.endswith("%"):
            return float(given[:-1]) / 100
        return float(given)
    except ValueError:
        raise AblateError(f"{flag} {text}: write a phase as a fraction of the run (0.1), 10% or p10") from None


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
        _fail(f"{_usage_line(exc.format_message())}; see '{where} --help'", getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


_NOT_A_CHOICE = re.compile(
    r"Invalid value for '(?P<flag>[^']+)': (Value error, )?'(?P<value>.*)' is not one of (?P<of>.+?)\.?$"
)


def _usage_line(message: str) -> str:
    """A value outside a flag's choices reads like every other bad value: the flag, the value, the fix."""
    found = _NOT_A_CHOICE.match(message)
    if not found:
        return message
    return f"{found['flag']} {found['value']}: use one of {found['of'].replace(chr(39), '')}"


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]Error:[/bold red] {message}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)
