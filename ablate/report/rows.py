"""The Δ table's rows (report.csv): one per ablation × task or category, each ablation's state, the
category cells built from their tasks', and the adjustment that reads the table as one family. Pure."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.recipe import Category
from ablate.report.cells import NO_CI, NORMAL, PAIRED, DeltaCell
from ablate.report.load import DONE
from ablate.report.noise import SeedNoise

ROW_COLUMNS = [  # Report.rows: scores, Δs, bounds and seed SD in fractions
    "variant",
    "task",
    "metric",
    "score",
    "baseline_score",
    "delta",
    "ci_low",
    "ci_high",
    "n_items",
    "significant",
    "p_value",
    "p_adjusted",
    "significant_adjusted",
    "n_clusters",
    "sign_kept",
    "seed_sd",
    "seed_df",
    "state",
    "method",
]
# report.csv's columns as written: each fraction of Report.rows in percent under its written name
IN_PERCENT = {"score": "score", "baseline_score": "baseline_score", "delta": "delta_pp", "ci_low": "ci_low_pp",
              "ci_high": "ci_high_pp", "seed_sd": "seed_sd_pp"}  # fmt: skip
CSV_COLUMNS = [IN_PERCENT.get(c, c) for c in ROW_COLUMNS[:-2]]
GAUNTLET = "gauntlet"  # the metric name of a category row
_STATE_ORDER = ("failed", "stale", "damaged", "no results", "evaluating", "training", "pending")  # a not-done ablation


def ablation_states(
    variants: pd.DataFrame, ablations: list[str], base_done: dict[str, bool], notes: list[str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each ablation's state (done where any seed is done and its baseline is), and ablation → done
    seeds for those with numbers."""
    states: dict[str, str] = {}
    jobs: dict[str, list[str]] = {}
    for ablation in ablations:
        members = variants[variants.ablation == ablation]
        done = list(members[members.state == DONE].variant)
        states[ablation] = ablation_state(members) if not done else DONE if base_done[ablation] else "no baseline"
        if done and len(done) < len(members):
            notes.append(f"{ablation}: {len(done)} of {len(members)} seeds done; its row uses those")
        if states[ablation] == DONE:
            jobs[ablation] = done
    not_done = [f"{a} ({s})" for a, s in states.items() if s not in (DONE, "no baseline")]
    if not_done:
        notes.append("not reported, no numbers yet: " + ", ".join(not_done))
    return states, jobs


def ablation_state(members: pd.DataFrame) -> str:
    """How an ablation none of whose seeds is done reads: its most telling seed's state."""
    states = set(members.state)
    return next((s for s in _STATE_ORDER if s in states), "pending")


def category_cell(
    key: str,
    spec: Category,
    task_cells: list[DeltaCell | None],
    seed_noise: SeedNoise | None,
    seeds: tuple[int, int],
    *,
    ci: float,
    seed: int,
) -> DeltaCell | None:
    """Gauntlet average of the tasks' cells; its interval combines the tasks' item resamples draw by
    draw, then adds the category score's own seed term (a seed moves a run's tasks together, so the
    tasks' seed terms are not independent and are not summed)."""
    cells = [c for c in task_cells if c is not None]
    if len(cells) < len(task_cells):
        return None
    chance = spec.chances
    score = stats.gauntlet_score([c.score for c in cells], chance)
    base_score = stats.gauntlet_score([c.baseline_score for c in cells], chance)
    low = high = draws = None
    if all(c.item_draws is not None for c in cells):
        draws = stats.gauntlet_delta([c.item_draws for c in cells], chance)
        low, high = stats.percentile_interval(draws, ci)
    n_items = sum(c.n_items or 0 for c in cells) or None
    methods = {c.method for c in cells}
    method = PAIRED if methods == {PAIRED} else NO_CI if low is None else NORMAL
    cell = DeltaCell.measured(score, base_score, low, high, n_items, method, draws)
    if draws is None or seed_noise is None:
        return cell
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return cell.with_seed_noise(seed_noise, *seeds, ci, rng)


def delta_row(variant: str, task: str, metric: str, state: str, cell: DeltaCell | None) -> dict[str, Any]:
    """An ablation's row for one task or category: its cell, or its state without figures."""
    if cell is None:
        return {"variant": variant, "task": task, "metric": metric, "state": state if state != DONE else "missing"}
    low, high = cell.low, cell.high
    return {
        "variant": variant,
        "task": task,
        "metric": metric,
        "score": cell.score,
        "baseline_score": cell.baseline_score,
        "delta": cell.delta,
        "ci_low": low,
        "ci_high": high,
        "n_items": cell.n_items,
        "significant": None if low is None or high is None else bool(low > 0 or high < 0),
        "p_value": cell.p_value,
        "n_clusters": cell.n_clusters,
        "sign_kept": None if cell.draws is None else stats.sign_kept(cell.draws, cell.delta),
        "seed_sd": cell.seed_sd,
        "seed_df": cell.seed_df,
        "state": DONE,
        "method": cell.method,
    }


def score_row(variant: str, task: str, metric: str, score: float | None) -> dict[str, Any]:
    """A baseline's (or the start's) row for one task: its score alone, the level the Δs are read from."""
    return {
        "variant": variant,
        "task": task,
        "metric": metric,
        "score": score,
        "state": DONE if score is not None else "missing",
    }


def records(table: pd.DataFrame) -> Iterator[Any]:
    """Report.rows' rows, each read by attribute (row.delta, row.ci_low, ...): pandas' named tuples,
    typed Any since pandas-stubs cannot type a row's fields."""
    return table.itertuples()


def row_table(rows: list[dict[str, Any]], adjust: str, ci: float) -> pd.DataFrame:
    """Report.rows from score_row's and delta_row's rows: fractions as floats (NaN where unmeasured),
    and p_adjusted and significant_adjusted over the family of every Δ cell that has a p-value (tasks
    and categories, every ablation): the table is read as a whole, so it is tested as one."""
    table = pd.DataFrame(rows, columns=ROW_COLUMNS)
    table[list(IN_PERCENT)] = table[list(IN_PERCENT)].astype(float)
    tested = table.p_value.notna()
    p_adjusted = stats.adjust_p_values(table.p_value[tested].to_numpy(dtype=float), adjust)
    table["p_adjusted"] = pd.Series(p_adjusted, index=table.index[tested], dtype=float).reindex(table.index)
    flags = pd.Series([bool(p < 1 - ci) for p in p_adjusted], index=table.index[tested], dtype=object)
    table["significant_adjusted"] = flags.reindex(table.index).astype(object)
    return table
