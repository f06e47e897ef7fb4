"""A Δ's interval: the paired bootstrap over items or clusters, the seed term added to it, and
without per-item logs the normal interval from lm-eval's standard errors (docs/report.md says how).

Exact and fast: resampling n items with replacement only changes how often each distinct item pattern
(its values across seeds) is drawn, so a resample is one multinomial draw over the patterns: for 0/1
metrics and one seed at most 3 (−1, 0, +1), O(patterns) instead of O(n). A cluster is a unit whose
pattern is its sums per seed and its size. Above MAX_PATTERNS the item indices are resampled directly."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

MAX_PATTERNS = 256  # above this many distinct item patterns, resampling indices is cheaper
GATHER_CELLS = 4_000_000  # values gathered per chunk when resampling indices (bounds memory)

SEED_METHOD = (
    "each side averaged over its seeds item by item, items resampled, plus a seed term sd·√(1/seeds + 1/baseline "
    "seeds)·t_df from the pooled seed SD of replicate runs"
)


def paired_bootstrap(
    variant: np.ndarray,
    baseline: np.ndarray,
    *,
    resamples: int,
    rng: np.random.Generator,
    clusters: np.ndarray | None = None,
) -> np.ndarray:
    """Δ* for each of `resamples` bootstrap resamples over items (see the module docstring).

    `variant` and `baseline` are (seeds × items), columns the same items in the same order; each side
    is averaged over its seeds item by item, so Δ* covers item sampling only (add `seed_term` for
    training-seed noise). `clusters`: one label per item; items with the same label are drawn
    together. None: items are drawn one by one.
    """
    variant, baseline = np.atleast_2d(variant).astype(float), np.atleast_2d(baseline).astype(float)
    if variant.shape[1] != baseline.shape[1] or variant.shape[1] == 0:
        raise ValueError("variant and baseline need the same, non-zero number of items")
    rows = (variant.mean(axis=0) - baseline.mean(axis=0))[None, :]
    return _resampled_means(*resample_units(rows, clusters), resamples, rng)[:, 0]


def seed_term(
    sd: float, df: float, seeds: int, baseline_seeds: int, *, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws of the training-seed part of a Δ between means over `seeds` and `baseline_seeds` runs:
    sd · √(1/seeds + 1/baseline_seeds) · T_df, where sd is a pooled seed SD estimated with `df` degrees
    of freedom. Student's t, not a normal: with the one or two degrees of freedom a replicate baseline
    gives, the SD itself is uncertain, and its tails carry that (df = inf: a known SD)."""
    scale = sd * math.sqrt(1 / seeds + 1 / baseline_seeds)
    if math.isinf(df):
        return scale * rng.standard_normal(resamples)
    return scale * rng.standard_t(df, size=resamples)


def pooled_variance(groups: list[np.ndarray]) -> tuple[float, int]:
    """The seed-to-seed variance pooled over groups (each one ablation's scores over its seeds):
    Σ squared deviations from each group's mean / Σ (size − 1), and those degrees of freedom
    (0, with variance nan, when no group has two values)."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    df = sum(len(g) - 1 for g in groups)
    if df == 0:
        return math.nan, 0
    return float(sum(((g - g.mean()) ** 2).sum() for g in groups) / df), df


def resample_units(rows: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """What a resample draws: the items (sizes None), or the clusters as their per-row sums and sizes."""
    if clusters is None:
        return rows, None
    if np.shape(clusters) != (rows.shape[1],):
        raise ValueError("clusters needs one label per item")
    codes = cluster_codes(clusters)
    sizes = np.bincount(codes)
    return np.stack([np.bincount(codes, weights=row, minlength=len(sizes)) for row in rows]), sizes


def cluster_codes(clusters: np.ndarray) -> np.ndarray:
    """Cluster labels as dense codes 0..G−1 (G = the number of distinct labels)."""
    return np.unique(clusters, return_inverse=True)[1].ravel()


def _resampled_means(
    units: np.ndarray, sizes: np.ndarray | None, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Mean of each row over the items of the same resampled units, per resample: (resamples × rows).

    A unit is an item (`sizes` None: `units` holds the items' values) or a cluster (`units` holds its
    items' sum per row, `sizes` its item count); the mean divides by the items actually drawn.
    """
    n_units = units.shape[1]
    patterns, counts = item_patterns(units if sizes is None else np.vstack([units, sizes]))
    if patterns.shape[1] <= MAX_PATTERNS:
        drawn = rng.multinomial(n_units, counts / n_units, size=resamples)  # resamples × patterns
        if sizes is None:
            return (drawn @ patterns.T) / n_units
        return (drawn @ patterns[:-1].T) / (drawn @ patterns[-1])[:, None]
    means = np.empty((resamples, units.shape[0]))
    chunk = max(1, GATHER_CELLS // (n_units * units.shape[0]))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        index = rng.integers(0, n_units, size=(stop - start, n_units))
        drawn_items = n_units if sizes is None else sizes[index].sum(axis=1)
        means[start:stop] = (units[:, index].sum(axis=2) / drawn_items).T
    return means


def item_patterns(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct columns of `rows` (each item's values across rows) and how many items share each.

    Like np.unique(axis=1) but on integer codes: one fast sort per row instead of a sort of records.
    """
    if rows.shape[0] == 1:
        values, counts = np.unique(rows[0], return_counts=True)
        return values[None, :], counts
    codes = np.zeros(rows.shape[1], dtype=np.int64)
    for row in rows:
        levels, inverse = np.unique(row, return_inverse=True)
        _, codes = np.unique(codes * len(levels) + inverse, return_inverse=True)  # dense again: no overflow
    _, first, counts = np.unique(codes, return_index=True, return_counts=True)
    return rows[:, first], counts


def percentile_interval(draws: np.ndarray, ci: float) -> tuple[float, float]:
    """The central `ci` interval of bootstrap draws: np.quantile's linear method, via one partition
    (several times faster than np.quantile on 10,000 draws, which matters over a thousand cells)."""
    position = np.array([(1 - ci) / 2, (1 + ci) / 2]) * (len(draws) - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, len(draws) - 1)
    ordered = np.partition(draws, np.unique(np.concatenate([below, above])))
    low, high = ordered[below] + (ordered[above] - ordered[below]) * (position - below)
    return float(low), float(high)


def normal_interval(delta: float, stderr: float, ci: float) -> tuple[float, float]:
    """delta ± z·stderr: the interval when only aggregate scores and their standard errors exist."""
    half = NormalDist().inv_cdf(0.5 + ci / 2) * stderr
    return delta - half, delta + half


def unpaired_stderr(variant_stderrs: list[float], baseline_stderrs: list[float]) -> float:
    """Standard error of mean(variant seeds) − mean(baseline seeds), all scores independent."""
    variance = sum(s * s for s in variant_stderrs) / len(variant_stderrs) ** 2
    variance += sum(s * s for s in baseline_stderrs) / len(baseline_stderrs) ** 2
    return variance**0.5


def normal_draws(delta: float, stderr: float, *, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Draws from the normal interval's distribution, so a task without item logs can still join a
    category average computed over resamples."""
    return rng.normal(delta, stderr, size=resamples)
