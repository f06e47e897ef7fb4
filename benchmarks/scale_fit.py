"""`ablate fit` across scale on a ladder of a few thousand rows, on one core: every model with its
intervals, its held-out-scale checks and its target-scale predictions. Target: < 60 s.

    .venv/bin/python benchmarks/scale_fit.py                     # 20 mixtures × 4 sizes × 11 token counts = 880 rows
    .venv/bin/python benchmarks/scale_fit.py --mixtures 30 --sizes 5 --tokens 20    # 3,000 rows

A synthetic ladder drawn from the joint law (5 subsets, N from 2e7 to 4e8, D from 2 to 40 tokens per
parameter, noise 0.3%), built in memory. Timed: what `ablate fit` does on it (ablate.analyze.across
.fit_across), every scale model and scale-blind mixture model fitted on every row and on the held-out
scales (ladder.held_out_scales), `--resamples` bootstrap refits per scale model, and every mixture
predicted at the target scale (2.5× the largest N, at 20 tokens per parameter) with its interval and
extrapolation check. The process is pinned to one core and runs BLAS on one thread. The machine may be
shared: run it twice and read the lower figure.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy is imported
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablate.analyze.across import fit_across  # noqa: E402
from ablate.analyze.scale import ScalePoints  # noqa: E402

TARGET_S = 60.0
SUBSETS = ["web", "code", "math", "papers", "books"]


def synthetic(mixtures: int, sizes: int, tokens: int, seed: int = 0) -> ScalePoints:
    """A ladder from L = r·E + exp(r·a)·N^−0.34 + exp(r·b)·D^−0.28, Dirichlet mixtures, noise 0.3%."""
    rng = np.random.default_rng(seed)
    e = rng.uniform(1.5, 2.0, len(SUBSETS))
    a, b = np.log(406) + rng.normal(0, 0.2, len(SUBSETS)), np.log(411) + rng.normal(0, 0.2, len(SUBSETS))
    shares = rng.dirichlet(np.full(len(SUBSETS), 4.0), size=mixtures)
    grid = [
        (k, n, n * t)
        for k in range(mixtures)
        for n in np.geomspace(2e7, 4e8, sizes)
        for t in np.geomspace(2, 40, tokens)
    ]
    k, n, d = (np.array(column) for column in zip(*grid, strict=True))
    r = shares[k.astype(int)]
    y = (r @ e + np.exp(r @ a) * n**-0.34 + np.exp(r @ b) * d**-0.28) * (1 + rng.normal(0, 0.003, len(grid)))
    return ScalePoints([f"run{i}" for i in range(len(grid))], SUBSETS, r, n, d, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixtures", type=int, default=20)
    parser.add_argument("--sizes", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=11, help="token counts per run")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap refits per model")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    points = synthetic(args.mixtures, args.sizes, args.tokens)
    size = 2.5 * points.size.max()
    tokens = 20 * size
    print(
        f"{args.mixtures} mixtures × {args.sizes} sizes × {args.tokens} token counts = {len(points.target):,} rows, "
        f"{len(SUBSETS)} subsets; {args.resamples} refits; target N = {size:.2g}, D = {tokens:.2g}"
    )
    cpu = os.times()
    start = time.perf_counter()
    (found,) = fit_across({"loss": points}, models=None, resamples=args.resamples, seed=0, at=(size, tokens))
    total = time.perf_counter() - start
    cpu_after = os.times()
    print(f"{'model':<10} alpha [95%]            beta [95%]             held-out largest size: mean rel. error, rho")
    for model in found.fits:
        shown = "  ".join(
            f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]" if (e := model.exponents.get(name)) else f"{'—':<20}"
            for name in ("alpha", "beta")
        )
        held = model.held_out[0]
        refused = sum(p.predicted is None for p in found.predictions if p.model == model.model)
        print(
            f"{model.model:<10} {shown}   {held.relative:.2%}, {held.rank_correlation:.2f}"
            + (f"; {refused} target predictions refused" if refused else "")
            + ("  (chosen)" if model.model == found.chosen else "")
        )
    cpu_s = (cpu_after.user - cpu.user) + (cpu_after.system - cpu.system)
    print(
        f"CPU time {cpu_s:.1f} s on one core; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(a loaded machine stretches the wall time)"
    )
    print(
        f"scale_fit: every model (scale and scale-blind) with intervals, held-out scales and target-scale "
        f"predictions on {len(points.target):,} rows in {total:.1f} s; ratio to the {TARGET_S:g} s target = "
        f"{total / TARGET_S:.2f}"
    )


if __name__ == "__main__":
    main()
