"""`ablate suggest --at params=N,tokens=D`: the mixture a ladder's scale model predicts best at a target
scale, within the same caps, floors and trust region as `ablate suggest` (suggest.maximize).

    found = propose_at(points, request, at=(7e9, 1.4e11), baseline=shares, baseline_name="baseline")

AutoScale (Kang et al., arXiv 2407.20177) shows the best mixture moves with the budget: a subset whose
returns fall fast with scale is worth less at the target than at the ladder's rungs. Per objective
target, the scale model is the one chosen on held-out scales (ladder.choose; `--model` names one instead,
unchecked), fitted on every rung, and the objective Σ weight · target is maximized at (N, D). A target
scale the model may not extrapolate to (ladder.extrapolation) is refused, with its reason, before any
search. The interval pairs the targets' bootstrap refits (scale.bootstrap, one draw index each).
AutoScale's own extrapolation of the optimal per-domain tokens is not one of the candidates yet.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

import numpy as np

from ablate.analyze.ladder import choose, extrapolation
from ablate.analyze.scale import ScaleFit, ScalePoints, bootstrap, fit
from ablate.analyze.suggest import Bounds, Proposed, Suggestion, SuggestRequest, maximize, suggestion
from ablate.choices import SCALE_MODELS
from ablate.errors import AblateError


def _model(
    data: ScalePoints, target: str, model: str | None, at: tuple[float, float], seed: int
) -> tuple[ScaleFit, float]:
    """The target's scale model (asked for, or chosen on held-out scales) fitted on every rung, and its error
    on the largest held-out scale (nan when asked for and not checked); refused where it may not reach `at`."""
    if model is not None and model not in SCALE_MODELS:
        raise AblateError(f"--model {model}: at a target scale use a scale model, {', '.join(SCALE_MODELS)}")
    chosen, checks = choose(data, SCALE_MODELS if model is None else (model,), seed=seed)
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

    def objective(r: np.ndarray, models: dict[str, ScaleFit] | None = None) -> np.ndarray:
        rows = np.atleast_2d(r)
        fitted = models or {t: f for t, (f, _) in chosen.items()}
        return np.sum([w * fitted[t].predict(rows, *at) for t, w in weights.items()], axis=0)

    best = maximize(objective, baseline, bounds, seed=seed)
    draws = {
        t: bootstrap(data, chosen[t][0].model, resamples=request.resamples, seed=seed, whole=chosen[t][0])
        for t, data in terms.items()
    }
    return suggestion(
        request,
        Proposed(request.name, baseline_name, subsets, best, baseline, len(next(iter(terms.values())).target)),
        {t: (f.model, e) for t, (f, e) in chosen.items()},
        objective,
        [{t: d[i] for t, d in draws.items()} for i in range(min(len(d) for d in draws.values()))],
        ci,
    )
