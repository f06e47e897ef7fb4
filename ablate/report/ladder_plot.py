"""scale.png: a ladder's Δ against scale, one panel per task and held-out domain, one line per removal
through its rungs (intervals as bars) and, dashed, on to its predicted Δ at the target (hollow marker).
matplotlib is imported inside `plot_ladder` (Agg backend).
"""

from __future__ import annotations

import math
from typing import IO

from ablate.report.build import Report
from ablate.report.heldout import LOSS_PREFIX
from ablate.report.ladder import Interval

PANELS_PER_ROW = 4


def plot_ladder(report: Report, target: str | IO[bytes]) -> None:
    """Draw `report.across` (which must be set) as PNG into a path or file object. x is the model size,
    or the tokens where every rung has one size (a phase study)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = report.across
    assert found is not None
    by_size = len({r.params for r in found.rungs}) > 1
    xs = [float(r.params if by_size else r.tokens) for r in found.rungs]
    at = None if found.at is None else found.at[0 if by_size else 1]
    names = list(dict.fromkeys(r.target for r in found.rows))
    wide = min(PANELS_PER_ROW, len(names))
    tall = math.ceil(len(names) / wide)
    figure, axes = plt.subplots(tall, wide, figsize=(max(6.0, 3.6 * wide), 3.0 * tall + 0.6), squeeze=False)
    colours = plt.get_cmap("tab10")
    arms = list(dict.fromkeys(r.ablation for r in found.rows))
    for index, name in enumerate(names):
        ax = axes[index // wide][index % wide]
        for row in (r for r in found.rows if r.target == name):
            colour = colours(arms.index(row.ablation) % 10)
            points = [(x, d) for x, d in zip(xs, row.rungs, strict=True) if d is not None]
            if not points:
                continue
            ax.errorbar(
                [x for x, _ in points],
                [d.value for _, d in points],
                yerr=_bars([d for _, d in points]),
                color=colour,
                marker="o",
                capsize=2,
                label=row.ablation,
            )
            if row.predicted is not None and at is not None:
                last_x, last = points[-1]
                ax.plot([last_x, at], [last.value, row.predicted.value], color=colour, linestyle="--")
                ax.errorbar(
                    [at], [row.predicted.value], yerr=_bars([row.predicted]), color=colour, marker="o", mfc="white"
                )
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
        if index % wide == 0:
            ax.set_ylabel("Δ (nats/token)" if name.startswith(LOSS_PREFIX) else "Δ (pp)", fontsize=8)
    for index in range(len(names), tall * wide):
        axes[index // wide][index % wide].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    level = f"{100 * report.settings.ci:g}%"
    axis = "parameters" if by_size else "tokens"
    figure.suptitle(
        f"{report.title}\nΔ against scale (x: {axis}); bars: {level} CI; hollow: predicted at the target", fontsize=10
    )
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(target, format="png", dpi=110)
    plt.close(figure)


def _bars(found: list[Interval]) -> list[list[float]]:
    """matplotlib's yerr, distances below and above each value (0 where there is no interval)."""
    below = [d.value - d.low if d.low is not None else 0.0 for d in found]
    above = [d.high - d.value if d.high is not None else 0.0 for d in found]
    return [below, above]
