"""The `ablate` command line. Thin: parse, call one library function, print.

    ablate plan --remove math            # baseline + math removed, on recipes/demo.yaml
    ablate plan --recipe recipes/spark-joy-7b.yaml --each subset --json

Tables go to stdout; progress, warnings and errors to stderr. A known error prints one
`Error: ...` line and exits 2; ABLATE_DEBUG=1 shows the traceback instead. Heavy libraries
(torch, composer, streaming, lm_eval) are imported only inside the commands that train or evaluate.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
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
    from ablate.recipe import load_recipe
    from ablate.store import study_dir
    from ablate.plan.study import plan_study

    if each not in (None, "group", "subset"):
        raise AblateError(f"--each {each}: use 'group' or 'subset'")
    result = plan_study(
        load_recipe(recipe),
        removes=remove or None,
        each=each,
        seeds=_parse_seeds(seeds),
        control=control,
        renormalize_rule=renormalize,
        checkpoint=checkpoint,
    )
    payload = result.model_dump(mode="json")
    if as_json:
        out.print_json(json.dumps(payload))
        return
    from ablate.plan.view import render_plan

    render_plan(result, out, err)
    err.print(f"[dim]wrote {study_dir(result.study) / 'plan.json'}[/dim]")


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AblateError(f"--seeds {text}: use comma-separated integers, e.g. 1,2,3") from None


# ---- report --------------------------------------------------------------------------------


@app.command()
def report(
    study: StudyOpt = None,
    baseline: Annotated[str, typer.Option("--baseline", help="Variant (ablation) the deltas are taken against")] = "baseline",
    metric: Annotated[
        Optional[str], typer.Option("--metric", help="Metric for every task [default: acc_norm, else acc, else the first]")
    ] = None,
    from_dir: Annotated[
        Optional[Path],
        typer.Option("--from", help="Report plain lm-eval outputs instead: DIR/<variant>/ from `lm_eval --output_path DIR/<variant> --log_samples`"),
    ] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", help="Folder for report.md/.csv/.json and deltas.png [default: the study's, or --from DIR]")
    ] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Paired bootstrap resamples")] = 10_000,
    ci: Annotated[float, typer.Option("--ci", help="Confidence level of the intervals")] = 0.95,
    fmt: Annotated[str, typer.Option("--format", help="What stdout shows: md, csv or json (all files are written)")] = "md",
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write the deltas.png heatmap")] = True,
) -> None:
    """Scores and Δ vs baseline with paired-bootstrap CIs; writes report.md/.csv/.json and deltas.png."""
    from ablate.report.build import Settings, build_report, write_report
    from ablate.report.load import load_folder, load_study
    from ablate.store import study_dir

    if fmt not in ("md", "csv", "json"):
        raise AblateError(f"--format {fmt}: use md, csv or json")
    if from_dir is not None and study is not None:
        raise AblateError("--from and --study: give one; --from reads plain lm-eval outputs, --study a planned study")
    results = load_folder(from_dir) if from_dir is not None else load_study(study)
    built = build_report(results, Settings(baseline=baseline, metric=metric, ci=ci, resamples=bootstrap))
    written = write_report(built, out_dir or from_dir or study_dir(results.name), plot=plot)
    _print_report(built, fmt)
    err.print(f"[dim]wrote {', '.join(str(p) for p in written)}[/dim]", highlight=False)


def _print_report(built, fmt: str = "md") -> None:  # built: ablate.report.Report
    """Markdown rendered by rich in a terminal, plain markdown (or CSV/JSON) when piped."""
    from ablate.report.build import to_csv, to_json, to_markdown

    if fmt == "md" and out.is_terminal:
        from rich.markdown import Markdown

        out.print(Markdown(to_markdown(built)))
    else:
        text = {"md": to_markdown, "csv": to_csv}.get(fmt)
        sys.stdout.write(text(built) if text else json.dumps(to_json(built), indent=2, default=str) + "\n")


# ---- status --------------------------------------------------------------------------------

_STATE_STYLE = {"done": "green", "failed": "red", "stale": "red", "training": "yellow", "evaluating": "yellow"}


@app.command()
def status(study: StudyOpt = None) -> None:
    """Each variant's state, tokens done / planned, whether its results match the plan, and where it failed."""
    from rich.markup import escape
    from rich.table import Table

    from ablate.plan.view import human
    from ablate.report.load import variant_states
    from ablate.store import current_study

    name = current_study(study)
    states = variant_states(name)
    table = Table(title=f"Study '{name}'", title_justify="left")
    for column in ("variant", "state", "tokens done / planned", "hash", "error"):
        table.add_column(column, justify="right" if column.startswith("tokens") else "left", overflow="fold")
    for row in states.itertuples():
        style = _STATE_STYLE.get(row.state, "dim")
        # pandas turns a missing count into NaN, which is the one number not equal to itself
        done, planned = (human(n) if isinstance(n, (int, float)) and n == n else "—" for n in (row.tokens_done, row.tokens))
        hash_check = {True: "ok", False: "[red]mismatch[/red]"}.get(row.hash_ok, "—")
        error = ""
        if row.state in ("failed", "stale") and row.error:
            error = f"{escape(str(row.error).splitlines()[0])} [dim]({escape(row.folder)}/status.json)[/dim]"
        table.add_row(escape(row.variant), f"[{style}]{row.state}[/{style}]", f"{done} / {planned}", hash_check, error)
    out.print(table)
    counts = states[states.variant != "start"].state.value_counts()
    out.print(", ".join(f"{n} {state}" for state, n in counts.items()), highlight=False)


# ---- pretrain ------------------------------------------------------------------------------


@app.command()
def pretrain(recipe: RecipeOpt = None) -> None:
    """Train the recipe's model from scratch on the base mix up to the phase; register it as 'pretrained'."""
    from ablate.run.worker import pretrain as run_pretrain
    from ablate.recipe import load_recipe
    from ablate.store import read_status, study_dir

    loaded = load_recipe(recipe)
    total = loaded.training.start_tokens
    with _token_bar("pretrain", total) as on_progress:
        path = run_pretrain(loaded, on_progress=on_progress)
    done = read_status(study_dir(loaded.name) / "pretrain")
    speed = f" at {done['tokens_per_s']:,.0f} tok/s" if done.get("tokens_per_s") else ""
    err.print(f"pretrained {total:,} tokens{speed}; checkpoint 'pretrained' = {path}", soft_wrap=True)


@contextlib.contextmanager
def _token_bar(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A tokens bar on stderr in a terminal; off a terminal, no bar (logs stay clean)."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens"))
    with Progress(*columns, TimeRemainingColumn(), console=err, transient=True) as progress:
        bar = progress.add_task(label, total=total)
        yield lambda tokens: progress.update(bar, completed=tokens)


# ---- run -----------------------------------------------------------------------------------


@app.command()
def run(
    study: StudyOpt = None,
    checkpoint: Annotated[
        Optional[str], typer.Option("--checkpoint", help="Start checkpoint (name or path); re-plans if it differs")
    ] = None,
    variant: Annotated[
        Optional[list[str]], typer.Option("--variant", help="Run only this variant. Repeatable.")
    ] = None,
    launcher: Annotated[str, typer.Option("--launcher", help="local, torchrun or slurm")] = "local",
    gpus: Annotated[int, typer.Option("--gpus", help="Processes per variant (torchrun, slurm)")] = 1,
    parallel: Annotated[
        int, typer.Option("--parallel", "-j", help="Variants at once, each on its share of cores and its own GPUs")
    ] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run and why; change nothing")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail when the checkpoint's tokens differ from the recipe's phase start")
    ] = False,
) -> None:
    """Continue each variant from the shared checkpoint, evaluate it with lm-eval, and summarise."""
    from rich.markup import escape

    from ablate.run.runner import WORK, check_launcher, prepare, run_study

    check_launcher(launcher, gpus, parallel)
    if dry_run:
        name, _, actions = prepare(study, checkpoint=checkpoint, variants=variant, save_plan=False)
        for action in actions:
            out.print(f"{action.do:>8}  {escape(action.job)}  [dim]{escape(action.why)}[/dim]", soft_wrap=True)
        todo = [action.job for action in actions if action.do in WORK]
        if launcher == "slurm" and todo:
            from ablate.run.launch import write_slurm

            script = write_slurm(name, todo, gpus=gpus, strict=strict)
            err.print(f"[dim]wrote {script} (not submitted)[/dim]", soft_wrap=True)
        return
    from ablate.run.view import RunDisplay

    with RunDisplay(err) as display:
        outcomes = run_study(
            study, checkpoint=checkpoint, variants=variant, launcher=launcher, gpus=gpus,
            parallel=parallel, strict=strict, observer=display,
        )  # fmt: skip
    states = [outcome.state for outcome in outcomes]
    if launcher == "slurm" and outcomes:
        first = outcomes[0].status
        err.print(f"submitted {len(outcomes)} jobs ({first['script']}): {first['sbatch']}", soft_wrap=True)
    elif not outcomes:
        err.print("nothing to do: every selected variant is done")
    else:
        err.print(", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)), soft_wrap=True)
    if "failed" in states:
        raise typer.Exit(1)


# ---- data ----------------------------------------------------------------------------------

data_app = typer.Typer(help="Build MDS shards from raw text; write the embedded demo corpus.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("build")
def data_build(
    recipe: RecipeOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild subsets whose manifest says up to date")] = False,
) -> None:
    """Tokenize each subset's `source` into MDS shards at its `location`, with a manifest beside them."""
    from ablate.data.build import build_subsets
    from ablate.recipe import load_recipe

    _print_manifests(build_subsets(load_recipe(recipe), force=force))


@data_app.command("demo")
def data_demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write data/demo/ under")] = Path("."),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated worlds and documents")] = 0,
    recipe: Annotated[
        Path, typer.Option("--recipe", "-r", help="Recipe whose subsets to build; its paths resolve under --out")
    ] = Path("recipes/demo.yaml"),
) -> None:
    """Write the demo corpus, eval tasks and tokenizer under --out, then build the demo recipe's shards there."""
    import time

    from ablate.data.build import build_subsets
    from ablate.demo.corpus import write_demo
    from ablate.recipe import load_recipe

    started = time.perf_counter()
    loaded = load_recipe(recipe)
    write_demo(out_dir, seed=seed)
    _print_manifests(build_subsets(loaded, root=out_dir))
    err.print(f"wrote {out_dir / 'data/demo'} in {time.perf_counter() - started:.1f} s", soft_wrap=True)


def _print_manifests(manifests: dict[str, dict]) -> None:
    from rich.table import Table

    table = Table("subset", "documents", "tokens", "samples", "dropped", box=None)
    for name, m in manifests.items():
        table.add_row(name, f"{m['documents']:,}", f"{m['tokens']:,}", f"{m['samples']:,}", f"{m['dropped_tokens']:,}")
    out.print(table)


# ---- demo ----------------------------------------------------------------------------------


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for data/demo/ and results/demo/")] = Path("."),
    fast: Annotated[bool, typer.Option("--fast", help="Short pretraining, no control: the test suite's demo")] = False,
    parallel: Annotated[
        Optional[int], typer.Option("--parallel", "-j", help="Variants at once [default: one per core]")
    ] = None,
) -> None:
    """The whole study on the built-in corpus: data, pretrain, plan, run, report. Rerun to resume."""
    from rich.markup import escape

    from ablate.demo.study import demo_recipe, run_demo
    from ablate.run.view import RunDisplay, summary_line

    recipe = demo_recipe(fast)
    with _token_bar("pretrain", recipe.training.start_tokens) as on_progress, RunDisplay(err) as display:
        report, seconds, failed = run_demo(
            out_dir,
            fast=fast,
            parallel=parallel,
            on_stage=lambda name: err.print(f"[bold]── {name}[/bold]"),
            on_pretrain_progress=on_progress,
            run_observer=display,
        )
    _print_report(report)
    timing = ", ".join(f"{stage} {value:.0f} s" for stage, value in seconds.items())
    where = out_dir / "results" / recipe.name
    if failed:
        for outcome in failed:
            err.print(f"[red]{escape(summary_line(outcome))}[/red]", soft_wrap=True)
        err.print(f"demo stopped after {sum(seconds.values()):.0f} s with {len(failed)} failed job(s); logs in {where}; "
                  "rerun `ablate demo` to retry them", soft_wrap=True)
        raise typer.Exit(1)
    err.print(f"demo done in {sum(seconds.values()):.0f} s ({timing}); files in {where}")


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
