"""The report as data: scores, Δ vs baseline with intervals, power and notes, from loaded results.

`build_report` is pure (seeded randomness, no clock, no I/O): render.py turns its `Report` into text
and write.py writes the files. Never a number that was not measured: variants that are pending, failed
or stale appear with their state and no figures. The intervals of each cell come from cells.py.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.errors import AblateError
from ablate.plan.build import split_phase, with_phase
from ablate.report import noise
from ablate.report.cells import NO_CI, NORMAL, PAIRED, Cell, Cells, delta_cell, with_seed_noise
from ablate.report.heldout import LOSS_PREFIX, LossCell, loss_cells, loss_table
from ablate.report.load import DONE, START, StudyResults
from ablate.report.trust import PhaseAgreement, Trust, phase_agreement, trust

CSV_COLUMNS = [
    "variant",
    "task",
    "metric",
    "score",
    "baseline_score",
    "delta_pp",
    "ci_low_pp",
    "ci_high_pp",
    "n_items",
    "significant",
    "p_value",
    "p_adjusted",
    "significant_adjusted",
    "n_clusters",
    "sign_kept",
    "seed_sd_pp",
    "seed_df",
]
ROW_COLUMNS = [*CSV_COLUMNS, "state", "method"]  # Report.rows: report.csv plus how each cell reads
GAUNTLET = "gauntlet"  # the metric name of a category row
_STATE_ORDER = ("failed", "stale", "no results", "evaluating", "training", "pending")  # how a not-done ablation reads


@dataclass(frozen=True)
class Settings:
    """What a report was asked for; recorded in report.json so the figures can be reproduced."""

    baseline: str = "baseline"
    metric: str | None = None  # None: acc_norm where a task has it, else acc, else its first metric
    ci: float = 0.95
    resamples: int = 10_000
    seed: int = 0
    adjust: str = "bh"  # over every Δ cell of the table: bh (false discovery rate), holm (family-wise), none
    detect_pp: float = 2.0  # the Δ the trust section sizes seeds and items for (`--detect`)
    seed_noise_from: str | None = None  # a study whose replicates add to this one's seed noise


@dataclass
class Report:
    title: str
    settings: Settings
    header: list[str]
    tasks: list[str]
    categories: dict[str, dict[str, Any]]
    metrics: dict[str, str]  # task → the metric reported
    scores: pd.DataFrame  # one row per variant (start first): "state", then percent per task and category
    rows: pd.DataFrame  # ROW_COLUMNS: one row per ablation × task/category
    power: dict[str, dict[str, float]]  # task → n_items, baseline_score (%), mde_pp
    notes: list[str]
    trust: Trust | None  # seed noise, SNR, seeds/items needed, seed-half consistency; None with one seed
    baselines: list[str]  # the baseline ablations: `baseline`, or one per phase (baseline@p10, ...)
    phases: list[str]  # a phase study's phase labels, shortest first (p5, p10, ...); empty otherwise
    phase_agreement: list[PhaseAgreement]  # per task, each shorter phase's order against the longest's
    suggestions: list[dict[str, Any]]  # `ablate suggest`'s proposals, each with its measured row (or None)
    heldout: list[LossCell]  # with eval.heldout: each baseline's loss per domain, each ablation's Δ
    seed_noise: dict[noise.Key, noise.SeedNoise]  # (phase, column) → the seed noise every Δ there includes
    replicates: int  # replicate runs it was read from: done seeds beyond each ablation's first

    @property
    def columns(self) -> list[str]:
        return self.tasks + list(self.categories)


def build_report(
    results: StudyResults, settings: Settings = Settings(), noise_from: StudyResults | None = None
) -> Report:
    """Scores, attribution rows with intervals, power and notes for every variant of `results`.
    `noise_from`: the study named by settings.seed_noise_from, whose replicates pool with these."""
    if not 0 < settings.ci < 1:
        raise AblateError(f"--ci {settings.ci}: use a level between 0 and 1, e.g. 0.95")
    if settings.resamples < 100:
        raise AblateError(f"--bootstrap {settings.resamples}: use at least 100 resamples (10,000 for a final table)")
    if not settings.detect_pp > 0:
        raise AblateError(f"--detect {settings.detect_pp}: use a positive Δ in percentage points, e.g. 2")
    if settings.adjust not in stats.ADJUSTMENTS:
        raise AblateError(f"--adjust {settings.adjust}: use one of {', '.join(stats.ADJUSTMENTS)}")
    variants = results.variants
    if settings.baseline not in {split_phase(a)[0] for a in variants.ablation}:
        choices = sorted({split_phase(a)[0] for a in variants.ablation} - {START})
        raise AblateError(f"--baseline {settings.baseline}: no such variant; choose from {choices}")
    notes = list(results.notes)
    metrics, tasks, categories = _columns(results, settings.metric, notes)
    scores = _scores_table(results, metrics, tasks, categories)
    seed_noise = _seed_noise(results, scores)
    if noise_from is not None:
        seed_noise = noise.combine(seed_noise, _seed_noise(noise_from, score_table(noise_from, settings.metric)))
    losses_measured = sorted({c for _, c in seed_noise if c.startswith(LOSS_PREFIX)})
    seed_noise = noise.moderated(seed_noise, [tasks, losses_measured])
    seed_noise = noise.with_categories(seed_noise, categories, tasks)
    cells = Cells(results, metrics, ci=settings.ci, resamples=settings.resamples, seed=settings.seed, noise=seed_noise)

    named = [a for a in dict.fromkeys(variants.ablation) if a != START]
    phases = sorted({label for a in named if (label := split_phase(a)[1])}, key=lambda label: float(label[1:]))
    base_of = {a: with_phase(settings.baseline, split_phase(a)[1]) for a in named}  # each ablation's baseline
    baselines = list(dict.fromkeys(base_of[a] for a in named if split_phase(a)[0] == settings.baseline))
    ablations = [a for a in named if a not in baselines]
    base_done: dict[str, list[str]] = {}
    for base in dict.fromkeys(base_of.values()):
        members = variants[variants.ablation == base]
        base_done[base] = list(members[members.state == DONE].variant)
        if not base_done[base]:
            notes.append(f"baseline `{base}` is {_ablation_state(members)}: no deltas until it is done")
    main = with_phase(settings.baseline, phases[-1] if phases else None)  # the longest phase's baseline
    rows: list[dict[str, Any]] = []
    for base in baselines:
        for task in tasks:
            score = cells.mean_score(base_done[base], task)
            rows.append(_score_only_row(base, task, metrics.get(task, ""), score))
    states, jobs = _ablation_states(variants, ablations, {a: bool(base_done[base_of[a]]) for a in ablations}, notes)
    computed = cells.all_deltas(jobs, {a: base_done[base_of[a]] for a in jobs}, tasks)
    losses, loss_notes = loss_cells(
        results.heldout,
        {b: base_done[b] for b in baselines if base_done[b]},
        jobs,
        {a: base_done[base_of[a]] for a in jobs},
        ci=settings.ci,
        resamples=settings.resamples,
        seed=settings.seed,
        noise=seed_noise,
    )
    notes += loss_notes
    for ablation in ablations:
        state = states[ablation]
        task_cells: dict[str, Cell | None] = {}
        for task in tasks:
            cell, cell_notes = computed.get((ablation, task), (None, []))
            notes += cell_notes
            task_cells[task] = cell
            rows.append(_row(ablation, task, metrics.get(task, ""), state, cell))
        for name, spec in categories.items():
            found = seed_noise.get((split_phase(ablation)[1], name))
            cell = None
            if state == DONE:
                seeds = (len(jobs[ablation]), len(base_done[base_of[ablation]]))
                cells_of = [task_cells[t] for t in spec["tasks"]]
                cell = _category_cell(f"{ablation} × {name}", spec, cells_of, settings, found, seeds)
            rows.append(_row(ablation, name, GAUNTLET, state, cell))
    start_rows = [
        _score_only_row(START, task, metrics.get(task, ""), scores[task].loc[START] / 100)
        for task in tasks
        if START in scores.index and not math.isnan(scores[task].loc[START])
    ]
    table = _adjusted(pd.DataFrame(start_rows + rows, columns=ROW_COLUMNS), settings)
    power = _power(tasks, cells, base_done.get(main, []), settings.ci)
    seen = trust(
        results,
        scores,
        cells,
        table,
        power,
        baseline=main,
        phase=phases[-1] if phases else None,
        tasks=tasks,
        ci=settings.ci,
        resamples=settings.resamples,
        seed=settings.seed,
        adjust=settings.adjust,
        detect_pp=settings.detect_pp,
    )
    return Report(
        title=f"Ablation report: {results.name}",
        settings=settings,
        header=_header(results, settings, metrics, tasks, main, base_done.get(main, [])),
        tasks=tasks,
        categories=categories,
        metrics=metrics,
        scores=scores,
        rows=table,
        power=power,
        notes=notes,
        trust=seen,
        baselines=baselines,
        phases=phases,
        phase_agreement=phase_agreement(
            results, cells, tasks, phases, resamples=settings.resamples, seed=settings.seed, ci=settings.ci
        ),
        suggestions=[_measured(p, table, losses, set(variants.ablation)) for p in results.suggestions.values()],
        heldout=losses,
        seed_noise=seed_noise,
        replicates=sum(len(group) - 1 for groups in noise.replicates(variants).values() for group in groups),
    )


def _seed_noise(results: StudyResults, scores: pd.DataFrame) -> dict[noise.Key, noise.SeedNoise]:
    """Seed noise of every task, category and held-out domain, from the study's replicate runs."""
    columns = [c for c in scores.columns if c != "state"]
    losses = pd.DataFrame.from_dict(loss_table(results.heldout, list(results.heldout)), orient="index")
    values = pd.concat([scores[columns].astype(float) / 100, losses], axis=1)
    return noise.estimate(values, results.variants)


def score_table(results: StudyResults, metric: str | None = None) -> pd.DataFrame:
    """The report's score table alone (percent, one row per variant, tasks then categories), without
    the intervals: what `ablate fit` and `ablate suggest` read."""
    return _scores_table(results, *_columns(results, metric, []))


def _columns(
    results: StudyResults, metric: str | None, notes: list[str]
) -> tuple[dict[str, str], list[str], dict[str, dict[str, Any]]]:
    """The metric of each task, the tasks shown (unmeasured ones too, as "—") and the categories whose
    tasks are all shown."""
    metrics = _choose_metrics(results, metric, notes)
    measured = set(results.scores.task)
    tasks = [t for t in results.tasks if t in metrics or t not in measured]
    categories = {name: spec for name, spec in results.categories.items() if set(spec["tasks"]) <= set(tasks)}
    return metrics, tasks, categories


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


def _ablation_states(
    variants: pd.DataFrame, ablations: list[str], base_done: dict[str, bool], notes: list[str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each ablation's state (done where any seed is done and its baseline is), and ablation → done
    seeds for those with numbers."""
    states: dict[str, str] = {}
    jobs: dict[str, list[str]] = {}
    for ablation in ablations:
        members = variants[variants.ablation == ablation]
        done = list(members[members.state == DONE].variant)
        states[ablation] = _ablation_state(members) if not done else DONE if base_done[ablation] else "no baseline"
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


def _category_cell(
    key: str,
    spec: dict[str, Any],
    task_cells: list[Cell | None],
    settings: Settings,
    seed_noise: noise.SeedNoise | None,
    seeds: tuple[int, int],
) -> Cell | None:
    """Gauntlet average of the tasks' cells; its interval combines the tasks' item resamples draw by
    draw, then adds the category score's own seed term (a seed moves a run's tasks together, so the
    tasks' seed terms are not independent and are not summed)."""
    cells = [c for c in task_cells if c is not None]
    if len(cells) < len(task_cells):
        return None
    chance = [spec["random_baseline"].get(t, 0.0) for t in spec["tasks"]]
    score = stats.gauntlet_score([c["score"] for c in cells], chance)
    base_score = stats.gauntlet_score([c["baseline_score"] for c in cells], chance)
    low = high = draws = None
    if all(c["item_draws"] is not None for c in cells):
        draws = stats.gauntlet_delta([c["item_draws"] for c in cells], chance)
        low, high = stats.percentile_interval(draws, settings.ci)
    n_items = sum(c["n_items"] or 0 for c in cells) or None
    methods = {c["method"] for c in cells}
    method = PAIRED if methods == {PAIRED} else NO_CI if low is None else NORMAL
    cell = delta_cell(score, base_score, low, high, n_items, method, draws)
    if draws is None or seed_noise is None:
        return cell
    rng = np.random.default_rng([settings.seed, zlib.crc32(key.encode())])
    return with_seed_noise(cell, seed_noise, *seeds, settings.ci, rng)


def _row(variant: str, task: str, metric: str, state: str, cell: Cell | None) -> dict[str, Any]:
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
        "p_value": cell["p_value"],
        "n_clusters": cell["n_clusters"],
        "sign_kept": None if cell["draws"] is None else stats.sign_kept(cell["draws"], cell["delta"]),
        "seed_sd_pp": None if cell["seed_sd"] is None else 100 * cell["seed_sd"],
        "seed_df": cell["seed_df"],
        "state": DONE,
        "method": cell["method"],
    }


def _adjusted(table: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """p_adjusted and significant_adjusted over the family of every Δ cell that has a p-value (tasks
    and categories, every ablation): the table is read as a whole, so it is tested as one."""
    tested = table.p_value.notna()
    adjusted = stats.adjust_p_values(table.p_value[tested].to_numpy(dtype=float), settings.adjust)
    table["p_adjusted"] = pd.Series(adjusted, index=table.index[tested], dtype=float).reindex(table.index)
    flags = pd.Series([bool(p < 1 - settings.ci) for p in adjusted], index=table.index[tested], dtype=object)
    table["significant_adjusted"] = flags.reindex(table.index).astype(object)
    return table


def _measured(
    proposal: dict[str, Any], table: pd.DataFrame, losses: list[LossCell], planned: set[str]
) -> dict[str, Any]:
    """A suggestion with the measured Δ of its objective (Σ weight · Δ target) for the ablation that
    measures it, once every target has one, and whether the study's plan still has it.

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
        row = table[(table.variant == ablation) & (table.task == target)]
        if len(row) and row.iloc[0]["state"] == DONE and pd.notna(row.iloc[0]["delta_pp"]):
            found = row.iloc[0]
            terms[target] = (float(found["delta_pp"]), _number(found["ci_low_pp"]), _number(found["ci_high_pp"]))
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


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _score_only_row(variant: str, task: str, metric: str, score: float | None) -> dict[str, Any]:
    return {
        "variant": variant,
        "task": task,
        "metric": metric,
        "score": None if score is None else 100 * score,
        "state": DONE if score is not None else "missing",
    }


def _scores_table(
    results: StudyResults, metrics: dict[str, str], tasks: list[str], categories: dict[str, dict[str, Any]]
) -> pd.DataFrame:
    """Variant × task in percent, lm-eval's aggregate score; NaN where nothing was measured."""
    variants = results.variants
    order = ([START] if START in set(variants.variant) else []) + [v for v in variants.variant if v != START]
    chosen = results.scores[results.scores.task.map(metrics) == results.scores.metric]
    wide = chosen.drop_duplicates(["variant", "task"], keep="last").pivot(
        index="variant", columns="task", values="score"
    )
    table = (100 * wide.reindex(index=pd.Index(order, name="variant"), columns=tasks)).astype(float)
    table.columns.name = None
    table.insert(0, "state", variants.set_index("variant").state.reindex(order))
    for name, spec in categories.items():
        chance = [spec["random_baseline"].get(t, 0.0) for t in spec["tasks"]]
        per_task = table[spec["tasks"]].astype(float) / 100
        table[name] = 100 * stats.gauntlet_score([per_task[t] for t in spec["tasks"]], chance)
    return table


def _power(tasks: list[str], cells: Cells, base_done: list[str], ci: float) -> dict[str, dict[str, float]]:
    """Per task: the smallest Δ a study of this size detects at the baseline's score.

    A clustered task counts its effective items, n / design effect, with the design effect estimated
    from the baseline's items: it agrees with the cluster bootstrap (whose variance it is, relative to
    the item bootstrap's), where counting clusters alone would overstate the MDE of loosely related
    items and counting items would understate that of items asking one fact.
    """
    power: dict[str, dict[str, float]] = {}
    for task in tasks:
        score, n_items = cells.mean_score(base_done, task), cells.items(task)
        if score is None or not n_items:
            continue
        p = min(max(score, 1 / n_items), 1 - 1 / n_items)  # at 0% or 100% the variance estimate is 0
        entry: dict[str, float] = {"n_items": n_items, "baseline_score": 100 * score}
        n: float = n_items
        clustered = cells.design_effect(base_done, task)
        if clustered is not None:
            n = n_items / clustered[1]
            entry.update(n_clusters=clustered[0], design_effect=clustered[1], n_effective=n)
        power[task] = {**entry, "mde_pp": 100 * stats.minimum_detectable_effect(n, p, ci)}
    return power


def _header(
    results: StudyResults,
    settings: Settings,
    metrics: dict[str, str],
    tasks: list[str],
    baseline: str,
    base_done: list[str],
) -> list[str]:
    from ablate.plan.view import human

    variants = results.variants[results.variants.variant != START]
    done = int((variants.state == DONE).sum())
    lines = [
        f"Baseline `{baseline}` ({len(base_done)} seed{'s' if len(base_done) != 1 else ''} done); "
        f"{done} of {len(variants)} variants done. Source: {results.source}."
    ]
    cost = results.cost
    if cost and cost.get("total_tokens"):
        total, by_phase = cost["total_tokens"], cost.get("tokens_by_phase")
        if by_phase:  # a phase study: each phase its own length
            each = " or ".join(f"{human(tokens)} tokens (@{label})" for label, tokens in by_phase.items())
            length = f"{each} of the {human(total)}-token full run"
        else:
            share = 100 * cost["variant_tokens"] / total
            length = f"{human(cost['variant_tokens'])} tokens ({share:.3g}% of the {human(total)}-token full run)"
        replicates = cost.get("replicates") or 0
        which = "a baseline replicate" if replicates == 1 else "baseline replicates"
        extra = f" ({replicates} of them {which}, for seed noise)" if replicates else ""
        lines.append(
            f"Cost: each variant continues {length}; the {cost['variants']} variants{extra} together cost "
            f"{100 * cost['study_fraction']:.3g}% of one full run's compute (6·N·D)."
        )
    by_metric: dict[str, list[str]] = {}
    for task in tasks:
        if task in metrics:
            by_metric.setdefault(metrics[task], []).append(task)
    if by_metric:
        lines.append("Metric: " + "; ".join(f"{m} ({', '.join(ts)})" for m, ts in by_metric.items()) + ".")
    return lines
