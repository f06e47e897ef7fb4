"""Power: the smallest Δ a study can tell from noise, from items, clusters and training seeds, and
the items or seeds it would take to detect a given one."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ablate.stats.intervals import cluster_codes

POWER = 0.8  # the conventional 80% chance to detect a true effect of the reported size


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
