"""Rerun agreement: how many of a study's `*` cells come back when it is rerun from the same start with
other phase seeds, on this CPU's default kernels and on PyTorch's AVX2 kernels.

    .venv/bin/python benchmarks/rerun_agreement.py                       # seeds 0, 10, 20 × default, avx2
    .venv/bin/python benchmarks/rerun_agreement.py --kernels default,avx2,scalar --seeds 0,10

Per kernel set, as a machine with only those kernels would: `ablate pretrain` of the fast demo's start
(`ablate demo --fast`), then its study (four removals, the baseline and its replicate) once per phase
seed from that start. Each command runs in its own process with the kernel set's variables (`avx2`:
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2; `scalar`: ATEN_CPU_CAPABILITY=default), so torch
picks those kernels in every job; the table names the capability torch reported under them.

The kernels change the trained weights, and with them which borderline cells are flagged: that is a
property of one pair of runs on one CPU, so it is measured here and quoted in docs/report.md, never
asserted. tests/test_demo.py asserts what holds on any CPU: every planted own-task drop is flagged in
both runs, and no cell is flagged with opposite signs. This script counts those too, over every run.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys

import yaml
from workspace import SCRATCH, demo_workspace, machine

KERNELS = {  # kernel set → what torch and oneDNN read when they load
    "default": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "scalar": {"ATEN_CPU_CAPABILITY": "default"},
}
Flag = tuple[str, str, bool]  # (ablation, task or category, Δ > 0)


def capability(env: dict[str, str]) -> str:
    """The CPU capability torch picks in a fresh process with `env`."""
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def ablate(*args: str, env: dict[str, str]) -> None:
    """An `ablate` command in its own process with `env`, in the scratch folder."""
    ran = subprocess.run([sys.executable, "-m", "ablate.cli", *args], cwd=SCRATCH, env=env, stdout=subprocess.PIPE)
    if ran.returncode != 0:
        raise SystemExit(f"rerun_agreement: `ablate {' '.join(args)}` failed (exit {ran.returncode})")


def pretrained(recipe, env: dict[str, str]) -> str:
    """`ablate pretrain` of `recipe` in a process with `env`; the checkpoint it registered, absolute."""
    from ablate.study.store import read_json, study_dir

    path = SCRATCH / f"{recipe.name}.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    ablate("pretrain", "--recipe", str(path), env=env)
    return str((SCRATCH / read_json(study_dir(recipe.name) / "checkpoints.json")["pretrained"]).resolve())


def study(recipe, name: str, seed: int, start: str, env: dict[str, str], parallel: int, request) -> set[Flag]:
    """Plan the rerun here, run it as `ablate run` in a process with `env`, return its report's flags."""
    from ablate.demo.study import rerun_recipe
    from ablate.plan.study import plan_study
    from ablate.report import Settings, build_report
    from ablate.report.load import load_study

    plan_study(rerun_recipe(recipe, name, seed, start), request)
    ablate("run", "--study", name, "--parallel", str(parallel), env=env)
    return build_report(load_study(name), Settings()).flagged


def kept(one: set[Flag], other: set[Flag]) -> str:
    return f"{len(one & other)} of {len(one)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,10,20", help="phase seeds, one run each per kernel set")
    parser.add_argument("--kernels", default="default,avx2", help=f"kernel sets: {', '.join(KERNELS)}")
    parser.add_argument("--remove", default="", help="groups to leave out [default: the demo's, every group]")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="batches before the phase [the demo's]")
    parser.add_argument("--phase-steps", type=int, default=None, help="batches each variant trains [the demo's]")
    parser.add_argument("--limit", type=int, default=None, help="items per task [all]")
    parser.add_argument("--parallel", type=int, default=2, help="jobs at once in each run")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    kernels = args.kernels.split(",")
    if unknown := set(kernels) - set(KERNELS):
        parser.error(f"--kernels {','.join(sorted(unknown))}: use {', '.join(KERNELS)}")
    from ablate.demo.study import demo_recipe
    from ablate.plan.request import PlanRequest

    recipe = demo_recipe(fast=True)
    step = recipe.training.batch_size * recipe.seq_len
    pretraining = args.pretrain_steps * step if args.pretrain_steps else recipe.training.start_tokens
    phase = args.phase_steps * step if args.phase_steps else recipe.training.phase_tokens
    if (pretraining, phase) != (recipe.training.start_tokens, recipe.training.phase_tokens):
        total = pretraining + phase
        warmup = min(recipe.training.warmup_tokens, pretraining)
        training = {"total_tokens": total, "phase": phase / total, "warmup_tokens": warmup}
        recipe = recipe.model_copy(update={"training": recipe.training.model_copy(update=training)})
    if args.limit:
        recipe = recipe.model_copy(update={"eval": recipe.eval.model_copy(update={"limit": args.limit})})
    request = PlanRequest(removes=args.remove.split(",")) if args.remove else None

    flags: dict[tuple[str, int], set[Flag]] = {}
    seen: dict[str, str] = {}
    with demo_workspace(recipe):
        for kernel in kernels:
            env = {**os.environ, **KERNELS[kernel]}
            seen[kernel] = capability(env)
            start = pretrained(recipe.model_copy(update={"name": f"{recipe.name}-{kernel}"}), env)
            for seed in seeds:
                name = f"{recipe.name}-{kernel}-s{seed}"
                flags[kernel, seed] = study(recipe, name, seed, start, env, args.parallel, request)
                print(f"{kernel} ({seen[kernel]}) seed {seed}: {len(flags[kernel, seed])} cells flagged", flush=True)

    groups = args.remove.split(",") if args.remove else sorted({g for s in recipe.subsets.values() for g in s.groups})
    planted = {(f"no-{group}", f"demo_{group}", False) for group in groups}  # each removal's own task drops
    summarize(flags, seen, planted)


def summarize(flags: dict[tuple[str, int], set[Flag]], seen: dict[str, str], planted: set[Flag]) -> None:
    """Per run, its flags and the planted drops among them; per pair of runs on one kernel set, the share of
    each run's flags the other flags with the same sign; cells flagged with both signs over all runs."""
    print(f"\n{machine()}")
    print(f"{'kernels':<9}{'torch':<10}{'seed':>5}{'flagged':>9}   planted drops flagged")
    for (kernel, seed), cells in flags.items():
        print(f"{kernel:<9}{seen[kernel]:<10}{seed:>5}{len(cells):>9}   {kept(planted, cells)}")
    print("\npairs on one kernel set: the first run's flags flagged again by the second, and back")
    worst: list[float] = []
    for kernel in seen:
        runs = [(seed, cells) for (k, seed), cells in flags.items() if k == kernel]
        both = mutual = 0
        for (a, one), (b, other) in itertools.combinations(runs, 2):
            print(f"  {kernel} seeds {a} and {b}: {kept(one, other)}, {kept(other, one)}")
            worst += [len(one & other) / len(one) if one else 1.0, len(one & other) / len(other) if other else 1.0]
            both, mutual = both + len(one) + len(other), mutual + 2 * len(one & other)
        print(f"  {kernel}, every direction: {mutual} of {both}")
        cells = [flagged for _, flagged in runs]
        if wobbling := sorted(set().union(*cells) - set.intersection(*cells)):
            print(f"  {kernel}, flagged by some runs, not all: " + ", ".join(f"{v} on {t}" for v, t, _ in wobbling))
    cells = set().union(*flags.values())
    flipped = sorted({(variant, task) for variant, task, up in cells if (variant, task, not up) in cells})
    every = all(planted <= run for run in flags.values())
    print(
        f"planted drops flagged in every run: {'yes' if every else 'no'}; cells flagged with both signs over "
        f"all {len(flags)} runs: {len(flipped)}{' ' + str(flipped) if flipped else ''}"
    )
    ratio = f"{min(worst):.2f}" if worst else "n/a (one run per kernel set)"
    print(
        f"rerun_agreement: flags flagged again with the same sign by a rerun on the same kernels, worst of "
        f"{len(worst)} directions; ratio = {ratio}"
    )


if __name__ == "__main__":
    main()
