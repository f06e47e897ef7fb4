"""`ablate plan`: expand the recipe into variants and write plan.json.

ablate plan --remove math            # baseline + math removed, on recipes/demo.yaml
ablate plan --recipe recipes/spark-joy-7b.yaml --each subset --json
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ablate.choices import DesignKind, Each
from ablate.cli.app import RecipeOpt, app, err, listed, out, parsed, phase_fraction
from ablate.errors import AblateError

# ---- plan ----------------------------------------------------------------------------------


@app.command()
def plan(
    recipe: RecipeOpt = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", help="Group or subset to leave out; 'a+b' removes both in one variant. Repeatable."),
    ] = None,
    each: Annotated[
        Each | None, typer.Option("--each", help="Without --remove: one variant per group or per subset")
    ] = None,
    seeds: Annotated[list[str] | None, typer.Option("--seeds", help="Phase seeds, e.g. 1,2,3. Repeatable.")] = None,
    baseline_seeds: Annotated[
        int | None,
        typer.Option(
            "--baseline-seeds",
            help="Seeds the baseline runs: its replicates put seed noise into every interval; 0 or 1: none",
            show_default="ablations.baseline_seeds, 2",
            min=0,
        ),
    ] = None,
    phases: Annotated[
        list[str] | None,
        typer.Option("--phases", help="Phase lengths to ablate: fractions of the run, 10% or p10, e.g. 0.05,0.1,0.2"),
    ] = None,
    design: Annotated[
        DesignKind | None,
        typer.Option("--design", help="Mixtures besides the baseline: loo (removals), swarm or perturb"),
    ] = None,
    n: Annotated[int | None, typer.Option("--n", help="--design swarm: how many mixtures", show_default="16")] = None,
    concentration: Annotated[
        float | None, typer.Option("--concentration", help="--design swarm: Dirichlet concentration", show_default="20")
    ] = None,
    factor: Annotated[
        float | None, typer.Option("--factor", help="--design perturb: weight × and ÷ this", show_default="2")
    ] = None,
    design_seed: Annotated[int | None, typer.Option("--design-seed", help="--design swarm: the draw's seed")] = None,
    control: Annotated[
        bool | None, typer.Option("--control/--no-control", help="Add a variant on the base mix")
    ] = None,
    renormalize: Annotated[str | None, typer.Option("--renormalize", help="'proportional' or 'into:<subset>'")] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="Start checkpoint: a name in the recipe, or a path")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the plan even if finished results of the study turn stale")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print plan.json instead of the table")] = False,
) -> None:
    """Expand the recipe's upsample mix into variants (leave-one-out, a swarm, perturbations); write plan.json."""
    from pydantic import ValidationError

    from ablate.plan.request import PlanRequest
    from ablate.plan.study import plan_study
    from ablate.recipe import Design, describe_errors, load_recipe
    from ablate.study.store import study_dir

    loaded = load_recipe(recipe)
    asked = {"kind": design, "n": n, "concentration": concentration, "factor": factor, "seed": design_seed}
    try:
        chosen = Design.model_validate(
            {**loaded.ablations.design.model_dump(), **{k: v for k, v in asked.items() if v is not None}}
        )
    except ValidationError as exc:
        raise AblateError(f"--design: {describe_errors(exc)}") from None
    try:
        request = PlanRequest(
            removes=listed(remove) or None,
            each=each,
            seeds=parsed(seeds, "--seeds", int, "integers, e.g. 1,2,3"),
            baseline_seeds=baseline_seeds,
            phases=[phase_fraction(p, "--phases") for p in listed(phases)] or None,
            design=chosen,
            control=control,
            renormalize=renormalize,
            checkpoint=checkpoint,
        )
    except ValidationError as exc:  # a value the request's fields refuse: a seed out of range
        error = exc.errors()[0]
        flag = "--" + str(error["loc"][0]).replace("_", "-")
        raise AblateError(f"{flag}: {str(error['msg']).removeprefix('Value error, ')}") from None
    result = plan_study(loaded, request, force=force)
    payload = result.model_dump(mode="json")
    wrote = f"wrote {study_dir(result.study) / 'plan.json'}{_recipe_note(recipe)}"
    if as_json:
        out.print_json(json.dumps(payload))
        err.print(f"[dim]{wrote}[/dim]", highlight=False, soft_wrap=True)
        return
    from ablate.plan.view import render_plan

    render_plan(result, out, err)
    err.print(f"[dim]{wrote}[/dim]", highlight=False, soft_wrap=True)


def _recipe_note(given: Path | None) -> str:
    """Without --recipe: which recipe was planned and why, so the packaged demo is never planned unseen."""
    from ablate.recipe import DEMO_RECIPE, recipe_path

    if given is not None:
        return ""
    used = recipe_path(None)
    if os.environ.get("ABLATE_RECIPE"):
        return f" from {used} ($ABLATE_RECIPE)"
    if used != DEMO_RECIPE:
        return f" from {used} (the working folder's)"
    return (
        f" from the packaged demo recipe ({used}): no --recipe, $ABLATE_RECIPE or recipes/demo.yaml here; "
        "pass --recipe PATH for a study of your own (`ablate init DIR` writes one)"
    )
