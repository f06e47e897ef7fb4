"""Statistics for honest deltas. Pure numpy and the standard library: no torch, no clock."""

from __future__ import annotations

from statistics import NormalDist

POWER = 0.8  # the conventional 80% chance to detect a true effect of the reported size


def minimum_detectable_effect(n_items: int, p: float, ci: float = 0.95, power: float = POWER) -> float:
    """Smallest accuracy difference a two-sided test at level 1 − `ci` finds with `power`.

    Treats baseline and variant as independent samples of `n_items` at accuracy `p`. Pairing the
    same items only lowers the variance, so this is conservative: a Δ below it may be real but
    cannot be told from noise. Returns a fraction (0.05 = 5 points).
    """
    if n_items <= 0:
        raise ValueError("n_items must be positive")
    z = NormalDist().inv_cdf
    spread = (2 * p * (1 - p) / n_items) ** 0.5
    return (z(0.5 + ci / 2) + z(power)) * spread
