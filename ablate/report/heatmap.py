"""deltas.png: the Δ table as a heatmap, variants down, tasks (then categories) across; beside it,
when the study measures held-out loss, each variant's Δ loss per domain.

Diverging colours centred at zero, red where the variant is worse than its baseline (a lower score,
a higher loss), blue where it is better. Each cell is annotated with its Δ and its interval (Δ only in
big tables). Task cells flagged after the report's multiple-comparison adjustment (its `*`) are
starred and outlined, and the title says which adjustment; held-out cells, which the report does not
adjust, are outlined where their interval excludes zero. Variants without numbers show their state
on a grey cell. matplotlib is imported inside `draw_deltas` (Agg backend) so the CLI starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pandas as pd

from ablate.report.build import Report
from ablate.report.load import DONE, START
from ablate.report.render import ADJUSTMENT_NAMES, fmt_pp
from ablate.report.rows import records

MAX_INTERVAL_CELLS = 300  # above this many cells, only Δ is written in each (intervals: report.md)


@dataclass
class _Panel:
    """One heatmap: a Δ per (variant, column), what to write in each cell, which to outline."""

    title: str
    columns: list[str]
    delta: np.ndarray  # variants × columns; NaN where unmeasured
    label: dict[tuple[int, int], str]  # the Δ as written
    interval: dict[tuple[int, int], str]
    marked: set[tuple[int, int]]  # outlined (and, for tasks, starred and bold)
    state: dict[tuple[int, int], str]  # what an unmeasured cell shows
    colour_label: str
    worse_is_high: bool  # loss: a positive Δ is worse, so it is red
    star: bool


def plot_deltas(report: Report, target: str | IO[bytes]) -> None:
    """Draw the Δ heatmap of `report` as PNG into a path or a binary file object."""
    import matplotlib.pyplot as plt

    fig = draw_deltas(report)
    fig.savefig(target, format="png")
    plt.close(fig)


def draw_deltas(report: Report) -> Any:
    """The figure plot_deltas saves: the task panel, and the held-out loss panel when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows[~report.rows.variant.isin([START, *report.baselines])]
    losses = [c for c in report.heldout if c.delta is not None]
    variants = list(dict.fromkeys([*rows.variant, *(c.ablation for c in losses)]))
    panels = [_task_panel(report, rows, variants)]
    if losses:
        panels.append(_loss_panel(report, losses, variants, dict(zip(rows.variant, rows.state, strict=True))))
    intervals = len(variants) * sum(len(p.columns) for p in panels) <= MAX_INTERVAL_CELLS
    widths = [1.05 * len(panels[0].columns), *(1.4 * len(p.columns) for p in panels[1:])]
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(1.6 + 1.6 * len(panels) + sum(widths), 1.8 + 0.5 * max(1, len(variants))),
        dpi=110,
        squeeze=False,
        gridspec_kw={"width_ratios": [max(1.0, w) for w in widths]},
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        _draw(fig, ax, panel, variants, intervals)
    axes[0][0].set_yticks(range(len(variants)), variants, fontsize=8)
    for ax in axes[0][1:]:
        ax.set_yticks(range(len(variants)), [""] * len(variants))
    fig.suptitle(report.title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    return fig


def flag_legend(report: Report) -> str:
    """What a starred, outlined task cell means, as the report's footnote says it: adjusted, and how."""
    s = report.settings
    if s.adjust == "none":
        return f"* and outline: p < {1 - s.ci:g}, unadjusted"
    return f"* and outline: significant after {ADJUSTMENT_NAMES[s.adjust]} adjustment at {1 - s.ci:g}"


def _task_panel(report: Report, rows: Any, variants: list[str]) -> _Panel:
    columns = report.columns
    cells = {(r.variant, r.task): r for r in records(rows)}
    panel = _Panel(
        title=f"Δ vs {report.settings.baseline} (pp); {flag_legend(report)}",
        columns=[f"{c}\n(cat.)" if c in report.categories else c for c in columns],
        delta=np.full((max(1, len(variants)), max(1, len(columns))), np.nan),
        label={},
        interval={},
        marked=set(),
        state={},
        colour_label="Δ (pp)",
        worse_is_high=False,
        star=True,
    )
    for i, variant in enumerate(variants):
        for j, column in enumerate(columns):
            row = cells.get((variant, column))
            if row is None or row.state != DONE or pd.isna(row.delta):
                panel.state[i, j] = "—" if row is None or row.state == DONE else row.state
                continue
            delta = 100 * row.delta  # points, as the table writes them
            panel.delta[i, j] = delta
            star = row.significant_adjusted is True  # the markdown table's `*`
            panel.label[i, j] = fmt_pp(delta) + ("*" if star else "")
            panel.interval[i, j] = (
                "no CI" if pd.isna(row.ci_low) else f"[{fmt_pp(100 * row.ci_low)}, {fmt_pp(100 * row.ci_high)}]"
            )
            if star:
                panel.marked.add((i, j))
    return panel


def _loss_panel(report: Report, losses: list[Any], variants: list[str], states: dict[str, str]) -> _Panel:
    domains = list(dict.fromkeys(c.domain for c in losses))
    level = f"{100 * report.settings.ci:g}%"
    panel = _Panel(
        title=f"Δ held-out loss (nats/token; + is worse); outline: {level} CI excludes 0, unadjusted",
        columns=domains,
        delta=np.full((max(1, len(variants)), len(domains)), np.nan),
        label={},
        interval={},
        marked=set(),
        state={},
        colour_label="Δ loss (nats/token)",
        worse_is_high=True,
        star=False,
    )
    by = {(c.ablation, c.domain): c for c in losses}
    for i, variant in enumerate(variants):
        for j, domain in enumerate(domains):
            cell = by.get((variant, domain))
            if cell is None:
                panel.state[i, j] = "—" if states.get(variant, DONE) == DONE else states[variant]
                continue
            panel.delta[i, j] = cell.delta
            panel.label[i, j] = f"{cell.delta:+.4f}"
            panel.interval[i, j] = f"[{cell.low:+.4f}, {cell.high:+.4f}]"
            if cell.low > 0 or cell.high < 0:
                panel.marked.add((i, j))
    return panel


def _draw(fig: Any, ax: Any, panel: _Panel, variants: list[str], intervals: bool) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    finite = np.abs(panel.delta[np.isfinite(panel.delta)])
    floor = 1.0 if panel.star else 1e-3  # points, or nats: a table of zeros still gets a scale
    limit = max(floor, float(finite.max())) if finite.size else floor
    cmap = plt.get_cmap("RdBu_r" if panel.worse_is_high else "RdBu").with_extremes(bad="#e6e6e6")
    image = ax.imshow(
        np.ma.masked_invalid(panel.delta), cmap=cmap, norm=TwoSlopeNorm(0.0, -limit, limit), aspect="auto"
    )
    for (i, j), label in panel.label.items():
        colour = "white" if abs(panel.delta[i, j]) > 0.6 * limit else "black"
        marked = (i, j) in panel.marked
        bold = "bold" if marked and panel.star else "normal"
        y = i - 0.12 if intervals else i
        ax.text(j, y, label, ha="center", va="center", fontsize=8, color=colour, fontweight=bold, in_layout=False)
        if intervals:
            ax.text(j, i + 0.22, panel.interval[i, j], ha="center", va="center", fontsize=6, color=colour,
                    in_layout=False)  # fmt: skip
        if marked:
            ax.add_patch(
                Rectangle((j - 0.45, i - 0.42), 0.9, 0.84, fill=False, edgecolor="black", linewidth=1.4, zorder=3)
            )
    for (i, j), state in panel.state.items():
        ax.text(j, i, state, ha="center", va="center", fontsize=7, color="#555555", in_layout=False)
    wide = len(panel.columns) > 6
    ax.set_xticks(range(len(panel.columns)), panel.columns, rotation=30 if wide else 0,
                  ha="right" if wide else "center", fontsize=8)  # fmt: skip
    ax.set_xticks(np.arange(-0.5, len(panel.columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, max(1, len(variants))), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.set_title(panel.title, fontsize=8, loc="left", wrap=True)
    fig.colorbar(image, ax=ax, shrink=0.8, label=panel.colour_label)
