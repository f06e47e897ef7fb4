"""The report as text: report.md (scores, Δ table, footnotes), report.csv and report.json's content.

Renderers only read a built `Report`, so the CLI prints, write.py saves and a notebook displays the
same bytes. Deterministic for a fixed report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import asdict
from typing import Any

import pandas as pd

from ablate import stats
from ablate.plan.build import split_phase
from ablate.report.build import Report
from ablate.report.cells import NORMAL
from ablate.report.heldout import LOSS_PREFIX, LossCell
from ablate.report.load import DONE, START
from ablate.report.noise import SeedNoise
from ablate.report.rows import CSV_COLUMNS, ROW_COLUMNS
from ablate.report.trust import STABLE


def fmt_signed(value: float, digits: int) -> str:
    """Signed, `digits` decimals; zero without a sign."""
    text = f"{value:+.{digits}f}"
    return text.lstrip("+-") if float(text) == 0 else text


def fmt_pp(value: float) -> str:
    """Percentage points: signed, one decimal."""
    return fmt_signed(value, 1)


def delta_text(row: pd.Series | dict) -> str:
    """'+1.2 [-0.8, +3.1] *' for a measured cell (`*`: significant after the table's adjustment),
    the state for one that is not."""
    if row.get("state") != DONE or row.get("delta_pp") is None or pd.isna(row.get("delta_pp")):
        return "—" if row.get("state") in (DONE, "missing") else str(row.get("state"))
    text = fmt_pp(row["delta_pp"])
    if row.get("ci_low_pp") is None or pd.isna(row.get("ci_low_pp")):
        return text + " (no CI)"
    text += f" [{fmt_pp(row['ci_low_pp'])}, {fmt_pp(row['ci_high_pp'])}]"
    return text + " *" if row.get("significant_adjusted") is True else text


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
    rows = report.rows[~report.rows.variant.isin([START, *report.baselines])]
    delta_rows = []
    for ablation, group in rows.groupby("variant", sort=False):
        by_task = {r["task"]: r for r in group.to_dict("records")}
        delta_rows.append([str(ablation), *[delta_text(by_task[c]) if c in by_task else "—" for c in columns]])
    if delta_rows:
        out += _markdown_table(["variant", *names], delta_rows, ["l", *"r" * len(columns)])
    else:
        out.append("No variant besides the baseline.")
    out += ["", *[f"- {line}" for line in footnotes(report)]]
    if report.phases:
        out += ["", *phase_section(report)]
    if report.trust is not None:
        out += ["", *trust_section(report)]
    if report.heldout:
        out += ["", *heldout_section(report)]
    if report.suggestions:
        out += ["", *suggestion_section(report)]
    return "\n".join(out).rstrip() + "\n"


def heldout_section(report: Report) -> list[str]:
    """ "Held-out loss by domain": each baseline's loss and bits per byte on every domain, then each
    ablation's Δ of both with its interval (lower is better, so + means the removal hurt)."""
    level = f"{100 * report.settings.ci:g}%"
    domains = list(dict.fromkeys(c.domain for c in report.heldout))
    by = {(c.ablation, c.domain): c for c in report.heldout}
    arms = list(dict.fromkeys(c.ablation for c in report.heldout))
    out = [f"## Held-out loss by domain ({level} CI)", ""]
    for title, value, delta in (
        ("Loss (nats per token)", "loss", ("delta", "low", "high")),
        ("Bits per byte", "bits_per_byte", ("delta_bpb", "bpb_low", "bpb_high")),
    ):
        rows = []
        for arm in arms:
            cells = [by.get((arm, d)) for d in domains]
            rows.append([arm, *[_loss_text(c, value, delta) for c in cells]])
        out += [f"**{title}**", "", *_markdown_table(["variant", *domains], rows, ["l", *"r" * len(domains)]), ""]
    sequences = ", ".join(f"{d} {by[(arms[0], d)].sequences}" for d in domains if (arms[0], d) in by)
    out += [
        f"- A baseline's row is its level; every other row is the Δ against its baseline with a {level} paired "
        "bootstrap interval over the held-out sequences (the same text for every variant). Lower is better: "
        f"a positive Δ means the removal raised the loss on that domain. Sequences per domain: {sequences}.",
    ]
    return out


def _loss_text(cell: LossCell | None, value: str, delta: tuple[str, str, str]) -> str:
    """A baseline's level (3 decimals) or an ablation's Δ with its interval (4: a 7B's Δ is ~0.005)."""
    if cell is None:
        return "—"
    if cell.delta is None:
        level = getattr(cell, value)
        return "—" if level is None else f"{level:.3f}"
    mid, low, high = (getattr(cell, name) for name in delta)
    return "—" if mid is None else f"{mid:+.4f} [{low:+.4f}, {high:+.4f}]"


def phase_section(report: Report) -> list[str]:
    """ "Δ by phase length": per task, each removal's Δ (against its own phase's baseline) at every
    phase, and how often a shorter phase orders the variants as the longest one does."""
    s, level = report.settings, f"{100 * report.settings.ci:g}%"
    rows = report.rows[~report.rows.variant.isin([START, *report.baselines])]
    cells = {(*split_phase(str(r["variant"])), r["task"]): r for r in rows.to_dict("records")}
    arms = list(dict.fromkeys(split_phase(str(v))[0] for v in rows.variant))
    agreement = {(a.task, a.short): a for a in report.phase_agreement}
    out = [
        f"## Δ by phase length (percentage points, {level} CI)",
        "",
        f"Each removal continued for the run's last {', '.join(_percent(p) for p in report.phases)}, from the "
        f"checkpoint where that phase starts; its Δ is against `{s.baseline}` at the same phase.",
    ]
    for task in report.columns:
        out += ["", f"**{task}**", ""]
        table = [[arm, *[delta_text(cells.get((arm, p, task), {})) for p in report.phases]] for arm in arms]
        out += _markdown_table(["variant", *[f"@{p}" for p in report.phases]], table, ["l", *"r" * len(report.phases)])
        for short in report.phases[:-1]:
            a = agreement.get((task, short))
            if a is not None:
                out += [
                    "",
                    f"Decision consistency: the {_percent(a.short)} phase orders {a.pairs} pairs of {a.variants} "
                    f"variants as the {_percent(a.long)} phase does for {a.agreement * a.pairs:.3g} of them: "
                    f"{a.agreement:.2f} [{a.low:.2f}, {a.high:.2f}].",
                ]
    if report.phase_agreement:
        out += [
            "",
            "- Decision consistency (DataDecide's decision accuracy, Magnusson et al., 2025): over every pair of "
            "variants (baseline and control included), the share that the shorter phase ranks in the same order "
            "as the longest, each variant its mean over its seeds; a pair tied in one phase counts half. "
            f"{level} bootstrap interval: the items (or clusters) resampled, the same for both phases. 1: the cheap "
            "phase ranks the removals as the expensive one; 0.5: a coin flip.",
        ]
    return out


def _percent(label: str) -> str:
    return f"{label[1:]}%"


def suggestion_section(report: Report) -> list[str]:
    """ "Suggested mixtures": each of `ablate suggest`'s proposals, its mixture beside the baseline's,
    what its models predicted, and what the study then measured, said plainly."""
    level = f"{100 * report.settings.ci:g}%"
    out = ["## Suggested mixtures", ""]
    for p in report.suggestions:
        subsets = list(dict.fromkeys([*p["baseline_mixture"], *p["mixture"]]))
        rows = [
            [s, f"{100 * p['baseline_mixture'].get(s, 0):.1f}%", f"{100 * p['mixture'].get(s, 0):.1f}%"]
            for s in subsets
        ]
        out += _markdown_table(["subset", f"`{p['baseline']}`", f"`{p['ablation']}`"], rows, ["l", "r", "r"])
        number, unit = _objective_units(p["objective"])
        gain = p["gain"]
        models = models_text(p["models"], p["loo_rmse"])
        out += [
            "",
            f"- Predicted by `ablate suggest` ({models}; fitted on {p['variants']} variants; KL {p['kl']:.3f} ≤ "
            f"{p['radius']:g}): {p['target']} {number(gain['value'])} [{number(gain['low'])}, "
            f"{number(gain['high'])}]{unit} over the baseline (95% bootstrap over variants).",
        ]
        measured = p["measured"]
        if measured is None:
            why = (
                f"not yet; `ablate run` trains and evaluates `{p['ablation']}`"
                if p["planned"]
                else "no: the study's plan no longer has it (`ablate suggest` again adds it)"
            )
            out += [f"- Measured: {why}.", ""]
            continue
        low, high = measured["low"], measured["high"]
        verdict = (
            "it beats the baseline"
            if low is not None and low > 0
            else "it does worse than the baseline"
            if high is not None and high < 0
            else "not shown to differ from the baseline (the interval includes 0)"
        )
        interval = "no interval" if low is None else f"[{number(low)}, {number(high)}]"
        inside = low is not None and low <= gain["value"] <= high
        out.append(
            f"- Measured: {p['target']} {number(measured['value'])} {interval}{unit} ({level} CI): {verdict}. "
            f"The predicted gain {'lies inside' if inside else 'falls outside'} the measured interval."
        )
        if len(p["objective"]) > 1:
            out.append(
                "  - Terms: "
                + "; ".join(
                    f"{t} Δ {fmt_signed(d, 4 if t.startswith(LOSS_PREFIX) else 1)}"
                    for t, (d, _, _) in measured["terms"].items()
                )
                + ". The objective's interval combines theirs as independent (different items and texts)."
            )
        out.append("")
    return out


def models_text(models: dict[str, str], loo_rmse: dict[str, float]) -> str:
    """law for skills (leave-one-out RMSE 5.2), linear for loss:prose (...): what a suggestion fitted."""
    return ", ".join(f"{m} for {t} (leave-one-out RMSE {loo_rmse[t]:.3g})" for t, m in models.items())


def _objective_units(weights: dict[str, float]) -> tuple[Callable[[float], str], str]:
    """How an objective's values read: percentage points for tasks and categories (one decimal), the
    loss's nats per token for a loss alone (four), and plain units for a weighted mix (three)."""
    losses = [t.startswith(LOSS_PREFIX) for t in weights]
    if not any(losses):
        return fmt_pp, " pp" if len(weights) == 1 else ""
    digits, unit = (4, " nats per token") if all(losses) and len(weights) == 1 else (3, "")
    return lambda value: fmt_signed(value, digits), unit


def trust_section(report: Report) -> list[str]:
    """ "How far to trust this table": per task, seed noise against signal, whether the study tells its
    variants apart, what a Δ of `--detect` needs, and whether two halves of the seeds agree."""
    trust, s = report.trust, report.settings
    assert trust is not None
    level, d = f"{100 * s.ci:g}%", f"{trust.detect_pp:g}"
    header = [
        "task",
        "seed SD (pp)",
        "spread of means (pp)",
        "SNR",
        "tells variants apart",
        "detectable Δ now (pp)",
        f"seeds for Δ={d}",
        f"items for Δ={d}",
        "signs kept",
        "seed halves agree",
    ]
    rows = []
    for t in trust.tasks:
        apart = f"{'yes' if t.distinguishes else 'no'} ({_p(t.p_adjusted)})"
        c = t.consistency
        agree = "—" if c is None else f"{c.agreement:.2f} [{c.low:.2f}, {c.high:.2f}] of {c.pairs} pairs"
        rows.append(
            [
                t.task,
                f"{t.seed_sd_pp:.1f}",
                f"{t.spread_pp:.1f}",
                "∞" if math.isinf(t.snr) else "—" if math.isnan(t.snr) else f"{t.snr:.1f}",
                apart,
                "—" if t.detectable_pp is None else f"{t.detectable_pp:.1f}",
                _need(t.seeds_needed, "more items", t.least_items, t.detectable_pp),
                _need(t.items_needed, "more seeds", t.least_seeds, t.detectable_pp),
                f"{t.stable_signs} of {t.removals}",
                agree,
            ]
        )
    first = trust.tasks[0]
    halves = (
        ""
        if first.consistency is None
        else (f" Seed halves: seeds {_seeds(first.consistency.first)} against {_seeds(first.consistency.second)}.")
    )
    notes = [
        f"Over {first.ablations} ablations with two or more done seeds each"
        + ("" if trust.phase is None else f", at the longest phase (@{trust.phase})")
        + f' (the baseline\'s {first.seeds} seeds are "now").{halves}',
        "seed SD: the task score's standard deviation between seeds of one ablation, pooled; spread of means: the "
        "standard deviation of the ablations' mean scores; SNR: their ratio (the signal-to-noise ratio of "
        "Heineman et al., 2025). With no true effects the spread is about seed SD / √seeds.",
        f'tells variants apart: a one-way F-test of "every ablation scores the same", seeds as replicates, '
        f"{ADJUSTMENT_NAMES.get(s.adjust, 'not')} adjusted over the tasks; yes at p < {1 - s.ci:g}. No means the "
        "variants' differences are within seed noise: the Δ table's flags on that task rest on few seeds.",
        f"detectable Δ now: the smallest Δ found with 80% power (two-sided {level}) at the baseline's score, "
        f"counting item and seed noise; seeds for Δ={d}: seeds per variant at the current items; items for Δ={d}: "
        'items at the current seeds (raw items, for clustered tasks × their design effect). "more items (≥ n)" '
        'or "more seeds (≥ s)": the other one alone keeps the Δ out of reach, and even with unlimited seeds '
        "(items) it takes at least n items (s seeds).",
        f"signs kept: removals whose Δ has the same sign in at least {100 * STABLE:g}% of the bootstrap resamples "
        "(the share per cell is `sign_kept` in report.csv).",
        f"seed halves agree: the share of variant pairs (baseline included) that the first half of the seeds "
        f"orders as the second half does ({level} bootstrap interval over items): DataDecide's decision accuracy. "
        "0.5 is a coin flip; near 1 the ranking does not hang on the seed.",
    ]
    return [
        "## How far to trust this table",
        "",
        *_markdown_table(header, rows, ["l", *"r" * (len(header) - 1)]),
        "",
        *[f"- {line}" for line in notes],
    ]


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _need(count: int | None, otherwise: str, least: int | None, now: float | None) -> str:
    """The count a Δ needs, or what must grow first and to at least how much."""
    if now is None:
        return "—"
    if count is not None:
        return f"{count:,}"
    return otherwise if least is None else f"{otherwise} (≥ {least:,})"


def _seeds(seeds: list[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)


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
        chance = ", ".join(f"{t} {100 * spec['random_baseline'].get(t, 0.0):g}%" for t in spec["tasks"])
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
        figures = ", ".join(f"{t} {p['mde_pp']:.1f} pp ({_power_n(p)})" for t, p in report.power.items())
        lines.append(
            f"Power: smallest Δ detectable (two-sided {level}, 80% power, at the baseline score): {figures}. "
            "An unmarked Δ below it is uninformative, not evidence of no effect."
        )
    fallback = [
        f"{r.variant!s} × {r.task!s}" for r in report.rows.itertuples() if r.method == NORMAL and r.task in report.tasks
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
        "With few degrees of freedom the t term is wide on purpose: the SD itself is uncertain."
    )


def _noise_text(noise: SeedNoise, column: str) -> str:
    value = f"{noise.sd:.4f} nats" if column.startswith("loss:") else f"{100 * noise.sd:.1f} pp"
    return f"{value} ({noise.df:.3g} df)"


ADJUSTMENT_NAMES = {"bh": "Benjamini–Hochberg", "holm": "Holm"}
ADJUSTMENT_MEANING = {
    "bh": "false discovery rate {alpha}: on average at most {alpha} of the flags are false",
    "holm": "family-wise error {alpha}: at most a {alpha} chance of any false flag",
}


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


def _power_n(power: dict[str, Any]) -> str:
    """The sample size behind an MDE: items, or for a clustered task the effective items."""
    if "n_effective" not in power:
        return f"n={power['n_items']:,}"
    return (
        f"effective n={power['n_effective']:,.0f} of {power['n_items']:,} in {power['n_clusters']:,} clusters, "
        f"design effect {power['design_effect']:.1f}"
    )


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[Hashable, Any]]:
    """Plain dicts for JSON: None (not NaN) where nothing was measured."""
    records = frame[columns].astype(object).to_dict("records")
    return [{k: (None if _missing(v) else v) for k, v in r.items()} for r in records]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def to_csv(report: Report) -> str:
    frame = report.rows[CSV_COLUMNS].copy()
    for column in ("n_items", "n_clusters"):
        frame[column] = frame[column].astype("Int64")
    for column in ("significant", "significant_adjusted"):
        frame[column] = frame[column].map({True: "true", False: "false"})
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
        "rows": _records(report.rows, ROW_COLUMNS),
        "power": report.power,
        "trust": None if report.trust is None else asdict(report.trust),
        "phases": report.phases,
        "phase_agreement": [asdict(a) for a in report.phase_agreement],
        "suggestions": report.suggestions,
        "heldout": [asdict(c) for c in report.heldout],
        "seed_noise": [
            {"phase": phase, "column": column, "sd": n.sd, "df": n.df}
            for (phase, column), n in report.seed_noise.items()
        ],
        "replicates": report.replicates,
        "notes": report.notes,
    }
