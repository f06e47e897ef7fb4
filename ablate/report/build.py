"""The report as data: scores, Δ vs baseline with intervals, power and notes, from loaded results.

`build_report` is pure (seeded randomness, no clock, no I/O): markdown.py and records.py turn its
`Report` into text and write.py writes the files. Never a number that was not measured: variants that are
pending, failed, stale or damaged appear with their state and no figures. scores.py makes the score table,
cells.py each cell's interval, noise.py the seed noise they include, rows.py the Δ table's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from ablate import stats
from ablate.errors import AblateError
from ablate.names import VariantName, label_value
from ablate.recipe import Category
from ablate.report import noise
from ablate.report.cells import Cells, DeltaCell
from ablate.report.heldout import LossCell, loss_cells, loss_table
from ablate.report.load import DONE, START, StudyResults
from ablate.report.rows import (
    GAUNTLET,
    ablation_state,
    ablation_states,
    category_cell,
    delta_row,
    row_table,
    score_row,
)
from ablate.report.scores import scores_by_variant, shown_columns
from ablate.report.suggestions import MeasuredSuggestion, with_measured
from ablate.report.trust import PhaseAgreement, Power, Trust, phase_agreement, trust

if TYPE_CHECKING:
    from ablate.report.ladder import Across


@dataclass(frozen=True)
class Settings:
    """What a report was asked for; recorded in report.json so the figures can be reproduced."""

    baseline: str = "baseline"
    metric: str | None = None  # None: each task's headline metric (ablate.choices.headline_metric)
    ci: float = 0.95
    resamples: int = 10_000
    seed: int = 0
    adjust: str = "bh"  # over every Δ cell of the table: bh (false discovery rate), holm (family-wise), none
    detect_pp: float = 2.0  # the Δ the trust section sizes seeds and items for (`--detect`)
    seed_noise_from: str | None = None  # a study whose replicates add to this one's seed noise


@dataclass(frozen=True)
class Report:
    """A built report, what every renderer reads; `with_across` adds a ladder's conclusions across scale."""

    title: str
    settings: Settings
    header: list[str]
    tasks: list[str]
    categories: dict[str, Category]  # the categories shown: the recipe's whose tasks are all shown
    metrics: dict[str, str]  # task → the metric reported
    scores: pd.DataFrame  # one row per variant (start first): "state", then fractions per task and category
    rows: pd.DataFrame  # rows.ROW_COLUMNS, fractions: one row per ablation × task/category
    power: dict[str, Power]  # task → the smallest Δ it detects at the baseline's score
    notes: list[str]
    trust: Trust | None  # seed noise, SNR, seeds/items needed, seed-half consistency; None with one seed
    baselines: list[str]  # the baseline ablations: `baseline`, or one per phase (baseline@p10, ...)
    phases: list[str]  # a phase study's phase labels, shortest first (p5, p10, ...); empty otherwise
    phase_agreement: list[PhaseAgreement]  # per task, each shorter phase's order against the longest's
    suggestions: list[MeasuredSuggestion]  # `ablate suggest`'s proposals, each with what was measured of it
    heldout: list[LossCell]  # with eval.heldout: each baseline's loss per domain, each ablation's Δ
    seed_noise: dict[noise.Key, noise.SeedNoise]  # (phase, column) → the seed noise every Δ there includes
    replicates: int  # replicate runs it was read from: done seeds beyond each ablation's first
    across: Across | None = None  # a ladder's: each removal's Δ at every rung and at the target (ladder.py)

    def with_across(self, across: Across | None) -> Report:
        """This report with a ladder's conclusions across scale (ablate.analyze.conclusions.across)."""
        return replace(self, across=across)

    @property
    def columns(self) -> list[str]:
        return self.tasks + list(self.categories)

    @property
    def flagged(self) -> set[tuple[str, str, bool]]:
        """The table's `*` cells, significant after the adjustment: (ablation, task or category, Δ > 0)."""
        hits = self.rows[self.rows.significant_adjusted.eq(True)]
        return {(str(v), str(t), bool(d > 0)) for v, t, d in zip(hits.variant, hits.task, hits.delta, strict=True)}


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
    arms = {VariantName.parse_ablation(a).base for a in variants.ablation}
    if settings.baseline not in arms:
        choices = sorted(arms - {START})
        raise AblateError(f"--baseline {settings.baseline}: no such variant; choose from {choices}")
    notes = list(results.notes)
    metrics, tasks, categories = shown_columns(results, settings.metric, notes)
    scores = scores_by_variant(results, metrics, tasks, categories)
    items = Cells.read(results, metrics, ci=settings.ci, resamples=settings.resamples, seed=settings.seed)
    borrowed = None
    if noise_from is not None:
        their_items = Cells.read(noise_from, metrics, ci=settings.ci, resamples=settings.resamples, seed=settings.seed)
        their_scores = scores_by_variant(noise_from, *shown_columns(noise_from, settings.metric, []))
        borrowed = _measured(noise_from, their_scores, their_items, tasks)
    seed_noise = noise.seed_noise(_measured(results, scores, items, tasks), tasks, categories, borrowed)
    cells = items.with_noise(seed_noise)  # the items did not need it; every Δ from here on adds it

    named = {a: VariantName.parse_ablation(a) for a in dict.fromkeys(variants.ablation) if a != START}
    phases = sorted({n.label for n in named.values() if n.label}, key=label_value)
    base_of = {a: str(VariantName(settings.baseline, n.label)) for a, n in named.items()}  # each one's baseline
    baselines = list(dict.fromkeys(base_of[a] for a, n in named.items() if n.base == settings.baseline))
    ablations = [a for a in named if a not in baselines]
    base_done: dict[str, list[str]] = {}
    for base in dict.fromkeys(base_of.values()):
        members = variants[variants.ablation == base]
        base_done[base] = list(members[members.state == DONE].variant)
        if not base_done[base]:
            notes.append(f"baseline `{base}` is {ablation_state(members)}: no deltas until it is done")
    main = str(VariantName(settings.baseline, phases[-1] if phases else None))  # the longest phase's baseline
    rows: list[dict[str, Any]] = []
    for base in baselines:
        for task in tasks:
            score = cells.mean_score(base_done[base], task)
            rows.append(score_row(base, task, metrics.get(task, ""), score))
    states, jobs = ablation_states(variants, ablations, {a: bool(base_done[base_of[a]]) for a in ablations}, notes)
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
        task_cells: dict[str, DeltaCell | None] = {}
        for task in tasks:
            cell, cell_notes = computed.get((ablation, task), (None, []))
            notes += cell_notes
            task_cells[task] = cell
            rows.append(delta_row(ablation, task, metrics.get(task, ""), state, cell))
        for name, spec in categories.items():
            found = seed_noise.get((named[ablation].label, name))
            cell = None
            if state == DONE:
                seeds = (len(jobs[ablation]), len(base_done[base_of[ablation]]))
                cells_of = [task_cells[t] for t in spec.tasks]
                key = f"{ablation} × {name}"
                cell = category_cell(key, spec, cells_of, found, seeds, ci=settings.ci, seed=settings.seed)
            rows.append(delta_row(ablation, name, GAUNTLET, state, cell))
    start_rows = [
        score_row(START, task, metrics.get(task, ""), scores[task].loc[START])
        for task in tasks
        if START in scores.index and not math.isnan(scores[task].loc[START])
    ]
    table = row_table(start_rows + rows, settings.adjust, settings.ci)
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
        suggestions=[with_measured(p, table, losses, set(variants.ablation)) for p in results.suggestions.values()],
        heldout=losses,
        seed_noise=seed_noise,
        replicates=sum(len(group) - 1 for groups in noise.replicates(variants).values() for group in groups),
    )


def _measured(results: StudyResults, scores: pd.DataFrame, cells: Cells, tasks: list[str]) -> noise.Measured:
    """Every task's, category's and held-out domain's figure per variant, and each task's floor from
    its replicates' items (Cells.flip_variance): what seed noise is read from."""
    columns = [c for c in scores.columns if c != "state"]
    losses = pd.DataFrame.from_dict(loss_table(results.heldout, list(results.heldout)), orient="index")
    floors = {
        (label, task): noise.SeedNoise(*floor)
        for label, groups in noise.replicates(results.variants).items()
        for task in tasks
        if (floor := cells.flip_variance(task, groups)) is not None
    }
    # Through percent and back: the arithmetic the published seed noise was first made with, kept so
    # that every figure keeps its last bits.
    published = 100 * scores[columns].astype(float) / 100
    return noise.Measured(published, losses, results.variants, floors)


def _power(tasks: list[str], cells: Cells, base_done: list[str], ci: float) -> dict[str, Power]:
    """Per task: the smallest Δ a study of this size detects at the baseline's score.

    A clustered task counts its effective items, n / design effect, with the design effect estimated
    from the baseline's items: it agrees with the cluster bootstrap (whose variance it is, relative to
    the item bootstrap's), where counting clusters alone would overstate the MDE of loosely related
    items and counting items would understate that of items asking one fact.
    """
    power: dict[str, Power] = {}
    for task in tasks:
        score, n_items = cells.mean_score(base_done, task), cells.items(task)
        if score is None or not n_items:
            continue
        p = min(max(score, 1 / n_items), 1 - 1 / n_items)  # at 0% or 100% the variance estimate is 0
        clustered = cells.design_effect(base_done, task)
        if clustered is None:
            power[task] = Power(n_items, score, stats.minimum_detectable_effect(n_items, p, ci))
            continue
        n = n_items / clustered[1]
        mde = stats.minimum_detectable_effect(n, p, ci)
        power[task] = Power(n_items, score, mde, n_clusters=clustered[0], design_effect=clustered[1], n_effective=n)
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
    if cost and cost.total_tokens:
        total, by_phase = cost.total_tokens, cost.tokens_by_phase
        if by_phase:  # a phase study: each phase its own length
            each = " or ".join(f"{human(tokens)} tokens (@{label})" for label, tokens in by_phase.items())
            length = f"{each} of the {human(total)}-token full run"
        else:
            share = 100 * cost.variant_tokens / total
            length = f"{human(cost.variant_tokens)} tokens ({share:.3g}% of the {human(total)}-token full run)"
        replicates = cost.replicates
        which = "a baseline replicate" if replicates == 1 else "baseline replicates"
        extra = f" ({replicates} of them {which}, for seed noise)" if replicates else ""
        lines.append(
            f"Cost: each variant continues {length}; the {cost.variants} variants{extra} together cost "
            f"{100 * cost.study_fraction:.3g}% of one full run's compute (6·N·D)."
        )
    by_metric: dict[str, list[str]] = {}
    for task in tasks:
        if task in metrics:
            by_metric.setdefault(metrics[task], []).append(task)
    if by_metric:
        lines.append("Metric: " + "; ".join(f"{m} ({', '.join(ts)})" for m, ts in by_metric.items()) + ".")
    return lines
