"""Attribution tables from loaded results: scores, Δ vs baseline with intervals, power, notes.

    ablate report                          # the current study: tables on stdout, files in results/<study>/
    ablate report --from runs/ --baseline base --format csv
    # in a notebook:
    from ablate.report.load import load_study
    from ablate.report.build import Settings, build_report, to_markdown
    report = build_report(load_study("demo"), Settings(resamples=2000))
    report.rows                            # the long table of report.csv, as a DataFrame

`build_report` is pure (seeded randomness, no clock, no I/O); `write_report` is the only writer.
Never a number that was not measured: variants that are pending, failed or stale appear with their
state and no figures. Statistics: see ablate/stats.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.errors import AblateError
from ablate.report.load import DONE, START, StudyResults
from ablate.store import write_atomic

CSV_COLUMNS = [
    "variant", "task", "metric", "score", "baseline_score", "delta_pp", "ci_low_pp", "ci_high_pp", "n_items",
    "significant", "n_clusters",
]
GAUNTLET = "gauntlet"  # the metric name of a category row
_STATE_ORDER = ("failed", "stale", "no results", "evaluating", "training", "pending")  # how a not-done ablation reads
PAIRED, NORMAL, NO_CI = "paired bootstrap", "normal (stderr)", "no interval"


@dataclass(frozen=True)
class Settings:
    """What a report was asked for; recorded in report.json so the figures can be reproduced."""

    baseline: str = "baseline"
    metric: str | None = None  # None: acc_norm where a task has it, else acc, else its first metric
    ci: float = 0.95
    resamples: int = 10_000
    seed: int = 0


@dataclass
class Report:
    title: str
    settings: Settings
    header: list[str]
    tasks: list[str]
    categories: dict[str, dict[str, Any]]
    metrics: dict[str, str]  # task → the metric reported
    scores: pd.DataFrame  # one row per variant (start first): "state", then percent per task and category
    rows: pd.DataFrame  # CSV_COLUMNS plus "state" and "method": one row per ablation × task/category
    power: dict[str, dict[str, float]]  # task → n_items, baseline_score (%), mde_pp
    notes: list[str]
    seeds: int  # most seeds any ablation has: decides the footnote on seed variance

    @property
    def columns(self) -> list[str]:
        return self.tasks + list(self.categories)


# ---- building --------------------------------------------------------------------------------


def build_report(results: StudyResults, settings: Settings = Settings()) -> Report:
    """Scores, attribution rows with intervals, power and notes for every variant of `results`."""
    if not 0 < settings.ci < 1:
        raise AblateError(f"--ci {settings.ci}: use a level between 0 and 1, e.g. 0.95")
    if settings.resamples < 100:
        raise AblateError(f"--bootstrap {settings.resamples}: use at least 100 resamples (10,000 for a final table)")
    variants = results.variants
    if settings.baseline not in set(variants.ablation):
        choices = sorted(set(variants.ablation) - {START})
        raise AblateError(f"--baseline {settings.baseline}: no such variant; choose from {choices}")
    notes = list(results.notes)
    metrics = _choose_metrics(results, settings.metric, notes)
    measured = set(results.scores.task)
    tasks = [t for t in results.tasks if t in metrics or t not in measured]  # unmeasured tasks show as "—"
    categories = {name: spec for name, spec in results.categories.items() if set(spec["tasks"]) <= set(tasks)}
    cells = _Cells(results, metrics, settings)
    scores = _scores_table(results, metrics, tasks, categories)

    ablations = [a for a in dict.fromkeys(variants.ablation) if a not in (START, settings.baseline)]
    base = variants[variants.ablation == settings.baseline]
    base_done = list(base[base.state == DONE].variant)
    if not base_done:
        notes.append(f"baseline `{settings.baseline}` is {_ablation_state(base)}: no deltas until it is done")
    rows: list[dict[str, Any]] = []
    for task in tasks:
        rows.append(_score_only_row(settings.baseline, task, metrics.get(task, ""), cells.mean_score(base_done, task)))
    states, jobs = _ablation_states(variants, ablations, bool(base_done), notes)
    computed = cells.all_deltas(jobs, base_done, tasks)
    for ablation in ablations:
        state = states[ablation]
        task_cells = {}
        for task in tasks:
            cell, cell_notes = computed.get((ablation, task), (None, []))
            notes += cell_notes
            task_cells[task] = cell
            rows.append(_row(ablation, task, metrics.get(task, ""), state, cell))
        for name, spec in categories.items():
            cell = _category_cell(spec, [task_cells[t] for t in spec["tasks"]], settings) if state == DONE else None
            rows.append(_row(ablation, name, GAUNTLET, state, cell))
    start_rows = [
        _score_only_row(START, task, metrics.get(task, ""), scores.loc[START, task] / 100)
        for task in tasks
        if START in scores.index and not math.isnan(scores.loc[START, task])
    ]
    table = pd.DataFrame(start_rows + rows, columns=CSV_COLUMNS + ["state", "method"])
    return Report(
        title=f"Ablation report: {results.name}",
        settings=settings,
        header=_header(results, settings, metrics, tasks, base_done),
        tasks=tasks,
        categories=categories,
        metrics=metrics,
        scores=scores,
        rows=table,
        power=_power(tasks, cells, base_done, settings.ci),
        notes=notes,
        seeds=int(variants[variants.ablation != START].groupby("ablation").size().max()) if len(variants) else 1,
    )


def _choose_metrics(results: StudyResults, wanted: str | None, notes: list[str]) -> dict[str, str]:
    """Task → metric: `wanted` (or a filtered form of it), else acc_norm, acc, the task's first metric."""
    chosen: dict[str, str] = {}
    for task in results.tasks:
        available = list(dict.fromkeys(results.scores.metric[results.scores.task == task]))
        if not available:
            continue
        if wanted:
            matches = [m for m in available if m == wanted or m.split(",")[0] == wanted]
            if matches:
                chosen[task] = matches[0]
            else:
                notes.append(f"{task}: no metric `{wanted}` (it has {', '.join(available)}); left out")
        else:
            chosen[task] = next((m for m in ("acc_norm", "acc") if m in available), available[0])
    if wanted and not chosen and len(results.scores):
        known = sorted(set(results.scores.metric))
        raise AblateError(f"--metric {wanted}: no task reports it; available: {', '.join(known)}")
    return chosen


def _ablation_states(variants: pd.DataFrame, ablations: list[str], base_done: bool, notes: list[str]):
    """Each ablation's state (done where any seed is done), and ablation → done seeds for those with numbers."""
    states: dict[str, str] = {}
    jobs: dict[str, list[str]] = {}
    for ablation in ablations:
        members = variants[variants.ablation == ablation]
        done = list(members[members.state == DONE].variant)
        states[ablation] = _ablation_state(members) if not done else DONE if base_done else "no baseline"
        if done and len(done) < len(members):
            notes.append(f"{ablation}: {len(done)} of {len(members)} seeds done; its row uses those")
        if states[ablation] == DONE:
            jobs[ablation] = done
    not_done = [f"{a} ({s})" for a, s in states.items() if s not in (DONE, "no baseline")]
    if not_done:
        notes.append("not reported, no numbers yet: " + ", ".join(not_done))
    return states, jobs


def _ablation_state(members: pd.DataFrame) -> str:
    states = set(members.state)
    return next((s for s in _STATE_ORDER if s in states), "pending")


class _Cells:
    """Per-task matrices of item values, built once, and the Δ of one ablation on one task."""

    def __init__(self, results: StudyResults, metrics: dict[str, str], settings: Settings) -> None:
        self.settings = settings
        seeds = results.variants.set_index("variant").seed
        self._seed = {v: -1 if pd.isna(s) else int(s) for v, s in seeds.items()}
        self._scores = {
            (r.variant, r.task): r for r in results.scores.itertuples() if metrics.get(r.task) == r.metric
        }
        self._items: dict[str, tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = {}
        items = results.items
        if len(items):
            variant_codes, variant_names = _codes(items.variant)
            hash_codes, _ = _codes(items.doc_hash)
            cluster_codes, _ = _codes(items.cluster)  # −1 where an item has no cluster
            task_codes, task_names = _codes(items.task)
            metric_codes, metric_names = _codes(items.metric)
            metric_index = {str(m): i for i, m in enumerate(metric_names)}
            for code, task in enumerate(task_names):
                if str(task) not in metrics or metrics[str(task)] not in metric_index:
                    continue
                chosen = np.flatnonzero((task_codes == code) & (metric_codes == metric_index[metrics[str(task)]]))
                self._items[str(task)] = _matrix(
                    variant_codes[chosen], variant_names, items.doc_id.to_numpy()[chosen],
                    hash_codes[chosen], items.value.to_numpy()[chosen], cluster_codes[chosen],
                )

    def mean_score(self, variants: list[str], task: str) -> float | None:
        found = [self._scores[(v, task)].score for v in variants if (v, task) in self._scores]
        return float(np.mean(found)) if found and len(found) == len(variants) else None

    def items(self, task: str) -> int | None:
        """Items of a task in its lm-eval results (the largest count any variant reports)."""
        counts = [r.n_items for (v, t), r in self._scores.items() if t == task and pd.notna(r.n_items)]
        return int(max(counts)) if counts else None

    def all_deltas(self, jobs: dict[str, list[str]], base: list[str], tasks: list[str]) -> dict:
        """(ablation, task) → (cell, notes) for every job and task. Tasks run on a few threads: numpy's
        random draws release the GIL, and each cell's generator is seeded from its own names, so the
        figures do not depend on the number of threads or on which other variants exist."""
        def one_task(task: str) -> dict:
            return {(ablation, task): self.delta(ablation, done, base, task) for ablation, done in jobs.items()}

        workers = max(1, min(len(tasks), len(os.sched_getaffinity(0)), 8))
        with ThreadPoolExecutor(workers) as pool:
            return {key: value for part in pool.map(one_task, tasks) for key, value in part.items()}

    def delta(self, ablation: str, done: list[str], base: list[str], task: str) -> tuple[dict | None, list[str]]:
        """Δ of `ablation` on `task` and notes about it: paired bootstrap where every seed has item
        logs, else a normal interval from lm-eval's stderr."""
        rng = np.random.default_rng([self.settings.seed, zlib.crc32(ablation.encode()), zlib.crc32(task.encode())])
        notes: list[str] = []
        paired = self._paired(ablation, done, base, task, rng, notes)
        return (paired, notes) if paired is not None else (self._normal(ablation, done, base, task, rng, notes), notes)

    def _paired(self, ablation, done, base, task, rng, notes: list[str]) -> dict[str, Any] | None:
        if task not in self._items:
            return None
        rows, values, hashes, scored, clusters = self._items[task]
        if any(v not in rows for v in done + base):
            return None
        v_seeds, b_seeds = sorted(done, key=self._seed.get), sorted(base, key=self._seed.get)
        v_idx, b_idx = [rows[v] for v in v_seeds], [rows[v] for v in b_seeds]
        both = scored[v_idx + b_idx].all(axis=0)
        n_items = int(both.sum())
        if n_items == 0:
            return None
        code = hashes[v_idx + b_idx][:, both]
        if (code != code[:1]).any():
            notes.append(f"{ablation} × {task}: item texts differ from the baseline's (doc_hash), so not paired")
            return None
        full = int(scored[v_idx + b_idx].sum(axis=1).max())
        if n_items < full:
            notes.append(f"{ablation} × {task}: Δ on the {n_items} items both sides scored (of {full})")
        variant, baseline = values[v_idx][:, both], values[b_idx][:, both]
        same_seeds = [self._seed[v] for v in v_seeds] == [self._seed[v] for v in b_seeds]
        labels = _cluster_labels(clusters, v_idx + b_idx, both)
        draws = stats.paired_bootstrap(
            variant, baseline, resamples=self.settings.resamples, rng=rng, paired_seeds=same_seeds, clusters=labels
        )
        score, base_score = float(variant.mean()), float(baseline.mean())
        low, high = stats.percentile_interval(draws, self.settings.ci)
        n_clusters = None if labels is None else len(np.unique(labels))
        return _cell(score, base_score, low, high, n_items, PAIRED, draws, n_clusters)

    def design_effect(self, base: list[str], task: str) -> tuple[int, float] | None:
        """(clusters, design effect) of a clustered task, from the baseline's items (mean over its
        seeds); None where the task is not clustered."""
        if task not in self._items or any(v not in self._items[task][0] for v in base):
            return None
        rows, values, _, scored, clusters = self._items[task]
        index = [rows[v] for v in base]
        both = scored[index].all(axis=0)
        labels = _cluster_labels(clusters, index, both)
        if labels is None:
            return None
        return len(np.unique(labels)), stats.design_effect(values[index][:, both].mean(axis=0), labels)

    def _normal(self, ablation, done, base, task, rng, notes: list[str]) -> dict[str, Any] | None:
        found_v = [self._scores.get((v, task)) for v in done]
        found_b = [self._scores.get((v, task)) for v in base]
        if None in found_v or None in found_b:
            missing = [v for v, r in zip(done + base, found_v + found_b) if r is None]
            notes.append(f"{ablation} × {task}: not evaluated for {', '.join(missing)}")
            return None
        score = float(np.mean([r.score for r in found_v]))
        base_score = float(np.mean([r.score for r in found_b]))
        stderr = stats.unpaired_stderr([r.stderr for r in found_v], [r.stderr for r in found_b])
        n_items = int(found_v[0].n_items) if pd.notna(found_v[0].n_items) else None
        if math.isnan(stderr):
            notes.append(f"{ablation} × {task}: no per-item logs and no stderr from lm-eval, so Δ has no interval")
            return _cell(score, base_score, None, None, n_items, NO_CI, None)
        low, high = stats.normal_interval(score - base_score, stderr, self.settings.ci)
        draws = stats.normal_draws(score - base_score, stderr, resamples=self.settings.resamples, rng=rng)
        return _cell(score, base_score, low, high, n_items, NORMAL, draws)


def _codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and their labels: free for a categorical column, one factorize otherwise."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), column.cat.categories
    codes, labels = pd.factorize(column)
    return codes, pd.Index(labels)


def _matrix(variant_codes, variant_names, doc_ids, hash_codes, values, cluster_codes):
    """(variant → row, values, doc_hash codes, scored, cluster codes): variants × items, NaN / False / −1
    where not scored; cluster codes None where no item of the task has a cluster."""
    present, rows = _dense(variant_codes)
    ids, columns = _dense(doc_ids)
    matrix = np.full((len(present), len(ids)), np.nan)
    matrix[rows, columns] = values
    hashes, clusters = np.full(matrix.shape, -1), np.full(matrix.shape, -1)
    hashes[rows, columns] = hash_codes
    clusters[rows, columns] = cluster_codes
    scored = np.zeros(matrix.shape, dtype=bool)
    scored[rows, columns] = True
    variant_rows = {str(variant_names[code]): i for i, code in enumerate(present)}
    return variant_rows, matrix, hashes, scored, clusters if (cluster_codes >= 0).any() else None


def _cluster_labels(clusters: np.ndarray | None, index: list[int], columns: np.ndarray) -> np.ndarray | None:
    """Each chosen item's cluster code, if every one of them has a cluster in every chosen row (the
    bootstrap then resamples clusters); else None (items are resampled one by one)."""
    if clusters is None:
        return None
    chosen = clusters[index][:, columns]
    return chosen[0] if (chosen >= 0).all() else None


def _dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_inverse=True) without the sort when keys are small non-negative integers
    (doc ids 0..n−1, category codes): a presence table, O(n)."""
    keys = np.asarray(keys)
    if len(keys) and keys.dtype.kind in "iu" and keys.min() >= 0 and keys.max() < 4 * len(keys) + 1024:
        present = np.zeros(int(keys.max()) + 1, dtype=bool)
        present[keys] = True
        return np.flatnonzero(present), (np.cumsum(present) - 1)[keys]
    return np.unique(keys, return_inverse=True)


def _cell(score, base_score, low, high, n_items, method, draws, n_clusters=None) -> dict[str, Any]:
    """One measured Δ (fractions): the two scores, the interval's bounds on Δ, and the resample draws
    (None where there are none) that a category average combines; n_clusters where clusters were drawn."""
    return {"score": score, "baseline_score": base_score, "delta": score - base_score, "low": low, "high": high,
            "n_items": n_items, "method": method, "draws": draws, "n_clusters": n_clusters}


def _category_cell(spec: dict[str, Any], cells: list[dict | None], settings: Settings) -> dict[str, Any] | None:
    """Gauntlet average of the tasks' cells; its interval combines the tasks' resamples draw by draw."""
    if any(c is None for c in cells):
        return None
    chance = [spec["random_baseline"].get(t, 0.0) for t in spec["tasks"]]
    score = stats.gauntlet_score([c["score"] for c in cells], chance)
    base_score = stats.gauntlet_score([c["baseline_score"] for c in cells], chance)
    low = high = draws = None
    if all(c["draws"] is not None for c in cells):
        draws = stats.gauntlet_delta([c["draws"] for c in cells], chance)
        low, high = stats.percentile_interval(draws, settings.ci)
    n_items = sum(c["n_items"] or 0 for c in cells) or None
    methods = {c["method"] for c in cells}
    method = PAIRED if methods == {PAIRED} else NO_CI if low is None else NORMAL
    return _cell(score, base_score, low, high, n_items, method, draws)


def _row(variant: str, task: str, metric: str, state: str, cell: dict[str, Any] | None) -> dict[str, Any]:
    if cell is None:
        return {"variant": variant, "task": task, "metric": metric, "state": state if state != DONE else "missing"}
    low, high = cell["low"], cell["high"]
    return {
        "variant": variant,
        "task": task,
        "metric": metric,
        "score": 100 * cell["score"],
        "baseline_score": 100 * cell["baseline_score"],
        "delta_pp": 100 * cell["delta"],
        "ci_low_pp": None if low is None else 100 * low,
        "ci_high_pp": None if high is None else 100 * high,
        "n_items": cell["n_items"],
        "significant": None if low is None else bool(low > 0 or high < 0),
        "n_clusters": cell["n_clusters"],
        "state": DONE,
        "method": cell["method"],
    }


def _score_only_row(variant: str, task: str, metric: str, score: float | None) -> dict[str, Any]:
    return {"variant": variant, "task": task, "metric": metric,
            "score": None if score is None else 100 * score, "state": DONE if score is not None else "missing"}


def _scores_table(results: StudyResults, metrics: dict[str, str], tasks: list[str], categories) -> pd.DataFrame:
    """Variant × task in percent, lm-eval's aggregate score; NaN where nothing was measured."""
    variants = results.variants
    order = ([START] if START in set(variants.variant) else []) + [v for v in variants.variant if v != START]
    chosen = results.scores[results.scores.task.map(metrics) == results.scores.metric]
    wide = chosen.drop_duplicates(["variant", "task"], keep="last").pivot(index="variant", columns="task", values="score")
    table = (100 * wide.reindex(index=pd.Index(order, name="variant"), columns=tasks)).astype(float)
    table.columns.name = None
    table.insert(0, "state", variants.set_index("variant").state.reindex(order))
    for name, spec in categories.items():
        chance = [spec["random_baseline"].get(t, 0.0) for t in spec["tasks"]]
        per_task = table[spec["tasks"]].astype(float) / 100
        table[name] = 100 * stats.gauntlet_score([per_task[t] for t in spec["tasks"]], chance)
    return table


def _power(tasks: list[str], cells: _Cells, base_done: list[str], ci: float) -> dict[str, dict]:
    """Per task: the smallest Δ a study of this size detects at the baseline's score.

    A clustered task counts its effective items, n / design effect, with the design effect estimated
    from the baseline's items: it agrees with the cluster bootstrap (whose variance it is, relative to
    the item bootstrap's), where counting clusters alone would overstate the MDE of loosely related
    items and counting items would understate that of items asking one fact.
    """
    power = {}
    for task in tasks:
        score, n_items = cells.mean_score(base_done, task), cells.items(task)
        if score is None or not n_items:
            continue
        p = min(max(score, 1 / n_items), 1 - 1 / n_items)  # at 0% or 100% the variance estimate is 0
        entry, n = {"n_items": n_items, "baseline_score": 100 * score}, n_items
        clustered = cells.design_effect(base_done, task)
        if clustered is not None:
            n = n_items / clustered[1]
            entry.update(n_clusters=clustered[0], design_effect=clustered[1], n_effective=n)
        power[task] = {**entry, "mde_pp": 100 * stats.minimum_detectable_effect(n, p, ci)}
    return power


def _header(results: StudyResults, settings: Settings, metrics, tasks, base_done) -> list[str]:
    from ablate.plan.view import human

    variants = results.variants[results.variants.variant != START]
    done = int((variants.state == DONE).sum())
    lines = [
        f"Baseline `{settings.baseline}` ({len(base_done)} seed{'s' if len(base_done) != 1 else ''} done); "
        f"{done} of {len(variants)} variants done. Source: {results.source}."
    ]
    cost = results.cost
    if cost and cost.get("total_tokens"):
        lines.append(
            f"Cost: each variant continues {human(cost['variant_tokens'])} tokens "
            f"({100 * cost['variant_tokens'] / cost['total_tokens']:.3g}% of the {human(cost['total_tokens'])}-token "
            f"full run); the {cost['variants']} variants together cost {100 * cost['study_fraction']:.3g}% of one "
            "full run's compute (6·N·D)."
        )
    by_metric: dict[str, list[str]] = {}
    for task in tasks:
        if task in metrics:
            by_metric.setdefault(metrics[task], []).append(task)
    if by_metric:
        lines.append("Metric: " + "; ".join(f"{m} ({', '.join(ts)})" for m, ts in by_metric.items()) + ".")
    return lines


# ---- rendering -------------------------------------------------------------------------------


def fmt_pp(value: float) -> str:
    """Signed, one decimal; zero without a sign."""
    text = f"{value:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def delta_text(row: pd.Series | dict) -> str:
    """'+1.2 [-0.8, +3.1] *' for a measured cell, the state for one that is not."""
    if row.get("state") != DONE or row.get("delta_pp") is None or pd.isna(row.get("delta_pp")):
        return "—" if row.get("state") in (DONE, "missing") else str(row.get("state"))
    text = fmt_pp(row["delta_pp"])
    if row.get("ci_low_pp") is None or pd.isna(row.get("ci_low_pp")):
        return text + " (no CI)"
    text += f" [{fmt_pp(row['ci_low_pp'])}, {fmt_pp(row['ci_high_pp'])}]"
    return text + " *" if row["significant"] else text


def _markdown_table(header: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def to_markdown(report: Report) -> str:
    """The report as GitHub markdown: header, scores, Δ table, footnotes. Deterministic for fixed input."""
    s = report.settings
    level = f"{100 * s.ci:g}%"
    columns = report.columns
    names = [f"{c} (cat.)" if c in report.categories else c for c in columns]
    out = [f"# {report.title}", "", *[line + "  " for line in report.header], ""]

    out += ["## Scores (%)", ""]
    score_rows = []
    for variant, row in report.scores.iterrows():
        cells = ["—" if pd.isna(row[c]) else f"{row[c]:.1f}" for c in columns]
        score_rows.append([str(variant), str(row["state"]), *cells])
    out += _markdown_table(["variant", "state", *names], score_rows, ["l", "l", *"r" * len(columns)])

    out += ["", f"## Δ vs `{s.baseline}` (percentage points, {level} CI)", ""]
    rows = report.rows[~report.rows.variant.isin([START, s.baseline])]
    delta_rows = []
    for ablation, group in rows.groupby("variant", sort=False):
        by_task = {r["task"]: r for r in group.to_dict("records")}
        delta_rows.append([str(ablation), *[delta_text(by_task[c]) if c in by_task else "—" for c in columns]])
    if delta_rows:
        out += _markdown_table(["variant", *names], delta_rows, ["l", *"r" * len(columns)])
    else:
        out.append("No variant besides the baseline.")
    out += ["", *[f"- {line}" for line in footnotes(report)]]
    return "\n".join(out).rstrip() + "\n"


def footnotes(report: Report) -> list[str]:
    """What the reader needs to trust (or distrust) the Δ table."""
    s = report.settings
    level = f"{100 * s.ci:g}%"
    seeds = (
        f"Seeds: {stats.SEED_METHOD}."
        if report.seeds > 1
        else "One seed per variant: intervals cover item sampling, not training-seed variance."
    )
    lines = [
        f"`*` the {level} interval excludes 0. Δ = variant − baseline on the same items (paired by doc_id).",
        f"Intervals: paired bootstrap over items, {s.resamples:,} resamples (seed {s.seed}). {seeds}",
    ]
    for name, spec in report.categories.items():
        chance = ", ".join(f"{t} {100 * spec['random_baseline'].get(t, 0.0):g}%" for t in spec["tasks"])
        lines.append(
            f"Category {name} (cat.): mean over its tasks of (score − chance) / (1 − chance), chance: {chance}; "
            "its interval uses the same resamples."
        )
    clustered = report.rows[report.rows.n_clusters.notna() & report.rows.task.isin(report.tasks)]
    if len(clustered):
        sizes = clustered.groupby("task", sort=False)[["n_clusters", "n_items"]].max()
        figures = ", ".join(f"{t} ({r.n_clusters:,.0f} clusters of {r.n_items:,.0f} items)"
                            for t, r in sizes.iterrows())
        lines.append(
            f"Clustered: {figures}. Items that share a cluster (the `cluster` field of the lm-eval doc) are "
            "resampled together, so the interval accounts for their correlation."
        )
    if report.power:
        figures = ", ".join(f"{t} {p['mde_pp']:.1f} pp ({_power_n(p)})" for t, p in report.power.items())
        lines.append(
            f"Power: smallest Δ detectable (two-sided {level}, 80% power, at the baseline score): {figures}. "
            "An unmarked Δ below it is uninformative, not evidence of no effect."
        )
    fallback = [f"{r.variant} × {r.task}" for r in report.rows.itertuples() if r.method == NORMAL and r.task in report.tasks]
    if fallback:
        lines.append(
            "Unpaired normal interval from lm-eval's stderr (no per-item logs to pair; run lm-eval with "
            "--log_samples): " + ", ".join(fallback) + "."
        )
    lines += [f"Note: {note}" + ("" if note.endswith(".") else ".") for note in report.notes]
    return lines


def _power_n(power: dict[str, Any]) -> str:
    """The sample size behind an MDE: items, or for a clustered task the effective items."""
    if "n_effective" not in power:
        return f"n={power['n_items']:,}"
    return (f"effective n={power['n_effective']:,.0f} of {power['n_items']:,} in {power['n_clusters']:,} clusters, "
            f"design effect {power['design_effect']:.1f}")


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Plain dicts for JSON: None (not NaN) where nothing was measured."""
    records = frame[columns].astype(object).to_dict("records")
    return [{k: (None if _missing(v) else v) for k, v in r.items()} for r in records]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def to_csv(report: Report) -> str:
    frame = report.rows[CSV_COLUMNS].copy()
    for column in ("n_items", "n_clusters"):
        frame[column] = frame[column].astype("Int64")
    frame["significant"] = frame["significant"].map({True: "true", False: "false"})
    return frame.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def to_json(report: Report) -> dict[str, Any]:
    """report.csv's rows plus the settings, scores table, power and notes."""
    scores = report.scores.reset_index()
    return {
        "title": report.title,
        "settings": {**asdict(report.settings), "seed_method": stats.SEED_METHOD, "interval": "percentile"},
        "header": report.header,
        "metrics": report.metrics,
        "categories": report.categories,
        "scores": _records(scores, list(scores.columns)),
        "rows": _records(report.rows, CSV_COLUMNS + ["state", "method"]),
        "power": report.power,
        "notes": report.notes,
    }


def write_report(report: Report, out_dir: Path, *, plot: bool = True) -> list[Path]:
    """report.md, report.csv, report.json and (with `plot`) deltas.png in `out_dir`, each written atomically."""
    paths = {name: out_dir / name for name in ("report.md", "report.csv", "report.json")}
    write_atomic(paths["report.md"], to_markdown(report))
    write_atomic(paths["report.csv"], to_csv(report))
    write_atomic(paths["report.json"], json.dumps(to_json(report), indent=2, default=_json_default) + "\n")
    written = list(paths.values())
    if plot:
        from ablate.report.heatmap import plot_deltas

        buffer = io.BytesIO()
        plot_deltas(report, buffer)
        write_atomic(out_dir / "deltas.png", buffer.getvalue())
        written.append(out_dir / "deltas.png")
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
