"""A study's scale axes as suffixes of its variants' names: a phase study's phases (no-math@p10, the last
10% of the run) and a ladder's rungs (no-math@r1, from the smallest start of recipe `ladder:`), and the
ladder's rungs as the plan records them. Pure.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ablate.errors import AblateError
from ablate.plan.identity import PHASE_MARK
from ablate.recipe import Recipe


class PlanRung(BaseModel):
    """One rung of a ladder study (recipe `ladder:`): its label in variant names, start and size."""

    label: str  # r1: the smallest
    checkpoint: str
    params: int


def phase_label(phase: float) -> str:
    """0.1 → 'p10': the suffix of a phase study's names, in percent of the run."""
    return f"p{round(100 * phase, 6):g}"


def rung_label(index: int) -> str:
    """The label of a ladder's rung at `index` (0: the smallest): r1, r2, ..., the suffix of its variants."""
    return f"r{index + 1}"


def split_phase(name: str) -> tuple[str, str | None]:
    """'no-math@p10' → ('no-math', 'p10'); a name without a phase → (name, None). A ladder's rungs are
    marked alike, r1 the smallest (ablate.report.ladder): 'no-math@r2' → ('no-math', 'r2')."""
    head, mark, label = name.rpartition(PHASE_MARK)
    if mark and label[:1] in ("p", "r") and label[1:].replace(".", "", 1).isdigit():
        return head, label
    return name, None


def with_phase(name: str, label: str | None) -> str:
    """`name` at the phase `label` ('baseline', 'p10' → 'baseline@p10'); `name` itself without one."""
    return name if label is None else f"{name}{PHASE_MARK}{label}"


def phase_checkpoint(checkpoint: str | None, phase: float) -> str | None:
    """The name of a phase's start checkpoint: the study's start name with the phase's label
    (`pretrained@p10`, `ckpt@p10`), which the recipe's `checkpoints` or `ablate pretrain` provides."""
    return None if checkpoint is None else with_phase(checkpoint, phase_label(phase))


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
