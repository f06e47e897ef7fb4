"""`ablate fit`'s output: a markdown table per study, fit.json, and fit.png (leave-one-out predicted
against measured, one panel per target). matplotlib is imported only inside `plot_fits`."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import IO, Any

from ablate.analyze.fit import TargetFit


def to_markdown(title: str, fits: list[TargetFit]) -> str:
    """Per target and model: in-sample and leave-one-variant-out RMSE, rank correlation, and the
    parameters of the model that predicts best out of sample, with their bootstrap intervals."""
    out = [f"# {title}", "", "| target | model | parameters | RMSE | leave-one-out RMSE | rank ρ (leave-one-out) |"]
    out.append("|---|---|---:|---:|---:|---:|")
    for target in fits:
        for f in target.fits:
            rho = "—" if math.isnan(f.rank_correlation) else f"{f.rank_correlation:+.2f}"
            out.append(
                f"| {target.target} | {f.model} | {len(f.parameters)} | {f.rmse:.3g} | {f.loo_rmse:.3g} | {rho} |"
            )
    out.append("")
    for target in fits:
        if not target.fits:
            out += [
                f"- {target.target}: no model fits its {len(target.variants)} variants ({'; '.join(target.left_out)})"
            ]
            continue
        best = min(target.fits, key=lambda f: f.loo_rmse)
        figures = ", ".join(
            f"{name} {p['value']:.3g} [{p['low']:.3g}, {p['high']:.3g}]" for name, p in best.parameters.items()
        )
        out.append(f"- {target.target}: best out of sample: {best.model} ({figures})")
        if target.left_out:
            out.append(f"  - not fitted (too few variants): {'; '.join(target.left_out)}")
    out += [
        "",
        "RMSE in the target's units (percentage points; nats per token for a loss:<domain>). Leave-one-out: "
        "each variant predicted by the model fitted without it, the error that says whether a model can "
        "choose a mixture it has not seen. "
        "Intervals: 95% bootstrap over variants.",
    ]
    return "\n".join(out) + "\n"


def to_json(title: str, fits: list[TargetFit]) -> dict[str, Any]:
    return {"title": title, "targets": [asdict(t) for t in fits]}


def plot_fits(title: str, fits: list[TargetFit], target: str | IO[bytes]) -> None:
    """fit.png: per target, each model's leave-one-out prediction against the measured value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [t for t in fits if t.fits]
    wide = min(4, max(1, len(shown)))
    tall = math.ceil(max(1, len(shown)) / wide)
    figure, axes = plt.subplots(tall, wide, figsize=(max(6.0, 3.4 * wide), 3.2 * tall + 0.6), squeeze=False)
    for index, result in enumerate(shown):
        ax = axes[index // wide][index % wide]
        measured = [result.measured[v] for v in result.variants]
        for f in result.fits:
            ax.scatter(measured, [f.predicted[v] for v in result.variants], s=18, label=f.model)
        low, high = min(measured), max(measured)
        pad = 0.05 * (high - low or 1)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", linewidth=0.8)
        ax.set_title(result.target, fontsize=9)
        ax.set_xlabel("measured", fontsize=8)
        ax.set_ylabel("predicted (leave-one-out)", fontsize=8)
        ax.tick_params(labelsize=8)
    for index in range(len(shown), tall * wide):
        axes[index // wide][index % wide].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels) or 1, fontsize=8, frameon=False)
    figure.suptitle(f"{title}\nleave-one-variant-out predictions against the measured targets", fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(target, format="png", dpi=110)
    plt.close(figure)
