"""`ablate suggest`'s core: the mixture that maximizes a fitted objective, inside the constraints a
real phase has. Pure numpy and scipy.

Constraints on the shares r (one per subset):
- the simplex: r ≥ 0, Σ r = 1;
- per-subset caps: r_j ≤ cap_j (tokens available × max_passes over the phase's tokens, or a bound
  the user sets), and lower bounds r_j ≥ low_j;
- a trust region: KL(r ‖ baseline) ≤ κ. A fitted law is trustworthy near the mixtures it was fitted
  on, and a leave-one-out or swarm study samples around the baseline; subsets the baseline leaves
  out (share 0) stay out.

The optimizer is SLSQP from several starts (the baseline and points drawn inside the region); the
prediction's interval comes from the bootstrap refits: the same mixture predicted by each refit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ablate.errors import AblateError


def kl_divergence(r: np.ndarray, baseline: np.ndarray) -> float:
    """KL(r ‖ baseline) in nats, over the subsets the baseline has (0 · log 0 = 0)."""
    inside = r > 0
    return float(np.sum(r[inside] * np.log(r[inside] / baseline[inside])))


@dataclass(frozen=True)
class Bounds:
    low: np.ndarray
    high: np.ndarray
    kl: float  # the trust region's radius, nats


def maximize(
    objective: Callable[[np.ndarray], float], baseline: np.ndarray, bounds: Bounds, *, seed: int = 0, starts: int = 8
) -> np.ndarray:
    """The shares that maximize `objective` within `bounds` (see the module docstring)."""
    from scipy.optimize import minimize

    live = baseline > 0
    high = np.where(live, bounds.high, 0.0)
    low = np.minimum(bounds.low, high)
    if low.sum() > 1 + 1e-9 or high.sum() < 1 - 1e-9:
        raise AblateError("suggest: the bounds leave no mixture (the lower bounds sum above 1 or the caps below it)")
    constraints = [
        {"type": "eq", "fun": lambda r: r.sum() - 1.0},
        {"type": "ineq", "fun": lambda r: bounds.kl - kl_divergence(np.clip(r, 0, 1), baseline)},
    ]
    rng = np.random.default_rng(seed)
    best, best_value = None, -np.inf
    for attempt in range(starts):  # the baseline, then points drawn close around it
        first = np.zeros_like(baseline)
        first[live] = baseline[live] if attempt == 0 else rng.dirichlet(200 * baseline[live])
        found = minimize(
            lambda r: -objective(np.clip(r, 0, 1)),
            np.clip(first, low, high),
            method="SLSQP",
            bounds=list(zip(low, high, strict=True)),
            constraints=constraints,
            options={"maxiter": 300, "ftol": 1e-10},
        )
        r = np.clip(found.x, 0, 1)
        r /= r.sum()
        feasible = (
            kl_divergence(r, baseline) <= bounds.kl + 1e-6 and (r <= high + 1e-6).all() and (r >= low - 1e-6).all()
        )
        if feasible and objective(r) > best_value:
            best, best_value = r, objective(r)
    if best is None:
        raise AblateError("suggest: no start reached a mixture inside the bounds; widen --kl or the caps")
    return best
