"""Scale models on a ladder of a few thousand rows, on one core: every model with its intervals and its
held-out-scale checks. Target: < 60 s.

    .venv/bin/python benchmarks/scale_fit.py                     # 20 mixtures × 4 sizes × 11 token counts = 880 rows
    .venv/bin/python benchmarks/scale_fit.py --mixtures 30 --sizes 5 --tokens 20    # 3,000 rows

A synthetic ladder drawn from the joint law (5 subsets, N from 2e7 to 4e8, D from 2 to 40 tokens per
parameter, noise 0.3%), built in memory. Timed per model (ablate.analyze.scale, .ladder): the fit on every
row; `--resamples` bootstrap refits with every mixture predicted at the target scale (2.5× the largest N,
at 20 tokens per parameter), their intervals and α's and β's, and the extrapolation check; the
held-out-scale cross-validation (ladder.held_out_scales). The process is pinned to one core and runs BLAS
on one thread. The machine may be shared: run it twice and read the lower figure.
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

from ablate.analyze.ladder import extrapolation, held_out_scales  # noqa: E402
from ablate.analyze.scale import SCALE_MODELS, ScalePoints, band, bootstrap, exponent_band, fit  # noqa: E402

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
    mixtures = np.unique(points.shares, axis=0)
    size = 2.5 * points.size.max()
    tokens = 20 * size
    print(
        f"{args.mixtures} mixtures × {args.sizes} sizes × {args.tokens} token counts = {len(points.target):,} rows, "
        f"{len(SUBSETS)} subsets; {args.resamples} refits; target N = {size:.2g}, D = {tokens:.2g}"
    )
    print(
        f"{'model':<8} {'fit s':>7} {'intervals s':>12} {'held-out s':>11} {'total s':>8}   "
        "alpha [95%]          beta [95%]           held-out largest: mean rel. error, rho"
    )
    total = 0.0
    cpu = os.times()
    for model in SCALE_MODELS:
        start = time.perf_counter()
        whole = fit(points, model)
        fitted = time.perf_counter()
        draws = bootstrap(points, model, resamples=args.resamples, seed=0, whole=whole)
        predicted = whole.predict(mixtures, size, tokens)
        low, high = band(draws, mixtures, size, tokens)
        exponents = {name: (whole.exponent(name), *exponent_band(draws, name)) for name in ("alpha", "beta")}
        refused = sum(
            extrapolation(whole, size, tokens, interval) is not None
            for interval in zip(predicted, low, high, strict=True)
        )
        intervals = time.perf_counter()
        held = held_out_scales(points, model)[0]
        done = time.perf_counter()
        total += done - start
        shown = "  ".join(f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in exponents.values())
        print(
            f"{model:<8} {fitted - start:>7.2f} {intervals - fitted:>12.2f} {done - intervals:>11.2f} "
            f"{done - start:>8.2f}   {shown}   {held.relative:.2%}, {held.rank_correlation:.2f}"
            + (f"; {refused} of {len(mixtures)} target predictions refused" if refused else "")
        )
    cpu_after = os.times()
    cpu_s = (cpu_after.user - cpu.user) + (cpu_after.system - cpu.system)
    print(
        f"CPU time {cpu_s:.1f} s on one core; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(a loaded machine stretches the wall time)"
    )
    print(
        f"scale_fit: every scale model with intervals and held-out scales on {len(points.target):,} rows "
        f"in {total:.1f} s; ratio to the {TARGET_S:g} s target = {total / TARGET_S:.2f}"
    )


if __name__ == "__main__":
    main()
