"""`ablate suggest`'s proposals as the report shows them: each with the Δ the study then measured for
its objective, and whether the plan still has it. Pure."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablate.report.heldout import LOSS_PREFIX, LossCell
from ablate.report.load import DONE
from ablate.report.rows import records


def with_measured(
    proposal: dict[str, Any], table: pd.DataFrame, losses: list[LossCell], planned: set[str]
) -> dict[str, Any]:
    """A suggestion with the measured Δ of its objective (Σ weight · Δ target) for the ablation that
    measures it, once every target has one, and whether the study's plan still has it.

    A task's Δ reads in percentage points, as `ablate suggest` fitted it; a loss's in nats per token.
    One target: its own interval, times its weight. Several: each target's interval read as a normal
    one and combined as independent, since the targets are measured on different items and held-out
    sequences (the item noise each interval describes is independent across them).
    """
    proposal = {**proposal, "planned": proposal.get("ablation") in planned}
    ablation = str(proposal.get("ablation"))
    loss_of = {(c.ablation, LOSS_PREFIX + c.domain): c for c in losses if c.delta is not None}
    terms: dict[str, tuple[float, float | None, float | None]] = {}
    for target in proposal["objective"]:
        if target.startswith(LOSS_PREFIX):
            cell = loss_of.get((ablation, target))
            if cell is not None and cell.delta is not None:
                terms[target] = (cell.delta, cell.low, cell.high)
            continue
        found = next(records(table[(table.variant == ablation) & (table.task == target)]), None)
        if found is not None and found.state == DONE and pd.notna(found.delta):
            terms[target] = (float(100 * found.delta), _points(found.ci_low), _points(found.ci_high))
    if len(terms) < len(proposal["objective"]):
        return {**proposal, "measured": None}
    weights = proposal["objective"]
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
    return {**proposal, "measured": {"value": value, "low": low, "high": high, "terms": terms}}


def _points(value: float) -> float | None:
    """A fraction of Report.rows in the objective's unit, percentage points (what `ablate suggest` fits)."""
    return None if pd.isna(value) else float(100 * value)
