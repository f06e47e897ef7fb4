"""Study overhead: the wall time of a whole study (plan, run, report) divided by the sum of its variants'
pure training time, with the rest broken down.

    .venv/bin/python benchmarks/study_overhead.py [--remove math,code] [--phase-steps 240]

A demo study in a scratch folder: the demo corpus, model and recipe, each variant continued for
`--phase-steps` batches (240 × 2,048 = 491,520 tokens, the demo's phase of 500,000 tokens), but with a
16-step pretraining behind the start checkpoint instead of the demo's 1.5M tokens (pretraining is
not part of a study) and only the variants of `--remove` (baseline, then one per removal; the demo
has six). Timed, in this process as `ablate plan`, `ablate run` and `ablate report` call them:
`plan_study`, `run_study` (the local launcher: a fork server that imports the stack once, then one
process per job: the start checkpoint's evaluation, then each variant) and `build_report` +
`write_report`.

The breakdown comes from what each job records in its status.json (setup_seconds: checkpoint load,
data loader and Trainer; train_seconds: `Trainer.fit()`; eval_seconds: lm-eval) and from the wall
time of each job's process as the runner saw it (the rest of it is process start, imports and status
bookkeeping; the first job also starts the fork server). Since per-study costs (the fork server, the
start checkpoint's evaluation, plan and report) shrink per variant as a study grows, the line below
the table projects the ratio for the demo's six variants and for many, and the phase length at which
the fixed costs (evaluation above all) fall within the target. The Python start of the
`ablate` commands themselves is not in here (benchmarks/cli_latency.py times it).
Target at demo scale: ≤ 1.3.
"""

from __future__ import annotations

import argparse
import statistics
import time

from workspace import demo_workspace, machine

TARGET = 1.3
PRETRAIN_STEPS = 16
DEMO_VARIANTS = 6  # baseline, four groups left out, control


def study_recipe(phase_steps: int):
    """The demo recipe with a short pretraining and a phase of `phase_steps` batches."""
    from ablate.demo import demo_recipe

    recipe = demo_recipe()
    step = recipe.training.batch_size * recipe.seq_len
    total = (PRETRAIN_STEPS + phase_steps) * step
    training = recipe.training.model_copy(
        update={"total_tokens": total, "phase": phase_steps / (PRETRAIN_STEPS + phase_steps),
                "warmup_tokens": PRETRAIN_STEPS * step}
    )  # fmt: skip
    return recipe.model_copy(update={"name": "bench", "training": training})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remove", default="math,code",
                        help="groups to leave out, one variant each; 'all': the demo's plan (every group, control)")
    parser.add_argument("--phase-steps", type=int, default=240, help="batches each variant trains")
    args = parser.parse_args()
    options = {} if args.remove == "all" else {"removes": [r for r in args.remove.split(",") if r], "control": False}

    with demo_workspace(study_recipe(args.phase_steps)) as recipe:
        from ablate.jobs import pretrain
        from ablate.report import Settings, build_report, write_report
        from ablate.results import load_study
        from ablate.run import run_study
        from ablate.store import read_status, study_dir
        from ablate.study import plan_study

        pretrain(recipe)  # the shared checkpoint: not part of the study
        tick = time.perf_counter()
        plan = plan_study(recipe, **options)
        planned = time.perf_counter()
        outcomes = run_study(recipe.name)
        ran = time.perf_counter()
        write_report(build_report(load_study(recipe.name), Settings()), study_dir(recipe.name))
        reported = time.perf_counter()
        failed = [f"{o.job}: {o.error}" for o in outcomes if o.state != "done"]
        status = {o.job: read_status(study_dir(recipe.name) / o.job) for o in outcomes}
    if failed:
        raise SystemExit(f"study_overhead: jobs failed: {failed}")

    jobs = {o.job: o.seconds for o in outcomes}
    variants = [v.name for v in plan.variants]
    train = {v: status[v]["train_seconds"] for v in variants}
    setup = {v: status[v]["setup_seconds"] for v in variants}
    evals = {v: status[v]["eval_seconds"] for v in variants}
    process = {v: jobs[v] - setup[v] - train[v] - evals[v] for v in variants}
    start_job = jobs["start"]
    start_eval = status["start"]["eval_seconds"]
    runner = (ran - planned) - sum(jobs.values())
    total = reported - tick
    trained = sum(train.values())

    print(f"{len(variants)} variants ({', '.join(variants)}) × {plan.variants[0].tokens:,} tokens; {machine()}")
    rows = [
        ("training: Trainer.fit()", trained),
        ("setup: checkpoint load, data loader, Trainer", sum(setup.values())),
        ("evaluation of the variants (lm-eval)", sum(evals.values())),
        ("process start, status writes, polling", sum(process.values())),
        ("start checkpoint: evaluation", start_eval),
        ("start checkpoint: fork server, process, load", start_job - start_eval),
        ("runner: checks, between jobs", runner),
        ("plan", planned - tick),
        ("report", reported - ran),
    ]
    print(f"{'part':<47}{'seconds':>9}{'share of training':>19}")
    for name, seconds in rows:
        print(f"{name:<47}{seconds:>9.2f}{seconds / trained:>18.1%}")
    print(f"{'whole study':<47}{total:>9.2f}{total / trained:>18.1%}")
    print("per variant: " + "; ".join(
        f"{v} train {train[v]:.1f} s, setup {setup[v]:.1f}, eval {evals[v]:.1f}, process {process[v]:.1f}"
        for v in variants))  # fmt: skip

    per_study = total - sum(jobs[v] for v in variants)
    mean_train = statistics.mean(train.values())
    rest = statistics.mean(jobs[v] for v in variants) - mean_train  # a variant's time besides training
    projected = (per_study + DEMO_VARIANTS * (mean_train + rest)) / (DEMO_VARIANTS * mean_train)
    scale = (per_study / DEMO_VARIANTS + rest) / ((TARGET - 1) * mean_train)  # phase length that meets the target
    many = (mean_train + rest) / mean_train
    print(f"projection (per study {per_study:.1f} s; per variant {rest:.1f} s besides {mean_train:.1f} s of training): "
          f"the demo's {DEMO_VARIANTS} variants → {projected:.2f}, many variants → {many:.2f}; "
          f"≤ {TARGET} for {DEMO_VARIANTS} variants from a phase of ~{scale * plan.variants[0].tokens:,.0f} tokens "
          f"({scale:.1f}× this one)")
    print(f"study_overhead: whole study {total:.1f} s over {trained:.1f} s of training; ratio (target ≤ {TARGET}) = "
          f"{total / trained:.2f}")


if __name__ == "__main__":
    main()
