"""`ablate report`: scores and Δ vs baseline with intervals, from a study or plain lm-eval outputs.

ablate report                        # the current study: markdown on stdout, files in results/<study>/
ablate report --from runs/ --format csv
ablate report --study s1 --study s2 --study s3 --at params=7B,tokens=140B   # a ladder, across scale
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ablate.choices import Adjustment, ReportFormat
from ablate.cli.app import app, err, out
from ablate.cli.ladder import AtOpt, StudiesOpt, target_scale
from ablate.errors import AblateError, StudyError

if TYPE_CHECKING:
    from ablate.analyze.studies import Ladder
    from ablate.report import Report, StudyResults
    from ablate.report.ladder import Across, Rung

SCALE_RESAMPLES = 200  # refits for a ladder's predicted Δ: `ablate fit`'s --bootstrap default

# ---- report --------------------------------------------------------------------------------


@app.command()
def report(
    study: StudiesOpt = None,
    at: AtOpt = None,
    baseline: Annotated[
        str, typer.Option("--baseline", help="Variant (ablation) the deltas are taken against")
    ] = "baseline",
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="Metric for every task",
            show_default="acc_norm, else acc, else exact_match, else the first",
        ),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Report plain lm-eval outputs instead: DIR/<variant>/ from "
            "`lm_eval --output_path DIR/<variant> --log_samples`",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for report.md/.csv/.json and deltas.png", show_default="the study's, or --from DIR"
        ),
    ] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Paired bootstrap resamples")] = 10_000,
    ci: Annotated[float, typer.Option("--ci", help="Confidence level of the intervals")] = 0.95,
    adjust: Annotated[
        Adjustment,
        typer.Option(
            "--adjust", help="Flag Δs over the whole table: bh (false discovery rate), holm (family-wise), none"
        ),
    ] = "bh",
    detect: Annotated[
        float,
        typer.Option("--detect", help="Δ (percentage points) the trust section sizes seeds and items for"),
    ] = 2.0,
    seed_noise_from: Annotated[
        str | None,
        typer.Option(
            "--seed-noise-from",
            help="A study on the same start whose replicate runs add to this one's seed-noise estimate",
        ),
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="What stdout shows (all files are written)")] = "md",
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write the deltas.png heatmap")] = True,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse to report while a variant's results are damaged or stale")
    ] = False,
) -> None:
    """Scores and Δ vs baseline with paired-bootstrap CIs; writes report.md/.csv/.json and deltas.png.
    Several --study (one per model size), or a phase study: the ladder's Δ at every rung and, with --at,
    at the target."""
    from ablate.report import Settings, build_report, write_report
    from ablate.report.load import REFUSED, load_folder, load_study
    from ablate.study.store import study_dir

    if from_dir is not None and study:
        raise AblateError("--from and --study: give one; --from reads plain lm-eval outputs, --study a planned study")
    if at is not None and from_dir is not None:
        raise AblateError("--at: a target scale needs a ladder of studies, not --from; pass --study once per size")
    ladder = len(study or []) > 1
    if ladder and seed_noise_from is not None:
        raise AblateError("--seed-noise-from: one study's option; a ladder's rungs each use their own replicates")
    scale = None if at is None else target_scale(at)
    if ladder:
        results, pooled = _ladder_results(study or [])
    else:
        results = load_folder(from_dir) if from_dir is not None else load_study(study[0] if study else None)
    refused = results.variants[results.variants.state.isin(REFUSED)]
    if strict and not refused.empty:
        first = refused.iloc[0]
        others = f" (and {len(refused) - 1} more: see `ablate status`)" if len(refused) > 1 else ""
        raise StudyError(f"--strict: {first.variant} is {first.state}{others}: {first.error}")
    noise_from = None
    if seed_noise_from is not None:
        noise_from = load_study(seed_noise_from)
        if noise_from.name == results.name:
            raise AblateError(f"--seed-noise-from {seed_noise_from}: that is the study reported; name another one")
        if noise_from.start and results.start and not _same_checkpoint(noise_from.start, results.start):
            raise AblateError(
                f"--seed-noise-from {seed_noise_from}: it continues from {noise_from.start}, this study from "
                f"{results.start}; seed noise is borrowed only from a study on the same start"
            )
    settings = Settings(
        baseline=baseline,
        metric=metric,
        ci=ci,
        resamples=bootstrap,
        adjust=adjust,
        detect_pp=detect,
        seed_noise_from=seed_noise_from,
    )
    built = build_report(results, settings, noise_from)
    if ladder:  # written as ladder-report.* in the first study's folder, as `ablate fit` writes ladder-fit.*
        built = built.with_across(_across(built, *pooled, scale))
        written = write_report(built, out_dir or study_dir((study or [])[0]), plot=plot, prefix="ladder-")
    else:
        if from_dir is None:
            built = built.with_across(_study_across(built, results.name, scale))
        written = write_report(built, out_dir or from_dir or study_dir(results.name), plot=plot)
    print_report(built, fmt)
    for row in refused.itertuples():  # one line each, on stderr: the tables on stdout stay clean
        line = escape(f"{row.variant}: {row.state}, left out of the report: {row.error}")
        err.print(f"[yellow]{line}[/yellow]", highlight=False, soft_wrap=True)
    err.print(f"[dim]wrote {', '.join(str(p) for p in written)}[/dim]", highlight=False)


def _ladder_results(names: list[str]) -> tuple[StudyResults, tuple[Ladder, list[Rung]]]:
    """Studies of one design at several sizes as one (ablate.report.ladder), their pooled points
    (ablate.analyze.studies) and their rungs, r1 the smallest."""
    from ablate.analyze.studies import pooled_points
    from ablate.names import rung_label
    from ablate.report.ladder import Rung, ladder_results
    from ablate.report.load import load_study

    ladder = pooled_points(names)
    rungs = [
        Rung(rung_label(i), s, n, d)
        for i, (s, n, d) in enumerate(zip(ladder.studies, ladder.sizes, ladder.tokens, strict=True))
    ]
    return ladder_results({r.study: load_study(r.study) for r in rungs}, rungs), (ladder, rungs)


def _across(built: Report, ladder: Ladder, rungs: list[Rung], at: tuple[float, float] | None) -> Across:
    """Each removal's Δ at every rung and, with `at`, predicted there by the scale models `ablate fit
    --study ... --at` chooses among (SCALE_RESAMPLES refits each)."""
    from ablate.analyze.across import fit_across
    from ablate.analyze.conclusions import across

    s = built.settings
    targets = []
    if at is not None:
        targets = fit_across(ladder.points, models=None, resamples=SCALE_RESAMPLES, seed=s.seed, at=at,
                             chances=ladder.chances, ci=s.ci, baseline=s.baseline)  # fmt: skip
    return across(built, rungs, targets, at)


def _study_across(built: Report, study: str, at: tuple[float, float] | None) -> Across | None:
    """One study's conclusions across scale: a ladder plan's rungs (at `at`, else its recipe's
    ladder.target), or with `at` a phase study's phases, a ladder in D (ablate fit --phase all); None
    for a study at one scale without `at`, refused in one line with it."""
    from ablate.analyze.fit import EVERY
    from ablate.analyze.studies import one_study
    from ablate.plan.rungs import ladder_target
    from ablate.plan.study import load_plan
    from ablate.report.ladder import study_rungs

    plan = load_plan(study)
    at = at or ladder_target(plan.recipe)
    rungs = study_rungs(plan)
    if not plan.rungs and at is None:
        return None
    if len(rungs) < 2:
        raise AblateError(
            f"--at: {study} runs at one scale; a target scale needs a ladder: pass --study once per model "
            "size, plan a recipe's ladder, or plan phases (`ablate plan --phases 0.05,0.1,0.2`)"
        )
    return _across(built, one_study(study, EVERY), rungs, at)


def _same_checkpoint(a: str, b: str) -> bool:
    """Two plans' start checkpoints are one: URIs as written, local paths once links and relative parts
    are resolved (Composer's `latest-rank0.pt` is a link to the file another plan may name)."""
    if "://" in a or "://" in b:
        return a == b
    return os.path.realpath(a) == os.path.realpath(b)


def print_report(built: Report, fmt: ReportFormat = "md") -> None:
    """Markdown rendered by rich in a terminal, plain markdown (or CSV/JSON) when piped."""
    from ablate.report import to_csv, to_json, to_markdown

    if fmt == "md" and out.is_terminal:
        from rich.markdown import Markdown

        out.print(Markdown(to_markdown(built)))
    else:
        text = {"md": to_markdown, "csv": to_csv}.get(fmt)
        sys.stdout.write(text(built) if text else json.dumps(to_json(built), indent=2, default=str) + "\n")
