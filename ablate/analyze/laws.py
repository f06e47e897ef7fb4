"""Models of a target (a task score, a category, a domain loss) as a function of the phase mixture,
fitted over a study's variants (or runs made elsewhere, ablate.analyze.runs).

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
    gbm        gradient-boosted trees over the shares   scikit-learn's HistGradientBoostingRegressor, the
                                                       kind of regressor RegMix fits to 512 proxy runs;
                                                       needs many variants, predicts a step function
    ensemble   the mean of the two best of the above    by cross-validated error, absurd fits left out

A law's fit is least squares (scipy.optimize.least_squares, several starts for the non-linear forms);
a law needs two more variants than its parameters: with one fewer it fits any data and its
leave-one-out error checks nothing. `cross_validate` leaves each variant out in turn (or one of k
folds) and predicts it from the others: the RMSE and rank correlation of those predictions are what
says whether a model can choose the next mix, and a fit whose error is ABSURD times the target's
spread is no result. `bootstrap` refits on variants drawn with replacement for parameter intervals.
Pure numpy and scipy, no I/O; scikit-learn is imported only by the gbm model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ablate.choices import MODELS
from ablate.errors import AblateError

LAWS = MODELS[:4]  # the parametric forms: parameters with intervals, smooth in the mixture
EPS = 1e-3  # loglinear: log(r + ε), so that a removed subset (r = 0) stays finite
FLOOR = 0.01  # power: D_0, as a share of the phase's tokens
GAMMA = (1e-3, 4.0)  # power: γ's bounds; a negative exponent would be growth, not returns
MAX_EVALUATIONS = 1000  # per start: 17 domains over 512 runs converge in ~400; a form that does not fit
# (a flat target, where the law's k → 0) would otherwise wander for thousands, and says so in its note
GBM_VARIANTS = 40  # gbm: HistGradientBoostingRegressor's leaves hold 20 variants; fewer than two leaves is no model
ABSURD = 10.0  # a cross-validated RMSE this many times the target's standard deviation is no result
LEAVE_ONE_OUT = 100  # up to this many variants leave-one-out, above it FOLDS-fold cross-validation
FOLDS = 10


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
    names: list[str]  # parameter names, e.g. w[web], c, k, t[code]; none for gbm and ensemble
    params: np.ndarray
    scale: float  # the phase's tokens the power form measures D_0 in
    rmse: float  # in-sample
    note: str = ""  # why a fit stopped where it did (a bound, the evaluation cap), or what an ensemble holds
    learned: Any = None  # gbm: the fitted regressor; ensemble: its members, a tuple of Fitted

    def predict(self, shares: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The target at these mixtures (variants × subsets)."""
        r, d = np.atleast_2d(shares), np.atleast_2d(tokens)
        if self.model == "gbm":
            return np.asarray(self.learned.predict(r), dtype=float)
        if self.model == "ensemble":
            return np.mean([member.predict(r, d) for member in self.learned], axis=0)
        return _form(self.model, self.scale)(self.params, r, d)

    @property
    def smooth(self) -> bool:
        """Whether the prediction has useful gradients in the mixture (trees are step functions)."""
        if self.model == "ensemble":
            return all(member.smooth for member in self.learned)
        return self.model != "gbm"


def parameter_names(model: str, subsets: list[str]) -> list[str]:
    if model == "linear":
        return [f"w[{s}]" for s in subsets]
    if model == "loglinear":
        return ["b", *[f"w[{s}]" for s in subsets]]
    if model == "law":
        return ["c", "k", *[f"t[{s}]" for s in subsets[1:]]]
    if model == "power":
        return ["c", "gamma", *[f"beta[{s}]" for s in subsets]]
    if model in MODELS:
        return []
    raise AblateError(f"--model {model}: use one of {', '.join(MODELS)}")


def requirement(model: str, subsets: list[str]) -> tuple[int, str]:
    """The variants `model` needs before it is fitted, and why: a law two more than its parameters (with
    one fewer it fits any data), gbm GBM_VARIANTS, an ensemble as many as its second-cheapest member."""
    if model == "gbm":
        return GBM_VARIANTS, "boosted trees with leaves of 20"
    if model == "ensemble":
        return sorted(requirement(m, subsets)[0] for m in MODELS[:-1])[1], "two members"
    k = len(parameter_names(model, subsets))
    return k + 2, f"{k} parameters"


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


def fit(
    points: Points, model: str, *, seed: int = 0, start: Fitted | None = None, evaluations: int = MAX_EVALUATIONS
) -> Fitted:
    """Fit `model`; a law is refused when it has more parameters than there are variants. `start`: a fit
    of the same model on other draws of the variants, whose parameters are the non-linear forms' one
    starting point (instead of the several a first fit tries) and whose members an ensemble refits.
    `evaluations`: the non-linear forms' cap per start."""
    names = parameter_names(model, points.subsets)
    if len(names) > len(points.target):
        raise AblateError(
            f"fit {model}: {len(names)} parameters but {len(points.target)} variants; add variants "
            "(`ablate plan --design swarm --n N`) or fit a smaller model"
        )
    r, d, y = points.shares, points.tokens, points.target
    scale = float(d.sum(axis=1).mean()) or 1.0
    note = ""
    learned: Any = None
    if model == "ensemble":
        if start is None:
            raise AblateError("fit ensemble: its members come from cross-validation (ablate.analyze.laws.validate)")
        learned = tuple(fit(points, m.model, seed=seed, start=m) for m in start.learned)
        params, note = np.empty(0), start.note
    elif model == "gbm":
        from sklearn.ensemble import HistGradientBoostingRegressor

        learned = HistGradientBoostingRegressor(random_state=seed).fit(r, y)
        params = np.empty(0)
    elif model == "linear":
        params = np.linalg.lstsq(r, y, rcond=None)[0]
    elif model == "loglinear":
        params = np.linalg.lstsq(np.column_stack([np.ones(len(y)), np.log(r + EPS)]), y, rcond=None)[0]
    else:
        params, note = _least_squares(points, model, scale, seed=seed, start=start, evaluations=evaluations)
    fitted = Fitted(model, names, params, scale, 0.0, note, learned)
    return replace(fitted, rmse=float(np.sqrt(np.mean((fitted.predict(r, d) - y) ** 2))))


def _least_squares(
    points: Points, model: str, scale: float, *, seed: int, start: Fitted | None, evaluations: int
) -> tuple[np.ndarray, str]:
    """The non-linear forms' parameters from the best of several starts, and a note when the best
    stopped at the evaluation cap or at one of γ's bounds (saying what that means)."""
    r, d, y = points.shares, points.tokens, points.target
    k = len(parameter_names(model, points.subsets))
    rng = np.random.default_rng(seed)
    spread = float(np.ptp(y)) or 1.0
    starts = [start.params] if start is not None else _starts(model, len(points.subsets), y, spread, rng)
    form, jacobian = _form(model, scale), _jacobian(model, scale)
    low, high = np.full(k, -np.inf), np.full(k, np.inf)
    if model == "power":
        low[1], high[1] = GAMMA
    best = multistart(lambda p: form(p, r, d) - y, lambda p: jacobian(p, r, d), starts, low, high, max_nfev=evaluations)
    if model == "power" and best.x[1] * -np.log(FLOOR) < 0.05:  # x^−γ within 5% of 1 − γ·log x over the range
        return best.x, (
            f"γ {best.x[1]:.2g} ≈ 0 (bound {GAMMA[0]:g}): the data favour the power law's logarithmic limit, "
            "log-linear in D_j/D + 0.01, where c and β trade off (wide intervals) and γ creeps toward its bound"
        )
    if best.status == 0:
        return best.x, f"stopped at {evaluations} evaluations without converging (a target the form does not fit)"
    if model == "power" and best.x[1] >= GAMMA[1] * (1 - 1e-6):
        return best.x, f"γ at its upper bound {GAMMA[1]:g}: returns diminish faster than the form allows"
    return best.x, ""


def multistart(
    residual: Callable[[np.ndarray], np.ndarray],
    jacobian: Callable[[np.ndarray], np.ndarray],
    starts: list[np.ndarray],
    low: np.ndarray,
    high: np.ndarray,
    **options: Any,
) -> Any:
    """scipy's bounded least squares (trf, exact Jacobian) from each start, each moved just inside the
    bounds; the result with the lowest cost. `options` go to least_squares (max_nfev, x_scale)."""
    from scipy.optimize import least_squares

    best = None
    for first in starts:
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            # Exploratory steps of an exponential form overflow on the way (a rejected step, not a result):
            # said on stderr, scipy's warnings would break the command's one-line output.
            warnings.simplefilter("ignore", RuntimeWarning)
            found = least_squares(
                residual,
                np.clip(first, low + 1e-9, high - 1e-9),
                jac=jacobian,
                bounds=(low, high),
                method="trf",
                **options,
            )
        if best is None or found.cost < best.cost:
            best = found
    assert best is not None
    return best


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
    predicted: np.ndarray  # each variant predicted by a model fitted without it
    rmse: float
    rank_correlation: float  # Spearman's ρ between predicted and measured


def score(predicted: np.ndarray, measured: np.ndarray) -> Validation:
    """RMSE and Spearman's ρ of predictions (ρ needs three points)."""
    from scipy.stats import spearmanr

    rmse = float(np.sqrt(np.mean((predicted - measured) ** 2)))
    rho = spearmanr(predicted, measured).statistic if len(measured) > 2 else float("nan")
    return Validation(predicted, rmse, float(rho))


def absurd(rmse: float, target: np.ndarray) -> bool:
    """An error ABSURD times beyond the target's spread (or not a number): predicting the mean does better."""
    return not rmse <= ABSURD * float(np.std(target))


def scheme(n: int, folds: int | None) -> tuple[int | None, str]:
    """The folds to cross-validate `n` variants on (None: leave-one-out) and its label; `folds` as
    asked, by default leave-one-out up to LEAVE_ONE_OUT variants and FOLDS-fold above."""
    if folds is None:
        folds = None if n <= LEAVE_ONE_OUT else FOLDS
    elif not 2 <= folds <= n:
        raise AblateError(f"--folds {folds}: use between 2 and the {n} variants fitted")
    if folds is None or folds == n:
        return None, "leave-one-out"
    return folds, f"{folds}-fold"


def cross_validate(
    points: Points, model: str, *, folds: int | None = None, seed: int = 0, whole: Fitted | None = None
) -> Validation:
    """Refit without each variant (or each of `folds` seeded folds) and predict the ones left out.
    `whole`: the model fitted on every variant (its parameters start the refits)."""
    n = len(points.target)
    need, why = requirement(model, points.subsets)
    if n < need:
        raise AblateError(f"fit {model}: needs {need} variants ({why}), has {n}; add variants or fit a smaller model")
    whole = whole or fit(points, model, seed=seed)
    predicted = np.empty(n)
    for keep, group in _splits(n, folds, seed):
        fitted = fit(take(points, keep), model, seed=seed, start=whole)
        predicted[group] = fitted.predict(points.shares[group], points.tokens[group])
    return score(predicted, points.target)


def mean_error(points: Points, *, folds: int | None = None, seed: int = 0) -> float:
    """The cross-validated RMSE of predicting every left-out variant by the mean of the others, on the
    same folds as cross_validate: what a model must beat before its optimum means anything."""
    predicted = np.empty(len(points.target))
    for keep, group in _splits(len(points.target), folds, seed):
        predicted[group] = points.target[keep].mean()
    return float(np.sqrt(np.mean((predicted - points.target) ** 2)))


def _splits(n: int, folds: int | None, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(kept, left out) index pairs: each variant alone (folds None), or `folds` seeded folds."""
    order = np.arange(n) if folds is None else np.random.default_rng(seed).permutation(n)
    for group in np.array_split(order, n if folds is None else folds):
        yield np.setdiff1d(np.arange(n), group), group


def validate(
    points: Points, models: list[str], *, folds: int | None, seed: int
) -> dict[str, tuple[Fitted, Validation]]:
    """Each model fitted on every variant and cross-validated on the same folds. The ensemble is the mean
    of the two members with the lowest error that are not absurd; its cross-validated predictions are
    the mean of theirs (an ensemble refitted on a fold is the mean of its members refitted on it), so its
    error is a little optimistic: the members were chosen on the same folds."""
    out: dict[str, tuple[Fitted, Validation]] = {}
    for model in (m for m in models if m != "ensemble"):
        whole = fit(points, model, seed=seed)
        out[model] = (whole, cross_validate(points, model, folds=folds, seed=seed, whole=whole))
    ranked = sorted((m for m, (_, v) in out.items() if not absurd(v.rmse, points.target)), key=lambda m: out[m][1].rmse)
    if "ensemble" in models and len(ranked) >= 2:
        members = tuple(out[m][0] for m in ranked[:2])
        note = f"mean of {' and '.join(ranked[:2])}"
        shell = Fitted("ensemble", [], np.empty(0), members[0].scale, 0.0, note, members)
        residual = shell.predict(points.shares, points.tokens) - points.target
        whole = replace(shell, rmse=float(np.sqrt(np.mean(residual**2))))
        predicted = np.mean([out[m][1].predicted for m in ranked[:2]], axis=0)
        out["ensemble"] = (whole, score(predicted, points.target))
    return out


def bootstrap(
    points: Points,
    model: str,
    *,
    resamples: int,
    seed: int,
    distinct: int | None = None,
    whole: Fitted | None = None,
) -> list[Fitted]:
    """`model` refitted on variants drawn with replacement. Draws with fewer distinct variants than
    `distinct` (default: the model's parameters, at least 2) are drawn again; targets of one objective
    bootstrapped with the same seed, n and `distinct` refit on the same draws. `whole`: the model fitted
    on every variant (an ensemble's members come from it)."""
    rng = np.random.default_rng(seed)
    n = len(points.target)
    least = max(len(parameter_names(model, points.subsets)), 2) if distinct is None else distinct
    whole = whole or fit(points, model, seed=seed)
    draws = []
    for _ in range(20 * resamples):
        index = rng.integers(0, n, size=n)
        if len(np.unique(index)) < least:
            continue
        draws.append(fit(take(points, index), model, seed=seed, start=whole))
        if len(draws) == resamples:
            break
    return draws


def take(points: Points, index: np.ndarray) -> Points:
    """The points at `index` (variants, in that order; repeats allowed)."""
    names = list(np.asarray(points.names)[index])
    return Points(names, points.subsets, points.shares[index], points.tokens[index], points.target[index])
