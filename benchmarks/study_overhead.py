"""Study overhead: the wall time of a whole study (plan, run, report) divided by the sum of its variants'
pure training time, with the rest broken down.

    .venv/bin/python benchmarks/study_overhead.py [--remove math,code] [--phase-steps 240] [--parallel N]

A demo study in a scratch folder: the demo corpus, model and recipe, each variant continued for
`--phase-steps` batches (240 × 2,048 = 491,520 tokens, about the demo's phase of 512,000), but with a
16-step pretraining behind the start checkpoint instead of the demo's 1.5M tokens (pretraining is
not part of a study) and only the variants of `--remove` (baseline, then one per removal; the demo
has six). Timed, in this process as `ablate plan`, `ablate run` and `ablate report` call them:
`plan_study`, `run_study` (the local launcher: a fork server that imports the stack once, then one
process per job: the start checkpoint's evaluation, then each variant) and `build_report` +
`write_report`.

The same study runs twice, side by side: one job at a time, then `--parallel` jobs at a time (the
demo's default: one per core, each single-threaded), each pass with its own fork server. The ratio
divides the parallel pass's wall time by the variants' training time *of the sequential pass*:
training alone on a core, not the slower training of jobs that share the machine.

The sequential pass is broken down from what each job records in its status.json (setup_seconds:
checkpoint load, data loader and Trainer; train_seconds: `Trainer.fit()`; eval_seconds: lm-eval)
and from the wall time of each job's process as the runner saw it (the rest of it is process start,
imports and status bookkeeping; the first job also starts the fork server). The Python start of the
`ablate` commands themselves is not in here (benchmarks/cli_latency.py times it).
Target at demo scale: ≤ 1.3.
"""

from __future__ import annotations

import argparse
import multiprocessing.forkserver
import shutil
import time
from dataclasses import dataclass
from typing import Any

from workspace import demo_workspace, machine

TARGET = 1.3
PRETRAIN_STEPS = 16


def study_recipe(phase_steps: int):
    """The demo recipe with a short pretraining and a phase of `phase_steps` batches."""
    from ablate.demo.study import demo_recipe

    recipe = demo_recipe()
    step = recipe.training.batch_size * recipe.seq_len
    total = (PRETRAIN_STEPS + phase_steps) * step
    training = recipe.training.model_copy(
        update={"total_tokens": total, "phase": phase_steps / (PRETRAIN_STEPS + phase_steps),
                "warmup_tokens": PRETRAIN_STEPS * step}
    )  # fmt: skip
    return recipe.model_copy(update={"name": "bench", "training": training})


@dataclass
class Study:
    """One timed pass of plan → run → report, and what each job recorded."""

    parallel: int
    plan: Any
    total: float
    plan_s: float
    run_s: float
    report_s: float
    jobs: dict[str, float]  # job → wall seconds of its process(es), as the runner saw them
    status: dict[str, dict]


def timed_study(recipe, request, parallel: int) -> Study:
    """plan, run and report as `ablate plan`, `ablate run --parallel N` and `ablate report` call them."""
    from ablate.plan.study import plan_study
    from ablate.report import Settings, build_report, write_report
    from ablate.report.load import load_study
    from ablate.run.runner import Launch, run_study
    from ablate.study.artifacts import read_status
    from ablate.study.store import study_dir

    tick = time.perf_counter()
    plan = plan_study(recipe, request)
    planned = time.perf_counter()
    outcomes = run_study(recipe.name, how=Launch(parallel=parallel))
    ran = time.perf_counter()
    write_report(build_report(load_study(recipe.name), Settings()), study_dir(recipe.name))
    reported = time.perf_counter()
    failed = [f"{o.job}: {o.error}" for o in outcomes if o.state != "done"]
    if failed:
        raise SystemExit(f"study_overhead: jobs failed: {failed}")
    status = {o.job: read_status(study_dir(recipe.name) / o.job) for o in outcomes}
    for job in status:  # the next pass starts the same study from scratch,
        shutil.rmtree(study_dir(recipe.name) / job)
    multiprocessing.forkserver._forkserver._stop()  # and its own fork server, as each `ablate run` does
    jobs = {o.job: o.seconds for o in outcomes}
    return Study(parallel, plan, reported - tick, planned - tick, ran - planned, reported - ran, jobs, status)


def breakdown(study: Study) -> None:
    """Where the sequential study's time goes, per part, against its training time."""
    variants = [v.name for v in study.plan.variants]
    status, jobs = study.status, study.jobs
    train = {v: status[v].train_seconds for v in variants}
    setup = {v: status[v].setup_seconds for v in variants}
    evals = {v: status[v].eval_seconds for v in variants}
    process = {v: jobs[v] - setup[v] - train[v] - evals[v] for v in variants}
    trained = sum(train.values())
    rows = [
        ("training: Trainer.fit()", trained),
        ("setup: checkpoint load, data loader, Trainer", sum(setup.values())),
        ("evaluation of the variants (lm-eval)", sum(evals.values())),
        ("process start, status writes, polling", sum(process.values())),
        ("start checkpoint: evaluation", status["start"].eval_seconds),
        ("start checkpoint: fork server, process, load", jobs["start"] - status["start"].eval_seconds),
        ("runner: checks, between jobs", study.run_s - sum(jobs.values())),
        ("plan", study.plan_s),
        ("report", study.report_s),
    ]
    print(f"one job at a time ({study.total:.1f} s):")
    print(f"{'part':<47}{'seconds':>9}{'share of training':>19}")
    for name, seconds in rows:
        print(f"{name:<47}{seconds:>9.2f}{seconds / trained:>18.1%}")
    print("per variant: " + "; ".join(
        f"{v} train {train[v]:.1f} s, setup {setup[v]:.1f}, eval {evals[v]:.1f}, process {process[v]:.1f}"
        for v in variants))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remove", default="math,code",
                        help="groups to leave out, one variant each; 'all': the demo's plan (every group, control)")
    parser.add_argument("--phase-steps", type=int, default=240, help="batches each variant trains")
    parser.add_argument("--parallel", type=int, default=None, help="jobs at once in the second pass [default: cores]")
    args = parser.parse_args()
    from ablate.plan.request import PlanRequest

    removes = [r for r in args.remove.split(",") if r]
    request = PlanRequest() if args.remove == "all" else PlanRequest(removes=removes, control=False)

    with demo_workspace(study_recipe(args.phase_steps)) as recipe:
        from ablate.run.launch import available_cores
        from ablate.run.pretrain import pretrain

        parallel = args.parallel or available_cores()
        pretrain(recipe)  # the shared checkpoint: not part of the study
        sequential = timed_study(recipe, request, 1)
        overlapped = timed_study(recipe, request, parallel)

    variants = [v.name for v in sequential.plan.variants]
    trained = sum(sequential.status[v].train_seconds for v in variants)
    print(f"{len(variants)} variants ({', '.join(variants)}) × {sequential.plan.variants[0].tokens:,} tokens; "
          f"{machine()}")
    breakdown(sequential)
    concurrent = sum(overlapped.status[v].train_seconds for v in variants)
    print(f"{parallel} jobs at a time: {overlapped.total:.1f} s; its variants' training took {concurrent:.1f} s in "
          f"all ({concurrent / trained:.2f}× the sequential pass)")
    print(f"whole study / Σ training alone: one job at a time {sequential.total / trained:.2f}, "
          f"{parallel} at a time {overlapped.total / trained:.2f}")
    print(f"study_overhead: whole study ({parallel} jobs at a time) {overlapped.total:.1f} s over {trained:.1f} s of "
          f"training alone; ratio (target ≤ {TARGET}) = {overlapped.total / trained:.2f}")


if __name__ == "__main__":
    main()
