"""`ablate data` and `ablate demo`: MDS shards from raw text, and the embedded demo study end to end.

ablate data build                    # tokenize each subset's `source` into shards at its `location`
ablate demo --out /tmp/demo          # data, pretrain, plan, run, report on the built-in corpus
ablate demo --ladder --out /tmp/dl   # one study at five model sizes; the largest predicted from the rest
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ablate.cli.app import RecipeOpt, app, data_app, err, out, stop_on_failures
from ablate.cli.report import print_report
from ablate.errors import AblateError

# ---- data ----------------------------------------------------------------------------------


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
        Path | None,
        typer.Option(
            "--recipe", "-r", help="Recipe whose subsets to build; paths under --out", show_default="the demo's"
        ),
    ] = None,
) -> None:
    """Write the demo corpus, eval tasks and tokenizer under --out, then build the demo recipe's shards there."""
    import time

    from ablate.data.build import build_subsets
    from ablate.demo.corpus import write_demo
    from ablate.recipe import DEMO_RECIPE, load_recipe

    started = time.perf_counter()
    loaded = load_recipe(recipe or DEMO_RECIPE)
    wrote = write_demo(out_dir, seed=seed)
    _print_manifests(build_subsets(loaded, root=out_dir))
    done = "wrote" if wrote else "kept (already written for this seed)"
    err.print(f"{done} {out_dir / 'data/demo'} in {time.perf_counter() - started:.1f} s", soft_wrap=True)


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
    fast: Annotated[
        bool, typer.Option("--fast", help="Short pretraining, no control (with --ladder: four sizes): the tests' demo")
    ] = False,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust", help="Two seeds and two phase lengths (10%, 25%): the report's trust and phase sections"
        ),
    ] = False,
    suggest: Annotated[
        bool,
        typer.Option(
            "--suggest", help="A swarm of 12 mixtures, a fitted law, its suggested mixture trained and measured"
        ),
    ] = False,
    ladder: Annotated[
        bool,
        typer.Option(
            "--ladder", help="One removal study at five model sizes; the largest's losses predicted from the rest"
        ),
    ] = False,
    parallel: Annotated[
        int | None, typer.Option("--parallel", "-j", help="Variants at once", show_default="one per core")
    ] = None,
) -> None:
    """The whole study on the built-in corpus: data, pretrain, plan, run, report. Rerun to resume."""

    from ablate.demo.study import demo_recipe, run_demo
    from ablate.plan.build import pretrain_points
    from ablate.run.view import RunDisplay, token_bar

    if out_dir.exists() and not out_dir.is_dir():
        raise AblateError(f"--out {out_dir}: is a file; name a folder (made if missing)")
    if ladder and (trust or suggest):
        raise AblateError("--ladder: not with --trust or --suggest; with --fast it is the fast ladder (four sizes)")
    if sum((fast, trust, suggest)) > 1:
        raise AblateError("--fast, --trust and --suggest: pick one; each is a demo study of its own")
    if ladder:
        from ablate.cli.demo_ladder import demo_ladder

        demo_ladder(out_dir, fast=fast, parallel=parallel)
        return
    recipe = demo_recipe(fast, trust=trust, suggest=suggest)
    display = RunDisplay(err)
    bar: list[Callable[[int], None] | None] = [None]  # the pretrain stage's tokens bar while it is shown

    # rich draws one live display at a time: the tokens bar during pretraining, the runner's bars from the run on
    with contextlib.ExitStack() as shown, contextlib.ExitStack() as pretraining:

        def on_stage(name: str) -> None:
            pretraining.close()
            bar[0] = None
            err.print(f"[bold]── {name}[/bold]")
            if name == "pretrain":
                bar[0] = pretraining.enter_context(token_bar(err, "pretrain", pretrain_points(recipe)[0]))
            elif name == "run":
                shown.enter_context(display)

        def on_progress(tokens: int) -> None:
            if bar[0] is not None:
                bar[0](tokens)

        report, seconds, failed = run_demo(
            out_dir,
            fast=fast,
            trust=trust,
            suggest=suggest,
            parallel=parallel,
            on_stage=on_stage,
            on_pretrain_progress=on_progress,
            run_observer=display,
        )
    print_report(report)
    timing = ", ".join(f"{stage} {value:.0f} s" for stage, value in seconds.items())
    where = out_dir / "results" / recipe.name
    stop_on_failures(
        failed, f"demo stopped after {sum(seconds.values()):.0f} s", f"logs in {where}; rerun `ablate demo`"
    )
    err.print(f"demo done in {sum(seconds.values()):.0f} s ({timing}); files in {where}")
