"""What a ladder of runs can say about a larger run: whether a scale model may extrapolate to a target
(N, D) and why not, and how far off its predictions of held-out larger scales have been.

    from ablate.analyze.ladder import choose, extrapolation
    from ablate.analyze.scale import fit
    best, checks = choose(points)                      # the model with the lowest held-out-scale RMSE
    fitted = fit(points, best)
    reason = extrapolation(fitted, 1e9, 2e10)          # None, or a sentence to print instead of a number

Refusals (each a sentence, not an exception, for a caller that prints it beside the other targets):
- fewer than three model sizes (token counts) and a target N (D) that is not one of them. With one there is
  no size law at all; with two, E absorbs any α (an exponent is not identified by two points once the
  offset is free). Measured on synthetic joint-law ladders fitted on their two smallest sizes: α's 95%
  interval ran from near its lower bound to its upper bound, and the third size came out 2% off.
- an exponent at its bound (scale.EXPONENT): the ladder does not pin it down;
- a target more than FAR times beyond the largest (or below the smallest) fitted N or D: the ladder papers
  check their extrapolations against measured runs up to about an order of magnitude (Bhagia et al.
  predict 7B and 13B models from a ladder up to 1.3B; Ye et al. 1B from models up to 410M);
- a bootstrap interval wider than WIDE of the prediction: mixtures at one scale differ by a few percent,
  so an interval wider than 5% cannot order them (where α is not identified the intervals were ~10%).

Held-out-scale cross-validation fits on the smaller scales and predicts the largest, then the second
largest from those below it, holding out whole model sizes (or, on a ladder of one size, token counts).
The mixture models of laws.py take part as scale-blind baselines (`Blind`): fitted on every row alike,
they are scored on the held-out scales like the rest, so a scale model is chosen only where modelling
N and D beat ignoring them; they never predict a scale they were not fitted on.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ablate.analyze.laws import Fitted, requirement, score
from ablate.analyze.laws import fit as fit_mixture
from ablate.analyze.scale import SCALE_MODELS, Predicts, ScaleFit, ScalePoints, bound_note, fit
from ablate.choices import MODELS
from ablate.errors import AblateError

FAR = 10.0  # a target N or D at most this many times beyond the fitted range
WIDE = 0.05  # an interval (high − low) at most this share of the prediction
IDENTIFIED = 3  # distinct values of N (of D) that pin down α (β) once E is free


@dataclass(frozen=True)
class Blind:
    """A mixture model (laws.py) fitted on a ladder's rows alike, blind to N and D: a baseline that a scale
    model has to beat on the held-out scales, never an extrapolation."""

    fitted: Fitted
    scales: np.ndarray  # the (N, D) pairs it was fitted on

    @property
    def model(self) -> str:
        return self.fitted.model

    def predict(self, shares: np.ndarray, size: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        r = np.atleast_2d(shares)
        return self.fitted.predict(r, r * np.broadcast_to(tokens, len(r))[:, None])


def fit_any(points: ScalePoints, model: str, *, seed: int = 0) -> ScaleFit | Blind:
    """A scale model (scale.fit) or a mixture model as a Blind baseline; AblateError where the rows are too few."""
    if model in SCALE_MODELS:
        return fit(points, model, seed=seed)
    need, why = requirement(model, points.subsets)
    if len(points.target) < need:
        raise AblateError(f"fit {model}: needs {need} rows ({why}), has {len(points.target)}")
    fitted = fit_mixture(points.mixture_points(), model, seed=seed)
    return Blind(fitted, np.unique(np.column_stack([points.size, points.tokens]), axis=0))


def extrapolation(
    fitted: ScaleFit | Blind, size: float, tokens: float, interval: tuple[float, float, float] | None = None
) -> str | None:
    """None where `fitted` may predict at (`size`, `tokens`), else the reason it may not; `interval`:
    (predicted, low, high) from scale.bootstrap and scale.band, checked against WIDE."""
    if isinstance(fitted, Blind):
        if np.isclose(fitted.scales, [size, tokens], rtol=1e-6).all(axis=1).any():
            return None
        return f"{fitted.model} is a mixture model, blind to N and D: it predicts only the scales it was fitted on"
    for value, seen, exponent, coordinate, word, letter in (
        (size, fitted.sizes, "alpha", "model size", "size", "N"),
        (tokens, fitted.token_counts, "beta", "token count", "tokens", "D"),
    ):
        if np.isclose(seen, value, rtol=1e-6).any():
            continue
        listed = ", ".join(f"{v:.2g}" for v in seen)
        if len(seen) == 1:
            return f"one {coordinate} only ({letter} = {listed}): cannot extrapolate in {word}"
        if len(seen) < IDENTIFIED:
            return (
                f"two {coordinate}s only ({letter} = {listed}): any {exponent} fits two points once the offset is "
                f"free; a third {coordinate} is needed to predict {letter} = {value:.2g}"
            )
        if bound := bound_note(exponent, fitted.exponent(exponent)):
            return bound
        ratio = max(value / seen.max(), seen.min() / value)
        if ratio > FAR:
            side, edge = ("above the largest", seen.max()) if value > seen.max() else ("below the smallest", seen.min())
            return (
                f"{letter} = {value:.2g} is {ratio:.0f}× {side} fitted {coordinate} ({edge:.2g}): beyond "
                f"{FAR:g}×, further than ladders have been checked against measured runs"
            )
    if interval is not None:
        predicted, low, high = interval
        if high - low > WIDE * abs(predicted):
            return (
                f"its interval [{low:.4g}, {high:.4g}] spans {(high - low) / abs(predicted):.0%} of the prediction "
                f"{predicted:.4g} (over {WIDE:.0%}): the ladder does not pin it down"
            )
    return None


@dataclass(frozen=True)
class HeldOut:
    """One held-out scale: a model fitted on the smaller scales, scored on the rows of this one."""

    dimension: str  # size (N) or tokens (D): the coordinate held out
    value: float  # the held-out N or D
    rows: int
    rmse: float  # nan where the model refused (note says why)
    relative: float  # mean |predicted − measured| / |measured| over the nonzero measured values
    rank_correlation: float  # Spearman's ρ across mixtures at the held-out runs' largest (N, D)
    predicted: np.ndarray  # the held-out rows', in order
    measured: np.ndarray
    note: str = ""


def scale_folds(points: ScalePoints) -> tuple[str, list[float]]:
    """The coordinate held out (size, or tokens on a ladder of one size) and the values held out: the largest,
    then the second largest, each only where IDENTIFIED values lie below it (fewer cannot extrapolate, so a
    fold there would check nothing but the refusal; `unchecked` says so instead)."""
    dimension = "size" if len(np.unique(points.size)) >= 2 else "tokens"
    values = np.unique(points.size if dimension == "size" else points.tokens)[::-1]
    return dimension, [float(v) for v in values[:2] if (values < v).sum() >= IDENTIFIED]


def unchecked(points: ScalePoints) -> str:
    """Why a ladder has no held-out scale to check its models on (scale_folds found none)."""
    dimension = "size" if len(np.unique(points.size)) >= 2 else "tokens"
    count = len(np.unique(points.size if dimension == "size" else points.tokens))
    word = "model sizes" if dimension == "size" else "token counts"
    return (
        f"{count} {word}: holding out the largest leaves {count - 1}, and extrapolating needs {IDENTIFIED}; "
        f"a ladder of {IDENTIFIED + 1} {word} or more is checked on its largest, so no model is chosen"
    )


Fitter = Callable[[np.ndarray], tuple[Predicts, ScaleFit | None]]  # rows → (predictor, the fit that extrapolates)


def held_out_scales(points: ScalePoints, model: str, *, seed: int = 0, fitter: Fitter | None = None) -> list[HeldOut]:
    """`model` fitted on the scales below each held-out one (scale_folds) and scored on it; a fold the model
    cannot fit, or a scale model may not extrapolate to, has no numbers and says why (a Blind baseline is
    scored wherever it fits: its error is what ignoring scale costs). `fitter`: how to fit on the rows at
    an index (default: fit_any of `model`), for a prediction made through another target (linked.py)."""

    def fit_rows(index: np.ndarray) -> tuple[Predicts, ScaleFit | None]:
        found = fit_any(points.rows(index), model, seed=seed)
        return found, None if isinstance(found, Blind) else found

    fitter = fitter or fit_rows
    dimension, held = scale_folds(points)
    coordinate = points.size if dimension == "size" else points.tokens
    out = []
    for value in held:
        test = np.flatnonzero(np.isclose(coordinate, value, rtol=1e-9))
        train = np.flatnonzero(coordinate < value * (1 - 1e-9))
        target = points.target[test]
        nothing = HeldOut(dimension, value, len(test), np.nan, np.nan, np.nan, np.full(len(test), np.nan), target)
        try:
            fitted, extrapolating = fitter(train)
        except AblateError as error:
            out.append(replace(nothing, note=str(error)))
            continue
        scales = np.unique(np.column_stack([points.size[test], points.tokens[test]]), axis=0)
        reason = None
        if extrapolating is not None:
            reason = next((r for n, d in scales if (r := extrapolation(extrapolating, n, d)) is not None), None)
        if reason is not None:
            out.append(replace(nothing, note=reason))
            continue
        predicted = fitted.predict(points.shares[test], points.size[test], points.tokens[test])
        largest = points.size[test] == points.size[test].max()
        last = largest & (points.tokens[test] == points.tokens[test][largest].max())
        measured = target != 0  # a task at 0% has no relative error; its RMSE still counts it
        relative = (
            float(np.mean(np.abs(predicted - target)[measured] / np.abs(target[measured])))
            if measured.any()
            else float("nan")
        )
        ranked = score(predicted[last], target[last]).rank_correlation
        rmse = score(predicted, target).rmse
        out.append(HeldOut(dimension, value, len(test), rmse, relative, ranked, predicted, target))
    return out


def choose(
    points: ScalePoints, models: tuple[str, ...] = SCALE_MODELS, *, seed: int = 0
) -> tuple[str | None, dict[str, list[HeldOut]]]:
    """The model with the lowest RMSE on the largest held-out scale (None where every model refused
    there), and each model's held-out scales. It sees only `points`: a caller's test rows stay out."""
    checks = {model: held_out_scales(points, model, seed=seed) for model in models}
    return pick(checks), checks


def pick(checks: dict[str, list[HeldOut]]) -> str | None:
    """The model with the lowest RMSE on the largest held-out scale; None where no model that extrapolates
    (a scale model, not a Blind baseline) was scored there: a baseline alone has beaten nothing."""
    scored = {model: folds[0].rmse for model, folds in checks.items() if folds and np.isfinite(folds[0].rmse)}
    if not any(model not in MODELS for model in scored):
        return None
    return min(scored, key=lambda m: scored[m])
