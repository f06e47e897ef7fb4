"""The report as data for other tools: report.csv's rows and report.json's content, the report's
fractions written in percent (percentage points for a Δ) under the columns' written names."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import asdict
from typing import Any

import pandas as pd

from ablate import stats
from ablate.report.build import Report
from ablate.report.rows import CSV_COLUMNS, IN_PERCENT
from ablate.report.suggestions import MeasuredSuggestion
from ablate.report.trust import Power, Trust


def to_csv(report: Report) -> str:
    frame = written_rows(report)[CSV_COLUMNS]
    for column in ("n_items", "n_clusters"):
        frame[column] = frame[column].astype("Int64")
    for column in ("significant", "significant_adjusted"):
        frame[column] = frame[column].map({True: "true", False: "false"})
    return frame.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def to_json(report: Report) -> dict[str, Any]:
    """report.csv's rows plus the settings, scores table, power and notes."""
    columns = [c for c in report.scores.columns if c != "state"]
    scores = report.scores.assign(**{c: 100 * report.scores[c] for c in columns}).reset_index()
    return {
        "title": report.title,
        "settings": {**asdict(report.settings), "seed_method": stats.SEED_METHOD, "interval": "percentile"},
        "header": report.header,
        "metrics": report.metrics,
        "categories": {name: category.model_dump() for name, category in report.categories.items()},
        "scores": _records(scores, list(scores.columns)),
        "rows": _records(written_rows(report), [*CSV_COLUMNS, "state", "method"]),
        "power": {task: _power(p) for task, p in report.power.items()},
        "trust": None if report.trust is None else _trust(report.trust),
        "phases": report.phases,
        "phase_agreement": [asdict(a) for a in report.phase_agreement],
        "suggestions": [_suggestion(s) for s in report.suggestions],
        "heldout": [asdict(c) for c in report.heldout],
        "seed_noise": [
            {"phase": phase, "column": column, "sd": n.sd, "df": n.df}
            for (phase, column), n in report.seed_noise.items()
        ],
        "replicates": report.replicates,
        "notes": report.notes,
        **({} if report.across is None else {"across": asdict(report.across)}),
    }


def _power(power: Power) -> dict[str, Any]:
    """A task's power as report.json writes it: the baseline's score in percent, the MDE in points, and
    a clustered task's clusters, design effect and effective items."""
    clustered = {"n_clusters": power.n_clusters, "design_effect": power.design_effect, "n_effective": power.n_effective}
    return {
        "n_items": power.n_items,
        "baseline_score": 100 * power.baseline_score,
        **({} if power.n_effective is None else clustered),
        "mde_pp": 100 * power.mde,
    }


def _suggestion(found: MeasuredSuggestion) -> dict[str, Any]:
    """A suggestion as report.json writes it: the proposal as suggested.json has it, then whether the
    plan still has it and what was measured."""
    measured = None if found.measured is None else asdict(found.measured)
    return {**found.proposal.model_dump(), "planned": found.planned, "measured": measured}


def _trust(trust: Trust) -> dict[str, Any]:
    """The trust section as report.json writes it: seed SD, spread and detectable Δ in points."""
    points = {"seed_sd": "seed_sd_pp", "spread": "spread_pp", "detectable": "detectable_pp"}
    record = asdict(trust)
    record["tasks"] = [
        {points.get(k, k): v if k not in points or v is None else 100 * v for k, v in task.items()}
        for task in record["tasks"]
    ]
    return record


def written_rows(report: Report) -> pd.DataFrame:
    """Report.rows as report.csv and report.json write them: fractions in percent, renamed."""
    frame = report.rows.copy()
    for column in IN_PERCENT:
        frame[column] = 100 * frame[column]
    return frame.rename(columns=IN_PERCENT)


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[Hashable, Any]]:
    """Plain dicts for JSON: None (not NaN) where nothing was measured."""
    records = frame[columns].astype(object).to_dict("records")
    return [{k: (None if _missing(v) else v) for k, v in r.items()} for r in records]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
