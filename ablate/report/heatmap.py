"""deltas.png: the Δ table as a heatmap, variants down, tasks (then categories) across.

Diverging colours centred at zero (blue: the variant scores higher than the baseline, red: lower),
each cell annotated with its Δ in percentage points and its interval (Δ only in big tables), cells
whose interval excludes zero outlined and starred. Variants without numbers show their state on a grey
cell. matplotlib is imported inside `plot_deltas` (Agg backend) so the CLI starts fast.
"""

from __future__ import annotations

from typing import IO

import numpy as np

from ablate.report.build import Report
from ablate.report.load import DONE, START
from ablate.report.render import fmt_pp

MAX_INTERVAL_CELLS = 300  # above this many cells, only Δ is written in each (intervals: report.md)


def plot_deltas(report: Report, target: str | IO[bytes]) -> None:
    """Draw the Δ heatmap of `report` as PNG into a path or a binary file object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    rows = report.rows[~report.rows.variant.isin([START, *report.baselines])]
    variants = list(dict.fromkeys(rows.variant))
    columns = report.columns
    delta = np.full((max(1, len(variants)), max(1, len(columns))), np.nan)
    cells = {(r["variant"], r["task"]): r for r in rows.to_dict("records")}
    for i, variant in enumerate(variants):
        for j, column in enumerate(columns):
            row = cells.get((variant, column))
            if row is not None and row["state"] == DONE and row["delta_pp"] is not None:
                delta[i, j] = row["delta_pp"]
    finite = np.abs(delta[np.isfinite(delta)])
    limit = max(1.0, float(finite.max())) if finite.size else 1.0

    intervals = len(variants) * len(columns) <= MAX_INTERVAL_CELLS
    width = 2.2 + 1.05 * len(columns)
    height = 1.6 + 0.5 * max(1, len(variants))
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    cmap = plt.get_cmap("RdBu").copy()
    cmap.set_bad("#e6e6e6")
    image = ax.imshow(np.ma.masked_invalid(delta), cmap=cmap, norm=TwoSlopeNorm(0.0, -limit, limit), aspect="auto")
    for i, variant in enumerate(variants):
        for j, column in enumerate(columns):
            row = cells.get((variant, column))
            value = delta[i, j]
            if row is not None and np.isfinite(value):  # finite: the row exists and is measured
                star = row["significant_adjusted"] is True  # the markdown table's `*`
                low, high = row["ci_low_pp"], row["ci_high_pp"]
                interval = "no CI" if low is None else f"[{fmt_pp(low)}, {fmt_pp(high)}]"
                colour = "white" if abs(value) > 0.6 * limit else "black"
                label = fmt_pp(value) + ("*" if star else "")
                ax.text(
                    j,
                    i - 0.12 if intervals else i,
                    label,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=colour,
                    fontweight="bold" if star else "normal",
                    in_layout=False,
                )
                if intervals:
                    ax.text(j, i + 0.22, interval, ha="center", va="center", fontsize=6, color=colour, in_layout=False)
                if star:
                    ax.add_patch(
                        Rectangle(
                            (j - 0.45, i - 0.42), 0.9, 0.84, fill=False, edgecolor="black", linewidth=1.4, zorder=3
                        )
                    )
            else:
                state = row["state"] if row is not None else "missing"
                ax.text(
                    j,
                    i,
                    "—" if state in (DONE, "missing") else state,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#555555",
                    in_layout=False,
                )
    ax.set_xticks(
        range(len(columns)),
        [f"{c}\n(cat.)" if c in report.categories else c for c in columns],
        rotation=30 if len(columns) > 6 else 0,
        ha="right" if len(columns) > 6 else "center",
        fontsize=8,
    )
    ax.set_yticks(range(len(variants)), variants, fontsize=8)
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, max(1, len(variants))), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    level = f"{100 * report.settings.ci:g}%"
    ax.set_title(
        f"{report.title}\nΔ vs {report.settings.baseline} (pp); * and outline: {level} CI excludes 0",
        fontsize=9,
        loc="left",
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label="Δ (pp)")
    fig.tight_layout()
    fig.savefig(target, format="png")
    plt.close(fig)
