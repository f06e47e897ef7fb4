"""Models of a target (a task score, a category, a domain loss) as a function of the phase mixture,
fitted over a study's variants. Pure numpy and scipy: no torch, no I/O.

Each variant contributes one point: its mixture r (shares of the phase, summing to 1), the tokens it
drew from each subset (r × the phase's tokens) and its measured target y (mean over its seeds).

    linear     y = Σ_j w_j r_j                         an attribution per subset: w_j is y on pure j
    loglinear  y = b + Σ_j w_j log(r_j + ε)            diminishing returns per subset
    law        y = c + k · exp(Σ_{j>1} t_j r_j)         Data Mixing Laws (Ye et al., 2024), with t_1 = 0:
                                                       the shares sum to 1, so only differences of t count
    power      y = c + Σ_j β_j (D_j + D_0)^(−γ)         AutoScale's per-domain power law in the tokens D_j
                                                       each subset contributes (Kang et al., 2024),
                                                       one exponent γ; D_0 = 1% of the phase keeps a
                                                       removed subset finite

A fit is least squares (scipy.optimize.least_squares, several starts for the non-linear forms). A
model with more parameters than variants is refused: it would fit any data exactly and predict
nothing. `cross_validate` leaves each variant out in turn and predicts it from the others: the RMSE
and rank correlation of those predictions are what says whether a model can choose the next mix.
`bootstrap` refits on variants drawn with replacement for parameter intervals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ablate.errors import AblateError

MODELS = ("linear", "loglinear", "law", "power")
EPS = 1e-3  # loglinear: log(r + ε), so that a removed subset (r = 0) stays finite
FLOOR = 0.01  # power: D_0, as a share of the phase's tokens
MAX_EVALUATIONS = 100  # per start: a form that fits the data converges in far fewer; one that does not
# (a flat target, where the law's k → 0) would otherwise wander for thousands


@dataclass(frozen=True)
class Points:
    """What a fit sees: one row per variant."""

    names: list[str]
    subsets: list[str]
    shares: np.ndarray  # variants × subsets, rows sum to 1
    tokens: np.ndarray  # variants × subsets: tokens drawn from each subset in the phase
    target: np.ndarray  # variants


@dataclass(frozen=True)
class Fitted:
    model: str
    names: list[str]  # parameter names, e.g. w[web], c, k, t[code]
    params: np.ndarray
    scale: float  # the phase's tokens the power form measures D_0 in
    rmse: float  # in-sample

    def predict(self, shares: np.ndarray, tokens: np.ndarray, params: np.ndarray | None = None) -> np.ndarray:
        """The target at these mixtures (variants × subsets), with the fitted parameters or `params`."""
        chosen = self.params if params is None else params
        return _form(self.model, self.scale)(chosen, np.atleast_2d(shares), np.atleast_2d(tokens))


def parameter_names(model: str, subsets: list[str]) -> list[str]:
    if model == "linear":
        return [f"w[{s}]" for s in subsets]
    if model == "loglinear":
        return ["b", *[f"w[{s}]" for s in subsets]]
    if model == "law":
        return ["c", "k", *[f"t[{s}]" for s in subsets[1:]]]
    if model == "power":
        return ["c", "gamma", *[f"beta[{s}]" for s in subsets]]
    raise AblateError(f"--model {model}: use one of {', '.join(MODELS)}")


def _form(model: str, scale: float) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """(params, shares, tokens) → y for `model`; `scale`: the phase's tokens, for the power form's D_0."""
    if model == "linear":
        return lambda p, r, d: r @ p
    if model == "loglinear":
        return lambda p, r, d: p[0] + np.log(r + EPS) @ p[1:]
    if model == "law":
        return lambda p, r, d: p[0] + p[1] * np.exp(r[:, 1:] @ p[2:])
    return lambda p, r, d: p[0] + ((d / scale + FLOOR) ** -p[1]) @ p[2:]  # D_j / phase tokens + 1%


def _jacobian(model: str, scale: float) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """The non-linear forms' derivatives in their parameters (variants × parameters): exact, so a fit
    needs one evaluation per step instead of one per parameter."""
    if model == "law":

        def law(p: np.ndarray, r: np.ndarray, d: np.ndarray) -> np.ndarray:
            grow = np.exp(r[:, 1:] @ p[2:])
            return np.column_stack([np.ones(len(r)), grow, p[1] * grow[:, None] * r[:, 1:]])

        return law

    def power(p: np.ndarray, r: np.ndarray, d: np.ndarray) -> np.ndarray:
        x = d / scale + FLOOR
        terms = x ** -p[1]
        return np.column_stack([np.ones(len(r)), -(terms * np.log(x)) @ p[2:], terms])

    return power


def fit(points: Points, model: str, *, seed: int = 0, start: np.ndarray | None = None) -> Fitted:
    """Least-squares fit of `model`; refuses when it has more parameters than there are variants.
    `start`: one starting point for the non-linear forms (a refit near a known fit), instead of the
    several that a first fit tries."""
    from scipy.optimize import least_squares

    names = parameter_names(model, points.subsets)
    if len(names) > len(points.target):
        raise AblateError(
            f"fit {model}: {len(names)} parameters but {len(points.target)} variants; add variants "
            "(`ablate plan --design swarm --n N`) or fit a smaller model"
        )
    r, d, y = points.shares, points.tokens, points.target
    scale = float(d.sum(axis=1).mean()) or 1.0
    form = _form(model, scale)
    if model == "linear":
        params = np.linalg.lstsq(r, y, rcond=None)[0]
    elif model == "loglinear":
        params = np.linalg.lstsq(np.column_stack([np.ones(len(y)), np.log(r + EPS)]), y, rcond=None)[0]
    else:
        rng = np.random.default_rng(seed)
        spread = float(np.ptp(y)) or 1.0
        starts = [start] if start is not None else _starts(model, len(points.subsets), y, spread, rng)
        jacobian = _jacobian(model, scale)
        # The power form's exponent stays in (0, 4]: a negative one would be growth, not returns.
        low = np.full(len(names), -np.inf)
        high = np.full(len(names), np.inf)
        if model == "power":
            low[1], high[1] = 1e-3, 4.0
        best = None
        for first in starts:
            first = np.clip(first, low + 1e-9, high - 1e-9)
            found = least_squares(
                lambda p: form(p, r, d) - y,
                first,
                jac=lambda p: jacobian(p, r, d),
                bounds=(low, high),
                method="trf",
                max_nfev=MAX_EVALUATIONS,
            )
            if best is None or found.cost < best.cost:
                best = found
        assert best is not None
        params = best.x
    rmse = float(np.sqrt(np.mean((form(params, r, d) - y) ** 2)))
    return Fitted(model, names, params, scale, rmse)


def _starts(model: str, m: int, y: np.ndarray, spread: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Starting points for the non-linear forms: a few signs and scales, then random ones."""
    if model == "law":
        fixed = [np.r_[y.mean() + sign * spread, -sign * spread, np.zeros(m - 1)] for sign in (1, -1)]
        return fixed + [np.r_[y.mean(), rng.normal(0, spread), rng.normal(0, 2, m - 1)] for _ in range(3)]
    fixed = [
        np.r_[y.min() - spread, 0.5, np.full(m, spread / m)],
        np.r_[y.max() + spread, 0.5, np.full(m, -spread / m)],
    ]
    return fixed + [np.r_[y.mean(), rng.uniform(0.1, 2), rng.normal(0, spread, m)] for _ in range(3)]


@dataclass(frozen=True)
class Validation:
    predicted: np.ndarray  # each variant predicted by the model fitted without it
    rmse: float
    rank_correlation: float  # Spearman's ρ between predicted and measured


def cross_validate(points: Points, model: str) -> Validation:
    """Leave-one-variant-out: refit without each variant and predict it."""
    from scipy.stats import spearmanr

    n = len(points.target)
    if len(parameter_names(model, points.subsets)) > n - 1:
        raise AblateError(
            f"fit {model}: leaving one of {n} variants out leaves fewer than its "
            f"{len(parameter_names(model, points.subsets))} parameters; add variants or fit a smaller model"
        )
    whole = fit(points, model)
    predicted = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        fitted = fit(take(points, keep), model, start=whole.params)
        predicted[i] = fitted.predict(points.shares[i : i + 1], points.tokens[i : i + 1])[0]
    rmse = float(np.sqrt(np.mean((predicted - points.target) ** 2)))
    rho = spearmanr(predicted, points.target).statistic if n > 2 else float("nan")
    return Validation(predicted, rmse, float(rho))


def bootstrap(points: Points, model: str, *, resamples: int, seed: int, distinct: int | None = None) -> np.ndarray:
    """Parameters refitted on variants drawn with replacement (resamples × parameters). Draws with
    fewer distinct variants than `distinct` (default: the model's parameters) are drawn again; targets
    of one objective bootstrapped with the same seed, n and `distinct` refit on the same draws."""
    rng = np.random.default_rng(seed)
    n = len(points.target)
    least = len(parameter_names(model, points.subsets)) if distinct is None else distinct
    whole = fit(points, model)
    draws = []
    for _ in range(20 * resamples):
        index = rng.integers(0, n, size=n)
        if len(np.unique(index)) < least:
            continue
        draws.append(fit(take(points, index), model, start=whole.params).params)
        if len(draws) == resamples:
            break
    return np.array(draws)


def take(points: Points, index: np.ndarray) -> Points:
    """The points at `index` (variants, in that order; repeats allowed)."""
    names = list(np.asarray(points.names)[index])
    return Points(names, points.subsets, points.shares[index], points.tokens[index], points.target[index])
