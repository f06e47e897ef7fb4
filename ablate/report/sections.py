"""The sections of report.md that a study may have: Δ by phase length, how far to trust the table,
held-out loss by domain, suggested mixtures and a ladder's conclusions across scale, each a list of
markdown lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ablate.names import VariantName
from ablate.report.build import Report
from ablate.report.heldout import LOSS_PREFIX, LossCell
from ablate.report.ladder import AcrossRow, Interval
from ablate.report.load import START
from ablate.report.render import ADJUSTMENT_NAMES, delta_text, fmt_pp, fmt_signed, markdown_table, models_text
from ablate.report.rows import records
from ablate.report.trust import STABLE


def phase_section(report: Report) -> list[str]:
    """ "Δ by phase length": per task, each removal's Δ (against its own phase's baseline) at every
    phase, and how often a shorter phase orders the variants as the longest one does."""
    s, level = report.settings, f"{100 * report.settings.ci:g}%"
    rows = report.rows[~report.rows.variant.isin([START, *report.baselines])]
    cells = {(VariantName.parse_ablation(str(r.variant)), r.task): r for r in records(rows)}
    arms = list(dict.fromkeys(VariantName.parse_ablation(str(v)).base for v in rows.variant))
    agreement = {(a.task, a.short): a for a in report.phase_agreement}
    out = [
        f"## Δ by phase length (percentage points, {level} CI)",
        "",
        f"Each removal continued for the run's last {', '.join(_percent(p) for p in report.phases)}, from the "
        f"checkpoint where that phase starts; its Δ is against `{s.baseline}` at the same phase.",
    ]
    for task in report.columns:
        out += ["", f"**{task}**", ""]
        table = [[arm, *[delta_text(cells.get((VariantName(arm, p), task))) for p in report.phases]] for arm in arms]
        out += markdown_table(["variant", *[f"@{p}" for p in report.phases]], table, ["l", *"r" * len(report.phases)])
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
            f"{level} bootstrap interval: the items (or clusters) resampled, the same for both phases, and each "
            "mean's seed noise drawn in where the phase's replicates measured it. 1: the cheap phase ranks the "
            "removals as the expensive one; 0.5: a coin flip.",
        ]
    return out


def _percent(label: str) -> str:
    return f"{label[1:]}%"


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
                f"{100 * t.seed_sd:.1f}",
                f"{100 * t.spread:.1f}",
                "∞" if math.isinf(t.snr) else "—" if math.isnan(t.snr) else f"{t.snr:.1f}",
                apart,
                "—" if t.detectable is None else f"{100 * t.detectable:.1f}",
                _need(t.seeds_needed, "more items", t.least_items, t.detectable),
                _need(t.items_needed, "more seeds", t.least_seeds, t.detectable),
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
        *markdown_table(header, rows, ["l", *"r" * (len(header) - 1)]),
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


def heldout_section(report: Report) -> list[str]:
    """ "Held-out loss by domain": each baseline's loss and bits per byte on every domain, then each
    ablation's Δ of both with its interval (lower is better, so + means the removal hurt)."""
    level = f"{100 * report.settings.ci:g}%"
    domains = list(dict.fromkeys(c.domain for c in report.heldout))
    by = {(c.ablation, c.domain): c for c in report.heldout}
    arms = list(dict.fromkeys(c.ablation for c in report.heldout))
    out = [f"## Held-out loss by domain ({level} CI)", ""]
    figures: list[tuple[str, Callable[[LossCell], _LossFigures]]] = [
        ("Loss (nats per token)", lambda c: (c.loss, c.delta, c.low, c.high)),
        ("Bits per byte", lambda c: (c.bits_per_byte, c.delta_bpb, c.bpb_low, c.bpb_high)),
    ]
    for title, read in figures:
        rows = []
        for arm in arms:
            cells = [by.get((arm, d)) for d in domains]
            rows.append([arm, *["—" if c is None else _loss_text(c.delta is None, *read(c)) for c in cells]])
        out += [f"**{title}**", "", *markdown_table(["variant", *domains], rows, ["l", *"r" * len(domains)]), ""]
    sequences = ", ".join(f"{d} {by[(arms[0], d)].sequences}" for d in domains if (arms[0], d) in by)
    out += [
        f"- A baseline's row is its level; every other row is the Δ against its baseline with a {level} paired "
        "bootstrap interval over the held-out sequences (the same text for every variant). Lower is better: "
        f"a positive Δ means the removal raised the loss on that domain. Sequences per domain: {sequences}.",
    ]
    return out


_LossFigures = tuple[float | None, float | None, float | None, float | None]  # level, Δ, low, high


def _loss_text(level_row: bool, level: float | None, mid: float | None, low: float | None, high: float | None) -> str:
    """A baseline's level (3 decimals) or an ablation's Δ with its interval (4: a 7B's Δ is ~0.005)."""
    if level_row:
        return "—" if level is None else f"{level:.3f}"
    return "—" if mid is None else f"{mid:+.4f} [{low:+.4f}, {high:+.4f}]"


def suggestion_section(report: Report) -> list[str]:
    """ "Suggested mixtures": each of `ablate suggest`'s proposals, its mixture beside the baseline's,
    what its models predicted, and what the study then measured, said plainly."""
    level = f"{100 * report.settings.ci:g}%"
    out = ["## Suggested mixtures", ""]
    for found in report.suggestions:
        p = found.proposal
        subsets = list(dict.fromkeys([*p.baseline_mixture, *p.mixture]))
        rows = [[s, f"{100 * p.baseline_mixture.get(s, 0):.1f}%", f"{100 * p.mixture.get(s, 0):.1f}%"] for s in subsets]
        out += markdown_table(["subset", f"`{p.baseline}`", f"`{p.ablation}`"], rows, ["l", "r", "r"])
        number, unit = _objective_units(p.objective)
        gain = p.gain
        models = models_text(p.models, p.loo_rmse)
        out += [
            "",
            f"- Predicted by `ablate suggest` ({models}; fitted on {p.variants} variants; KL {p.kl:.3f} ≤ "
            f"{p.radius:g}): {p.target} {number(gain['value'])} [{number(gain['low'])}, "
            f"{number(gain['high'])}]{unit} over the baseline (95% bootstrap over variants).",
        ]
        measured = found.measured
        if measured is None:
            why = (
                f"not yet; `ablate run` trains and evaluates `{p.ablation}`"
                if found.planned
                else "no: the study's plan no longer has it (`ablate suggest` again adds it)"
            )
            out += [f"- Measured: {why}.", ""]
            continue
        low, high = measured.low, measured.high
        verdict = (
            "it beats the baseline"
            if low is not None and low > 0
            else "it does worse than the baseline"
            if high is not None and high < 0
            else "not shown to differ from the baseline (the interval includes 0)"
        )
        interval = "no interval" if low is None or high is None else f"[{number(low)}, {number(high)}]"
        inside = low is not None and high is not None and low <= gain["value"] <= high
        out.append(
            f"- Measured: {p.target} {number(measured.value)} {interval}{unit} ({level} CI): {verdict}. "
            f"The predicted gain {'lies inside' if inside else 'falls outside'} the measured interval."
        )
        if len(p.objective) > 1:
            out.append(
                "  - Terms: "
                + "; ".join(
                    f"{t} Δ {fmt_signed(d, 4 if t.startswith(LOSS_PREFIX) else 1)}"
                    for t, (d, _, _) in measured.terms.items()
                )
                + ". The objective's interval combines theirs as independent (different items and texts)."
            )
        out.append("")
    return out


def _objective_units(weights: dict[str, float]) -> tuple[Callable[[float], str], str]:
    """How an objective's values read: percentage points for tasks and categories (one decimal), the
    loss's nats per token for a loss alone (four), and plain units for a weighted mix (three)."""
    losses = [t.startswith(LOSS_PREFIX) for t in weights]
    if not any(losses):
        return fmt_pp, " pp" if len(weights) == 1 else ""
    digits, unit = (4, " nats per token") if all(losses) and len(weights) == 1 else (3, "")
    return lambda value: fmt_signed(value, digits), unit


def across_section(report: Report) -> list[str]:
    """ "Across scale": per task and held-out domain, each removal's Δ at every rung of the ladder, the Δ
    its scale fit predicts at the target, the marks where a conclusion does not survive scale, and each
    rung's decision accuracy against the largest."""
    from ablate.plan.view import human

    found = report.across
    assert found is not None
    level, labels = f"{100 * report.settings.ci:g}%", [r.label for r in found.rungs]
    rungs = "; ".join(f"{r.label} `{r.study}` (N {human(r.params)}, D {human(r.tokens)})" for r in found.rungs)
    target = f"N {human(found.at[0])}, D {human(found.at[1])}" if found.at else None
    out = [f"## Across scale ({level} CI)", "", f"Rungs, smallest first: {rungs}."]
    if target:
        out.append(f"Target: {target}, predicted by each target's chosen scale model (`ablate fit`'s choice).")
    agreement = {(a.task, a.short): a for a in report.phase_agreement}
    reasons: dict[str, int] = {}
    for name in dict.fromkeys(r.target for r in found.rows):
        loss = name.startswith(LOSS_PREFIX)
        rows = []
        for row in (r for r in found.rows if r.target == name):
            cells = [_interval_text(d, loss) for d in row.rungs]
            if row.predicted is not None:
                cells.append(f"{_interval_text(row.predicted, loss)} ({row.model})")
            elif target:
                cells.append(f"— [{reasons.setdefault(row.note, len(reasons) + 1)}]" if row.note else "—")
            rows.append([row.ablation, *cells, _marks(row)])
        header = ["variant", *[f"Δ @{label}" for label in labels], *(["at target"] if target else []), "marks"]
        unit = "nats per token" if loss else "percentage points"
        out += ["", f"**{name}** ({unit})", "", *markdown_table(header, rows, ["l", *"r" * (len(header) - 2), "l"])]
        for short in labels[:-1]:
            a = agreement.get((name, short))
            if a is not None:
                out += [
                    "",
                    f"Decision accuracy @{a.short} vs @{a.long}: {a.agreement * a.pairs:.3g} of {a.pairs} pairs of "
                    f"{a.variants} variants ordered alike, {a.agreement:.2f} [{a.low:.2f}, {a.high:.2f}].",
                ]
    out += [
        "",
        f"- Each Δ is against its own rung's baseline, with the {level} interval of the rung's report (items and "
        "seeds); for a held-out domain lower is better, so + means the removal raised the loss. Marks: `±` the Δ "
        "changes sign across rungs beyond noise (one rung's interval above 0, another's below), `(±)` within "
        "noise; `↕` its rank among the removals changes between rungs; `→` the predicted Δ at the target has "
        "the other sign than at the largest rung.",
        "- Decision accuracy (DataDecide, Magnusson et al., 2025): the share of variant pairs (baseline "
        "included) that a rung orders as the largest does; a tie counts half; the interval resamples the "
        "items, the same for both rungs, and draws in each mean's seed noise where the rung's replicates "
        "measured it. 1: the small rung decides as the large one; 0.5: a coin flip.",
    ]
    if target:
        out.append(
            f"- The predicted Δ is the chosen model's prediction for the removal minus the baseline's at the "
            f"target, its {level} interval from refits on bootstrap draws of whole runs that predict both."
        )
    out += [f"- [{number}] {reason}" for reason, number in reasons.items()]
    out += [f"- {note}" for note in found.notes]
    return out


def _interval_text(found: Interval | None, loss: bool) -> str:
    """A Δ with its interval: points with one decimal for a task, 4 decimals for a loss."""
    if found is None:
        return "—"
    digits = 4 if loss else 1
    text = fmt_signed(found.value, digits)
    if found.low is None or found.high is None:
        return text + " (no CI)"
    return f"{text} [{fmt_signed(found.low, digits)}, {fmt_signed(found.high, digits)}]"


def _marks(row: AcrossRow) -> str:
    marks = {"beyond noise": "±", "within noise": "(±)"}.get(row.sign, "")
    return " ".join(m for m in (marks, "↕" if row.rank else "", "→" if row.turns else "") if m)
