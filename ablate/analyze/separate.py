"""The `separate` scale model: each mixture its own power law along the one coordinate the ladder varies,
one exponent shared, L_m(N) = E_m + A_m·(N/N₀)^−α (or in D, with β, on a ladder of one model size).

A ladder study runs the same mixtures at every rung, and what a removal's Δ at the target needs is those
mixtures' losses there, not a law across mixtures. The joint form's E is linear in the shares, so a mixture
that is the average of others (the baseline between its leave-one-out removals) is predicted as their
average, where a real loss is convex in the shares, and every Δ inherits the miss (docs/demo.md measures
it on the demo's ladder). `separate` asks nothing of the mixtures' relation: it predicts only
mixtures it fitted, and each needs LEAST rungs, since with two E_m and A_m pass through any exponent.
It is one more candidate, chosen only where it predicts the held-out scale best (ladder.choose).
Pure numpy and scipy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablate.errors import AblateError

LEAST = 3  # rungs per mixture: with two, E_m and A_m fit any exponent
OTHER_MIXTURE = "separate fits a law to each mixture the ladder ran, and this mixture is not one of them"


@dataclass(frozen=True)
class Separate:
    """What `separate` learned: each fitted mixture's shares, level E_m and amplitude A_m, the axis and its
    exponent. Predicts a fitted mixture at any value of the axis; any other mixture is NaN (`known` says which)."""

    shares: np.ndarray  # mixtures × subsets
    level: np.ndarray
    slope: np.ndarray
    axis: str  # "alpha" (N varies) or "beta" (D varies)
    exponent: float
    center: float  # N₀ or D₀

    def known(self, shares: np.ndarray) -> np.ndarray:
        """Each row's fitted mixture (index), or −1 for a mixture the ladder did not run."""
        rows = np.round(np.atleast_2d(shares), 9)
        fitted = np.round(self.shares, 9)
        return np.array([next((k for k, f in enumerate(fitted) if np.array_equal(r, f)), -1) for r in rows], dtype=int)

    def predict(self, shares: np.ndarray, size: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        which = self.known(shares)
        x = (size if self.axis == "alpha" else tokens) / self.center
        value = self.level[which] + self.slope[which] * x**-self.exponent
        return np.where(which >= 0, value, np.nan)


def fit_separate(size: np.ndarray, tokens: np.ndarray, target: np.ndarray, groups: np.ndarray, shares: np.ndarray,
                 center: tuple[float, float]) -> Separate:  # fmt: skip
    """Fit every mixture (`groups`: each row's, 0, 1, ...) along the varying axis with one shared exponent;
    refused in one line on a ladder that varies both N and D or neither, or with a mixture at fewer than
    LEAST values of its axis."""
    from ablate.analyze.scale import shared_power

    varies = [len(np.unique(v)) > 1 for v in (size, tokens)]
    if varies[0] == varies[1]:
        what = "both model size and tokens" if varies[0] else "neither model size nor tokens"
        raise AblateError(f"fit separate: the ladder varies {what}; it fits one axis: fit joint instead")
    axis, values, unit = ("alpha", size, center[0]) if varies[0] else ("beta", tokens, center[1])
    counts = np.array([len(np.unique(values[groups == g])) for g in range(groups.max() + 1)])
    if (counts < LEAST).any():
        raise AblateError(
            f"fit separate: {(counts < LEAST).sum()} of {len(counts)} mixtures at fewer than {LEAST} "
            f"{'model sizes' if axis == 'alpha' else 'token counts'}; each mixture's own law needs {LEAST}"
        )
    exponent, level, slope = shared_power(values / unit, target, groups)
    fitted = np.array([shares[groups == g][0] for g in range(groups.max() + 1)])
    return Separate(fitted, level, slope, axis, exponent, unit)
