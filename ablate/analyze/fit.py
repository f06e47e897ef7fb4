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
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ablate.analyze.laws import (
    ABSURD,
    LAWS,
    MODELS,
    Fitted,
    Points,
    Validation,
    absurd,
    bootstrap,
    requirement,
    scheme,
    score,
    validate,
)
from ablate.analyze.linked import Chance
from ablate.analyze.suggest import Suggestion, SuggestRequest, check_targets
from ablate.errors import AblateError
from ablate.names import VariantName, label_value
from ablate.plan.build import Plan, replan, share_caps
from ablate.recipe import Recipe
from ablate.report.heldout import loss_table
from ablate.report.load import DONE, START, StudyResults


class Loaded(NamedTuple):
    """A study as `ablate fit` and `ablate suggest` read it."""

    name: str
    plan: Plan
    recipe: Recipe
    points: dict[str, Points]
    chances: dict[str, Chance]  # multiple-choice task → its chance level and items, for linked.py


def load_points(study: str | None, phase: str | None) -> Loaded:
    """The study's name, plan, recipe and its targets' Points (see study_points): every task and
    category in percent, with eval.heldout every domain's loss as `loss:<domain>` (nats per token), and
    every multiple-choice task's correct-answer loss as `answer-loss:<task>` (nats per byte)."""
    from ablate.plan.study import load_study_plan
    from ablate.report.answers import AnswerLoss, answer_table, study_answers
    from ablate.report.load import load_study
    from ablate.report.scores import score_table
    from ablate.study.store import current_study

    name = current_study(study)
    plan, recipe = load_study_plan(name)
    results = load_study(name)
    table = score_table(results)
    variants = list(table.index)
    answers = study_answers(results)
    held, answered = loss_table(results.heldout, variants), answer_table(answers, variants)
    losses = pd.DataFrame.from_dict({v: {**held.get(v, {}), **answered.get(v, {})} for v in variants}, orient="index")
    found: dict[str, list[AnswerLoss]] = {}
    for by_task in answers.values():
        for task, answer in by_task.items():
            if isinstance(answer, AnswerLoss):
                found.setdefault(task, []).append(answer)
    chances = {
        task: Chance(float(np.mean([a.chance for a in runs])), float(min(a.items for a in runs)))
        for task, runs in found.items()
    }
    return Loaded(name, plan, recipe, study_points(results, plan, table.join(losses), phase=phase), chances)


EVERY = "all"  # --phase all: every phase of a phase study, a ladder in the phase's tokens


@dataclass
class ModelFit:
    """One model on one target: parameters with bootstrap intervals (the laws) and its errors on
    variants it was not fitted on: cross-validated, and on the held-out test runs when there are any."""

    model: str
    parameters: dict[str, dict[str, float]]  # name → value, low, high; empty for gbm and ensemble
    rmse: float  # in-sample
    cv_rmse: float  # cross-validated (TargetFit.validation says how)
    rank_correlation: float  # Spearman's ρ of the cross-validated predictions with the measured values
    predicted: dict[str, float]  # variant → its cross-validated prediction
    usable: bool  # False: its cross-validated error is ABSURD times the target's spread, no result
    note: str = ""  # why the fit stopped where it did, what an ensemble holds, or why it is unusable
    test_rmse: float | None = None  # on the held-out test runs
    test_rank_correlation: float | None = None
    test_predicted: dict[str, float] = field(default_factory=dict)
    test_interval: dict[str, tuple[float, float]] = field(default_factory=dict)  # a law's 95% bootstrap band


@dataclass
class TargetFit:
    target: str
    variants: list[str]
    measured: dict[str, float]
    fits: list[ModelFit]
    left_out: list[str] = field(default_factory=list)  # "law: needs 7 variants (5 parameters), has 5"
    validation: str = "leave-one-out"  # or "10-fold"
    best: str | None = None  # the usable model with the lowest cross-validated error
    test_measured: dict[str, float] = field(default_factory=dict)  # held-out run → measured value


def study_points(results: StudyResults, plan: Plan, scores: Any, *, phase: str | None = None) -> dict[str, Points]:
    """target (task, category or loss:<domain>) → Points over the study's done ablations (baseline and control
    included) at `phase` (default: the longest; None for a study without phases). `scores` is the
    report's score table (ablate.report.scores.score_table), with loss columns joined where measured.
    `phase` EVERY: the done ablations of every phase, each its own point (a ladder in D, studies.py)."""
    labels = sorted(
        {label for v in plan.variants if (label := VariantName.parse_ablation(v.ablation).label)}, key=label_value
    )
    if phase == EVERY and len(labels) < 2:
        raise AblateError(f"--phase {EVERY}: pools a phase study's phases, and this study has {labels or 'none'}")
    if phase not in (None, EVERY, *labels):
        raise AblateError(f"--phase {phase}: the study's phases are {labels or 'none'}")
    chosen = phase or (labels[-1] if labels else None)
    done = set(results.variants[results.variants.state == DONE].variant) - {START}
    by_ablation: dict[str, list[str]] = {}
    mixture: dict[str, dict[str, float]] = {}
    tokens: dict[str, dict[str, int]] = {}
    for variant in plan.variants:
        if chosen not in (EVERY, VariantName.parse_ablation(variant.ablation).label) or variant.name not in done:
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
    points: dict[str, Points],
    *,
    models: list[str] | None,
    resamples: int,
    seed: int,
    ci: float = 0.95,
    folds: int | None = None,
    test: dict[str, Points] | None = None,
) -> list[TargetFit]:
    """Every model on every target, cross-validated (`folds`, see laws.scheme) and, for the targets in
    `test`, scored on those held-out runs too. Asked-for `models` that need more variants than the
    target has are refused in one line; by default, the models the variants allow are fitted and the
    others named in `left_out`."""
    asked = models or list(MODELS)
    unknown = [m for m in asked if m not in MODELS]
    if unknown:
        raise AblateError(f"--model {unknown[0]}: use one of {', '.join(MODELS)}")
    out = []
    for target, data in points.items():
        n = len(data.target)
        result = TargetFit(target, data.names, dict(zip(data.names, map(float, data.target), strict=True)), [])
        allowed = []
        for model in asked:
            need, why = requirement(model, data.subsets)
            if n >= need:
                allowed.append(model)
            elif models:
                raise AblateError(
                    f"--model {model}: needs at least {need} done variants ({why}), {target} has {n}; "
                    "add variants (`ablate plan --design swarm --n N`) or fit a smaller model"
                )
            else:
                result.left_out.append(f"{model}: needs {need} variants ({why}), has {n}")
        k, result.validation = scheme(n, folds)
        validated = validate(data, allowed, folds=k, seed=seed)
        if "ensemble" in allowed and "ensemble" not in validated:
            result.left_out.append("ensemble: fewer than two usable members")
        held = (test or {}).get(target)
        if held is not None:
            result.test_measured = dict(zip(held.names, map(float, held.target), strict=True))
        for fitted, validation in validated.values():
            result.fits.append(_one(data, held, fitted, validation, result.validation, resamples, seed, ci))
        usable = [f for f in result.fits if f.usable]
        result.best = min(usable, key=lambda f: f.cv_rmse).model if usable else None
        out.append(result)
    return out


def _one(
    data: Points,
    held: Points | None,
    fitted: Fitted,
    validation: Validation,
    label: str,
    resamples: int,
    seed: int,
    ci: float,
) -> ModelFit:
    parameters, refits = {}, []
    if fitted.model in LAWS:
        refits = bootstrap(data, fitted.model, resamples=resamples, seed=seed, whole=fitted)
        draws = np.array([d.params for d in refits])
        low, high = (
            np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
            if len(draws)
            else (np.full(len(fitted.params), np.nan),) * 2
        )
        parameters = {
            name: {"value": float(v), "low": float(lo), "high": float(hi)}
            for name, v, lo, hi in zip(fitted.names, fitted.params, low, high, strict=True)
        }
    usable, note = not absurd(validation.rmse, data.target), fitted.note
    if not usable:
        note = (
            f"unusable: its {label} RMSE {validation.rmse:.3g} is beyond {ABSURD:g}× the target's "
            f"standard deviation {float(np.std(data.target)):.3g}; not a result"
        )
    found = ModelFit(
        fitted.model,
        parameters,
        fitted.rmse,
        validation.rmse,
        validation.rank_correlation,
        dict(zip(data.names, map(float, validation.predicted), strict=True)),
        usable,
        note,
    )
    if held is not None:
        tested = score(fitted.predict(held.shares, held.tokens), held.target)
        found.test_rmse, found.test_rank_correlation = tested.rmse, tested.rank_correlation
        found.test_predicted = dict(zip(held.names, map(float, tested.predicted), strict=True))
        if refits:
            band = np.quantile([d.predict(held.shares, held.tokens) for d in refits], [(1 - ci) / 2, (1 + ci) / 2], 0)
            found.test_interval = {n: (float(lo), float(hi)) for n, lo, hi in zip(held.names, *band, strict=True)}
    return found


# ---- suggest: the study edge of ablate.analyze.suggest ------------------------------------


def suggest_study(
    study: str | None, request: SuggestRequest, *, phase: str | None = None, force: bool = False
) -> tuple[Suggestion, Points, list[str]]:
    """`ablate suggest`: propose a mixture for the request's objective and add it to the study's plan
    under the request's name (suggested.json keeps the prediction for the report). Its caps tighten
    the subsets' max_passes caps; refuses, unless `force`, to replace a suggestion of that name that
    has results. Returns the suggestion, the objective's first target's
    points and the variants that measure it (one per seed, at the phase it was fitted on)."""
    from dataclasses import asdict, replace

    from ablate.analyze.suggest import propose
    from ablate.plan.study import refuse_stale, save_plan
    from ablate.study.artifacts import SUGGESTED, add_suggestion
    from ablate.study.store import study_dir

    objective, name = request.objective, request.name
    study_name, plan, recipe, points, _ = load_points(study, phase)
    if not points:
        raise AblateError(f"study {study_name}: no done variants to fit yet; run `ablate run` first")
    data = check_targets(points, objective, request.caps, request.floors)
    label = next((label for n in data.names if (label := VariantName.parse_ablation(n).label)), None)
    phase_tokens = next(v.tokens for v in plan.variants if VariantName.parse_ablation(v.ablation).label == label)
    held = share_caps(recipe, plan.subset_sizes, phase_tokens)
    for subset, share in request.caps.items():
        held[subset] = min(share, held.get(subset, 1.0))
    found = propose(
        points,
        replace(request, caps=held),
        baseline=str(VariantName("baseline", label)),
        ablation=str(VariantName(name, label)),
    )
    if found.kl < 1e-6:  # training the baseline's own mix again would measure nothing new
        raise AblateError(
            f"suggest: {', '.join(found.models.values())} puts the best mix for {', '.join(objective)} at the "
            "baseline's own mix (KL 0), so there is nothing new to train; measure more mixtures "
            "(ablate plan --design swarm --n ...) or try --model"
        )
    added = replan(plan, recipe, mixtures={found.ablation: found.mixture})  # at the phase it was fitted on
    if not force:
        refuse_stale(added, f"ablate suggest --name {name}", fix="pass --force, or another --name")
    add_suggestion(study_dir(study_name) / SUGGESTED, found.ablation, asdict(found))
    save_plan(added)
    return found, data, [v.name for v in added.variants if v.ablation == found.ablation]
