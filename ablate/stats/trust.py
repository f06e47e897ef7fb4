"""How far to trust a table: seed noise against the spread of the ablations (signal), variances
moderated across tasks, how often a Δ keeps its sign, and whether two settings of a study order its
variants alike (decision consistency)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ablate.stats.intervals import GATHER_CELLS, pooled_variance, resample_units


@dataclass(frozen=True)
class SignalNoise:
    """One task's seed noise against the spread of its ablations (in the scores' unit)."""

    noise: float  # the pooled seed-to-seed standard deviation within ablations
    signal: float  # the standard deviation of the ablations' mean scores
    snr: float  # signal / noise
    p_value: float  # the F-test of "every ablation has the same expected score"


def seed_noise(groups: list[np.ndarray]) -> SignalNoise | None:
    """Signal and noise of one task over a study's ablations, from per-seed scores (one array per
    ablation, its seeds' scores). The p-value is the one-way ANOVA F-test, seeds as replicates. It
    ignores that variants share seeds (data orders), which only makes it conservative: a shared
    seed effect inflates the within-ablation variance and cancels from the spread of the means.
    None when no ablation has two seeds or fewer than two ablations are given."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    variance, within = pooled_variance(groups)
    if len(groups) < 2 or within == 0:
        return None
    means = np.array([g.mean() for g in groups])
    noise = math.sqrt(variance)
    signal = float(means.std(ddof=1))
    sizes = np.array([len(g) for g in groups])
    between = float((sizes * (means - (sizes * means).sum() / sizes.sum()) ** 2).sum()) / (len(groups) - 1)
    if noise == 0:  # seeds that change nothing: any spread is signal, none is none
        return SignalNoise(0.0, signal, math.inf if signal else math.nan, 0.0 if signal else 1.0)
    return SignalNoise(noise, signal, signal / noise, _f_survival(between / noise**2, len(groups) - 1, within))


def moderated_variances(variances: list[float], dfs: list[float]) -> list[tuple[float, float]]:
    """Each variance shrunk toward the group's, with the degrees of freedom it then carries: Smyth's
    (2004) empirical Bayes for many parallel tests with few replicates each (limma's moderated t).

    The variances s²_g (each with d_g df) are taken as draws around a prior s0² with d0 df, both
    estimated from the group by moments of log s²; then s̃²_g = (d0·s0² + d_g·s²_g) / (d0 + d_g) with
    d0 + d_g df. Tasks whose seed noise looks alike pool strongly (d0 large); a group whose variances
    scatter more than their own df explain pools little (d0 small). d0 + d_g never exceeds the
    group's total df: no task learns more than full pooling would tell. A group of fewer than two
    positive variances is returned as it is."""
    from scipy.special import digamma, polygamma

    positive = [(v, d) for v, d in zip(variances, dfs, strict=True) if v > 0 and d > 0]
    if len(positive) < 2:
        return list(zip(variances, dfs, strict=True))
    v, d = np.array([x for x, _ in positive]), np.array([y for _, y in positive], dtype=float)
    e = np.log(v) - digamma(d / 2) + np.log(d / 2)
    spread = float(np.var(e, ddof=1) - np.mean(polygamma(1, d / 2)))
    total = float(sum(dfs))
    if spread > 0:
        d0 = 2 * _trigamma_inverse(spread)
        s0 = float(np.exp(e.mean() + digamma(d0 / 2) - np.log(d0 / 2)))
    else:  # no more scatter than sampling alone gives: pool fully (the plain pooled variance, unbiased)
        d0, s0 = math.inf, float(np.dot(variances, dfs) / total)
    out = []
    for variance, df in zip(variances, dfs, strict=True):
        if math.isinf(d0):
            out.append((s0, total))
        else:
            out.append(((d0 * s0 + df * variance) / (d0 + df), min(d0 + df, total)))
    return out


def _trigamma_inverse(y: float) -> float:
    """x with trigamma(x) = y, by Newton's method on 1/trigamma (Smyth 2004, appendix): it converges
    from x = 0.5 + 1/y in a few steps for every y > 0."""
    from scipy.special import polygamma

    if y > 1e7:
        return 1 / math.sqrt(y)
    if y < 1e-6:
        return 1 / y
    x = 0.5 + 1 / y
    for _ in range(50):
        tri = float(polygamma(1, x))
        step = tri * (1 - tri / y) / float(polygamma(2, x))
        x += step
        if -step / x < 1e-8:
            break
    return x


def _f_survival(f: float, d1: int, d2: int) -> float:
    """P(F(d1, d2) ≥ f), through the regularized incomplete beta function."""
    from scipy.special import betainc

    return float(betainc(d2 / 2, d1 / 2, d2 / (d2 + d1 * f)))


def sign_kept(draws: np.ndarray, delta: float) -> float | None:
    """The share of resamples whose Δ* has the sign of the measured Δ (a draw at 0 counts half);
    None for a Δ of exactly 0, which has no sign to keep."""
    if delta == 0:
        return None
    same = np.sign(draws) == np.sign(delta)
    return float(same.mean() + 0.5 * (np.asarray(draws) == 0).mean())


def pair_agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The share of pairs (i < j) that two settings order alike, per row: a and b are (… × k) scores
    of the same k variants. A pair tied in both agrees; tied in exactly one, it counts half."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    i, j = np.triu_indices(a.shape[-1], k=1)
    if len(i) == 0:
        raise ValueError("decision consistency needs at least two variants")
    first, second = np.sign(a[:, i] - a[:, j]), np.sign(b[:, i] - b[:, j])
    return np.where(first == second, 1.0, np.where(first * second < 0, 0.0, 0.5)).mean(axis=1)


def decision_consistency(
    a: np.ndarray,
    b: np.ndarray,
    *,
    resamples: int,
    rng: np.random.Generator,
    clusters: np.ndarray | None = None,
    seed_sd: np.ndarray | None = None,
    df: float = math.inf,
) -> tuple[float, np.ndarray]:
    """How often two settings of a study order its variants alike (DataDecide's decision accuracy over
    pairs): a and b are (variants × items) scores on the same items, e.g. each variant's mean over one
    half of its seeds and over the other half, or at two phase lengths. Returns the share of agreeing
    pairs and its bootstrap draws, the items (or clusters) resampled alike for both settings. 1: every
    pair ordered alike; about 0.5 for settings that order at random. `seed_sd`: each row's (a's, then
    b's) training-seed SD of its mean score, added to every draw as sd·T_df, as a Δ's interval adds it."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError("both settings need the same variants × items")
    point = float(pair_agreement(a.mean(axis=1), b.mean(axis=1))[0])
    units, sizes = resample_units(np.vstack([a, b]), clusters)  # a cluster's items are drawn together: their sums
    n_units, half = units.shape[1], a.shape[0]
    draws = np.empty(resamples)
    chunk = max(1, GATHER_CELLS // n_units)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        weights = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=stop - start).astype(float)
        sums = weights @ units.T  # per resample, each variant's summed draw: its mean up to a shared factor
        if seed_sd is not None:
            drawn = weights @ sizes if sizes is not None else np.full(stop - start, float(n_units))
            shape = (stop - start, len(seed_sd))
            noise = rng.standard_normal(shape) if math.isinf(df) else rng.standard_t(df, size=shape)
            sums = sums / drawn[:, None] + seed_sd * noise
        draws[start:stop] = pair_agreement(sums[:, :half], sums[:, half:])
    return point, draws
