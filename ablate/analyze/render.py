"""`ablate fit`'s output: a markdown table per study, fit.json, and fit.png (cross-validated, or with a
test split held-out, predictions against the measured values, one panel per target); across scale the
same three (held-out scales instead of folds) and predictions.csv. matplotlib is imported only inside
`plot_fits` and `plot_scales`."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import IO, Any

import numpy as np

from ablate.analyze.across import PREDICTION_COLUMNS, Prediction, ScaleTarget
from ablate.analyze.fit import TargetFit
from ablate.analyze.ladder import HeldOut
from ablate.analyze.laws import ABSURD
from ablate.choices import MODELS


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


# ---- across scale: a ladder's fit.md, fit.json, fit.png and predictions.csv -------------------------


def _held(value: float, spec: str) -> str:
    return "—" if math.isnan(value) else format(value, spec)


def scale_markdown(title: str, targets: list[ScaleTarget]) -> str:
    """Per target and model: the error on each held-out scale (RMSE, mean relative error, rank ρ across
    mixtures), the exponents with their intervals; the chosen model in bold; the test runs' errors by
    scale; the target-scale predictions of the chosen model; every refusal's reason."""
    sizes = sorted({v for t in targets for v in t.sizes})
    counts = sorted({v for t in targets for v in t.token_counts})
    by = "model size" if len(sizes) > 1 else "token count"
    about = f"A ladder at N = {_listed(sizes)} (model sizes) and D = {_listed(counts)} (tokens); held out by {by}."
    out = [f"# {title}", "", about, ""]
    out += ["| target | model | held out | rows | RMSE | mean rel. error | rank ρ | α [95%] | β [95%] |"]
    out += ["|---|---|---|---:|---:|---:|---:|---|---|"]
    for target in targets:
        for f in target.fits:
            name = f"**{f.model}**" if f.model == target.chosen else f.model
            name += " (scale-blind)" if f.model in MODELS else ""
            powers = [_exponent(f.exponents.get(e)) for e in ("alpha", "beta")]
            if not f.held_out:
                out.append(f"| {target.target} | {name} | — | — | — | — | — | {powers[0]} | {powers[1]} |")
            for held in f.held_out:
                out.append(
                    f"| {target.target} | {name} | {_where(held)} | {held.rows} | {_held(held.rmse, '.3g')} | "
                    f"{_held(held.relative, '.2%')} | {_rho(held.rank_correlation)} | {powers[0]} | {powers[1]} |"
                )
    out.append("")
    for target in targets:
        scales = f"N = {_listed(target.sizes)}; D = {_listed(target.token_counts)}"
        chosen = (
            f"chosen: **{target.chosen}** (lowest RMSE on the largest held-out scale)"
            if target.chosen
            else f"no model chosen: {target.unchecked or 'no scale model could be checked on a held-out scale'}"
        )
        out.append(f"- {target.target} ({target.rows} rows; {scales}): {chosen}")
        for f in target.fits:
            notes = [f.note] if f.note else []
            notes += [f"{_where(h)}: {h.note}" for h in f.held_out if h.note]
            out += [f"  - {f.model}: {note}" for note in notes]
        if target.left_out:
            out.append(f"  - not fitted: {'; '.join(target.left_out)}")
    out += _tested(targets) + _at(targets)
    out += [
        "",
        "Held out: each model fitted on the scales below the held-out one and scored on its rows (whole model "
        "sizes; token counts on a ladder of one size); rank ρ across the mixtures at its largest scale. The "
        "chosen model is picked on those alone, before any test run or target scale is looked at. Scale-blind: "
        "a mixture model fitted on every row alike, the error of ignoring N and D. Intervals: 95% bootstrap "
        "over whole runs. A prediction a model may not make (too few scales, an exponent at its bound, too far "
        "beyond the ladder, too wide an interval) has no number; predictions.csv says why.",
    ]
    return "\n".join(out) + "\n"


def _where(held: HeldOut) -> str:
    return f"{'N' if held.dimension == 'size' else 'D'} = {held.value:.3g}"


def _exponent(found: dict[str, float] | None) -> str:
    return "—" if found is None else f"{found['value']:.3g} [{found['low']:.3g}, {found['high']:.3g}]"


def _listed(values: list[float]) -> str:
    """A few values in full, many as their count and range."""
    if len(values) > 6:
        return f"{len(values)} values from {min(values):.3g} to {max(values):.3g}"
    return ", ".join(f"{v:.3g}" for v in values)


def _tested(targets: list[ScaleTarget]) -> list[str]:
    """The test runs' errors per target, model and model size (token count on a ladder of one size)."""
    from ablate.analyze.laws import score

    rows = []
    for target in targets:
        by_size = len(target.sizes) > 1
        groups: dict[tuple[str, float], list[Prediction]] = {}
        for p in sorted(target.predictions, key=lambda p: (p.model, _coordinate(p, by_size))):
            if p.observed is not None:
                groups.setdefault((p.model, _coordinate(p, by_size)), []).append(p)
        for (model, value), found in groups.items():
            scale = f"{'N' if by_size else 'D'} = {value:.3g}"
            made = [p for p in found if p.predicted is not None]
            if not made:
                rows.append(f"| {target.target} | {model} | {scale} | 0 of {len(found)} | — | — | — |")
                continue
            predicted = np.array([p.predicted for p in made], dtype=float)
            observed = np.array([p.observed for p in made], dtype=float)
            scored = score(predicted, observed)
            relative = float(np.mean(np.abs(predicted - observed) / np.abs(observed)))
            rows.append(
                f"| {target.target} | {'**' + model + '**' if model == target.chosen else model} | {scale} | "
                f"{len(made)} of {len(found)} | {scored.rmse:.3g} | {relative:.2%} | "
                f"{_rho(scored.rank_correlation)} |"
            )
    if not rows:
        return []
    head = ["", "Test runs (never fitted on nor used to choose), by scale:", ""]
    head += ["| target | model | scale | predicted | RMSE | mean rel. error | rank ρ |"]
    return [*head, "|---|---|---|---|---:|---:|---:|", *rows]


def _coordinate(prediction: Prediction, size: bool) -> float:
    """A prediction's N (`size`) or D: across scale every row has both."""
    value = prediction.params if size else prediction.tokens
    assert value is not None
    return value


def _at(targets: list[ScaleTarget]) -> list[str]:
    """The chosen model's predictions at the target scale (every model's are in predictions.csv)."""
    rows = [
        f"| {p.target} | {p.run} | {p.params:.3g} | {p.tokens:.3g} | "
        + (f"{p.predicted:.4g} [{p.low:.4g}, {p.high:.4g}] |" if p.predicted is not None else f"— ({p.note}) |")
        for t in targets
        for p in t.predictions
        if p.observed is None and p.chosen
    ]
    if not rows:
        return []
    head = ["", "At the target scale (the chosen model; 95% interval):", ""]
    return [*head, "| target | mixture | N | D | predicted |", "|---|---|---:|---:|---|", *rows]


def scale_json(title: str, targets: list[ScaleTarget]) -> dict[str, Any]:
    """fit.json across scale: the markdown's numbers, arrays as lists."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [None if math.isnan(v) else float(v) for v in value]
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {"title": title, "across_scale": True, "targets": plain([asdict(t) for t in targets])}


def predictions_csv(rows: list[Prediction]) -> str:
    """predictions.csv: one row per run (or target-scale mixture) and model; empty cells where no number."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for row in rows:
        values = [getattr(row, column) for column in PREDICTION_COLUMNS]
        writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in values])
    return buffer.getvalue()


def test_predictions(fits: list[TargetFit], size: float | None, tokens: float | None) -> list[Prediction]:
    """One scale's test runs as predictions.csv rows: each model's prediction, `chosen` for the best by
    cross-validation; the laws' 95% bootstrap band (none for the trees and the ensemble, not bootstrapped)."""
    out = []
    for target in fits:
        for f in target.fits:
            for run, observed in target.test_measured.items():
                low, high = f.test_interval.get(run, (None, None))
                note = "" if run in f.test_interval else f"{f.model} is not bootstrapped: no interval"
                predicted = f.test_predicted.get(run)
                if not f.usable:
                    predicted, low, high, note = None, None, None, f.note
                out.append(
                    Prediction(run, target.target, f.model, f.model == target.best, size, tokens, observed,
                               predicted, low, high, note)
                )  # fmt: skip
    return out


def plot_scales(title: str, targets: list[ScaleTarget], target: str | IO[bytes]) -> None:
    """fit.png across scale: per target, each model's predictions of the largest held-out scale against the
    measured values (the models that were checked there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = min(4, max(1, len(targets)))
    tall = math.ceil(max(1, len(targets)) / wide)
    figure, axes = plt.subplots(tall, wide, figsize=(max(6.0, 3.4 * wide), 3.2 * tall + 0.6), squeeze=False)
    for index, result in enumerate(targets):
        ax = axes[index // wide][index % wide]
        for f in result.fits:
            held = f.held_out[0] if f.held_out else None
            if held is not None and np.isfinite(held.rmse):
                ax.scatter(held.measured, held.predicted, s=12, label=f.model)
        measured = [v for f in result.fits for h in f.held_out[:1] for v in h.measured]
        if measured:
            low, high = min(measured), max(measured)
            pad = 0.05 * (high - low or 1)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], color="grey", linewidth=0.8)
        ax.set_title(result.target, fontsize=9)
        ax.set_xlabel("measured (largest held-out scale)", fontsize=8)
        ax.set_ylabel("predicted from the smaller scales", fontsize=8)
        ax.tick_params(labelsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
    for index in range(len(targets), tall * wide):
        axes[index // wide][index % wide].set_visible(False)
    figure.suptitle(f"{title}\nheld-out scale predictions against the measured targets", fontsize=10)
    figure.tight_layout()
    figure.savefig(target, format="png", dpi=110)
    plt.close(figure)
