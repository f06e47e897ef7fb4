"""Planning a study on disk: read subset and task sizes, build the plan, write it, make it current.

    from ablate.recipe import load_recipe
    from ablate.plan.study import plan_study
    plan = plan_study(load_recipe("recipes/demo.yaml"), removes=["math"])

The I/O edge around the pure `ablate.plan.build_plan`; `ablate plan` and `ablate demo` both call it.
"""

from __future__ import annotations

from typing import Any

from ablate.data.manifest import manifest_tokens
from ablate.plan.build import Plan, build_plan
from ablate.recipe import Recipe
from ablate.store import set_current, study_dir, write_json
from ablate.plan.tasks import task_sizes


def plan_study(recipe: Recipe, **options: Any) -> Plan:
    """Build the plan with sizes from shard manifests and local task files, and write plan.json."""
    plan = build_plan(
        recipe,
        subset_tokens=manifest_tokens(recipe),
        task_sizes=task_sizes(recipe.eval.tasks, recipe.eval.include),
        **options,
    )
    write_json(study_dir(plan.study) / "plan.json", plan.model_dump(mode="json"))
    set_current(plan.study)
    return plan
