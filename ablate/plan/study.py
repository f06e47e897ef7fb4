"""Planning a study on disk: read subset and task sizes, build the plan, check it, write it.

    from ablate.recipe import load_recipe
    from ablate.plan.study import plan_study
    plan = plan_study(load_recipe("recipes/demo.yaml"), PlanRequest(removes=["math"]))

The I/O edge around the pure `ablate.plan.build.build_plan`; `ablate plan`, `ablate run --checkpoint`
and `ablate demo` all go through here. A plan is written only after every check passed: its start
checkpoint exists (where it is a local path) and agrees with the recipe's model and optimizer (read
without torch, ablate.plan.model), every local data folder there holds seq_len-token samples, and it
turns no finished result stale unless forced.
Which finished results a plan would orphan is ablate.study.stale's answer, on the names and hashes
this edge passes it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ablate.data.check import plan_data
from ablate.data.manifest import is_remote
from ablate.errors import AblateError, StudyError
from ablate.names import VariantName
from ablate.plan.build import PLAN_VERSION, Plan, build_plan
from ablate.plan.model import SavedStart, check_start, continued, read_start, start_params
from ablate.plan.request import PlanRequest
from ablate.plan.tasks import check_tasks, task_sizes
from ablate.recipe import Recipe
from ablate.study import stale
from ablate.study.artifacts import PLAN, registered_checkpoints, resolve_checkpoint
from ablate.study.job import PRETRAINED
from ablate.study.store import read_shaped, set_current, shape_error, study_dir, write_json

REPLAN = "rerun `ablate plan` (with --force if it asks)"


def plan_study(
    recipe: Recipe, request: PlanRequest | None = None, *, force: bool = False, reevaluate: bool = False
) -> Plan:
    """Build the plan with sizes from the data folders (local, or a bucket's index) and task files; check
    it; write plan.json.

    Refuses (AblateError, nothing written) a data folder that holds no token ids or text, a bucket folder
    that cannot be read, or a local one missing with nothing to build or size it from
    (ablate.data.check.plan_data), a start
    checkpoint that is a local path and does not exist, or that the recipe's model or optimizer
    contradicts (ablate.plan.model: a local start brings its architecture, its parameter count for the
    cost and, where the recipe names none, its optimizer), and, unless `force`, a plan that would turn
    finished results of the same study stale (with `reevaluate`, only those whose training would change:
    the rest are evaluated again). Mixtures `ablate suggest` added to the study's current plan are
    kept: re-planning does not drop them.
    """
    request = request or PlanRequest()
    previous = study_dir(recipe.name) / PLAN
    if request.mixtures is None and previous.exists():
        with contextlib.suppress(StudyError):  # a plan from another ablate version: nothing to carry over
            kept = load_plan(recipe.name).options.mixtures or {}
            kept = {n: m for n, m in kept.items() if set(m) <= set(recipe.subsets)}
            request = request.model_copy(update={"mixtures": kept})
    sizes, data_warnings = plan_data(recipe)
    counted = _rung_sizes(recipe)
    ref = request.checkpoint if request.checkpoint is not None else recipe.start
    if recipe.ladder is not None:  # the largest rung is the study's start: its model and optimizer lead
        ref = max(recipe.ladder.rungs, key=lambda r: r.params or counted.get(r.checkpoint, 0)).checkpoint
    path = start_checkpoint(
        recipe.name, recipe, ref, planning=True, source="--checkpoint" if request.checkpoint is not None else "start"
    )
    saved, label = read_start(path) if path is not None else None, f"start checkpoint `{ref}`"
    recipe = continued(recipe, saved)  # before the checks: a recipe naming no optimizer takes the checkpoint's
    if saved is not None:
        check_start(recipe, saved, label)
    plan = build_plan(
        recipe,
        request,
        subset_tokens=sizes,
        task_sizes=task_sizes(recipe.eval.tasks, recipe.eval.include),
        params=start_params(recipe, saved, label),
        rungs=counted,
    )
    plan.warnings.extend([*data_warnings, *check_tasks(recipe.eval)])
    for ref, variant in {v.checkpoint: v for v in plan.variants if v.phase is not None}.items():
        try:
            start_checkpoint(plan.study, recipe, ref, planning=True, source="--phases")
        except AblateError as exc:
            raise AblateError(
                f"{exc}; the {100 * (variant.phase or 0):g}% phase starts from checkpoint `{ref}` at "
                f"{variant.start_tokens:,} tokens: name one so in the recipe's checkpoints, or let `ablate pretrain` "
                "save one per phase (ablations.phases in the recipe)"
            ) from None
    if not force:
        refuse_stale(plan, "re-planning", fix="pass --force to replace the plan anyway", reevaluate=reevaluate)
    save_plan(plan)
    return plan


def _rung_sizes(recipe: Recipe) -> dict[str, int]:
    """Each ladder rung's parameter count, read off its start checkpoint where it is local (a rung's
    `params` wins), each start checked against the recipe's model as the study's start is."""
    counted: dict[str, int] = {}
    for index, spec in enumerate(recipe.ladder.rungs if recipe.ladder else []):
        source = f"ladder.rungs[{index}]"
        path = start_checkpoint(recipe.name, recipe, spec.checkpoint, planning=True, source=source)
        saved = read_start(path) if path is not None else None
        if saved is not None:
            check_start(recipe, saved, f"{source} `{spec.checkpoint}`")
        if isinstance(saved, SavedStart) and saved.params:
            counted[spec.checkpoint] = saved.params
    return counted


def save_plan(plan: Plan) -> None:
    write_json(study_dir(plan.study) / PLAN, plan.model_dump(mode="json"))
    set_current(plan.study)


def load_plan(study: str) -> Plan:
    """The study's plan.json, validated; a plan from another ablate version asks to be re-planned."""
    path = study_dir(study) / PLAN
    payload = read_shaped(path, dict[str, Any], fix=REPLAN)
    if payload.get("version") != PLAN_VERSION:
        raise StudyError(
            f"{path}: written by another ablate (plan version {payload.get('version')}, this one reads "
            f"{PLAN_VERSION}); run `ablate plan` again"
        )
    try:
        return Plan.model_validate(payload)
    except ValidationError as exc:
        raise shape_error(path, exc, REPLAN) from None


def load_study_plan(study: str) -> tuple[Plan, Recipe]:
    """The study's plan and the recipe snapshot it was built from."""
    plan = load_plan(study)
    try:
        return plan, Recipe.model_validate(plan.recipe)
    except ValidationError as exc:
        raise shape_error(study_dir(study) / PLAN, exc, REPLAN) from None


def start_checkpoint(
    study: str, recipe: Recipe, ref: str | None, *, planning: bool = False, source: str = "--checkpoint"
) -> str | None:
    """The start checkpoint `ref` names: a local path, checked to exist, or a URI as given (plan.json and
    every hash record the URI; a job loads the study's copy, ablate.run.fetch.local_start).

    While `planning`, no start yet (None) and `pretrained` before `ablate pretrain` registered it are
    fine (None is returned); a run needs one, which the recipe's model fields and optimizer must not
    contradict where it is local (ablate.plan.model.check_start). `source` names where `ref` came from
    in the message.
    """
    known = ref is not None and (ref in recipe.checkpoints or ref in registered_checkpoints(study))
    pretrained = ref is not None and VariantName.parse_ablation(ref).base == PRETRAINED  # or pretrained@p10
    if planning and (ref is None or (pretrained and not known)):
        return None
    if ref is None:
        raise AblateError("no start checkpoint: pass --checkpoint NAME|PATH, or set `start` in the recipe and re-plan")
    path = resolve_checkpoint(study, recipe.checkpoints, ref)
    if is_remote(path):
        return path
    if not Path(path).exists():
        hint = "run `ablate pretrain` first" if pretrained else "pass an existing one"
        raise AblateError(f"{source} {ref}: {path} does not exist; {hint}")
    if not planning:  # the runner's checks and each job's; plan checks the recipe it makes (plan_study)
        check_local_start(recipe, ref, path)
    return path


def check_local_start(recipe: Recipe, ref: str, path: str) -> None:
    """Refuse (AblateError) the local start checkpoint at `path`, which `ref` named, where the recipe's model
    fields or optimizer contradict it (ablate.plan.model.check_start)."""
    check_start(recipe, read_start(path), f"start checkpoint `{ref}`")


def refuse_stale(plan: Plan, doing: str, *, fix: str, reevaluate: bool = False) -> None:
    """ablate.study.stale.refuse_stale on `plan`, against the variants the study's current plan.json names
    (none where it has none, or one from another ablate version or damaged: no names to compare with)."""
    before: list[str] = []
    if (study_dir(plan.study) / PLAN).exists():
        with contextlib.suppress(StudyError):
            before = [v.name for v in load_plan(plan.study).variants]
    planned = [stale.Planned(v.name, v.hash, v.train_hash) for v in plan.variants]
    stale.refuse_stale(plan.study, plan.start_hash, planned, before, doing, fix=fix, reevaluate=reevaluate)
