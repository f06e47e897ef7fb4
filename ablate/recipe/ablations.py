"""The recipe's `ablations:` section: the mixtures a study tries besides the baseline (its design),
how a removal renormalizes, and the seeds and phase lengths every variant runs at."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from ablate.choices import DesignKind, Each
from ablate.recipe.section import Section
from ablate.recipe.training import Seed

Renormalize = str  # "proportional" or "into:<subset>"


class Design(Section):
    """Which mixtures a study tries besides the baseline: leave-one-out removals, or a swarm of mixtures
    around the baseline mix, or each subset weighted up and down (the perturbed runs mixing laws fit)."""

    kind: DesignKind = Field("loo", description="loo | swarm | perturb")
    n: Annotated[int, Field(gt=0)] = Field(16, description="swarm: how many mixtures")
    concentration: Annotated[float, Field(gt=0)] = Field(
        20.0, description="swarm: Dirichlet concentration around the baseline mix (larger: closer to it)"
    )
    factor: Annotated[float, Field(gt=1)] = Field(2.0, description="perturb: each subset's weight × and ÷ this")
    seed: Seed = Field(0, description="swarm: the draw's seed")


class Ablations(Section):
    each: Each = Field("group", description="default leave-one-out granularity")
    renormalize: Renormalize = Field(
        "proportional", description="'proportional', or 'into:<subset>' to give all freed mass to one subset"
    )
    control: bool = Field(True, description="add a `control` variant that continues on the base mix")
    design: Design = Field(default_factory=Design, description="the mixtures tried besides the baseline")
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, description="replicates per variant")
    baseline_seeds: Annotated[int, Field(ge=0)] = Field(
        2,
        description="seeds the baseline runs (at least `seeds`): the replicates whose spread puts training-seed "
        "noise into every Δ's interval; 0 or 1: none, and the report's flags hold for one training run only",
    )
    phases: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=list,
        description="phase lengths to ablate (fractions of the run, e.g. [0.05, 0.1, 0.2]): every variant at every "
        "phase, each continued from the checkpoint at (1 − phase) of the run; empty: training.phase only",
    )

    @field_validator("renormalize")
    @classmethod
    def _renormalize_form(cls, value: str) -> str:
        if value != "proportional" and not (value.startswith("into:") and len(value) > 5):
            raise ValueError("must be 'proportional' or 'into:<subset>'")
        return value

    @field_validator("seeds", "phases")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must be distinct")
        return value
