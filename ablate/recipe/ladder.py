"""The recipe's `ladder:` section: one study continued from start checkpoints of several model sizes, each
removal run from each, so that a conclusion can be checked across scale and predicted at the target.

    ladder:
      rungs: [ckpt-60m, ckpt-150m, {checkpoint: s3://b/ckpt-400m, params: 4.1e8}]
      target: {params: 7e9, tokens: 1.4e11}      # the run the study is for (optional)

A rung is a start checkpoint (a name in `checkpoints`, or a path/URI) and, where plan cannot count it (a
checkpoint at a URI), its parameter count. `ablate plan` labels the rungs r1, r2, ... smallest first and
names every variant with its rung (no-math@r1), as a phase study names its phases.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from ablate.recipe.section import Section


class RungSpec(Section):
    checkpoint: str = Field(description="start checkpoint: a name in `checkpoints`, or a path/URI")
    params: Annotated[int, Field(gt=0)] | None = Field(
        None, description="its parameter count N; omitted: counted from the checkpoint (a local one)"
    )


class TargetSpec(Section):
    params: Annotated[float, Field(gt=0)] = Field(description="the target run's parameter count N")
    tokens: Annotated[float, Field(gt=0)] = Field(description="the target run's phase tokens D")


class Ladder(Section):
    rungs: list[RungSpec] = Field(min_length=2, description="start checkpoints of several sizes, any order")
    target: TargetSpec | None = Field(None, description="the scale the report and `suggest --at` predict for")

    @field_validator("rungs", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        """A bare string is a rung's checkpoint."""
        if isinstance(value, list):
            return [{"checkpoint": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("rungs")
    @classmethod
    def _distinct(cls, value: list[RungSpec]) -> list[RungSpec]:
        names = [r.checkpoint for r in value]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"checkpoint {twice[0]} is a rung twice; name each start once")
        return value
