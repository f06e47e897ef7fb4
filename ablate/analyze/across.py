"""`ablate fit` across scale: what a ladder of runs (mixtures at several model sizes N or token counts D)
predicts for runs it did not fit, the held-out test runs and a target scale (`--at`), per target.

    from ablate.analyze.across import fit_across, spans
    if spans(points):                                  # target → ScalePoints; two N or two D at least
        found = fit_across(points, models=None, resamples=200, seed=0, test=test, at=(7e9, 1.4e11))

Every model is scored on held-out scales (ladder.held_out_scales: fitted on the smaller scales, predicting
the largest); `chosen` is the one with the lowest error there, picked before any test row or target is
looked at. The scale models (scale.py) come with their exponents' intervals and predict; the mixture
models of laws.py take part as scale-blind baselines (ladder.Blind), scored on the held-out scales only:
their error there is what ignoring N and D costs, and one of them chosen means no scale model beat that.
Each prediction carries a 95% interval from refits on bootstrap draws of whole runs, or, where
ladder.extrapolation refuses, no number and the reason.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ablate.analyze.ladder import Blind, HeldOut, choose, extrapolation, fit_any, pick, scale_folds, unchecked
from ablate.analyze.linked import PREFIX, Chance, linked
from ablate.analyze.linked import draws as linked_draws
from ablate.analyze.scale import SCALE_MODELS, ScaleFit, ScalePoints, bootstrap, exponent_band
from ablate.analyze.separate import OTHER_MIXTURE
from ablate.choices import MODELS
from ablate.errors import AblateError
from ablate.report.answers import ANSWER_PREFIX

BLIND = tuple(m for m in MODELS if m != "ensemble")  # an ensemble's members are chosen by one scale's folds
PREDICTION_COLUMNS = (
    "run", "target", "model", "chosen", "params", "tokens", "observed", "predicted", "low", "high", "note",
)  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """One row of predictions.csv: a run (held-out, or a mixture at the `--at` scale) predicted by a model."""

    run: str
    target: str
    model: str
    chosen: bool
    params: float | None  # None: the runs give no model size (a --from table without params)
    tokens: float | None
    observed: float | None  # measured, for a held-out test run
    predicted: float | None  # None where the model may not predict there (note says why)
    low: float | None
    high: float | None
    note: str = ""


@dataclass
class ScaleModelFit:
    """One model on one target: its exponents (scale models) and its errors on the held-out scales."""

    model: str
    exponents: dict[str, dict[str, float]]  # alpha, beta → value, low, high (95% bootstrap)
    held_out: list[HeldOut]
    note: str = ""


@dataclass
class ScaleTarget:
    target: str
    rows: int
    sizes: list[float]
    token_counts: list[float]
    fits: list[ScaleModelFit]
    chosen: str | None  # lowest RMSE on the largest held-out scale; None where no model was checked there
    left_out: list[str] = field(default_factory=list)  # "nested: needs every mixture at 3 sizes ..."
    unchecked: str = ""  # why no held-out scale could be checked (ladder.unchecked), so nothing is chosen
    predictions: list[Prediction] = field(default_factory=list)
    deltas: list[Prediction] = field(default_factory=list)  # at `at`: each mixture minus the baseline, paired


def spans(points: dict[str, ScalePoints]) -> bool:
    """Whether any target's rows span two model sizes or two token counts: a ladder to fit across scale."""
    return any(len(np.unique(p.size)) > 1 or len(np.unique(p.tokens)) > 1 for p in points.values())


def fit_across(
    points: dict[str, ScalePoints],
    *,
    models: list[str] | None,
    resamples: int,
    seed: int,
    test: dict[str, ScalePoints] | None = None,
    at: tuple[float, float] | None = None,
    mix: tuple[list[str], np.ndarray] | None = None,
    chances: dict[str, Chance] | None = None,
    ci: float = 0.95,
    baseline: str | None = None,
) -> list[ScaleTarget]:
    """Every model on every target: held-out-scale checks, the chosen model, and predictions of the test
    runs (at their own scale) and, with `at` (N, D), of every training mixture or the `mix` ones (names,
    shares in the targets' subset order). A task in `chances` whose `answer-loss:<task>` is a target too
    also gets the linked models (linked.py). Asked-for `models` that cannot fit a target are refused in
    one line; by default the others are named in `left_out`. With `at` and a `baseline` among the
    mixtures, `deltas` holds each other mixture's predicted Δ against it, its interval from the same
    refits predicting both (a refit that errs alike on both errs little on their Δ)."""
    asked = models or [*SCALE_MODELS, *BLIND]
    unknown = [m for m in asked if m not in (*SCALE_MODELS, *BLIND)]
    if unknown:
        raise AblateError(f"--model {unknown[0]}: across scales use {', '.join((*SCALE_MODELS, *BLIND))}")
    out = []
    for target, data in points.items():
        whole: dict[str, ScaleFit | Blind] = {}
        result = ScaleTarget(target, len(data.target), _values(data.size), _values(data.tokens), [], None)
        for model in asked:
            try:
                whole[model] = fit_any(data, model, seed=seed)
            except AblateError as error:
                if models:
                    raise AblateError(f"--model {model}: {target}: {error}") from None
                result.left_out.append(f"{model}: {str(error).removeprefix(f'fit {model}: ')}")
        result.chosen, checks = choose(data, tuple(whole), seed=seed)
        if not scale_folds(data)[1]:
            result.unchecked = unchecked(data)
        draws = {
            model: bootstrap(data, model, resamples=resamples, seed=seed, whole=fitted)
            for model, fitted in whole.items()
            if isinstance(fitted, ScaleFit)
        }
        for model, fitted in whole.items():
            exponents: dict[str, dict[str, float]] = {}
            note = fitted.fitted.note if isinstance(fitted, Blind) else fitted.note
            for name in ("alpha", "beta"):
                if isinstance(fitted, ScaleFit) and name in fitted.names and draws[model]:
                    low, high = exponent_band(draws[model], name, ci)
                    exponents[name] = {"value": fitted.exponent(name), "low": low, "high": high}
            result.fits.append(ScaleModelFit(model, exponents, checks[model], note))
        wanted = _wanted(data, (test or {}).get(target), at, mix)
        targeted = _wanted(data, None, at, mix)
        for model, refits in draws.items():
            fitted = whole[model]
            assert isinstance(fitted, ScaleFit)
            drawn = _scale_draws(fitted, refits, wanted, ci)
            result.predictions += _rows(target, model, wanted, *_quantiles(*drawn, ci))
            drawn = _scale_draws(fitted, refits, targeted, ci, wide=False)
            result.deltas += _deltas(target, model, targeted, baseline, *drawn, ci)
        loss = points.get(ANSWER_PREFIX + target)
        if chances and target in chances and loss is not None:
            _link(
                result,
                data,
                loss,
                chances[target],
                [m for m in whole if m in SCALE_MODELS],
                (wanted, targeted, baseline),
                resamples,
                seed,
                ci,
            )
            result.chosen = pick({f.model: f.held_out for f in result.fits})
        result.predictions = [replace(p, chosen=p.model == result.chosen) for p in result.predictions]
        result.deltas = [replace(p, chosen=p.model == result.chosen) for p in result.deltas]
        out.append(result)
    return out


def _link(
    result: ScaleTarget,
    task: ScalePoints,
    loss: ScalePoints,
    chance: Chance,
    models: list[str],
    rows: tuple[_Wanted, _Wanted, str | None],
    resamples: int,
    seed: int,
    ci: float,
) -> None:
    """The task's linked models (each scale model of its loss, then the link) added to `result`: their
    held-out scales, their predictions of the wanted rows and Δ at the target (`rows`: the wanted, the
    target's and the baseline's name), or why not."""
    wanted, targeted, baseline = rows
    for model in models:
        try:
            found = linked(task, loss, chance, model=model, seed=seed, resamples=resamples)
        except AblateError as error:
            result.left_out.append(f"{PREFIX}{model}: {error}")
            continue
        result.fits.append(ScaleModelFit(found.model, {}, found.held_out, "through answer-loss, then the link"))
        if wanted.names:
            drawn = linked_draws(found, wanted.shares, wanted.size, wanted.tokens, ci)
            result.predictions += _rows(result.target, found.model, wanted, *_quantiles(*drawn, ci))
            drawn = linked_draws(found, targeted.shares, targeted.size, targeted.tokens, ci, wide=False)
            result.deltas += _deltas(result.target, found.model, targeted, baseline, *drawn, ci)


def _values(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.unique(values)]


@dataclass(frozen=True)
class _Wanted:
    """The rows to predict: names, shares, N, D and the measured value where there is one."""

    names: list[str]
    shares: np.ndarray
    size: np.ndarray
    tokens: np.ndarray
    observed: list[float | None]


def _wanted(
    data: ScalePoints,
    test: ScalePoints | None,
    at: tuple[float, float] | None,
    mix: tuple[list[str], np.ndarray] | None,
) -> _Wanted:
    """The test runs at their own scale, then the `mix` mixtures (default: each training mixture, named by
    its first run) at `at`."""
    parts = []
    if test is not None:
        parts.append(_Wanted(test.names, test.shares, test.size, test.tokens, [float(v) for v in test.target]))
    if at is not None:
        if mix is None:
            _, first = np.unique(np.round(data.shares, 9), axis=0, return_index=True)
            first = np.sort(first)
            mix = ([data.names[i] for i in first], data.shares[first])
        names, shares = mix
        k = len(names)
        parts.append(_Wanted(names, shares, np.full(k, at[0]), np.full(k, at[1]), [None] * k))
    if not parts:
        return _Wanted([], np.empty((0, len(data.subsets))), np.empty(0), np.empty(0), [])
    return _Wanted(
        [n for p in parts for n in p.names],
        np.vstack([p.shares for p in parts]),
        np.concatenate([p.size for p in parts]),
        np.concatenate([p.tokens for p in parts]),
        [o for p in parts for o in p.observed],
    )


def _scale_draws(
    fitted: ScaleFit, refits: list[ScaleFit], wanted: _Wanted, ci: float, wide: bool = True
) -> tuple[np.ndarray, np.ndarray | None, list[str | None]]:
    """Each wanted row predicted by `fitted`, by every refit (axis 0; None without refits), and the reason
    the model may not predict there (ladder.extrapolation; with `wide`, on its interval too), or None."""
    predicted = fitted.predict(wanted.shares, wanted.size, wanted.tokens)
    if not refits:
        return predicted, None, ["no bootstrap refit succeeded: no interval"] * len(predicted)
    drawn = np.array([d.predict(wanted.shares, wanted.size, wanted.tokens) for d in refits])
    low, high = np.quantile(drawn, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    reasons = [
        OTHER_MIXTURE
        if not np.isfinite(p)
        else extrapolation(fitted, float(n), float(d), (float(p), float(lo), float(hi)) if wide else None)
        for n, d, p, lo, hi in zip(wanted.size, wanted.tokens, predicted, low, high, strict=True)
    ]
    return predicted, drawn, reasons


def _quantiles(
    predicted: np.ndarray, drawn: np.ndarray | None, reasons: list[str | None], ci: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
    """(predicted, low, high, reasons): the draws' percentile interval (the point itself without draws)."""
    if drawn is None or not len(drawn):
        return predicted, predicted, predicted, reasons
    low, high = np.quantile(drawn, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return predicted, low, high, reasons


def _deltas(
    target: str,
    model: str,
    wanted: _Wanted,
    baseline: str | None,
    predicted: np.ndarray,
    drawn: np.ndarray | None,
    reasons: list[str | None],
    ci: float,
) -> list[Prediction]:
    """Each wanted row's Δ against the `baseline` row, its interval over the same draws for both; no number
    where the model may not extrapolate to either row. A level's interval over ladder.WIDE refuses the
    level, not its Δ: refits that miss the level alike still pin their Δ, and its interval says how well.
    Empty without a baseline among the rows or without draws."""
    if baseline not in wanted.names or drawn is None or not len(drawn):
        return []
    b = wanted.names.index(baseline)
    others = [i for i in range(len(wanted.names)) if i != b]
    delta = predicted[others] - predicted[b]
    low, high = np.quantile(drawn[:, others] - drawn[:, [b]], [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    index = np.array(others, dtype=int)
    rows = _Wanted([wanted.names[i] for i in others], wanted.shares[index], wanted.size[index], wanted.tokens[index],
                   [None] * len(others))  # fmt: skip
    return _rows(target, model, rows, delta, low, high, [reasons[i] or reasons[b] for i in others])


def _rows(
    target: str,
    model: str,
    wanted: _Wanted,
    predicted: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    reasons: list[str | None],
) -> list[Prediction]:
    """predictions.csv rows (chosen set by the caller), with no number where there is a reason."""
    out = []
    for i, name in enumerate(wanted.names):
        reason = reasons[i]
        value, lo, hi = (None, None, None) if reason else (float(predicted[i]), float(low[i]), float(high[i]))
        n, d = float(wanted.size[i]), float(wanted.tokens[i])
        out.append(Prediction(name, target, model, False, n, d, wanted.observed[i], value, lo, hi, reason or ""))
    return out
