"""phases.png: a phase study's Δ against phase length, one panel per task (then category), one line
per removal with its interval as a band. matplotlib is imported inside `plot_phases` (Agg backend).
"""

from __future__ import annotations

import math
from typing import IO

from ablate.names import VariantName, label_value
from ablate.report.build import Report
from ablate.report.load import DONE, START
from ablate.report.rows import records

PANELS_PER_ROW = 4


def plot_phases(report: Report, target: str | IO[bytes]) -> None:
    """Draw Δ by phase length of `report` (which must have phases) as PNG into a path or file object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows[~report.rows.variant.isin([START, *report.baselines]) & (report.rows.state == DONE)]
    x = {label: label_value(label) for label in report.phases}
    columns = report.columns
    wide = min(PANELS_PER_ROW, len(columns))
    tall = math.ceil(len(columns) / wide)
    figure, axes = plt.subplots(tall, wide, figsize=(max(6.0, 3.6 * wide), 3.0 * tall + 0.6), squeeze=False)
    arms = list(dict.fromkeys(VariantName.parse_ablation(str(v)).base for v in rows.variant))
    colours = plt.get_cmap("tab10")
    for index, column in enumerate(columns):
        ax = axes[index // wide][index % wide]
        for number, arm in enumerate(arms):
            points = sorted(  # in points, as the table writes them
                (x[name.label], 100 * r.delta, 100 * r.ci_low, 100 * r.ci_high)
                for r in records(rows[rows.task == column])
                for name in [VariantName.parse_ablation(str(r.variant))]
                if name.base == arm and name.label in x and not math.isnan(r.delta)
            )
            if not points:
                continue
            xs, ys, lows, highs = zip(*points, strict=True)
            colour = colours(number % 10)
            ax.plot(xs, ys, marker="o", color=colour, label=arm)
            if not any(math.isnan(v) for v in lows + highs):
                ax.fill_between(xs, lows, highs, color=colour, alpha=0.15, linewidth=0)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"{column} (cat.)" if column in report.categories else column, fontsize=9)
        ax.set_xticks(list(x.values()), [f"{v:g}%" for v in x.values()], fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        if index % wide == 0:
            ax.set_ylabel("Δ vs baseline (pp)", fontsize=8)
    for index in range(len(columns), tall * wide):
        axes[index // wide][index % wide].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    level = f"{100 * report.settings.ci:g}%"
    figure.suptitle(f"{report.title}\nΔ by phase length (x: share of the run); bands: {level} CI", fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(target, format="png", dpi=110)
    plt.close(figure)
