"""Significance over a whole table: a cell's p-value from its own resamples, adjusted over every
cell (Benjamini–Hochberg or Holm), since a table of many cells flags some by chance alone."""

from __future__ import annotations

import numpy as np

from ablate.choices import ADJUSTMENTS


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
