"""A ladder's rungs as the plan records them (recipe `ladder:`, r1 the smallest start: no-math@r1, the
labels of ablate.names), and the scale the ladder predicts for. Pure.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ablate.errors import AblateError
from ablate.names import rung_label
from ablate.recipe import Recipe


class PlanRung(BaseModel):
    """One rung of a ladder study (recipe `ladder:`): its label in variant names, start and size."""

    label: str  # r1: the smallest
    checkpoint: str
    params: int


def ladder_rungs(recipe: Recipe, counted: dict[str, int]) -> list[PlanRung]:
    """The recipe's ladder as rungs, smallest first and labelled so: each one's N from ladder.rungs, else
    `counted` (its start's count); refused in one line where neither has it, or two rungs share an N."""
    if recipe.ladder is None:
        return []
    sized = []
    for index, spec in enumerate(recipe.ladder.rungs):
        size = spec.params or counted.get(spec.checkpoint)
        if size is None:
            raise AblateError(
                f"ladder.rungs[{index}]: {spec.checkpoint} cannot be counted here (not a local checkpoint); "
                "give its params"
            )
        sized.append((size, spec.checkpoint))
    sizes = [n for n, _ in sized]
    if twice := sorted({n for n in sizes if sizes.count(n) > 1}):
        raise AblateError(f"ladder.rungs: two starts of {twice[0]:,} parameters; a ladder's rungs differ in size")
    return [PlanRung(label=rung_label(i), checkpoint=c, params=n) for i, (n, c) in enumerate(sorted(sized))]


def ladder_target(recipe: dict[str, Any]) -> tuple[float, float] | None:
    """A planned recipe's `ladder.target` as (N, D), where it names one: the scale report and suggest
    predict for by default."""
    target = (recipe.get("ladder") or {}).get("target")
    return None if not target else (float(target["params"]), float(target["tokens"]))
