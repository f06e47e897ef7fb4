"""`ablate suggest`'s proposals as the report shows them: each with the Δ the study then measured for
its objective, and whether the plan still has it. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ablate.report.heldout import LOSS_PREFIX, LossCell
from ablate.report.load import DONE
from ablate.report.rows import records
from ablate.study.artifacts import Suggested

Term = tuple[float, float | None, float | None]  # a target's Δ and its interval, in the objective's unit


@dataclass(frozen=True)
class Measured:
    """What the study measured of a suggestion's objective: Σ weight · Δ target, its interval (None
    where a target's Δ has none) and each target's Δ [low, high]."""

    value: float
    low: float | None
    high: float | None
    terms: dict[str, Term]


@dataclass(frozen=True)
class MeasuredSuggestion:
    """One of `ablate suggest`'s proposals as the report shows it."""

    proposal: Suggested
    planned: bool  # the study's plan still has its ablation
    measured: Measured | None  # None until every target of its objective has a Δ


def with_measured(
    proposal: Suggested, table: pd.DataFrame, losses: list[LossCell], planned: set[str]
) -> MeasuredSuggestion:
    """A suggestion with the measured Δ of its objective (Σ weight · Δ target) for the ablation that
    measures it, once every target has one, and whether the study's plan still has it.

    A task's Δ reads in percentage points, as `ablate suggest` fitted it; a loss's in nats per token.
    One target: its own interval, times its weight. Several: each target's interval read as a normal
    one and combined as independent, since the targets are measured on different items and held-out
    sequences (the item noise each interval describes is independent across them).
    """
    ablation = proposal.ablation
    loss_of = {(c.ablation, LOSS_PREFIX + c.domain): c for c in losses if c.delta is not None}
    terms: dict[str, Term] = {}
    for target in proposal.objective:
        if target.startswith(LOSS_PREFIX):
            cell = loss_of.get((ablation, target))
            if cell is not None and cell.delta is not None:
                terms[target] = (cell.delta, cell.low, cell.high)
            continue
        found = next(records(table[(table.variant == ablation) & (table.task == target)]), None)
        if found is not None and found.state == DONE and pd.notna(found.delta):
            terms[target] = (float(100 * found.delta), _points(found.ci_low), _points(found.ci_high))
    if len(terms) < len(proposal.objective):
        return MeasuredSuggestion(proposal, ablation in planned, None)
    weights = proposal.objective
    value = sum(weights[t] * delta for t, (delta, _, _) in terms.items())
    spans = [
        (weights[t] * lo, weights[t] * hi) for t, (_, lo, hi) in terms.items() if lo is not None and hi is not None
    ]
    low: float | None = None
    high: float | None = None
    if len(spans) == 1 == len(terms):
        low, high = sorted(spans[0])
    elif len(spans) == len(terms):  # normal intervals: the half-widths add in quadrature, z for z
        half = math.hypot(*[(hi - lo) / 2 for lo, hi in spans])
        low, high = value - half, value + half
    return MeasuredSuggestion(proposal, ablation in planned, Measured(value, low, high, terms))


def _points(value: float) -> float | None:
    """A fraction of Report.rows in the objective's unit, percentage points (what `ablate suggest` fits)."""
    return None if pd.isna(value) else float(100 * value)
