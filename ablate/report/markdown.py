"""report.md: the header, the scores table, the Δ table and its footnotes, then the sections that apply.

Renderers only read a built `Report`, so the CLI prints, write.py saves and a notebook displays the
same bytes. Deterministic for a fixed report.
"""

from __future__ import annotations

import pandas as pd

from ablate import stats
from ablate.report.build import Report
from ablate.report.cells import NORMAL
from ablate.report.load import START
from ablate.report.noise import SeedNoise
from ablate.report.render import ADJUSTMENT_NAMES, delta_text, markdown_table
from ablate.report.rows import records
from ablate.report.sections import (
    across_section,
    heldout_section,
    phase_section,
    suggestion_section,
    trust_section,
)
from ablate.report.trust import Power

ADJUSTMENT_MEANING = {
    "bh": "false discovery rate {alpha}: on average at most {alpha} of the flags are false",
    "holm": "family-wise error {alpha}: at most a {alpha} chance of any false flag",
}


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
        cells = ["—" if pd.isna(row[c]) else f"{100 * row[c]:.1f}" for c in columns]
        score_rows.append([str(variant), str(row["state"]), *cells])
    out += markdown_table(["variant", "state", *names], score_rows, ["l", "l", *"r" * len(columns)])

    out += ["", f"## Δ vs `{s.baseline}` (percentage points, {level} CI)", ""]
    rows = report.rows[~report.rows.variant.isin([START, *report.baselines])]
    delta_rows = []
    for ablation, group in rows.groupby("variant", sort=False):
        by_task = {r.task: r for r in records(group)}
        delta_rows.append([str(ablation), *[delta_text(by_task.get(c)) for c in columns]])
    if delta_rows:
        out += markdown_table(["variant", *names], delta_rows, ["l", *"r" * len(columns)])
    else:
        out.append("No variant besides the baseline.")
    out += ["", *[f"- {line}" for line in footnotes(report)]]
    if report.across is not None:
        out += ["", *across_section(report)]
    elif report.phases:
        out += ["", *phase_section(report)]
    if report.trust is not None:
        out += ["", *trust_section(report)]
    if report.heldout:
        out += ["", *heldout_section(report)]
    if report.suggestions:
        out += ["", *suggestion_section(report)]
    return "\n".join(out).rstrip() + "\n"


def footnotes(report: Report) -> list[str]:
    """What the reader needs to trust (or distrust) the Δ table."""
    s = report.settings
    level = f"{100 * s.ci:g}%"
    lines = [
        _flag_footnote(report),
        "Δ = variant − baseline on the same items (paired by doc_id).",
        f"Intervals: paired bootstrap over items, {s.resamples:,} resamples (seed {s.seed}). {_seed_footnote(report)}",
    ]
    for name, spec in report.categories.items():
        chance = ", ".join(f"{t} {100 * c:g}%" for t, c in zip(spec.tasks, spec.chances, strict=True))
        lines.append(
            f"Category {name} (cat.): mean over its tasks of (score − chance) / (1 − chance), chance: {chance}; "
            "its interval uses the same resamples."
        )
    clustered = report.rows[report.rows.n_clusters.notna() & report.rows.task.isin(report.tasks)]
    if len(clustered):
        sizes = clustered.groupby("task", sort=False)[["n_clusters", "n_items"]].max()
        figures = ", ".join(
            f"{t!s} ({r.n_clusters:,.0f} clusters of {r.n_items:,.0f} items)" for t, r in sizes.iterrows()
        )
        lines.append(
            f"Clustered: {figures}. Items that share a cluster (the `cluster` field of the lm-eval doc) are "
            "resampled together, so the interval accounts for their correlation."
        )
    if report.power:
        figures = ", ".join(f"{t} {100 * p.mde:.1f} pp ({_power_n(p)})" for t, p in report.power.items())
        lines.append(
            f"Power: smallest Δ detectable (two-sided {level}, 80% power, at the baseline score): {figures}. "
            "An unmarked Δ below it is uninformative, not evidence of no effect."
        )
    fallback = [
        f"{r.variant!s} × {r.task!s}" for r in records(report.rows) if r.method == NORMAL and r.task in report.tasks
    ]
    if fallback:
        lines.append(
            "Unpaired normal interval from lm-eval's stderr (no per-item logs to pair; run lm-eval with "
            "--log_samples): " + ", ".join(fallback) + "."
        )
    lines += [f"Note: {note}" + ("" if note.endswith(".") else ".") for note in report.notes]
    return lines


def _seed_footnote(report: Report) -> str:
    """Whether the intervals include training-seed noise, from how many replicates, and what it is."""
    if not report.seed_noise:
        return (
            "No replicate run (one training run per variant): intervals and `*` cover item sampling only, so "
            "every flag is conditional on this one run; another seed may not repeat it. Plan with "
            "ablations.baseline_seeds: 2 (the default) or borrow a study's with --seed-noise-from."
        )
    borrowed = f", pooled with study {report.settings.seed_noise_from}'s" if report.settings.seed_noise_from else ""
    figures = ", ".join(
        f"{column}{'' if phase is None else '@' + phase} {_noise_text(n, column)}"
        for (phase, column), n in report.seed_noise.items()
    )
    return (
        f"Training-seed noise is in every interval and p-value: {stats.SEED_METHOD}. Seed SD (degrees of freedom) "
        f"from {report.replicates} replicate run{'s' if report.replicates != 1 else ''}{borrowed}: {figures}. "
        "With few degrees of freedom the t term is wide on purpose: the SD itself is uncertain. A task's SD is "
        "never below what its items' own flips between the replicates show (its items' floor), which "
        "two runs that agree by chance cannot hide."
    )


def _noise_text(noise: SeedNoise, column: str) -> str:
    value = f"{noise.sd:.4f} nats" if column.startswith("loss:") else f"{100 * noise.sd:.1f} pp"
    floored = ", its items' floor" if 0 < noise.floor >= noise.variance else ""
    return f"{value} ({noise.df:.3g} df{floored})"


def _flag_footnote(report: Report) -> str:
    """What `*` means: how many cells were tested together, under which adjustment, at which level."""
    s = report.settings
    alpha = f"{100 * (1 - s.ci):g}%"
    tested = report.rows[report.rows.p_value.notna()]
    raw = int((tested.p_value < 1 - s.ci).sum())
    flagged = sum(flag is True for flag in tested.significant_adjusted)  # an object column: True, False or NaN
    if s.adjust == "none":
        return f"`*` p < {1 - s.ci:g}, unadjusted (the interval excludes 0): {flagged} of {len(tested)} cells."
    meaning = ADJUSTMENT_MEANING[s.adjust].format(alpha=alpha)
    return (
        f"`*` significant after {ADJUSTMENT_NAMES[s.adjust]} adjustment over all {len(tested)} Δ cells tested "
        f"({meaning}): {flagged} flagged; {raw} had p < {1 - s.ci:g} before adjustment. Intervals are per "
        "cell, unadjusted (`--adjust none|holm|bh`)."
    )


def _power_n(power: Power) -> str:
    """The sample size behind an MDE: items, or for a clustered task the effective items."""
    if power.n_effective is None or power.n_clusters is None or power.design_effect is None:
        return f"n={power.n_items:,}"
    return (
        f"effective n={power.n_effective:,.0f} of {power.n_items:,} in {power.n_clusters:,} clusters, "
        f"design effect {power.design_effect:.1f}"
    )
