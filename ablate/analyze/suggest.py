"""`ablate suggest`'s core: the mixture that maximizes a fitted objective, inside the constraints a
real phase has. Pure numpy and scipy.

Constraints on the shares r (one per subset):
- the simplex: r ≥ 0, Σ r = 1;
- per-subset caps: r_j ≤ cap_j (tokens available × max_passes over the phase's tokens, or a bound
  the user sets), and lower bounds r_j ≥ low_j;
- a trust region: KL(r ‖ baseline) ≤ κ. A fitted law is trustworthy near the mixtures it was fitted
  on, and a leave-one-out or swarm study samples around the baseline; subsets the baseline leaves
  out (share 0) stay out.

A smooth objective (the laws) is maximized by SLSQP from several starts (the baseline and points
drawn inside the region). Trees (gbm, or an ensemble holding it) are step functions whose gradient is
zero almost everywhere, so for them mixtures are drawn around the baseline (Dirichlet, several
concentrations), those outside the bounds dropped, and the mean of the best SEARCH_TOP taken, as
RegMix averages its top simulated mixtures; the region is convex, so that mean lies inside it. The
prediction's interval comes from the bootstrap refits: the same mixture predicted by each refit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ablate.analyze.laws import (
    ABSURD,
    MODELS,
    Fitted,
    Points,
    absurd,
    bootstrap,
    mean_error,
    requirement,
    scheme,
    take,
    validate,
)
from ablate.errors import AblateError
from ablate.plan.build import normalize
from ablate.report.answers import ANSWER_PREFIX
from ablate.report.heldout import LOSS_PREFIX

SEARCH_DRAWS = 4000  # mixtures drawn per concentration when the objective is a step function
SEARCH_CONCENTRATIONS = (30, 100, 300, 1000, 3000)  # Dirichlet α·baseline: far from it to close around it
SEARCH_TOP = 16


def kl_divergence(r: np.ndarray, baseline: np.ndarray) -> float:
    """KL(r ‖ baseline) in nats, over the subsets the baseline has (0 · log 0 = 0)."""
    return float(kl_rows(r[None, :], baseline)[0])


def kl_rows(rows: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """KL(row ‖ baseline) for each row of mixtures."""
    inside = rows > 0
    ratio = np.where(inside, rows, 1.0) / np.where(baseline > 0, baseline, 1e-300)
    return np.sum(np.where(inside, rows * np.log(ratio), 0.0), axis=-1)


@dataclass(frozen=True)
class Bounds:
    low: np.ndarray
    high: np.ndarray
    kl: float  # the trust region's radius, nats


def maximize(
    objective: Callable[[np.ndarray], np.ndarray],
    baseline: np.ndarray,
    bounds: Bounds,
    *,
    seed: int = 0,
    starts: int = 8,
    smooth: bool = True,
) -> np.ndarray:
    """The shares that maximize `objective` (mixtures as rows → one value each) within `bounds`
    (see the module docstring); `smooth`: whether it has gradients to follow."""
    from scipy.optimize import minimize

    live = baseline > 0
    high = np.where(live, bounds.high, 0.0)
    low = np.minimum(bounds.low, high)
    if low.sum() > 1 + 1e-9 or high.sum() < 1 - 1e-9:
        raise AblateError("suggest: the bounds leave no mixture (the lower bounds sum above 1 or the caps below it)")
    rng = np.random.default_rng(seed)

    def inside(rows: np.ndarray) -> np.ndarray:
        within = (rows <= high + 1e-6).all(-1) & (rows >= low - 1e-6).all(-1)
        return within & (kl_rows(rows, baseline) <= bounds.kl + 1e-6)

    if not smooth:
        pool = [baseline[None, :]]
        for concentration in SEARCH_CONCENTRATIONS:
            drawn = np.zeros((SEARCH_DRAWS, len(baseline)))
            drawn[:, live] = rng.dirichlet(concentration * baseline[live], size=SEARCH_DRAWS)
            pool.append(drawn)
        candidates = np.vstack(pool)
        candidates = candidates[inside(candidates)]
        if not len(candidates):
            raise AblateError("suggest: no drawn mixture lies inside the bounds; widen --kl or the caps")
        top = candidates[np.argsort(-objective(candidates))[:SEARCH_TOP]].mean(axis=0)
        return top / top.sum()

    def value(r: np.ndarray) -> float:
        return float(objective(np.clip(r, 0, 1)[None, :])[0])

    constraints = [
        {"type": "eq", "fun": lambda r: r.sum() - 1.0},
        {"type": "ineq", "fun": lambda r: bounds.kl - kl_divergence(np.clip(r, 0, 1), baseline)},
    ]
    best, best_value = None, -np.inf
    for attempt in range(starts):  # the baseline, then points drawn close around it
        first = np.zeros_like(baseline)
        first[live] = baseline[live] if attempt == 0 else rng.dirichlet(200 * baseline[live])
        found = minimize(
            lambda r: -value(r),
            np.clip(first, low, high),
            method="SLSQP",
            bounds=list(zip(low, high, strict=True)),
            constraints=constraints,
            options={"maxiter": 300, "ftol": 1e-10},
        )
        r = np.clip(found.x, 0, 1)
        r /= r.sum()
        if inside(r[None, :])[0] and value(r) > best_value:
            best, best_value = r, value(r)
    if best is None:
        raise AblateError("suggest: no start reached a mixture inside the bounds; widen --kl or the caps")
    return best


# ---- the objective, its models and the proposal ----------------------------------------------


@dataclass(frozen=True)
class SuggestRequest:
    """What `ablate suggest` asks for, built whole by the CLI and passed whole, on a study or --from runs."""

    objective: dict[str, float]  # target → signed weight (objective_weights), maximized
    model: str | None = None  # None: per target, the usable model with the lowest cross-validated error
    radius: float = 0.1  # the trust region: KL(suggested ‖ baseline) at most this, nats
    caps: dict[str, float] = field(default_factory=dict)  # subset → at most this share
    floors: dict[str, float] = field(default_factory=dict)  # subset → at least this share
    name: str = "suggested"  # the variant it is added as
    resamples: int = 200  # bootstrap refits for the interval
    seed: int = 0
    folds: int | None = None  # k-fold cross-validation (None: see laws.scheme)

    def __post_init__(self) -> None:
        """The flags that need no data, checked before any is read."""
        if not self.radius > 0:
            raise AblateError(f"--kl {self.radius}: use a positive radius in nats, e.g. 0.1")
        if self.resamples < 10:
            raise AblateError(f"--bootstrap {self.resamples}: use at least 10 resamples (200 for a final answer)")


@dataclass
class Suggestion:
    """The mixture `ablate suggest` proposes for an objective, and what its models predict for it."""

    name: str  # the variant it is added as
    ablation: str  # the ablation that measures it: `name`, or name@p25 in a phase study
    target: str  # the objective as read: `skills`, or `demo_math + 0.5·demo_code − 10·loss:prose`
    objective: dict[str, float]  # target → signed weight: the objective is Σ weight · target, maximized
    models: dict[str, str]  # target → the model fitted to it
    loo_rmse: dict[str, float]  # target → that model's cross-validated error (leave-one-out up to 100 variants)
    variants: int  # points it was fitted on (the variants every target was measured on)
    baseline: str  # the baseline ablation it is compared with
    mixture: dict[str, float]
    baseline_mixture: dict[str, float]
    kl: float  # KL(suggested ‖ baseline), nats
    radius: float  # the trust region it was held to
    predicted: dict[str, float]  # value, low, high: the objective at the suggested mixture
    baseline_predicted: float
    gain: dict[str, float]  # value, low, high: predicted objective − predicted baseline, per bootstrap refit
    candidates: dict[str, Any] | None = None  # suggest --at: autoscale.Candidates, the two and the one used


def objective_weights(spec: list[str]) -> dict[str, float]:
    """`--objective` values (`T` or `T=W`, repeated or comma-separated) → target → signed weight.
    Every objective is maximized, so a loss (loss:<domain> or answer-loss:<task>, lower is better) enters
    with its weight negated: `--objective loss:prose` asks for the lowest prose loss."""
    weights: dict[str, float] = {}
    for item in (part.strip() for given in spec for part in given.split(",")):
        target, has_weight, weight = item.partition("=")
        try:
            value = float(weight) if has_weight else 1.0
        except ValueError:
            value = float("nan")
        if not target or not value > 0 or target in weights:
            raise AblateError(
                f"--objective {item}: use TARGET or TARGET=WEIGHT (a positive weight), each target once, "
                "e.g. skills or demo_math=1,loss:prose=10"
            )
        weights[target] = -value if target.startswith((LOSS_PREFIX, ANSWER_PREFIX)) else value
    if not weights:
        raise AblateError("--objective: name a task, category or loss:<domain> to maximize")
    return weights


def objective_label(weights: dict[str, float]) -> str:
    """skills; −loss:prose; demo_math + 0.5·demo_code − 10·loss:prose."""
    text = ""
    for i, (target, weight) in enumerate(weights.items()):
        sign = ("−" if weight < 0 else "") if i == 0 else (" − " if weight < 0 else " + ")
        text += sign + ("" if abs(weight) == 1 else f"{abs(weight):g}·") + target
    return text


def check_targets(
    points: dict[str, Points], objective: dict[str, float], caps: dict[str, float], floors: dict[str, float]
) -> Points:
    """The objective's targets among the measured ones and --max/--min on known subsets; returns the
    first target's points."""
    unknown = [t for t in objective if t not in points]
    if unknown:
        raise AblateError(
            f"--objective {unknown[0]}: no measured task, category or loss:<domain> of that name; have {sorted(points)}"
        )
    data = points[next(iter(objective))]
    for flag, given in (("--max", caps), ("--min", floors)):
        for subset, share in given.items():
            if subset not in data.subsets or not 0 <= share <= 1:
                raise AblateError(f"{flag} {subset}={share}: SUBSET one of {data.subsets}, SHARE between 0 and 1")
    return data


def _aligned(points: dict[str, Points]) -> dict[str, Points]:
    """Each target's points on the variants every target was measured on, in one order."""
    shared = [n for n in next(iter(points.values())).names if all(n in p.names for p in points.values())]
    return {t: take(p, np.array([p.names.index(n) for n in shared], dtype=int)) for t, p in points.items()}


def choose_model(
    points: Points, model: str | None, target: str, *, folds: int | None, seed: int
) -> tuple[Fitted, float]:
    """`model` (checked against the variants), else the usable one with the lowest cross-validated
    error, fitted on every variant; and that error."""
    n = len(points.target)
    allowed = [m for m in MODELS if n >= requirement(m, points.subsets)[0]]
    if model is not None and model not in allowed:
        need, why = requirement(model, points.subsets) if model in MODELS else (0, "an unknown model")
        raise AblateError(f"--model {model}: needs {need} done variants ({why}); {target} has {n}")
    if not allowed:
        raise AblateError(f"suggest: {n} variants measured {target}, too few for any model; add variants")
    validated = validate(points, allowed, folds=scheme(n, folds)[0], seed=seed)
    usable = {m: v.rmse for m, (_, v) in validated.items() if not absurd(v.rmse, points.target)}
    if model is not None and model not in usable:
        raise AblateError(f"--model {model}: its cross-validated error on {target} is absurd or it has no members")
    if not usable:
        raise AblateError(f"suggest: every model's cross-validated error on {target} is beyond {ABSURD:g}× its spread")
    chosen = model or min(usable, key=usable.__getitem__)
    baseline_error = mean_error(points, folds=scheme(n, folds)[0], seed=seed)
    if model is None and not usable[chosen] < baseline_error:  # a flat fit's optimum is anywhere: no advice
        raise AblateError(
            f"suggest: no model predicts {target} better than its mean over the {n} variants (cross-validated "
            f"RMSE {usable[chosen]:.3g} for {chosen}, {baseline_error:.3g} for the mean), so no mixture can be "
            "chosen from them; measure more mixtures (ablate plan --design swarm --n ...) or pass --model"
        )
    return validated[chosen][0], usable[chosen]


def propose(
    points: dict[str, Points],
    request: SuggestRequest,
    *,
    baseline: str,
    ablation: str,
    ci: float = 0.95,
    baseline_mixture: dict[str, float] | None = None,
) -> Suggestion:
    """Fit each target of the objective Σ weight · target (with the request's model, default: per target
    the usable one with the lowest cross-validated error), maximize it within the caps, floors and KL
    radius around the baseline (the variant `baseline`, or `baseline_mixture` where no variant is it),
    and predict it with an interval from joint bootstrap refits (every target refitted on the same
    draws of variants). `ablation`: the name that measures it (the request's name, at its phase)."""
    weights, caps, floors, radius, seed = request.objective, request.caps, request.floors, request.radius, request.seed
    terms = _aligned({t: points[t] for t in weights})
    first = next(iter(terms.values()))
    subsets = first.subsets
    if baseline_mixture is not None:
        base = np.array([baseline_mixture.get(s, 0.0) for s in subsets])
        phase_tokens = float(first.tokens.sum(axis=1).mean())
    elif baseline in first.names:
        base = first.shares[first.names.index(baseline)]
        phase_tokens = float(first.tokens[first.names.index(baseline)].sum())
    else:
        raise AblateError(f"suggest: the baseline `{baseline}` has no measured {', '.join(weights)}; run it first")
    chosen = {t: choose_model(data, request.model, t, folds=request.folds, seed=seed) for t, data in terms.items()}
    bounds = Bounds(
        low=np.array([floors.get(s, 0.0) for s in subsets]),
        high=np.array([caps.get(s, 1.0) for s in subsets]),
        kl=radius,
    )

    def objective(r: np.ndarray, models: dict[str, Fitted] | None = None) -> np.ndarray:
        """The objective at mixtures r (rows), with the chosen fits or `models` (one bootstrap draw)."""
        rows = np.atleast_2d(r)
        fitted = models or {t: f for t, (f, _) in chosen.items()}
        return np.sum([w * fitted[t].predict(rows, rows * phase_tokens) for t, w in weights.items()], axis=0)

    smooth = all(f.smooth for f, _ in chosen.values())
    best = maximize(objective, base, bounds, seed=seed, smooth=smooth)
    distinct = max(max(len(f.names), 2) for f, _ in chosen.values())
    draws = {
        t: bootstrap(
            data, chosen[t][0].model, resamples=request.resamples, seed=seed, distinct=distinct, whole=chosen[t][0]
        )
        for t, data in terms.items()
    }
    return suggestion(
        request,
        Proposed(ablation, baseline, subsets, best, base, len(first.target)),
        {t: (f.model, e) for t, (f, e) in chosen.items()},
        objective,
        [{t: d[i] for t, d in draws.items()} for i in range(min(len(d) for d in draws.values()))],
        ci,
    )


@dataclass(frozen=True)
class Proposed:
    """Where a search ended: what names it, the mixtures compared, and the points fitted."""

    ablation: str
    baseline: str
    subsets: list[str]
    best: np.ndarray
    base: np.ndarray
    variants: int


def suggestion(
    request: SuggestRequest,
    found: Proposed,
    models: dict[str, tuple[str, float]],
    objective: Callable[..., np.ndarray],
    refits: list[dict[str, Any]],
    ci: float,
) -> Suggestion:
    """The Suggestion for a search's result: the objective at the best and the baseline mixtures, each with
    the percentile interval over `refits` (one model per target, all from the same bootstrap draw).
    `models`: target → (model, its out-of-sample error); `objective(r, refit=None)`."""
    at_best = np.array([objective(found.best, p)[0] for p in refits])
    at_base = np.array([objective(found.base, p)[0] for p in refits])
    edges = [(1 - ci) / 2, (1 + ci) / 2]

    def summary(value: float, spread: np.ndarray) -> dict[str, float]:
        low, high = np.quantile(spread, edges) if len(spread) else (np.nan, np.nan)
        return {"value": value, "low": float(low), "high": float(high)}

    predicted, predicted_base = float(objective(found.best)[0]), float(objective(found.base)[0])
    pairs = list(zip(found.subsets, found.best, found.base, strict=True))
    return Suggestion(
        name=request.name,
        ablation=found.ablation,
        target=objective_label(request.objective),
        objective=request.objective,
        models={t: m for t, (m, _) in models.items()},
        loo_rmse={t: e for t, (_, e) in models.items()},
        variants=found.variants,
        baseline=found.baseline,
        mixture=normalize({s: float(p) for s, p, _ in pairs if p > 1e-6}),
        baseline_mixture={s: float(b) for s, _, b in pairs if b > 0},
        kl=kl_divergence(found.best, found.base),
        radius=request.radius,
        predicted=summary(predicted, at_best),
        baseline_predicted=predicted_base,
        gain=summary(predicted - predicted_base, at_best - at_base),
    )
