"""A ladder's conclusions across scale: each removal's Δ at every rung, the Δ a scale fit predicts at the
target, and the marks where a conclusion does not survive scale.

    combined = ladder_results({"s1": results1, ...}, rungs)   # one StudyResults: no-math@r1, no-math@r2, ...
    report = build_report(combined, settings)                  # Δ per rung, decision accuracy vs the largest
    report.across = across(report, rungs, targets, at)         # targets: ablate.analyze.across.fit_across's

A ladder of studies (one per model size) is reported as a phase study is, since a phase study is a ladder in
D: each rung's variants carry its label (r1, r2, ... smallest first), each removal's Δ is against its own
rung's baseline with that rung's seed noise, and `phase_agreement` gives each rung's decision accuracy
against the largest. A phase study's own phases are rungs too (labels p10, ...). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ablate.analyze.linked import PREFIX as LINKED
from ablate.choices import SCALE_MODELS
from ablate.plan.build import Plan, phase_label, split_phase, with_phase
from ablate.report.build import Report
from ablate.report.heldout import LOSS_PREFIX
from ablate.report.load import DONE, START, StudyResults

if TYPE_CHECKING:
    from ablate.analyze.across import Prediction, ScaleTarget


@dataclass(frozen=True)
class Rung:
    """One rung of a ladder: its label in the combined report, the study it is, its N and D."""

    label: str
    study: str
    params: int
    tokens: int


@dataclass(frozen=True)
class Interval:
    value: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class AcrossRow:
    """One removal on one target across the ladder, and what does not hold across it."""

    target: str  # a task (Δ in percentage points) or loss:<domain> (Δ in nats per token)
    ablation: str
    rungs: list[Interval | None]  # its Δ at each rung, smallest first; None where not measured
    predicted: Interval | None  # at the target scale, by the target's chosen model
    model: str  # that model, or "" where none predicts
    note: str  # why no prediction, where there is none
    sign: str  # "" (one sign), "within noise" or "beyond noise" (some two rungs' intervals exclude 0 apart)
    rank: bool  # its rank among the removals measured at every rung differs between two rungs
    turns: bool  # the predicted Δ's sign differs from the largest measured rung's


@dataclass(frozen=True)
class Across:
    rungs: list[Rung]
    at: tuple[float, float] | None
    rows: list[AcrossRow]
    notes: list[str]


def study_rungs(plan: Plan) -> list[Rung]:
    """One study's rungs, smallest first: a ladder plan's (each rung's N, the phase's tokens), or a phase
    study's phases (its N, each phase's tokens); empty for a study at one scale."""
    if plan.rungs:
        return [Rung(r.label, plan.study, r.params, plan.variants[0].tokens) for r in plan.rungs]
    tokens = {phase_label(v.phase): v.tokens for v in sorted(plan.variants, key=lambda v: v.tokens) if v.phase}
    return [Rung(label, plan.study, plan.params, count) for label, count in tokens.items()]


def ladder_results(studies: dict[str, StudyResults], rungs: list[Rung]) -> StudyResults:
    """The rungs' studies as one: every variant, score, item and held-out loss renamed to its rung
    (baseline.s1 → baseline.s1@r1 keeps its seed: the rung is the phase mark), start evaluations left out
    (a ladder has one start per rung, and no Δ is taken against them)."""

    def renamed(frame: pd.DataFrame, label: str) -> pd.DataFrame:
        frame = frame[frame.variant != START].copy()
        frame["variant"] = [_at(str(v), label) for v in frame.variant]
        if "ablation" in frame:
            frame["ablation"] = [with_phase(str(a), label) for a in frame.ablation]
        return frame

    parts = [(studies[r.study], r.label) for r in rungs]
    first = parts[0][0]
    return StudyResults(
        name=" + ".join(r.study for r in rungs),
        source=first.source,
        variants=pd.concat([renamed(s.variants, label) for s, label in parts], ignore_index=True),
        scores=pd.concat([renamed(s.scores, label) for s, label in parts], ignore_index=True),
        items=pd.concat([renamed(s.items, label) for s, label in parts], ignore_index=True),
        tasks=first.tasks,
        categories=first.categories,
        notes=[f"{r.study}: {note}" for r in rungs for note in studies[r.study].notes],
        heldout={_at(v, label): found for s, label in parts for v, found in s.heldout.items() if v != START},
    )


def _at(variant: str, label: str) -> str:
    """baseline.s1 at r1 → baseline@r1.s1, as a phase study names its seeds (no-math@p10.s1)."""
    head, dot, seed = variant.rpartition(".s")
    if dot and seed.isdigit():
        return f"{with_phase(head, label)}.s{seed}"
    return with_phase(variant, label)


def across(report: Report, rungs: list[Rung], targets: list[ScaleTarget], at: tuple[float, float] | None) -> Across:
    """Every removal's Δ at every rung (tasks from `report.rows`, held-out losses from `report.heldout`), the
    chosen model's Δ at `at` from `targets`, and the sign, rank and target marks."""
    labels = [r.label for r in rungs]
    measured: dict[tuple[str, str], dict[str, Interval]] = {}
    for row in report.rows.to_dict("records"):
        arm, label = split_phase(str(row["variant"]))
        if label in labels and row["state"] == DONE and not pd.isna(row["delta_pp"]) and row["task"] in report.tasks:
            low, high = (None if pd.isna(row[k]) else float(row[k]) for k in ("ci_low_pp", "ci_high_pp"))
            measured.setdefault((str(row["task"]), arm), {})[label] = Interval(float(row["delta_pp"]), low, high)
    for cell in report.heldout:
        arm, label = split_phase(cell.ablation)
        if label in labels and cell.delta is not None:
            measured.setdefault((LOSS_PREFIX + cell.domain, arm), {})[label] = Interval(cell.delta, cell.low, cell.high)
    chosen = _chosen(targets)
    rows: list[AcrossRow] = []
    notes: list[str] = []
    for target in dict.fromkeys(t for t, _ in measured):
        arms = [arm for t, arm in measured if t == target]
        ranks = _ranks({arm: measured[target, arm] for arm in arms}, labels)
        for arm in arms:
            found = measured[target, arm]
            series = [found.get(label) for label in labels]
            prediction = chosen.get((target, arm))
            predicted = None
            if prediction is not None and prediction.predicted is not None:
                predicted = Interval(prediction.predicted, prediction.low, prediction.high)
            largest = next((d for d in reversed(series) if d is not None), None)
            turns = predicted is not None and largest is not None and _sign(predicted.value) * _sign(largest.value) < 0
            rows.append(
                AcrossRow(
                    target,
                    arm,
                    series,
                    predicted,
                    prediction.model if prediction and predicted else "",
                    _why(target, prediction, targets, at),
                    _sign_change([d for d in series if d is not None]),
                    arm in ranks,
                    turns,
                )
            )
    if at is None:
        notes.append("no target scale: pass --at params=N,tokens=D for the Δ a scale fit predicts there")
    return Across(rungs, at, rows, notes)


def _chosen(targets: list[ScaleTarget]) -> dict[tuple[str, str], Prediction]:
    """(target, removal) → its Δ at the target scale by the target's chosen model."""
    return {(t.target, p.run): p for t in targets for p in t.deltas if p.chosen}


def _why(target: str, prediction: Prediction | None, targets: list[ScaleTarget], at: tuple[float, float] | None) -> str:
    """Why a removal has no predicted Δ at the target ('' where it has one, or where no target was asked)."""
    if at is None:
        return ""
    if prediction is not None:
        return prediction.note
    fitted = next((t for t in targets if t.target == target), None)
    if fitted is None:
        return "not fitted across scale (a target every rung measured, with two done removals, is)"
    if fitted.chosen is None:
        return fitted.unchecked or "no model was checked on a held-out scale"
    if fitted.chosen.removeprefix(LINKED) not in SCALE_MODELS:
        return f"{fitted.chosen}, a scale-blind model, predicted the held-out scale best: no Δ at the target"
    return "the chosen model predicts no Δ for it"


def _sign(value: float) -> int:
    return int(np.sign(value))


def _sign_change(series: list[Interval]) -> str:
    """'' where every rung's Δ has one sign; 'beyond noise' where one rung's interval lies above 0 and
    another's below; else 'within noise'."""
    signs = {_sign(d.value) for d in series} - {0}
    if len(signs) < 2:
        return ""
    above = any(d.low is not None and d.low > 0 for d in series)
    below = any(d.high is not None and d.high < 0 for d in series)
    return "beyond noise" if above and below else "within noise"


def _ranks(found: dict[str, dict[str, Interval]], labels: list[str]) -> set[str]:
    """The removals (of those measured at every rung) whose rank by Δ differs between two rungs."""
    complete = [arm for arm, by in found.items() if all(label in by for label in labels)]
    if len(complete) < 2 or len(labels) < 2:
        return set()
    orders = [sorted(complete, key=lambda arm: found[arm][label].value) for label in labels]
    return {arm for arm in complete if len({order.index(arm) for order in orders}) > 1}
