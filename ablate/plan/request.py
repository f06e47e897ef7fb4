"""What `ablate plan` is asked for: one model for the flags as given and for plan.json's `options`.

    asked = PlanRequest(removes=["math"], seeds=[1, 2])   # None: the recipe's `ablations` default
    options = asked.applied(recipe)                       # every field set: what plan.json records

A plan re-plans exactly from its `options` (`replan`): applying the defaults again changes nothing,
since every field is already set. Pure.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ablate.choices import Each
from ablate.errors import AblateError
from ablate.plan.mixtures import default_targets
from ablate.recipe import Design, Recipe
from ablate.recipe.training import MAX_SEED, Seed


class PlanRequest(BaseModel):
    """A study's design as asked: a field left None takes the recipe's `ablations` default (`applied`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    removes: list[str] | None = None  # leave-one-out targets; 'a+b' removes both in one variant
    each: Each | None = None  # without removes: one variant per group or per subset
    seeds: list[Seed] | None = None  # the data-order seeds every variant runs
    baseline_seeds: int | None = Field(None, ge=0)  # seeds the baseline runs, at least len(seeds)
    phases: list[float] | None = None  # empty: the recipe's training.phase, names without a phase
    design: Design | None = None  # loo (the removals above), swarm or perturb
    mixtures: dict[str, dict[str, float]] | None = None  # named mixtures added to the study (`ablate suggest`'s);
    # a name with a phase (suggested@p25) is planned at that phase only
    control: bool | None = None
    renormalize: str | None = None  # 'proportional' or 'into:<subset>'
    checkpoint: str | None = None  # the start; None: the recipe's `start` (a ladder: its largest rung)

    def applied(self, recipe: Recipe) -> PlanRequest:
        """Every field set, from the recipe's `ablations` where left None, and checked: the removals a
        leave-one-out design runs (`each`'s targets where none are named; none for another design)."""
        seeds = self.seeds or recipe.ablations.seeds
        given = recipe.ablations.baseline_seeds if self.baseline_seeds is None else self.baseline_seeds
        baseline_seeds = max(len(seeds), given)
        top = max(seeds) + baseline_seeds - len(seeds)  # the baseline's replicates take the next seeds
        if top > MAX_SEED:
            flag = f"{'--seeds' if self.seeds else 'ablations.seeds'} {','.join(map(str, seeds))}"
            raise AblateError(f"{flag}: the baseline's replicates reach seed {top}, past {MAX_SEED}; use smaller seeds")
        if len(set(seeds)) != len(seeds):
            raise AblateError(f"--seeds {','.join(map(str, seeds))}: seeds must be distinct")
        phases = sorted(recipe.ablations.phases if self.phases is None else self.phases)
        if len(set(phases)) != len(phases) or not all(0 < p < 1 for p in phases):
            raise AblateError(
                f"--phases {','.join(map(str, phases))}: use distinct fractions between 0 and 1, e.g. 0.1,0.2"
            )
        for length in phases:  # the recipe's own were checked on load; --phases may name shorter ones
            if problem := recipe.phase_too_short(length):
                raise AblateError(f"--phases {length:g}: {problem}")
        design = self.design or recipe.ablations.design
        if design.kind != "loo" and self.removes:
            raise AblateError(f"--remove and --design {design.kind}: give one; --remove names leave-one-out variants")
        rule = self.renormalize or recipe.ablations.renormalize
        if rule != "proportional" and not rule.startswith("into:"):
            raise AblateError(f"--renormalize {rule}: use 'proportional' or 'into:<subset>'")
        removes = (
            [] if design.kind != "loo" else self.removes or default_targets(recipe, self.each or recipe.ablations.each)
        )
        return self.model_copy(
            update={
                "removes": removes,
                "each": None,
                "seeds": seeds,
                "baseline_seeds": baseline_seeds,
                "phases": phases,
                "design": design,
                "mixtures": self.mixtures or {},
                "control": recipe.ablations.control if self.control is None else self.control,
                "renormalize": rule,
                "checkpoint": self.checkpoint if self.checkpoint is not None else recipe.start,
            }
        )
