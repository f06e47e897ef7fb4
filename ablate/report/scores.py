"""The score table: which metric each task reports, which tasks and categories a report shows, and every
variant's score on them (fractions; in percent for `ablate fit` and `ablate suggest`). Pure."""

from __future__ import annotations

import pandas as pd

from ablate import stats
from ablate.choices import headline_metric
from ablate.errors import AblateError
from ablate.recipe import Category
from ablate.report.load import START, StudyResults


def score_table(results: StudyResults, metric: str | None = None) -> pd.DataFrame:
    """The report's score table alone in percent (one row per variant, tasks then categories), without
    the intervals: what `ablate fit` and `ablate suggest` read."""
    table = scores_by_variant(results, *shown_columns(results, metric, []))
    columns = [c for c in table.columns if c != "state"]
    table[columns] = 100 * table[columns]
    return table


def shown_columns(
    results: StudyResults, metric: str | None, notes: list[str]
) -> tuple[dict[str, str], list[str], dict[str, Category]]:
    """The metric of each task, the tasks shown (unmeasured ones too, as "—") and the categories whose
    tasks are all shown."""
    metrics = _choose_metrics(results, metric, notes)
    measured = set(results.scores.task)
    tasks = [t for t in results.tasks if t in metrics or t not in measured]
    categories = {name: spec for name, spec in results.categories.items() if set(spec.tasks) <= set(tasks)}
    return metrics, tasks, categories


def _choose_metrics(results: StudyResults, wanted: str | None, notes: list[str]) -> dict[str, str]:
    """Task → metric: `wanted` (or a filtered form of it), else its headline metric (ablate.choices)."""
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
            chosen[task] = headline_metric(available)
    if wanted and not chosen and len(results.scores):
        known = sorted(set(results.scores.metric))
        raise AblateError(f"--metric {wanted}: no task reports it; available: {', '.join(known)}")
    return chosen


def scores_by_variant(
    results: StudyResults, metrics: dict[str, str], tasks: list[str], categories: dict[str, Category]
) -> pd.DataFrame:
    """Variant × task (then category) in fractions, lm-eval's aggregate score and each category's
    gauntlet score; NaN where nothing was measured."""
    variants = results.variants
    order = ([START] if START in set(variants.variant) else []) + [v for v in variants.variant if v != START]
    chosen = results.scores[results.scores.task.map(metrics) == results.scores.metric]
    wide = chosen.drop_duplicates(["variant", "task"], keep="last").pivot(
        index="variant", columns="task", values="score"
    )
    table = wide.reindex(index=pd.Index(order, name="variant"), columns=tasks).astype(float)
    table.columns.name = None
    table.insert(0, "state", variants.set_index("variant").state.reindex(order))
    for name, spec in categories.items():
        table[name] = stats.gauntlet_score([table[t] for t in spec.tasks], spec.chances)
    return table
