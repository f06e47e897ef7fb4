"""Section: the base of every recipe section, strict about its keys and its numbers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Unknown keys are errors: a typo in a recipe must not be silently ignored. Numbers are finite:
    'nan' or 'inf' given as text (`lr: nan` is a string in YAML) would otherwise become a float."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
