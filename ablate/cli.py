"""The `ablate` command line. Thin: parse, call one library function, print.

    ablate plan --remove math            # baseline + math removed, on recipes/demo.yaml
    ablate plan --recipe recipes/spark-joy-7b.yaml --each subset --json

Tables go to stdout; progress, warnings and errors to stderr. A known error prints one
`Error: ...` line and exits 2; ABLATE_DEBUG=1 shows the traceback instead. Heavy libraries
(torch, composer, streaming, lm_eval) are imported only inside the commands that train or evaluate.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ablate.errors import AblateError

app = typer.Typer(
    help="End-of-training data ablations: plan leave-one-out variants, run them, report deltas with CIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output is read by people too (pasted into docs, CI logs): don't squeeze it into 80 columns.
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)
err = Console(stderr=True)

RecipeOpt = Annotated[
    Optional[Path], typer.Option("--recipe", "-r", help="Recipe YAML [default: $ABLATE_RECIPE or recipes/demo.yaml]")
]
@app.callback()
def _root() -> None:
    """Keeps `ablate <command>` a command group even while one command exists."""


StudyOpt = Annotated[Optional[str], typer.Option("--study", help="Study name [default: the last one planned]")]


# ---- plan ----------------------------------------------------------------------------------


@app.command()
def plan(
    recipe: RecipeOpt = None,
    remove: Annotated[
        Optional[list[str]],
        typer.Option("--remove", help="Group or subset to leave out; 'a+b' removes both in one variant. Repeatable."),
    ] = None,
    each: Annotated[
        Optional[str], typer.Option("--each", help="Without --remove: one variant per 'group' or 'subset'")
    ] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Comma-separated phase seeds, e.g. 1,2,3")] = None,
    control: Annotated[
        Optional[bool], typer.Option("--control/--no-control", help="Add a variant on the base mix")
    ] = None,
    renormalize: Annotated[
        Optional[str], typer.Option("--renormalize", help="'proportional' or 'into:<subset>'")
    ] = None,
    checkpoint: Annotated[
        Optional[str], typer.Option("--checkpoint", help="Start checkpoint: a name in the recipe, or a path")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print plan.json instead of the table")] = False,
) -> None:
    """Expand the recipe's upsample mix into leave-one-out variants and write results/<study>/plan.json."""
    from ablate.manifest import manifest_tokens
    from ablate.plan import build_plan
    from ablate.recipe import load_recipe
    from ablate.store import set_current, study_dir, write_json
    from ablate.tasks import task_sizes

    if each not in (None, "group", "subset"):
        raise AblateError(f"--each {each}: use 'group' or 'subset'")
    loaded = load_recipe(recipe)
    result = build_plan(
        loaded,
        removes=remove or None,
        each=each,  # type: ignore[arg-type]
        seeds=_parse_seeds(seeds),
        control=control,
        renormalize_rule=renormalize,
        checkpoint=checkpoint,
        subset_tokens=manifest_tokens(loaded),
        task_sizes=task_sizes(loaded.eval.tasks, loaded.eval.include),
    )
    payload = result.model_dump(mode="json")
    write_json(study_dir(result.study) / "plan.json", payload)
    set_current(result.study)
    if as_json:
        out.print_json(json.dumps(payload))
        return
    from ablate.plan_view import render_plan

    render_plan(result, out, err)
    err.print(f"[dim]wrote {study_dir(result.study) / 'plan.json'}[/dim]")


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AblateError(f"--seeds {text}: use comma-separated integers, e.g. 1,2,3") from None


# ---- entry point ---------------------------------------------------------------------------


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


if __name__ == "__main__":
    main()
