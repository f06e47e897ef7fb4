"""`ablate suggest --at params=N,tokens=D`: the mixture a ladder's scale model predicts best at a target
scale, within the same caps, floors and trust region as `ablate suggest` (suggest.maximize).

    found = propose_at(points, request, at=(7e9, 1.4e11), baseline=shares, baseline_name="baseline")

AutoScale (Kang et al., arXiv 2407.20177) shows the best mixture moves with the budget: a subset whose
returns fall fast with scale is worth less at the target than at the ladder's rungs. Per objective
target, the scale model is the one chosen on held-out scales (ladder.choose; `--model` names one instead,
unchecked), fitted on every rung, and the objective Σ weight · target is maximized at (N, D). A target
scale the model may not extrapolate to (ladder.extrapolation) is refused, with its reason, before any
search. The interval pairs the targets' bootstrap refits (scale.bootstrap, one draw index each).

AutoScale's extrapolation of the optimal per-domain token counts (autoscale.py) is a second candidate
where optima exist at two budgets or more. A leave-one-budget-out check picks one: the largest held-out
scale of ladder.scale_folds (a model size, or a token count on a ladder of one size) is set aside, and its
budget of largest compute is the held-out budget. The scale model (the one chosen above) refitted on the
smaller scales' rows and maximized at that budget, and AutoScale extrapolated from the smaller scales'
optima, each predict its optimal mixture, scored by the objective it loses against that budget's own optimum
on that budget's own model. AutoScale is used at the target where it lost less by more than that budget's
noise (autoscale.Budget.noise); else the scale model, the one checked on held-out scales, as where the check
cannot run (saying why). The prediction and its interval are the scale model's at the mixture used.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np

from ablate.analyze.autoscale import (
    AUTOSCALE,
    SCALE,
    Budget,
    Candidates,
    budget_optima,
    check_note,
    compute,
    extrapolate,
)
from ablate.analyze.autoscale import choose as choose_candidate
from ablate.analyze.ladder import choose, extrapolation, scale_folds, unchecked
from ablate.analyze.scale import ScaleFit, ScalePoints, bootstrap, fit
from ablate.analyze.suggest import Bounds, Proposed, Suggestion, SuggestRequest, maximize, suggestion
from ablate.choices import MIXING_SCALE_MODELS
from ablate.errors import AblateError


def _model(
    data: ScalePoints, target: str, model: str | None, at: tuple[float, float], seed: int
) -> tuple[ScaleFit, float]:
    """The target's scale model (asked for, or chosen on held-out scales) fitted on every rung, and its error
    on the largest held-out scale (nan when asked for and not checked); refused where it may not reach `at`."""
    if model is not None and model not in MIXING_SCALE_MODELS:
        raise AblateError(
            f"--model {model}: a suggestion at a target scale needs a model of any mixture, "
            f"{', '.join(MIXING_SCALE_MODELS)}"
        )
    chosen, checks = choose(data, MIXING_SCALE_MODELS if model is None else (model,), seed=seed)
    name = model or chosen
    if name is None:
        why = "; ".join(f"{m}: {f[0].note}" for m, f in checks.items() if f and f[0].note) or "no held-out scale"
        raise AblateError(
            f"suggest --at: no scale model of {target} was checked on a held-out scale ({why}); "
            "pass --model joint to use one unchecked, or add a rung to the ladder"
        )
    try:
        fitted = fit(data, name, seed=seed)
    except AblateError as error:
        raise AblateError(f"suggest --at: {target}: {error}") from None
    reason = extrapolation(fitted, *at)
    if reason is not None:
        raise AblateError(f"suggest --at: {target} by {name}: {reason}")
    return fitted, checks[name][0].rmse if checks.get(name) else float("nan")


def propose_at(
    points: dict[str, ScalePoints],
    request: SuggestRequest,
    *,
    at: tuple[float, float],
    baseline: np.ndarray,
    baseline_name: str,
    ci: float = 0.95,
) -> Suggestion:
    """Maximize Σ weight · target at scale `at` (N, D) around the `baseline` shares (in the points' subset
    order) within the request's caps, floors and KL radius; predicted with an interval over paired
    bootstrap refits of whole runs, and against the baseline mixture at the same scale."""
    weights, seed = request.objective, request.seed
    missing = [t for t in weights if t not in points]
    if missing:
        raise AblateError(f"--objective {missing[0]}: no measured target of that name; have {sorted(points)}")
    terms = {t: points[t] for t in weights}
    subsets = next(iter(terms.values())).subsets
    chosen = {t: _model(data, t, request.model, at, seed) for t, data in terms.items()}
    bounds = Bounds(
        low=np.array([request.floors.get(s, 0.0) for s in subsets]),
        high=np.array([request.caps.get(s, 1.0) for s in subsets]),
        kl=request.radius,
    )

    fitted = {t: f for t, (f, _) in chosen.items()}

    def objective(r: np.ndarray, models: dict[str, ScaleFit] | None = None) -> np.ndarray:
        return _objective(models or fitted, weights, r, at)

    candidates = _candidates(
        terms, weights, fitted, maximize(objective, baseline, bounds, seed=seed), at, baseline, bounds, seed
    )
    best = np.array([candidates.mixtures[candidates.used].get(s, 0.0) for s in subsets])
    draws = {
        t: bootstrap(data, chosen[t][0].model, resamples=request.resamples, seed=seed, whole=chosen[t][0])
        for t, data in terms.items()
    }
    found = suggestion(
        request,
        Proposed(request.name, baseline_name, subsets, best, baseline, len(next(iter(terms.values())).target)),
        {t: (f.model, e) for t, (f, e) in chosen.items()},
        objective,
        [{t: d[i] for t, d in draws.items()} for i in range(min(len(d) for d in draws.values()))],
        ci,
    )
    return replace(found, candidates=asdict(candidates))


def _objective(
    models: dict[str, ScaleFit], weights: dict[str, float], r: np.ndarray, at: tuple[float, float]
) -> np.ndarray:
    """Σ weight · target at mixtures r (rows) at scale `at`, by `models`."""
    rows = np.atleast_2d(r)
    return np.sum([w * models[t].predict(rows, *at) for t, w in weights.items()], axis=0)


def _candidates(
    terms: dict[str, ScalePoints],
    weights: dict[str, float],
    fitted: dict[str, ScaleFit],
    scaled: np.ndarray,
    at: tuple[float, float],
    baseline: np.ndarray,
    bounds: Bounds,
    seed: int,
) -> Candidates:
    """The scale model's optimum at `at` (`scaled`), AutoScale's where it has one, and the check between them."""
    subsets = next(iter(terms.values())).subsets
    budgets = budget_optima(terms, weights, baseline, bounds, seed=seed)
    auto, absent = extrapolate(budgets, compute(*at), baseline, bounds, seed=seed)
    found = {SCALE: scaled} | ({AUTOSCALE: auto} if auto is not None else {})
    mixtures = {c: {s: float(p) for s, p in zip(subsets, r, strict=True) if p > 1e-6} for c, r in found.items()}
    if auto is None:
        return Candidates(SCALE, f"{absent}; used the scale model", mixtures, {}, np.nan, [], len(budgets), absent)
    gaps, held, note = _check(terms, weights, {t: f.model for t, f in fitted.items()}, budgets, baseline, bounds, seed)
    if held is None:
        return Candidates(SCALE, f"{note}; used the scale model", mixtures, {}, np.nan, [], len(budgets))
    used = choose_candidate(gaps, held)
    return Candidates(used, note, mixtures, gaps, held.noise, [held.size, held.tokens], len(budgets))


def _check(
    terms: dict[str, ScalePoints],
    weights: dict[str, float],
    models: dict[str, str],
    budgets: list[Budget],
    baseline: np.ndarray,
    bounds: Bounds,
    seed: int,
) -> tuple[dict[str, float], Budget | None, str]:
    """Leave one budget out (the module docstring): each candidate's objective gap at the held-out budget, that
    budget and the check's sentence; ({}, None, why not) where it cannot run."""
    first = next(iter(terms.values()))
    dimension, held = scale_folds(first)
    if not held:
        return {}, None, f"no leave-one-budget-out check: {unchecked(first)}"
    limit = held[0] * (1 - 1e-9)

    def side(size: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        return np.asarray(size if dimension == "size" else tokens)

    inside = [b for b in budgets if side(b.size, b.tokens) >= limit]
    if not inside:
        return (
            {},
            None,
            f"no leave-one-budget-out check: no rung at {dimension} {held[0]:.3g} has an optimum of its own",
        )
    budget = max(inside, key=lambda b: b.compute)
    below = [b for b in budgets if side(b.size, b.tokens) < limit]
    auto, why = extrapolate(below, budget.compute, baseline, bounds, seed=seed)
    if auto is None:
        return {}, None, f"no leave-one-budget-out check: below {dimension} {held[0]:.3g}, {why}"
    smaller = {}
    for t, data in terms.items():
        try:
            smaller[t] = fit(data.rows(np.flatnonzero(side(data.size, data.tokens) < limit)), models[t], seed=seed)
        except AblateError as error:
            return {}, None, f"no leave-one-budget-out check: {t}: {str(error).rstrip('.')}"
        if (reason := extrapolation(smaller[t], budget.size, budget.tokens)) is not None:
            why = f"{t} by {models[t]} below {dimension} {held[0]:.3g}: {reason.rstrip('.')}"
            return {}, None, f"no leave-one-budget-out check: {why}"
    scaled = maximize(
        lambda r: _objective(smaller, weights, r, (budget.size, budget.tokens)), baseline, bounds, seed=seed
    )
    best = budget.value(weights, budget.optimum)[0]
    gaps = {c: float(best - budget.value(weights, r)[0]) for c, r in ((SCALE, scaled), (AUTOSCALE, auto))}
    return gaps, budget, check_note(gaps, budget)
