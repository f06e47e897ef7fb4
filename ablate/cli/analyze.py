"""`ablate fit` and `ablate suggest`: mixing-law models of each task, category and held-out domain loss as
a function of the phase mixture, and the mixture they predict best; on a study, or on runs made
elsewhere (one CSV row per run, see ablate/analyze/runs.py); across scale on a ladder of studies or runs.

ablate fit                           # every model the variants allow, on every task, category and loss
ablate fit --target loss:prose --model law --bootstrap 500
ablate suggest --objective skills    # or weighted: --objective demo_math=1,loss:prose=10
ablate fit --from runs.csv --test-split split          # runs.fit.md/.json/.png beside runs.csv
ablate suggest --from runs.csv --objective loss:pile_cc --baseline-mix web=0.5,code=0.3,math=0.2
ablate fit --study s-60m --study s-150m --study s-400m --study s-1b --at params=7B,tokens=140B
ablate suggest --study s-60m --study s-150m --study s-400m --study s-1b --objective loss:web --at params=7B,tokens=140B
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ablate.choices import MODELS, SCALE_MODELS
from ablate.cli.app import app, err, listed, out, phase_fraction
from ablate.cli.ladder import (
    AtOpt,
    StudiesOpt,
    candidates_line,
    study_ladder,
    suggest_at,
    target_scale,
    write_predictions,
)

if TYPE_CHECKING:
    from ablate.analyze.across import Prediction
    from ablate.analyze.scale import ScalePoints

FromOpt = Annotated[
    Path | None,
    typer.Option(
        "--from",
        help="A CSV of runs made elsewhere instead of a study: share:<domain> columns, targets, optional run, "
        "params, tokens",
    ),
]
SplitOpt = Annotated[
    str | None, typer.Option("--test-split", help="With --from: the column marking each run train or test (held out)")
]
PhaseOpt = Annotated[
    str | None,
    typer.Option(
        "--phase",
        help="A phase study's phase to fit: p10, 10% or 0.1; `all` (fit) pools the phases as a ladder in tokens",
        show_default="the longest",
    ),
]
FoldsOpt = Annotated[
    int | None,
    typer.Option("--folds", help="K-fold cross-validation", show_default="leave-one-out up to 100 variants, else 10"),
]


@app.command()
def fit(
    study: StudiesOpt = None,
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
            help=f"Models to fit: {', '.join(MODELS)}; across scales also {', '.join(SCALE_MODELS)}. Repeatable.",
            show_default="those the variants allow",
        ),
    ] = None,
    at: AtOpt = None,
    mix: Annotated[
        Path | None,
        typer.Option("--mix", help="With --at: a CSV of mixtures to predict (share:<domain> columns, optional run)"),
    ] = None,
    phase: PhaseOpt = None,
    folds: FoldsOpt = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Resamples of variants for the intervals")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fits' starts, the folds and the bootstrap")] = 0,
) -> None:
    """Fit how each target depends on the mixture over the done variants (or --from runs); across model
    sizes and token counts where the runs span several (pooled --study, or params/tokens columns), with
    held-out-scale checks and predictions. Writes fit.md/.json/.png (RUNS.fit.* beside RUNS.csv) and,
    with predictions, fit.predictions.csv (RUNS.predictions.csv)."""
    from ablate.analyze.across import fit_across, spans
    from ablate.analyze.render import plot_scales, scale_json, scale_markdown
    from ablate.analyze.runs import read_mixtures, read_runs
    from ablate.errors import AblateError
    from ablate.report.answers import ANSWER_PREFIX
    from ablate.study.store import study_dir

    if bootstrap < 10:
        raise AblateError(f"--bootstrap {bootstrap}: use at least 10 resamples (200 for a final table)")
    studies = listed(study)
    scale = target_scale(at) if at is not None else None if runs is not None or len(studies) > 1 else _target(studies)
    if mix is not None and scale is None:
        raise AblateError("--mix: the mixtures are predicted at a target scale; give it with --at params=N,tokens=D")
    if runs is not None:
        if studies or phase is not None:
            raise AblateError("--from: fits the runs of a CSV, not a study; drop --study and --phase")
        points, test = read_runs(runs, split=test_split)
        chances = {}
        name, folder, prefix, table = runs.name, runs.parent, f"{runs.stem}.", f"{runs.stem}.predictions.csv"
    else:
        if test_split is not None:
            raise AblateError("--test-split: only with --from RUNS.csv (a study fits all its done variants)")
        ladder, home, prefix = study_ladder(studies, _phase(phase))
        name, points, chances = " + ".join(ladder.studies), ladder.points, ladder.chances
        if ladder.dropped:
            err.print(f"Not fitted, not measured by every study: {', '.join(ladder.dropped)}", markup=False)
        test, table, folder = {}, f"{prefix}fit.predictions.csv", study_dir(home)
    target, model = listed(target), listed(model)
    if target:
        missing = [t for t in target if t not in points]
        if missing:
            raise AblateError(
                f"--target {missing[0]}: no measured task, category or loss:<domain> of that name; "
                f"have {sorted(points)}"
            )
        kept = [*target, *(ANSWER_PREFIX + t for t in target if ANSWER_PREFIX + t in points)]  # a task's link
        points = {t: points[t] for t in dict.fromkeys(kept)}
    if not points:
        raise AblateError(f"study {name}: no done variants to fit yet; run `ablate run` first")
    if spans(points):
        mixtures = None if mix is None else read_mixtures(mix, next(iter(points.values())).subsets)
        found = fit_across(
            points,
            models=model or None,
            resamples=bootstrap,
            seed=seed,
            test=test,
            at=scale,
            mix=mixtures,
            chances=chances,
        )
        predictions = [p for t in found for p in t.predictions]
        title = f"Fits across scale: {name}"
        buffer = io.BytesIO()
        plot_scales(title, found, buffer)
        _write(folder, prefix, scale_markdown(title, found), scale_json(title, found), buffer.getvalue(), [])
    else:
        given = (True, True) if runs is None else _scale_columns(runs)
        predictions = _fit_one_scale(name, points, test, model, scale, given, folder, prefix, bootstrap, seed, folds)
    write_predictions(folder / table, predictions)


def _fit_one_scale(
    name: str,
    points: dict[str, ScalePoints],
    test: dict[str, ScalePoints],
    model: list[str],
    scale: tuple[float, float] | None,
    given: tuple[bool, bool],
    folder: Path,
    prefix: str,
    bootstrap: int,
    seed: int,
    folds: int | None,
) -> list[Prediction]:
    """The mixture models at the runs' one scale (ablate.analyze.fit): fit.md/.json/.png, and the test runs'
    predictions, their params and tokens left empty where `given` says the runs did not give them."""
    from ablate.analyze.fit import fit_targets
    from ablate.analyze.render import plot_fits, test_predictions, to_json, to_markdown, unusable
    from ablate.errors import AblateError

    first = next(iter(points.values()))
    size, tokens = (float(v[0]) if known else None for v, known in zip((first.size, first.tokens), given, strict=True))
    if scale is not None:
        at = ", ".join(f"{letter} = {v:.3g}" for letter, v in (("N", size), ("D", tokens)) if v is not None)
        raise AblateError(
            f"--at: every run is at one scale{f' ({at})' if at else ''}; a prediction at another needs runs at two "
            "model sizes or token counts or more (pool studies with --study, or params/tokens columns)"
        )
    scaled = [m for m in model if m in SCALE_MODELS]
    if scaled:
        raise AblateError(
            f"--model {scaled[0]}: a scale model, and every run is at one scale; fit it on a ladder (several --study, "
            "or params/tokens columns that vary)"
        )
    mixture = {t: p.mixture_points() for t, p in points.items()}
    held = {t: p.mixture_points() for t, p in test.items()}
    fits = fit_targets(mixture, models=model or None, resamples=bootstrap, seed=seed, folds=folds, test=held)
    if not any(t.fits for t in fits):
        most = max(len(t.variants) for t in fits)
        raise AblateError(
            f"{name}: {most} done variants, too few for any model (linear needs two more than it has "
            "subsets); add variants (`ablate plan --design swarm --n N`)"
        )
    title = f"Mixture fits: {name}"
    buffer = io.BytesIO()
    plot_fits(title, fits, buffer)
    _write(folder, prefix, to_markdown(title, fits), to_json(title, fits), buffer.getvalue(), unusable(fits))
    return test_predictions(fits, size, tokens)


def _scale_columns(runs: Path) -> tuple[bool, bool]:
    """Whether RUNS.csv gives each run's params and its tokens (read_runs has already checked the file)."""
    import csv

    with runs.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    return "params" in header, "tokens" in header


def _write(folder: Path, prefix: str, markdown: str, payload: dict, png: bytes, cautions: list[str]) -> None:
    """fit.md, fit.json and fit.png (RUNS.fit.* with a prefix), each written atomically; the markdown on
    stdout, the cautions and the files written on stderr."""
    from ablate.study.store import write_atomic

    write_atomic(folder / f"{prefix}fit.md", markdown)
    write_atomic(folder / f"{prefix}fit.json", json.dumps(payload, indent=2) + "\n")
    write_atomic(folder / f"{prefix}fit.png", png)
    out.print(markdown, markup=False, highlight=False)
    for line in cautions:
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
    study: StudiesOpt = None,
    runs: FromOpt = None,
    test_split: SplitOpt = None,
    at: AtOpt = None,
    baseline_mix: Annotated[
        str | None,
        typer.Option(
            "--baseline-mix",
            help="With --from or --at: DOMAIN=SHARE,... to stay near",
            show_default="the run named baseline",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help=f"The model to optimize: {', '.join(MODELS)}; with --at {', '.join(SCALE_MODELS)}",
            show_default="best out of sample",
        ),
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
    With --from, propose it from a CSV of runs and write it to RUNS.suggested.json. With --at, propose
    it for a target scale from a ladder (several --study, or --from with params/tokens)."""
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
    studies = listed(study)
    if runs is not None and (studies or phase is not None or force):
        raise AblateError("--from: suggests from the runs of a CSV, not a study; drop --study, --phase and --force")
    scale = target_scale(at) if at is not None else None if runs is not None or len(studies) > 1 else _target(studies)
    if model is not None and model not in (SCALE_MODELS if scale else MODELS):
        kind = "at a target scale use a scale model" if scale else "use a mixture model (a scale model needs --at)"
        raise AblateError(f"--model {model}: {kind}, one of {', '.join(SCALE_MODELS if scale else MODELS)}")
    if phase == "all" and scale is None:
        raise AblateError("--phase all: pools the phases as a ladder in tokens; suggest across them with --at")
    if scale is not None:
        found, subsets, written = suggest_at(studies, runs, request, scale, baseline_mix, test_split, _phase(phase))
        then = f"Written to {written}: train it at N = {scale[0]:.3g}, D = {scale[1]:.3g}."
    elif runs is not None:
        found, data, written = suggest_runs(runs, request, baseline=baseline_mix, split=test_split)
        subsets, then = data.subsets, f"Written to {written}."
    else:
        if baseline_mix is not None or test_split is not None:
            flag = "--baseline-mix" if baseline_mix is not None else "--test-split"
            raise AblateError(f"{flag}: only with --from RUNS.csv (a study fits its done variants around its baseline)")
        if len(studies) > 1:
            raise AblateError("--study: several studies are a ladder; suggest for a target scale with --at")
        one = studies[0] if studies else None
        found, data, variants = suggest_study(one, request, phase=_phase(phase), force=force)
        subsets = data.subsets
        then = f"Added to the plan: `ablate run {' '.join(f'--variant {v}' for v in variants)}` measures it."
    shares = ", ".join(
        f"{s} {100 * found.baseline_mixture.get(s, 0):.1f}% → {100 * found.mixture.get(s, 0):.1f}%" for s in subsets
    )
    gain, what = found.gain, found.target
    models = models_text(found.models, found.loo_rmse, "leave-one-out" if scale is None else "held-out-scale")
    out.print(
        f"Suggested `{name}` for {what} ({models}; fitted on {found.variants} variants): {shares}. KL from the "
        f"baseline {found.kl:.3f} (≤ {kl:g}). Predicted {what} {found.predicted['value']:.4g} "
        f"[{found.predicted['low']:.4g}, {found.predicted['high']:.4g}] against the baseline's "
        f"{found.baseline_predicted:.4g}: gain {gain['value']:+.3g} [{gain['low']:+.3g}, {gain['high']:+.3g}] "
        f"(95% bootstrap over variants). {then}",
        highlight=False,
        markup=False,
    )
    if found.candidates is not None:
        out.print(candidates_line(found.candidates, subsets), highlight=False, markup=False)


def _target(studies: list[str]) -> tuple[float, float] | None:
    """A ladder plan's recipe target (ladder.target), where the one study named (or the current one) has one."""
    from ablate.plan.rungs import ladder_target
    from ablate.plan.study import load_plan
    from ablate.study.store import current_study

    return ladder_target(load_plan(current_study(studies[0] if studies else None)).recipe)


def _phase(given: str | None) -> str | None:
    """--phase in any of the phase notations → the label a phase study's variants carry (p10); `all`
    (fit only) passes through: every phase, pooled as a ladder in D."""
    from ablate.analyze.fit import EVERY
    from ablate.names import phase_label

    if given == EVERY:
        return EVERY
    return None if given is None else phase_label(phase_fraction(given, "--phase"))
