"""Statistics for honest deltas. Pure numpy and the standard library: no torch, no clock.

How an attribution interval is computed (`ablate report` prints the same in its footnote):

- Δ = variant − baseline on the items both were scored on, paired by item. The interval is the
  percentile interval of Δ* over B bootstrap resamples: each resample draws the n items with
  replacement and averages the per-item differences.
- Training-seed noise (data order) is not item noise: the same items scored after another seed's run
  move together. Each side is averaged over its seeds item by item, the items are resampled, and a
  seed term is added to every resample: sd · √(1/seeds_variant + 1/seeds_baseline) · T_df, where sd is
  the pooled seed-to-seed SD of the score from replicate runs (by default a second baseline seed) and
  T_df Student's t with the estimate's degrees of freedom, so that an SD estimated from one or two
  replicates widens the interval as much as its own uncertainty asks (a t interval where seed noise
  dominates, the item bootstrap where items do). Resampling two or three seeds themselves would
  understate their spread by half or more. Without any replicate there is no seed term, and the
  interval covers item sampling only: the report says its flags are conditional on one run.
- Clusters: items that ask the same underlying fact are not independent (a model that knows the fact
  gets all of them right), and resampling them one by one gives too narrow an interval. When every
  item of a task carries a `cluster` label in its lm-eval doc (on both sides; else items are drawn one
  by one), a resample draws the G clusters with replacement instead, each bringing all its items;
  Δ* = the drawn clusters' summed item differences over the number of items drawn. The same cluster
  draw applies to every seed.
- Exact and fast: resampling n items with replacement only changes how often each distinct item
  *pattern* (the item's values across seeds) is drawn, so the counts per pattern are one multinomial
  draw. For 0/1 metrics and one seed there are at most 3 patterns (−1, 0, +1), so a resample costs
  O(patterns) instead of O(n). Metrics with many distinct values resample item indices directly.
  Clusters are resampled the same way: a cluster is a unit whose pattern is (its sum per seed, its
  size), and an item is a cluster of one. 0/1 items in clusters of k have at most 2k + 1 sums a size,
  but each pattern costs a binomial draw per resample, so clustered tasks cost a few times more.
- Power with clusters: n clustered items are worth n / design effect independent ones; the design
  effect (variance of the mean under cluster sampling over that under item sampling) is estimated from
  the baseline's own item scores, so it matches the cluster bootstrap rather than assuming the worst.
- Without per-item logs: an unpaired normal interval from lm-eval's standard errors.
- Significance: each cell's two-sided p-value comes from its own resamples; the report adjusts them
  over the whole table (Benjamini–Hochberg by default, or Holm), since a table of many cells flags
  some by chance alone. tests/test_significance.py calibrates both by simulation.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

POWER = 0.8  # the conventional 80% chance to detect a true effect of the reported size
MAX_PATTERNS = 256  # above this many distinct item patterns, resampling indices is cheaper
_GATHER_CELLS = 4_000_000  # values gathered per chunk when resampling indices (bounds memory)

SEED_METHOD = (
    "each side averaged over its seeds item by item, items resampled, plus a seed term sd·√(1/seeds + 1/baseline "
    "seeds)·t_df from the pooled seed SD of replicate runs"
)


def minimum_detectable_effect(n_items: float, p: float, ci: float = 0.95, power: float = POWER) -> float:
    """Smallest accuracy difference a two-sided test at level 1 − `ci` finds with `power`.

    Treats baseline and variant as independent samples of `n_items` at accuracy `p`. Pairing the
    same items only lowers the variance, so this is conservative: a Δ below it may be real but
    cannot be told from noise. Returns a fraction (0.05 = 5 points).
    """
    if n_items <= 0:
        raise ValueError("n_items must be positive")
    return _z(ci, power) * (2 * p * (1 - p) / n_items) ** 0.5


def design_effect(values: np.ndarray, clusters: np.ndarray) -> float:
    """How many times clustering inflates the variance of a mean score (Kish's design effect), from
    per-item scores: Σ_clusters (sum − size · mean)² over Σ_items (value − mean)², the cluster
    bootstrap's variance over the item bootstrap's. 1 for independent items; the cluster size when a
    cluster's items all agree. Never below 1 (no credit for negative correlation); with no variance to
    estimate it from, a cluster's items are assumed to agree (n / clusters), the cautious choice.
    """
    codes = cluster_codes(clusters)
    residuals = np.asarray(values, dtype=float) - np.mean(values)
    spread = float((residuals**2).sum())
    if spread == 0:
        return len(codes) / (int(codes.max()) + 1)
    return max(1.0, float((np.bincount(codes, weights=residuals) ** 2).sum()) / spread)


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
    return _resampled_means(*_units(rows, clusters), resamples, rng)[:, 0]


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


def _units(rows: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
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
    chunk = max(1, _GATHER_CELLS // (n_units * units.shape[0]))
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


def gauntlet_score(scores: list, random_baselines: list[float]):
    """Gauntlet-style category score: per task (score − chance) / (1 − chance), 0 at chance and 1 at
    perfect, so tasks with different chance levels average fairly; then the mean over the tasks.
    Works on floats and element-wise on arrays (pandas columns, resample draws)."""
    return sum((s - rb) / (1 - rb) for s, rb in zip(scores, random_baselines, strict=True)) / len(scores)


def gauntlet_delta(deltas: list, random_baselines: list[float]):
    """The category Δ from per-task Δs: chance cancels in the difference, only 1 / (1 − chance) stays.
    Given aligned resample draws per task (tasks' items are independent), gives the category's draws."""
    return sum(d / (1 - rb) for d, rb in zip(deltas, random_baselines, strict=True)) / len(deltas)


# ---- significance over a whole table ------------------------------------------------------------

ADJUSTMENTS = ("bh", "holm", "none")


def bootstrap_p_value(draws: np.ndarray) -> float:
    """Two-sided p-value of Δ = 0 from the same resamples as the interval: twice the smaller share of
    draws on either side of 0 (a draw at exactly 0 counts for both sides), with the +1 of a Monte
    Carlo p-value so that no finite number of resamples claims p = 0. It is below 1 − ci exactly when
    the percentile interval at level ci leaves 0 out, up to that +1."""
    draws = np.asarray(draws, dtype=float)
    below, above = int((draws <= 0).sum()), int((draws >= 0).sum())
    return min(1.0, 2 * (min(below, above) + 1) / (len(draws) + 1))


def adjust_p_values(p_values: np.ndarray, method: str) -> np.ndarray:
    """p-values adjusted for testing them all at once, in their input order.

    holm: Holm's step-down, family-wise error (any false flag at all) at most α. bh:
    Benjamini–Hochberg's step-up, false discovery rate (the expected share of flags that are false)
    at most α, valid for independent or positively dependent tests (Δs that share a baseline are
    positively dependent). none: as given. Flag a cell where its adjusted p-value is below α.
    """
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if method == "none" or m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    elif method == "bh":
        adjusted = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
        adjusted = np.minimum(1.0, adjusted)
    else:
        raise ValueError(f"unknown adjustment {method!r}; use one of {ADJUSTMENTS}")
    out = np.empty(m)
    out[order] = adjusted
    return out


# ---- how far to trust a table: seed noise, signal, decision consistency -------------------------


def seed_noise(groups: list[np.ndarray]) -> dict[str, float] | None:
    """Signal and noise of one task over a study's ablations, from per-seed scores (one array per
    ablation, its seeds' scores). noise: the pooled seed-to-seed standard deviation within ablations;
    signal: the standard deviation of the ablations' mean scores; snr: signal / noise. p_value: the
    one-way ANOVA F-test of "every ablation has the same expected score", seeds as replicates. It
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
        return {
            "noise": 0.0,
            "signal": signal,
            "snr": math.inf if signal else math.nan,
            "p_value": 0.0 if signal else 1.0,
        }
    return {
        "noise": noise,
        "signal": signal,
        "snr": signal / noise,
        "p_value": _f_survival(between / noise**2, len(groups) - 1, within),
    }


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


def detectable_effect(p: float, n_items: float, seed_sd: float, seeds: int, ci: float = 0.95) -> float:
    """minimum_detectable_effect with training-seed noise added: the smallest Δ between two variants,
    each averaged over `seeds` seeds and scored on `n_items` (effective) items, that a two-sided test
    at level 1 − `ci` finds with 80% power. Var Δ = 2·p(1−p)/n (items) + 2·seed_sd²/seeds (seeds)."""
    if n_items <= 0 or seeds <= 0:
        raise ValueError("n_items and seeds must be positive")
    return _z(ci) * (2 * p * (1 - p) / n_items + 2 * seed_sd**2 / seeds) ** 0.5


def seeds_needed(delta: float, p: float, n_items: float, seed_sd: float, ci: float = 0.95) -> int | None:
    """Seeds per variant for detectable_effect to reach `delta` at these items; None when the items
    alone already keep it above `delta` (more items are needed, not seeds)."""
    room = (delta / _z(ci)) ** 2 - 2 * p * (1 - p) / n_items
    if room <= 0:
        return None
    return max(1, math.ceil(2 * seed_sd**2 / room))


def items_needed(delta: float, p: float, seeds: float, seed_sd: float, ci: float = 0.95) -> int | None:
    """(Effective) items for detectable_effect to reach `delta` with `seeds` seeds; None when seed
    noise alone keeps it above `delta` (more seeds are needed, not items)."""
    room = (delta / _z(ci)) ** 2 - 2 * seed_sd**2 / seeds
    if room <= 0:
        return None
    return max(1, math.ceil(2 * p * (1 - p) / room))


def _z(ci: float, power: float = POWER) -> float:
    """z_(1−α/2) + z_power: the standard errors a detectable effect spans."""
    z = NormalDist().inv_cdf
    return z(0.5 + ci / 2) + z(power)


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
) -> tuple[float, np.ndarray]:
    """How often two settings of a study order its variants alike (DataDecide's decision accuracy over
    pairs): a and b are (variants × items) scores on the same items, e.g. each variant's mean over one
    half of its seeds and over the other half, or at two phase lengths. Returns the share of agreeing
    pairs and its bootstrap draws, the items (or clusters) resampled alike for both settings. 1: every
    pair ordered alike; about 0.5 for settings that order at random."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError("both settings need the same variants × items")
    point = float(pair_agreement(a.mean(axis=1), b.mean(axis=1))[0])
    units = _units(np.vstack([a, b]), clusters)[0]  # a cluster's items are drawn together: their sums
    n_units, half = units.shape[1], a.shape[0]
    draws = np.empty(resamples)
    chunk = max(1, _GATHER_CELLS // n_units)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        weights = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=stop - start).astype(float)
        sums = weights @ units.T  # per resample, each variant's summed draw: its mean up to a shared factor
        draws[start:stop] = pair_agreement(sums[:, :half], sums[:, half:])
    return point, draws
