"""Typed access to an llm-foundry YAML: `get(cfg, "model", "d_model", kind=INT)` is the value, None
where absent, and a value of the wrong type is one line naming its field (numbers written as
OmegaConf reads them, 1e-4, count as numbers)."""

from __future__ import annotations

import re
from typing import Any

from ablate.errors import RecipeError

# A number as llm-foundry's YAML loader (OmegaConf's) reads it where PyYAML reads a string: 1e-4.
FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$")

INT, NUMBER, STR, MAP, LIST, BOOL = (int,), (int, float), (str,), (dict,), (list,), (bool,)
NAMES = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list", bool: "a bool"}


def get(node: Any, *keys: Any, kind: tuple[type, ...], required: bool = False) -> Any:
    """`node[keys[0]][keys[1]]...`, None where absent (or an error if `required`), else of `kind`."""
    value, path = node, list[str]()
    for key in keys:
        if value is None:
            break
        if not isinstance(value, dict):
            _wrong(".".join(path), value, MAP)
        path.append(str(key))
        value = value.get(key)
    if value is None and required:
        raise RecipeError(f"llm-foundry YAML: {'.'.join(path)} is missing; the recipe needs it")
    if kind == NUMBER and isinstance(value, str) and FLOAT.match(value.strip()) and any(c.isdigit() for c in value):
        return float(value.replace("_", ""))
    if value is not None and (isinstance(value, bool) != (kind == BOOL) or not isinstance(value, kind)):
        _wrong(".".join(path), value, kind)
    return value


def _wrong(where: str, value: Any, kind: tuple[type, ...]) -> None:
    shown = repr(value) if len(repr(value)) <= 40 else f"a {type(value).__name__}"
    wanted = " or ".join(NAMES[t] for t in kind if not (t is int and float in kind))
    raise RecipeError(f"llm-foundry YAML: {where} is {shown}, not {wanted}; fix its type")
