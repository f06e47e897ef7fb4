"""A ladder's rungs as one study, and the across-scale section's shape (`Across`), which
ablate.analyze.conclusions fills and the report renders.

    combined = ladder_results({"s1": results1, ...}, rungs)   # one StudyResults: no-math@r1, no-math@r2, ...
    report = build_report(combined, settings)                  # Δ per rung, decision accuracy vs the largest
    report = report.with_across(across(report, rungs, targets, at))  # ablate.analyze.conclusions

A ladder of studies (one per model size) is reported as a phase study is, since a phase study is a ladder in
D: each rung's variants carry its label (r1, r2, ... smallest first), each removal's Δ is against its own
rung's baseline with that rung's seed noise, and `phase_agreement` gives each rung's decision accuracy
against the largest. A phase study's own phases are rungs too (labels p10, ...). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ablate.names import VariantName, phase_label
from ablate.plan.build import Plan
from ablate.report.load import START, StudyResults


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
    (baseline.s1 → baseline@r1.s1 keeps its seed, as a phase study's no-math@p10.s1), start evaluations left out
    (a ladder has one start per rung, and no Δ is taken against them)."""

    def renamed(frame: pd.DataFrame, label: str) -> pd.DataFrame:
        frame = frame[frame.variant != START].copy()
        frame["variant"] = [str(VariantName.parse(str(v)).at(label)) for v in frame.variant]
        if "ablation" in frame:
            frame["ablation"] = [str(VariantName.parse_ablation(str(a)).at(label)) for a in frame.ablation]
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
        heldout={
            str(VariantName.parse(v).at(label)): found
            for s, label in parts
            for v, found in s.heldout.items()
            if v != START
        },
    )
