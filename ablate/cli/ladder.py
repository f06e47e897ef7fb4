"""What `ablate fit` and `ablate suggest` share across scale: the --study and --at options, a ladder of
studies, the target scale, predictions.csv and `suggest --at`'s edge (ablate.analyze.at_scale)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ablate.cli.app import err

if TYPE_CHECKING:
    from ablate.analyze.across import Prediction
    from ablate.analyze.studies import Ladder
    from ablate.analyze.suggest import Suggestion, SuggestRequest

StudiesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--study",
        help="Study name. Repeat to pool studies of one design at several model sizes into a ladder.",
        show_default="the last one planned",
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option("--at", help="A target scale, params=N,tokens=D (7e9, or 7B): predict (or suggest) there"),
]
UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}  # --at params=7B: SI-style suffixes


def target_scale(given: str) -> tuple[float, float]:
    """`--at params=7e9,tokens=1.4e11` (or 7B, 140B) → (N, D)."""
    from ablate.errors import AblateError

    found: dict[str, float] = {}
    for item in (part.strip() for part in given.split(",") if part.strip()):
        key, _, value = item.partition("=")
        number = re.fullmatch(r"\s*((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*", value.lower())
        if key not in ("params", "tokens") or key in found or number is None:
            raise AblateError(f"--at {item}: use params=N,tokens=D, e.g. params=7e9,tokens=1.4e11 (or 7B, 140B)")
        found[key] = float(number[1]) * UNITS[number[2]]
        if not found[key] > 0:
            raise AblateError(f"--at {item}: a scale is a positive number")
    if len(found) < 2:
        raise AblateError(f"--at {given}: give both, params=N,tokens=D (the model size and its tokens)")
    return found["params"], found["tokens"]


def write_predictions(path: Path, predictions: list[Prediction]) -> None:
    """predictions.csv, or no such file where nothing was predicted (an older one would read as current)."""
    from ablate.analyze.render import predictions_csv
    from ablate.study.store import write_atomic

    if predictions:
        write_atomic(path, predictions_csv(predictions))
        err.print(f"[dim]wrote {path}[/dim]")
    else:
        path.unlink(missing_ok=True)


def study_ladder(studies: list[str], phase: str | None) -> tuple[Ladder, str, str]:
    """(the ladder, the study whose folder gets the files, their prefix): one study at its scale, or
    several pooled (ablate.analyze.studies), written as ladder-fit.* in the first named."""
    from ablate.analyze.studies import one_study, pooled_points

    if len(studies) > 1:
        return pooled_points(studies, phase), studies[0], "ladder-"
    ladder = one_study(studies[0] if studies else None, phase)
    return ladder, ladder.studies[0], ""


def candidates_line(candidates: dict[str, Any], subsets: list[str]) -> str:
    """`suggest --at`'s second line: each candidate's mixture at the target, and which one was used and why."""
    names = {"scale-model": "the scale model", "autoscale": f"AutoScale (from {candidates['budgets']} budgets)"}
    shown = [
        f"{names[c]} {', '.join(f'{s} {100 * mix.get(s, 0):.1f}%' for s in subsets)}"
        for c, mix in candidates["mixtures"].items()
    ]
    return f"Candidates at the target: {'; '.join(shown)}. {candidates['note'][0].upper()}{candidates['note'][1:]}."


def suggest_at(
    studies: list[str],
    runs: Path | None,
    request: SuggestRequest,
    at: tuple[float, float],
    baseline_mix: str | None,
    split: str | None,
    phase: str | None,
) -> tuple[Suggestion, list[str], Path]:
    """`ablate suggest --at` on a ladder (--from a CSV, or studies, the largest one's recipe capping each
    share by its max_passes at the target's tokens): the suggestion, its subsets and the registry it was
    added to (RUNS.suggested.json, or ladder-suggested.json in the first study's folder)."""
    from dataclasses import asdict, replace

    import numpy as np

    from ablate.analyze.across import spans
    from ablate.analyze.at_scale import propose_at
    from ablate.analyze.runs import baseline_mixture, read_runs
    from ablate.errors import AblateError
    from ablate.plan.build import share_caps
    from ablate.plan.study import load_study_plan
    from ablate.study.artifacts import add_suggestion
    from ablate.study.store import study_dir

    if runs is not None:
        points, _ = read_runs(runs, split=split)
        registry = runs.with_name(f"{runs.stem}.suggested.json")
    else:
        if split is not None:
            raise AblateError("--test-split: only with --from RUNS.csv")
        ladder, home, _ = study_ladder(studies, phase)
        points, registry = ladder.points, study_dir(home) / "ladder-suggested.json"
        plan, recipe = load_study_plan(ladder.studies[-1])
        caps = share_caps(recipe, plan.subset_sizes, int(at[1]))  # max_passes at the target's tokens
        for subset, share in request.caps.items():
            caps[subset] = min(share, caps.get(subset, 1.0))
        request = replace(request, caps=caps)
    if not points or not spans(points):
        raise AblateError(
            "--at: the runs are all at one scale; a target scale needs a ladder (several --study, or params/tokens)"
        )
    first = points.get(next(iter(request.objective))) or next(iter(points.values()))
    subsets = first.subsets
    if baseline_mix is not None:
        given = baseline_mixture(baseline_mix, subsets)
        base, name = np.array([given.get(s, 0.0) for s in subsets]), "--baseline-mix"
    elif "baseline" in first.names:
        base, name = first.shares[first.names.index("baseline")], "baseline"
    else:
        raise AblateError(
            "--at: no run is named baseline; pass --baseline-mix DOMAIN=SHARE,... for the mixture to stay near"
        )
    found = propose_at(points, request, at=at, baseline=base, baseline_name=name)
    add_suggestion(registry, request.name, asdict(found))
    return found, subsets, registry
