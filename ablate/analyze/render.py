"""`ablate fit`'s output: a markdown table per study, fit.json, and fit.png (cross-validated, or with a
test split held-out, predictions against the measured values, one panel per target). matplotlib is
imported only inside `plot_fits`."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import IO, Any

from ablate.analyze.fit import TargetFit
from ablate.analyze.laws import ABSURD


def to_markdown(title: str, fits: list[TargetFit]) -> str:
    """Per target and model: in-sample and cross-validated RMSE and rank correlation (and on the held-out
    test runs when there are any), the parameters of the model that predicts best out of sample with
    their bootstrap intervals, each fit's note, and unusable fits flagged, never chosen."""
    held = any(t.test_measured for t in fits)
    validation = " / ".join(dict.fromkeys(t.validation for t in fits)) or "leave-one-out"
    head = f"| target | model | parameters | RMSE | {validation} RMSE | rank ρ ({validation}) |"
    out = [f"# {title}", "", head + (" held-out RMSE | held-out rank ρ |" if held else "")]
    out.append("|---|---|---:|---:|---:|---:|" + ("---:|---:|" if held else ""))
    for target in fits:
        for f in target.fits:
            name = f"**{f.model}**" if f.model == target.best else f.model if f.usable else f"{f.model} (unusable)"
            row = f"| {target.target} | {name} | {len(f.parameters) or '—'} | {f.rmse:.3g} | {f.cv_rmse:.3g} | "
            row += f"{_rho(f.rank_correlation)} |"
            if held:
                tested = f.test_rmse is not None
                row += f" {f'{f.test_rmse:.3g}' if tested else '—'} | {_rho(f.test_rank_correlation)} |"
            out.append(row)
    out.append("")
    for target in fits:
        best = next((f for f in target.fits if f.model == target.best), None)
        if best is None:
            why = "; ".join(target.left_out) or "every fit is unusable"
            out.append(f"- {target.target}: no usable model on its {len(target.variants)} variants ({why})")
        else:
            figures = ", ".join(
                f"{name} {p['value']:.3g} [{p['low']:.3g}, {p['high']:.3g}]" for name, p in best.parameters.items()
            )
            rho = f", held-out rank ρ {_rho(best.test_rank_correlation)}" if best.test_rmse is not None else ""
            listed = f" ({figures})" if figures else ""
            out.append(f"- {target.target}: best out of sample: {best.model}{listed}{rho}")
        out += [f"  - {'CAUTION ' if not f.usable else ''}{f.model}: {f.note}" for f in target.fits if f.note]
        if best is not None and target.left_out:
            out.append(f"  - not fitted (too few variants): {'; '.join(target.left_out)}")
    held_text = (
        " Held-out: the test runs (the split column), never fitted on nor used to choose the best model."
        if held
        else ""
    )
    out += [
        "",
        "RMSE in the target's units (percentage points; nats per token for a loss:<domain>). "
        f"{validation.capitalize()}: each variant predicted by the model fitted without it (or without its "
        "fold), the error that says whether a model can choose a mixture it has not seen; the best (bold) is "
        "the usable model "
        f"with the lowest. A fit whose cross-validated RMSE is beyond {ABSURD:g}× the target's standard "
        f"deviation is unusable (predicting the mean does better).{held_text} "
        "Intervals: 95% bootstrap over variants.",
    ]
    return "\n".join(out) + "\n"


def _rho(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:+.3f}"


def unusable(fits: list[TargetFit]) -> list[str]:
    """One line per unusable fit, for the console: `target model: why`."""
    return [f"{t.target} {f.model}: {f.note}" for t in fits for f in t.fits if not f.usable]


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
        held = bool(result.test_measured)  # the test runs when there are any, else the cross-validated
        runs = list(result.test_measured) if held else result.variants
        measured = [(result.test_measured if held else result.measured)[v] for v in runs]
        for f in (f for f in result.fits if f.usable):
            ax.scatter(measured, [(f.test_predicted if held else f.predicted)[v] for v in runs], s=12, label=f.model)
        low, high = min(measured), max(measured)
        pad = 0.05 * (high - low or 1)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", linewidth=0.8)
        ax.set_title(result.target, fontsize=9)
        ax.set_xlabel("measured", fontsize=8)
        ax.set_ylabel("predicted (held-out)" if held else f"predicted ({result.validation})", fontsize=8)
        ax.tick_params(labelsize=8)
    for index in range(len(shown), tall * wide):
        axes[index // wide][index % wide].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels) or 1, fontsize=8, frameon=False)
    figure.suptitle(f"{title}\npredictions of variants not fitted on against the measured targets", fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(target, format="png", dpi=110)
    plt.close(figure)
