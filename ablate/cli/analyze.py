"""`ablate fit` and `ablate suggest`: mixing-law models of each task, category and held-out domain loss as
a function of the phase mixture, and the mixture they predict best; on a study, or on runs made
elsewhere (one CSV row per run, see ablate/analyze/runs.py).

ablate fit                           # every model the variants allow, on every task, category and loss
ablate fit --target loss:prose --model law --bootstrap 500
ablate suggest --objective skills    # or weighted: --objective demo_math=1,loss:prose=10
ablate fit --from runs.csv --test-split split          # runs.fit.md/.json/.png beside runs.csv
ablate suggest --from runs.csv --objective loss:pile_cc --baseline-mix web=0.5,code=0.3,math=0.2
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated

import typer

from ablate.choices import MODELS, Model
from ablate.cli.app import StudyOpt, app, err, listed, out, phase_fraction

FromOpt = Annotated[
    Path | None,
    typer.Option(
        "--from",
        help="A CSV of runs made elsewhere instead of a study: share:<domain> columns, targets, optional run, tokens",
    ),
]
SplitOpt = Annotated[
    str | None, typer.Option("--test-split", help="With --from: the column marking each run train or test (held out)")
]
PhaseOpt = Annotated[
    str | None,
    typer.Option("--phase", help="A phase study's phase to fit: p10, 10% or 0.1", show_default="the longest"),
]
FoldsOpt = Annotated[
    int | None,
    typer.Option("--folds", help="K-fold cross-validation", show_default="leave-one-out up to 100 variants, else 10"),
]


@app.command()
def fit(
    study: StudyOpt = None,
    runs: FromOpt = None,
    test_split: SplitOpt = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="A task, category or loss:<domain> to fit. Repeatable.", show_default="all"),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help=f"Mixture models to fit: {', '.join(MODELS)}. Repeatable.",
            show_default="those the variants allow",
        ),
    ] = None,
    phase: PhaseOpt = None,
    folds: FoldsOpt = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Resamples of variants for the intervals")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fits' starts, the folds and the bootstrap")] = 0,
) -> None:
    """Fit how each target depends on the mixture over the done variants (or --from runs); writes
    fit.md/.json/.png (RUNS.fit.md/... beside RUNS.csv)."""
    from ablate.analyze.fit import fit_targets, load_points
    from ablate.analyze.render import plot_fits, to_json, to_markdown, unusable
    from ablate.analyze.runs import read_runs
    from ablate.errors import AblateError
    from ablate.store import study_dir, write_atomic

    if bootstrap < 10:
        raise AblateError(f"--bootstrap {bootstrap}: use at least 10 resamples (200 for a final table)")
    if runs is not None:
        if study is not None or phase is not None:
            raise AblateError("--from: fits the runs of a CSV, not a study; drop --study and --phase")
        points, test = read_runs(runs, split=test_split)
        name, folder, prefix = runs.name, runs.parent, f"{runs.stem}."
    else:
        if test_split is not None:
            raise AblateError("--test-split: only with --from RUNS.csv (a study fits all its done variants)")
        name, _, _, points = load_points(study, _phase(phase))
        folder, prefix, test = study_dir(name), "", {}
    target, model = listed(target), listed(model)
    if target:
        missing = [t for t in target if t not in points]
        if missing:
            raise AblateError(
                f"--target {missing[0]}: no measured task, category or loss:<domain> of that name; "
                f"have {sorted(points)}"
            )
        points = {t: points[t] for t in target}
    if not points:
        raise AblateError(f"study {name}: no done variants to fit yet; run `ablate run` first")
    fits = fit_targets(points, models=model or None, resamples=bootstrap, seed=seed, folds=folds, test=test)
    if not any(t.fits for t in fits):
        most = max(len(t.variants) for t in fits)
        raise AblateError(
            f"{name}: {most} done variants, too few for any model (linear needs two more than it has "
            "subsets); add variants (`ablate plan --design swarm --n N`)"
        )
    title = f"Mixture fits: {name}"
    markdown = to_markdown(title, fits)
    write_atomic(folder / f"{prefix}fit.md", markdown)
    write_atomic(folder / f"{prefix}fit.json", json.dumps(to_json(title, fits), indent=2) + "\n")
    buffer = io.BytesIO()
    plot_fits(title, fits, buffer)
    write_atomic(folder / f"{prefix}fit.png", buffer.getvalue())
    out.print(markdown, markup=False, highlight=False)
    for line in unusable(fits):
        err.print(f"CAUTION {line}", markup=False, highlight=False)
    err.print(f"[dim]wrote {folder / f'{prefix}fit.md'}, {prefix}fit.json, {prefix}fit.png[/dim]")


@app.command()
def suggest(
    objective: Annotated[
        list[str],
        typer.Option(
            "--objective",
            help="What to maximize: a task, category or loss:<domain> (minimized), or weighted, "
            "demo_math=1,loss:prose=10. Repeatable.",
        ),
    ],
    study: StudyOpt = None,
    runs: FromOpt = None,
    test_split: SplitOpt = None,
    baseline_mix: Annotated[
        str | None,
        typer.Option(
            "--baseline-mix", help="With --from: DOMAIN=SHARE,... to stay near", show_default="the run named baseline"
        ),
    ] = None,
    model: Annotated[
        Model | None, typer.Option("--model", help="The mixture model to optimize", show_default="best out of sample")
    ] = None,
    kl: Annotated[float, typer.Option("--kl", help="Trust region: KL(suggested ‖ baseline) at most this (nats)")] = 0.1,
    cap: Annotated[
        list[str] | None,
        typer.Option("--max", help="SUBSET=SHARE: at most this share (besides max_passes). Repeatable."),
    ] = None,
    floor: Annotated[
        list[str] | None, typer.Option("--min", help="SUBSET=SHARE: at least this share. Repeatable.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The variant the suggestion is added as")] = "suggested",
    phase: PhaseOpt = None,
    folds: FoldsOpt = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Resamples of variants for the interval")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fits, the optimizer's starts and the bootstrap")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace a suggestion of that name that has results")] = False,
) -> None:
    """Propose the mixture that maximizes a fitted objective within caps and a KL trust region, and add
    it to the study as a variant (`ablate run` then measures it; `ablate report` compares the two).
    With --from, propose it from a CSV of runs and write it to RUNS.suggested.json."""
    from ablate.analyze.fit import suggest_study
    from ablate.analyze.runs import suggest_runs
    from ablate.analyze.suggest import SuggestRequest, objective_weights
    from ablate.errors import AblateError
    from ablate.plan.identity import check_name
    from ablate.report.render import models_text

    check_name(name, "--name", fix="pass a plain name, e.g. --name suggested-2")  # before the fits, not after
    bounds: dict[str, dict[str, float]] = {"--max": {}, "--min": {}}
    for flag, given in (("--max", cap), ("--min", floor)):
        for item in listed(given):
            subset, _, share = item.partition("=")
            try:
                bounds[flag][subset] = float(share)
            except ValueError:
                raise AblateError(f"{flag} {item}: use SUBSET=SHARE, e.g. code=0.3") from None
    request = SuggestRequest(
        objective=objective_weights(objective),
        model=model,
        radius=kl,
        caps=bounds["--max"],
        floors=bounds["--min"],
        name=name,
        resamples=bootstrap,
        seed=seed,
        folds=folds,
    )
    if runs is not None:
        if study is not None or phase is not None or force:
            raise AblateError("--from: suggests from the runs of a CSV, not a study; drop --study, --phase and --force")
        found, data, written = suggest_runs(runs, request, baseline=baseline_mix, split=test_split)
        then = f"Written to {written}."
    else:
        if baseline_mix is not None or test_split is not None:
            flag = "--baseline-mix" if baseline_mix is not None else "--test-split"
            raise AblateError(f"{flag}: only with --from RUNS.csv (a study fits its done variants around its baseline)")
        found, data, variants = suggest_study(study, request, phase=_phase(phase), force=force)
        then = f"Added to the plan: `ablate run {' '.join(f'--variant {v}' for v in variants)}` measures it."
    shares = ", ".join(
        f"{s} {100 * found.baseline_mixture.get(s, 0):.1f}% → {100 * found.mixture.get(s, 0):.1f}%"
        for s in data.subsets
    )
    gain, what = found.gain, found.target
    models = models_text(found.models, found.loo_rmse)
    out.print(
        f"Suggested `{name}` for {what} ({models}; fitted on {found.variants} variants): {shares}. KL from the "
        f"baseline {found.kl:.3f} (≤ {kl:g}). Predicted {what} {found.predicted['value']:.4g} "
        f"[{found.predicted['low']:.4g}, {found.predicted['high']:.4g}] against the baseline's "
        f"{found.baseline_predicted:.4g}: gain {gain['value']:+.3g} [{gain['low']:+.3g}, {gain['high']:+.3g}] "
        f"(95% bootstrap over variants). {then}",
        highlight=False,
        markup=False,
    )


def _phase(given: str | None) -> str | None:
    """--phase in any of the phase notations → the label a phase study's variants carry (p10)."""
    from ablate.plan.build import phase_label

    return None if given is None else phase_label(phase_fraction(given, "--phase"))
