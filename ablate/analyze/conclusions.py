"""A ladder's conclusions across scale: each removal's Δ at every rung, read off a report built over
the rungs (ablate.report.ladder.ladder_results), beside the Δ the chosen scale model predicts at the
target (fit_across), and the marks where a conclusion does not survive scale: a sign change beyond or
within noise, a rank change, a predicted sign that differs from the largest rung's. It sits in analyze
because it joins the report with the scale fits; the report stage only renders the `Across` it returns.
Pure: no I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.analyze.across import Prediction, ScaleTarget
from ablate.analyze.linked import PREFIX as LINKED
from ablate.choices import SCALE_MODELS
from ablate.names import VariantName
from ablate.report.build import Report
from ablate.report.heldout import LOSS_PREFIX
from ablate.report.ladder import Across, AcrossRow, Interval, Rung
from ablate.report.load import DONE
from ablate.report.rows import records


def across(report: Report, rungs: list[Rung], targets: list[ScaleTarget], at: tuple[float, float] | None) -> Across:
    """Every removal's Δ at every rung (tasks from `report.rows`, held-out losses from `report.heldout`), the
    chosen model's Δ at `at` from `targets`, and the sign, rank and target marks."""
    labels = [r.label for r in rungs]
    measured: dict[tuple[str, str], dict[str, Interval]] = {}
    for row in records(report.rows):  # fractions, in points here as the scale fits and AcrossRow read them
        name = VariantName.parse_ablation(str(row.variant))
        arm, label = name.base, name.label
        if label in labels and row.state == DONE and not pd.isna(row.delta) and row.task in report.tasks:
            low, high = (None if pd.isna(x) else float(100 * x) for x in (row.ci_low, row.ci_high))
            measured.setdefault((str(row.task), arm), {})[label] = Interval(float(100 * row.delta), low, high)
    for cell in report.heldout:
        name = VariantName.parse_ablation(cell.ablation)
        arm, label = name.base, name.label
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
