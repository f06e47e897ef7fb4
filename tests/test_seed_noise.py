"""Flags that survive a rerun: the same small study from one start with other phase seeds.

The tiny study (tests/tiny_study.py) is planned twice from its one pretrained checkpoint: phase seed 0
(its baseline replicate seed 1) and phase seed 10 (replicate 11), every group removed, and each is
run and reported. Every cell flagged in one report must be flagged with the same sign in the other
in at least 90% of cases, the planted effect among them: removing the digits subset (gamma, never
seen in pretraining) loses the digits task. The report states the seed noise it used.
"""

import json

import pytest
from tiny_study import ablate

pytestmark = pytest.mark.slow


def _flags(tiny, seed: int) -> tuple[set[tuple[str, str, bool]], dict]:
    results = tiny.root / f"seed-{seed}"
    steps = [
        ("plan", "--recipe", str(tiny.recipe), "--seeds", str(seed), "--baseline-seeds", "2"),
        ("run", "--parallel", "2"),
        ("report", "--no-plot", "--format", "json"),
    ]
    for step in steps:
        done = ablate(*step, cwd=tiny.root, results=results, timeout=1200)
        assert done.returncode == 0, (step, done.stderr[-3000:])
    report = json.loads(done.stdout)
    flagged = {(r["variant"], r["task"], r["delta_pp"] > 0) for r in report["rows"] if r["significant_adjusted"]}
    return flagged, report


def test_flags_replicate_across_phase_seeds_from_one_start(tiny):
    (first, report), (second, _) = _flags(tiny, 0), _flags(tiny, 10)
    assert ("no-g", "tiny_gamma", False) in first & second  # the planted effect, in both runs
    for one, other in ((first, second), (second, first)):
        assert len(one & other) >= 0.9 * len(one), (first, second)
    assert report["replicates"] == 1  # baseline.s1: one extra run, one degree of freedom per task
    noise = {n["column"]: n for n in report["seed_noise"]}
    assert {"tiny_alpha", "tiny_gamma"} <= set(noise)
    rows = [r for r in report["rows"] if r["variant"] != "baseline" and r["delta_pp"] is not None]
    assert rows and all(r["seed_df"] is not None for r in rows)  # every Δ carries the seed term
