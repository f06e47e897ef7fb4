"""`ablate fit`: mixing-law models fitted over a study's done variants, per target.

    from ablate.analyze.fit import study_points, fit_targets
    points = study_points(load_study("demo"), load_plan("demo"))    # target → Points
    table = fit_targets(points, models=None, resamples=200, seed=0)

The edge between the study (plan mixtures, measured scores) and the pure laws in laws.py. A variant's
point is its ablation's mixture and the mean of its done seeds' scores (percent for tasks, the
gauntlet score for categories). A phase study is fitted within one phase (the longest by default):
the shares-only models cannot tell a phase's length from its mixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ablate.analyze.laws import MODELS, Points, bootstrap, cross_validate, fit, parameter_names, take
from ablate.errors import AblateError
from ablate.plan.build import Plan, normalize, replan, share_caps, split_phase, with_phase
from ablate.recipe import Recipe
from ablate.report.heldout import LOSS_PREFIX, loss_table
from ablate.report.load import DONE, START, StudyResults


def load_points(study: str | None, phase: str | None) -> tuple[str, Plan, Recipe, dict[str, Points]]:
    """The study's name, plan, recipe and its targets' Points (see study_points): every task and
    category in percent, and with eval.heldout every domain's loss as `loss:<domain>`, in nats per token."""
    from ablate.plan.study import load_study_plan
    from ablate.report.build import score_table
    from ablate.report.load import load_study
    from ablate.store import current_study

    name = current_study(study)
    plan, recipe = load_study_plan(name)
    results = load_study(name)
    table = score_table(results)
    losses = pd.DataFrame.from_dict(loss_table(results.heldout, list(table.index)), orient="index")
    return name, plan, recipe, study_points(results, plan, table.join(losses), phase=phase)


@dataclass
class ModelFit:
    """One model on one target: parameters with bootstrap intervals and its out-of-sample error."""

    model: str
    parameters: dict[str, dict[str, float]]  # name → value, low, high
    rmse: float  # in-sample
    loo_rmse: float  # leave-one-variant-out
    rank_correlation: float  # Spearman's ρ of the leave-one-out predictions with the measured values
    predicted: dict[str, float]  # variant → its leave-one-out prediction


@dataclass
class TargetFit:
    target: str
    variants: list[str]
    measured: dict[str, float]
    fits: list[ModelFit]
    left_out: list[str] = field(default_factory=list)  # "law: 6 parameters, 5 variants"


def study_points(results: StudyResults, plan: Plan, scores: Any, *, phase: str | None = None) -> dict[str, Points]:
    """target (task, category or loss:<domain>) → Points over the study's done ablations (baseline and control
    included) at `phase` (default: the longest; None for a study without phases). `scores` is the
    report's score table (ablate.report.build.score_table), with loss columns joined where measured."""
    labels = sorted({label for v in plan.variants if (label := split_phase(v.ablation)[1])}, key=lambda x: float(x[1:]))
    if phase is not None and phase not in labels:
        raise AblateError(f"--phase {phase}: the study's phases are {labels or 'none'}")
    chosen = phase or (labels[-1] if labels else None)
    done = set(results.variants[results.variants.state == DONE].variant) - {START}
    by_ablation: dict[str, list[str]] = {}
    mixture: dict[str, dict[str, float]] = {}
    tokens: dict[str, dict[str, int]] = {}
    for variant in plan.variants:
        if split_phase(variant.ablation)[1] != chosen or variant.name not in done:
            continue
        by_ablation.setdefault(variant.ablation, []).append(variant.name)
        mixture[variant.ablation], tokens[variant.ablation] = variant.mixture, variant.subset_tokens
    names = list(by_ablation)
    if len(names) < 2:  # nothing, or one variant, measured at this phase: no target to fit
        return {}
    subsets = list(dict.fromkeys(s for a in names for s in mixture[a]))
    shares = np.array([[mixture[a].get(s, 0.0) for s in subsets] for a in names], dtype=float)
    drawn = np.array([[tokens[a].get(s, 0) for s in subsets] for a in names], dtype=float)
    targets = [c for c in scores.columns if c != "state"]
    out = {}
    for target in targets:
        values = np.array([scores.loc[by_ablation[a], target].astype(float).mean() for a in names])
        keep = ~np.isnan(values)
        if keep.sum() >= 2:
            kept = [a for a, k in zip(names, keep, strict=True) if k]
            out[target] = Points(kept, subsets, shares[keep], drawn[keep], values[keep])
    return out


def fit_targets(
    points: dict[str, Points], *, models: list[str] | None, resamples: int, seed: int, ci: float = 0.95
) -> list[TargetFit]:
    """Every model on every target. Asked-for `models` that need more variants than the study has
    are refused in one line; by default, the models the variants allow are fitted and the others
    named in `left_out`."""
    asked = models or list(MODELS)
    unknown = [m for m in asked if m not in MODELS]
    if unknown:
        raise AblateError(f"--model {unknown[0]}: use one of {', '.join(MODELS)}")
    out = []
    for target, data in points.items():
        n = len(data.target)
        result = TargetFit(target, data.names, dict(zip(data.names, map(float, data.target), strict=True)), [])
        for model in asked:
            k = len(parameter_names(model, data.subsets))
            if k > n - 1:  # leave-one-out needs k variants besides the one it predicts
                if models:
                    raise AblateError(
                        f"--model {model}: {k} parameters need at least {k + 1} done variants, {target} has {n}; "
                        "add variants (`ablate plan --design swarm --n N`) or fit a smaller model"
                    )
                result.left_out.append(f"{model}: {k} parameters, {n} variants")
                continue
            result.fits.append(_one(data, model, resamples=resamples, seed=seed, ci=ci))
        out.append(result)
    return out


def _one(data: Points, model: str, *, resamples: int, seed: int, ci: float) -> ModelFit:
    fitted = fit(data, model, seed=seed)
    validation = cross_validate(data, model)
    draws = bootstrap(data, model, resamples=resamples, seed=seed)
    low, high = (
        np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
        if len(draws)
        else (np.full(len(fitted.params), np.nan),) * 2
    )
    parameters = {
        name: {"value": float(v), "low": float(lo), "high": float(hi)}
        for name, v, lo, hi in zip(fitted.names, fitted.params, low, high, strict=True)
    }
    predicted = dict(zip(data.names, map(float, validation.predicted), strict=True))
    return ModelFit(model, parameters, fitted.rmse, validation.rmse, validation.rank_correlation, predicted)


# ---- suggest -------------------------------------------------------------------------------


@dataclass
class Suggestion:
    """The mixture `ablate suggest` proposes for an objective, and what its models predict for it."""

    name: str  # the variant it is added as
    ablation: str  # the ablation that measures it: `name`, or name@p25 in a phase study
    target: str  # the objective as read: `skills`, or `demo_math + 0.5·demo_code − 10·loss:prose`
    objective: dict[str, float]  # target → signed weight: the objective is Σ weight · target, maximized
    models: dict[str, str]  # target → the model fitted to it
    loo_rmse: dict[str, float]  # target → that model's leave-one-out error
    variants: int  # points it was fitted on (the variants every target was measured on)
    baseline: str  # the baseline ablation it is compared with
    mixture: dict[str, float]
    baseline_mixture: dict[str, float]
    kl: float  # KL(suggested ‖ baseline), nats
    radius: float  # the trust region it was held to
    predicted: dict[str, float]  # value, low, high: the objective at the suggested mixture
    baseline_predicted: float
    gain: dict[str, float]  # value, low, high: predicted objective − predicted baseline, per bootstrap refit


def objective_weights(spec: list[str]) -> dict[str, float]:
    """`--objective` values (`T` or `T=W`, repeated or comma-separated) → target → signed weight.
    Every objective is maximized, so a loss (loss:<domain>, lower is better) enters with its weight
    negated: `--objective loss:prose` asks for the lowest prose loss."""
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
        weights[target] = -value if target.startswith(LOSS_PREFIX) else value
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


def _aligned(points: dict[str, Points]) -> dict[str, Points]:
    """Each target's points on the variants every target was measured on, in one order."""
    shared = [n for n in next(iter(points.values())).names if all(n in p.names for p in points.values())]
    return {t: take(p, np.array([p.names.index(n) for n in shared], dtype=int)) for t, p in points.items()}


def _choose_model(points: Points, model: str | None, target: str) -> tuple[str, float]:
    """`model` (checked against the variants), else the one with the lowest leave-one-out error."""
    n = len(points.target)
    allowed = [m for m in MODELS if len(parameter_names(m, points.subsets)) <= n - 1]
    if model is None:
        if not allowed:
            raise AblateError(f"suggest: {n} variants measured {target}, too few for any model; add variants")
        errors = {m: cross_validate(points, m).rmse for m in allowed}
        best = min(errors, key=errors.__getitem__)
        return best, errors[best]
    if model not in allowed:
        k = len(parameter_names(model, points.subsets)) if model in MODELS else 0
        raise AblateError(f"--model {model}: needs {k + 1} done variants and a known form; have {n}")
    return model, cross_validate(points, model).rmse


def propose(
    points: dict[str, Points],
    weights: dict[str, float],
    *,
    baseline: str,
    model: str | None,
    caps: dict[str, float],
    floors: dict[str, float],
    radius: float,
    name: str,
    ablation: str,
    resamples: int,
    seed: int,
    ci: float = 0.95,
) -> Suggestion:
    """Fit each target of the objective Σ weight · target (with `model`, default: per target the one with
    the lowest leave-one-out error the variants allow), maximize it within the caps, floors and KL
    radius around the baseline, and predict it with an interval from joint bootstrap refits (every
    target refitted on the same draws of variants)."""
    from ablate.analyze.suggest import Bounds, kl_divergence, maximize

    terms = _aligned({t: points[t] for t in weights})
    first = next(iter(terms.values()))
    if baseline not in first.names:
        raise AblateError(f"suggest: the baseline `{baseline}` has no measured {', '.join(weights)}; run it first")
    chosen = {t: _choose_model(data, model, t) for t, data in terms.items()}
    fitted = {t: fit(data, chosen[t][0], seed=seed) for t, data in terms.items()}
    base = first.shares[first.names.index(baseline)]
    phase_tokens = float(first.tokens[first.names.index(baseline)].sum())
    subsets = first.subsets
    bounds = Bounds(
        low=np.array([floors.get(s, 0.0) for s in subsets]),
        high=np.array([caps.get(s, 1.0) for s in subsets]),
        kl=radius,
    )

    def objective(r: np.ndarray, params: dict[str, np.ndarray] | None = None) -> float:
        return float(
            sum(
                w * fitted[t].predict(r, r * phase_tokens, None if params is None else params[t])[0]
                for t, w in weights.items()
            )
        )

    best = maximize(objective, base, bounds, seed=seed)
    distinct = max(len(parameter_names(m, subsets)) for m, _ in chosen.values())
    draws = {
        t: bootstrap(data, chosen[t][0], resamples=resamples, seed=seed, distinct=distinct) for t, data in terms.items()
    }
    refits = [{t: d[i] for t, d in draws.items()} for i in range(min(len(d) for d in draws.values()))]
    at_best = np.array([objective(best, p) for p in refits])
    at_base = np.array([objective(base, p) for p in refits])
    edges = [(1 - ci) / 2, (1 + ci) / 2]

    def summary(value: float, spread: np.ndarray) -> dict[str, float]:
        low, high = np.quantile(spread, edges) if len(spread) else (np.nan, np.nan)
        return {"value": value, "low": float(low), "high": float(high)}

    return Suggestion(
        name=name,
        ablation=ablation,
        target=objective_label(weights),
        objective=weights,
        models={t: m for t, (m, _) in chosen.items()},
        loo_rmse={t: e for t, (_, e) in chosen.items()},
        variants=len(first.target),
        baseline=baseline,
        mixture=normalize({s: float(p) for s, p in zip(subsets, best, strict=True) if p > 1e-6}),
        baseline_mixture={s: float(p) for s, p in zip(subsets, base, strict=True) if p > 0},
        kl=kl_divergence(best, base),
        radius=radius,
        predicted=summary(objective(best), at_best),
        baseline_predicted=objective(base),
        gain=summary(objective(best) - objective(base), at_best - at_base),
    )


def suggest_study(
    study: str | None,
    *,
    objective: dict[str, float],
    model: str | None,
    radius: float,
    caps: dict[str, float],
    floors: dict[str, float],
    name: str,
    phase: str | None,
    resamples: int,
    seed: int,
    force: bool,
) -> tuple[Suggestion, Points, list[str]]:
    """`ablate suggest`: propose a mixture for `objective` (target → signed weight, see
    objective_weights) and add it to the study's plan as `name` (suggested.json keeps the prediction
    for the report). `caps` tighten the subsets' max_passes caps; refuses, unless `force`, to replace
    a suggestion of that name that has results. Returns the suggestion, the objective's first target's
    points and the variants that measure it (one per seed, at the phase it was fitted on)."""
    from dataclasses import asdict

    from ablate.plan.study import refuse_stale, save_plan
    from ablate.store import read_json, study_dir, write_json

    if not radius > 0:
        raise AblateError(f"--kl {radius}: use a positive radius in nats, e.g. 0.1")
    if resamples < 10:
        raise AblateError(f"--bootstrap {resamples}: use at least 10 resamples (200 for a final answer)")
    study_name, plan, recipe, points = load_points(study, phase)
    if not points:
        raise AblateError(f"study {study_name}: no done variants to fit yet; run `ablate run` first")
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
    label = next((split_phase(n)[1] for n in data.names if split_phase(n)[1]), None)
    phase_tokens = next(v.tokens for v in plan.variants if split_phase(v.ablation)[1] == label)
    held = share_caps(recipe, plan.subset_sizes, phase_tokens)
    for subset, share in caps.items():
        held[subset] = min(share, held.get(subset, 1.0))
    found = propose(
        points,
        objective,
        baseline=with_phase("baseline", label),
        model=model,
        caps=held,
        floors=floors,
        radius=radius,
        name=name,
        ablation=with_phase(name, label),
        resamples=resamples,
        seed=seed,
    )
    added = replan(plan, recipe, mixtures={found.ablation: found.mixture})  # at the phase it was fitted on
    if not force:
        refuse_stale(added, f"ablate suggest --name {name}", fix="pass --force, or another --name")
    registry = study_dir(study_name) / "suggested.json"
    write_json(registry, {**(read_json(registry) if registry.exists() else {}), found.ablation: asdict(found)})
    save_plan(added)
    return found, data, [v.name for v in added.variants if v.ablation == found.ablation]
