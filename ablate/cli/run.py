"""`ablate pretrain`, `run`, `status`, `cancel` and `export`: train and evaluate the study's jobs, follow them.

ablate pretrain                      # the shared start checkpoint, from scratch on the base mix
ablate run --dry-run                 # what would run, and why
ablate run --parallel 2              # every variant not done yet, two at a time
ablate status
ablate export no-math out/no-math    # a trained variant as a Hugging Face folder
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablate.choices import Launcher
from ablate.cli.app import RecipeOpt, StudyOpt, app, err, listed, out

# ---- status --------------------------------------------------------------------------------


@app.command()
def status(study: StudyOpt = None) -> None:
    """Each variant's state, tokens done / planned, hash check, the Slurm task's state, and where it failed."""
    from ablate.report.load import variant_states
    from ablate.run.slurm import scheduler_states
    from ablate.run.view import print_status
    from ablate.study.store import current_study

    name = current_study(study)
    scheduler = scheduler_states(name)  # before the states, as `ablate run` reads them (ablate.run.runner.prepare)
    print_status(out, name, variant_states(name), scheduler)


# ---- pretrain ------------------------------------------------------------------------------


@app.command()
def pretrain(recipe: RecipeOpt = None) -> None:
    """Train the recipe's model from scratch on the base mix up to the phase; register it as 'pretrained'
    (and, with ablations.phases, one checkpoint per phase start as 'pretrained@p<percent>')."""
    from ablate.plan.build import pretrain_points
    from ablate.recipe import load_recipe
    from ablate.run.pretrain import pretrain as run_pretrain
    from ablate.run.view import token_bar
    from ablate.study.artifacts import read_status
    from ablate.study.job import PRETRAIN
    from ablate.study.store import study_dir

    loaded = load_recipe(recipe)
    total = pretrain_points(loaded)[0]
    with token_bar(err, "pretrain", total) as on_progress:
        path = run_pretrain(loaded, on_progress=on_progress)
    done = read_status(study_dir(loaded.name) / PRETRAIN)
    speed = f" at {done.tokens_per_s:,.0f} tok/s" if done.tokens_per_s else ""
    err.print(f"pretrained {total:,} tokens{speed}; checkpoint 'pretrained' = {path}", soft_wrap=True)


# ---- run -----------------------------------------------------------------------------------


@app.command()
def run(
    study: StudyOpt = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="Start checkpoint (name or path); re-plans if it differs")
    ] = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="Run only this variant. Repeatable.")] = None,
    launcher: Annotated[Launcher, typer.Option("--launcher", help="How each job gets its processes")] = "local",
    gpus: Annotated[
        int, typer.Option("--gpus", help="GPUs (processes) per node and variant; 0: CPUs only, one process")
    ] = 1,
    nodes: Annotated[
        int, typer.Option("--nodes", help="Nodes per variant (slurm; torchrun with NODE_RANK, MASTER_ADDR/PORT)")
    ] = 1,
    parallel: Annotated[
        int, typer.Option("--parallel", "-j", help="Variants at once, each on its share of cores and its own GPUs")
    ] = 1,
    slurm: Annotated[
        list[str] | None,
        typer.Option("--slurm", help="Override a field of the recipe's slurm block, e.g. time=2-00:00:00. Repeatable."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run and why; change nothing")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail when the checkpoint's tokens differ from the recipe's phase start")
    ] = False,
    keep_fetched: Annotated[
        bool,
        typer.Option(
            "--keep-fetched", help="Keep the study's copy of a start fetched from a URI after every job from it is done"
        ),
    ] = False,
) -> None:
    """Continue each variant from the shared checkpoint, evaluate it with lm-eval, and summarise."""
    from rich.markup import escape

    from ablate.run.runner import Launch, prepare, run_study, slurm_script
    from ablate.study.job import WORK

    variant = listed(variant) or None
    how = Launch(launcher, gpus, nodes, parallel, strict, tuple(slurm or ()), keep_fetched)
    how.check()
    if dry_run:
        name, plan, actions = prepare(study, checkpoint=checkpoint, variants=variant, dry_run=True, how=how)
        for action in actions:
            out.print(f"{action.do:>8}  {escape(action.job)}  [dim]{escape(action.why)}[/dim]", soft_wrap=True)
        todo = [action.job for action in actions if action.do in WORK]
        if launcher == "slurm" and todo:
            from ablate.run.slurm import write_script

            script = write_script(name, slurm_script(name, plan, todo, how))
            err.print(f"[dim]wrote {script} (not submitted)[/dim]", soft_wrap=True)
        return
    from ablate.run.view import RunDisplay

    with RunDisplay(err) as display:
        outcomes = run_study(study, checkpoint=checkpoint, variants=variant, how=how, observer=display)
    states = [outcome.state for outcome in outcomes]
    submitted = [outcome for outcome in outcomes if outcome.state == "submitted"]
    if submitted:
        first = submitted[0].submission
        jobs = ", ".join(outcome.job for outcome in submitted)
        err.print(
            f"submitted Slurm job {first['array']}: an array of {first['tasks']} tasks ({jobs}) from {first['script']}",
            soft_wrap=True,
            highlight=False,
        )
    elif not outcomes:
        err.print("nothing to do: every selected variant is done")
    else:
        err.print(", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)), soft_wrap=True)
    if "failed" in states:
        raise typer.Exit(1)


@app.command()
def cancel(
    study: StudyOpt = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="Cancel only this job. Repeatable.")] = None,
) -> None:
    """Cancel the study's queued and running Slurm tasks (scancel); each variant resumes on the next run."""
    from ablate.run import slurm as scheduler
    from ablate.study.store import current_study

    name = current_study(study)
    live = {job: job_id for job, (job_id, state) in scheduler.scheduler_states(name).items() if state in scheduler.LIVE}
    if variant:
        chosen = set(listed(variant))
        live = {job: job_id for job, job_id in live.items() if job in chosen}
    cancelled = scheduler.cancel(live)
    if not cancelled:
        err.print(f"nothing to cancel: no Slurm task of study '{name}' is queued or running")
        return
    err.print(
        f"cancelled {', '.join(f'{job} ({live[job]})' for job in live)}; `ablate run --launcher slurm` resumes them",
        soft_wrap=True,
        highlight=False,
    )


# ---- export --------------------------------------------------------------------------------


@app.command()
def export(
    variant: Annotated[str, typer.Argument(help="A trained variant of the study")],
    folder: Annotated[Path, typer.Argument(help="Where to write the Hugging Face folder")],
    study: StudyOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace FOLDER if it is an earlier export, unchanged since (nothing else)")
    ] = False,
) -> None:
    """Write a trained variant's final model as a Hugging Face folder (safetensors + tokenizer) for
    lm-eval, vLLM or transformers: the folder the study evaluated, gathered from shards if need be.
    FOLDER is never inside the results (symlinks followed); a refusal is one line, nothing deleted."""
    from ablate.run.export import export_variant
    from ablate.study.store import current_study

    written = export_variant(current_study(study), variant, folder, force=force)
    err.print(f"wrote {written}", soft_wrap=True, highlight=False)
