"""AutoScale's candidate for `ablate suggest --at` (Kang et al., arXiv 2407.20177): the optimal mixture at
each budget of a ladder, each domain's optimal token count extrapolated to the target budget by a power law,
renormalized and brought back inside the caps, floors and trust region.

    found = budget_optima({"loss:web": points}, {"loss:web": -1.0}, baseline, bounds)
    mixture, why = extrapolate(found, compute(2e9, 4e10), baseline, bounds)   # None and the reason, or shares

A budget is one rung, a distinct (N, D): on a ladder of several model sizes each size's longest run (its
largest D, the best trained at that size; fitting every rung instead costs a fit per token count), on a
ladder of one size every token count. A budget's optimum is what `ablate
suggest` proposes from that rung's runs alone: per objective target the mixture model with the lowest
leave-one-out error among those its mixtures allow (suggest.choose_model; a rung where none beats the mean
has no optimum), the objective Σ weight · target maximized within the same caps, floors and trust region as
at the target (suggest.maximize). One fixed law would be simpler and fails: on tests/test_across.py's
moving-optimum law the loglinear and power forms misplace the largest rung's optimum, where the Data
Mixing Law, chosen there by leave-one-out, finds it (docs/fit-suggest.md gives the distances).

The budget is the compute C = 6·N·D. Kang et al. hold the model fixed and grow D; a ladder grows N too, and
a mixture's returns change with both (a subset can pay only at larger N), so the coordinate has to move with
either; where every rung has one N, log C is log D plus a constant and the line is the same. Each domain's
optimal count t_j = r*_j · D is fitted by a line in log t_j against log C through the rungs' optima (least
squares, every rung weighted alike), evaluated at the target's C and renormalized to shares; a factor common
to every domain cancels there. A share an optimum drops to 0 counts as SHARE_FLOOR in the logarithm.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from ablate.analyze.laws import Fitted
from ablate.analyze.scale import ScalePoints
from ablate.analyze.suggest import Bounds, choose_model, maximize
from ablate.errors import AblateError

SHARE_FLOOR = 1e-4  # a dropped subset's share in log t_j: finite, and far below any share a mixture uses
SCALE, AUTOSCALE = "scale-model", "autoscale"  # the candidates' names in the saved suggestion


def compute(size: float, tokens: float) -> float:
    """A budget's coordinate: the training compute 6·N·D, in FLOPs."""
    return 6.0 * size * tokens


@dataclass(frozen=True)
class Budget:
    """One rung: its scale, each target's mixture model fitted on its rows alone, and the objective's optimum there."""

    size: float
    tokens: float
    laws: dict[str, Fitted]
    noise: float  # Σ |weight| · leave-one-out RMSE / √rows: below this two mixtures' values are not told apart
    optimum: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def compute(self) -> float:
        return compute(self.size, self.tokens)

    def value(self, weights: dict[str, float], shares: np.ndarray) -> np.ndarray:
        """Σ weight · target at mixtures (rows), by this rung's laws."""
        rows = np.atleast_2d(shares)
        return np.sum([w * self.laws[t].predict(rows, rows * self.tokens) for t, w in weights.items()], axis=0)


def budget_optima(
    points: dict[str, ScalePoints], weights: dict[str, float], baseline: np.ndarray, bounds: Bounds, *, seed: int = 0
) -> list[Budget]:
    """Every rung (N, D) where each objective target has a mixture model that beats the mean out of sample:
    its models and its optimum within `bounds` around `baseline`, in order of compute."""
    first = points[next(iter(weights))]
    scales = np.unique(np.column_stack([first.size, first.tokens]), axis=0)
    if len(np.unique(scales[:, 0])) > 1:  # per size its largest D (np.unique sorts by N, then D)
        scales = scales[np.r_[scales[1:, 0] != scales[:-1, 0], True]]
    found = []
    for n, d in scales:
        rows = {t: np.flatnonzero(np.isclose(points[t].size, n) & np.isclose(points[t].tokens, d)) for t in weights}
        try:
            chosen = {
                t: choose_model(points[t].rows(i).mixture_points(), None, t, folds=None, seed=seed)
                for t, i in rows.items()
            }
        except AblateError:  # too few mixtures at this rung, or none of its models beats the mean
            continue
        laws = {t: f for t, (f, _) in chosen.items()}
        noise = sum(abs(w) * chosen[t][1] / np.sqrt(len(rows[t])) for t, w in weights.items())
        budget = Budget(float(n), float(d), laws, float(noise))
        smooth = all(f.smooth for f in laws.values())
        optimum = maximize(partial(budget.value, weights), baseline, bounds, seed=seed, smooth=smooth)
        found.append(replace(budget, optimum=optimum))
    return sorted(found, key=lambda b: b.compute)


def project(shares: np.ndarray, baseline: np.ndarray, bounds: Bounds, *, seed: int = 0) -> np.ndarray:
    """The mixture within `bounds` around `baseline` nearest `shares` (Euclidean)."""
    return maximize(lambda rows: -np.sum((np.atleast_2d(rows) - shares) ** 2, axis=1), baseline, bounds, seed=seed)


def extrapolate(
    budgets: list[Budget], target: float, baseline: np.ndarray, bounds: Bounds, *, seed: int = 0
) -> tuple[np.ndarray | None, str]:
    """AutoScale's mixture at compute `target` from the budgets' optima, within `bounds`; (None, why) where
    fewer than two budgets of distinct compute have an optimum."""
    computes = np.array([b.compute for b in budgets])
    if len(np.unique(computes)) < 2:
        have = f"{len(budgets)} budget{'s' if len(budgets) != 1 else ''}"
        return None, (
            f"AutoScale needs optima at two budgets of distinct compute, has {have} with a mixture model "
            "that beats the mean out of sample"
        )
    live = baseline > 0
    counts = np.array([np.maximum(b.optimum[live], SHARE_FLOOR) * b.tokens for b in budgets])
    slope, level = np.polyfit(np.log(computes), np.log(counts), 1)
    logs = level + slope * np.log(target)
    shares = np.zeros_like(baseline)
    shares[live] = np.exp(logs - logs.max())
    return project(shares / shares.sum(), baseline, bounds, seed=seed), ""


@dataclass(frozen=True)
class Candidates:
    """`suggest --at`'s two candidates at the target, the leave-one-budget-out check and the one used."""

    used: str  # SCALE or AUTOSCALE
    note: str  # why that one: the check's outcome, or why it could not run
    mixtures: dict[str, dict[str, float]]  # candidate → its mixture at the target (AutoScale's absent, `absent`)
    gaps: dict[str, float]  # candidate → objective gap to the held-out budget's own optimum; {} unchecked
    noise: float  # the held-out budget's noise (Budget.noise); nan unchecked
    held_out: list[float]  # [N, D] of the held-out budget; [] unchecked
    budgets: int  # rungs with an optimum of their own
    absent: str = ""  # why AutoScale has no mixture at the target


def choose(gaps: dict[str, float], held: Budget) -> str:
    """AutoScale where its prediction of the held-out optimum lost less objective than the scale model's by
    more than the held-out budget's noise; else the scale model, the one checked on held-out scales."""
    return AUTOSCALE if gaps[AUTOSCALE] + held.noise < gaps[SCALE] else SCALE


def check_note(gaps: dict[str, float], held: Budget) -> str:
    """The check's outcome, one sentence."""
    used = choose(gaps, held)
    return (
        f"leave-one-budget-out at N = {held.size:.3g}, D = {held.tokens:.3g}: objective lost against that "
        f"budget's own optimum {gaps[SCALE]:.3g} (scale model) and {gaps[AUTOSCALE]:.3g} (AutoScale), its "
        f"noise {held.noise:.3g}; used {'AutoScale' if used == AUTOSCALE else 'the scale model'}"
    )
