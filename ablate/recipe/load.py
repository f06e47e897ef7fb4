"""Reading a recipe: strict YAML (no repeated keys), which recipe to use when none is named, and
pydantic's errors as one `RecipeError` line naming the fields."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ablate.errors import RecipeError
from ablate.recipe.schema import Recipe

# The demo recipe ships inside the package (recipes/demo.yaml in a checkout links to it), so `ablate
# plan` and `ablate demo` work from any folder after a plain install; its paths resolve against the
# working directory like every recipe's.
DEMO_RECIPE = Path(__file__).resolve().parent.parent / "demo" / "recipe.yaml"


class _RepeatedKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error: PyYAML keeps the
    last value, so a recipe listing `math:` twice would silently lose the first one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, whose keys a mapping may override
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not key_node.start_mark:
                where = f"key '{key}' at line {key_node.start_mark.line + 1} repeats the one at line {first.line + 1}"
                raise _RepeatedKey(None, None, where, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML strictly (no repeated keys); a problem is one RecipeError line naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except _RepeatedKey as exc:
        raise RecipeError(f"{source}: {exc.problem}; YAML would keep only the last, so remove one") from None
    except yaml.constructor.ConstructorError as exc:
        raise RecipeError(f"{source}: malformed YAML ({exc.problem}); fix it there") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{source}: malformed YAML{where}; fix the syntax there") from None


def recipe_path(path: str | os.PathLike[str] | None) -> Path:
    """The recipe to use: the argument, else $ABLATE_RECIPE, else recipes/demo.yaml where the working
    directory has one (a checkout, or a copy edited by hand), else the demo recipe in the package."""
    local = Path("recipes/demo.yaml")
    return Path(path or os.environ.get("ABLATE_RECIPE") or (local if local.is_file() else DEMO_RECIPE))


def load_recipe(path: str | os.PathLike[str] | None = None) -> Recipe:
    """Read and validate a recipe; every problem becomes one `RecipeError` line naming the field."""
    source = recipe_path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(
            f"recipe {source}: cannot read it ({exc.strerror}); pass --recipe PATH to an existing file"
        ) from None
    except UnicodeDecodeError as exc:  # a binary file, or text saved as UTF-16 (a Windows editor's "Unicode")
        raise RecipeError(
            f"recipe {source}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    raw = read_yaml(text, f"recipe {source}")
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {source}: expected a mapping of fields at the top level, got {type(raw).__name__}")
    return parse_recipe(raw, source=str(source))


def parse_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"recipe {source}: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """All of pydantic's errors as one line: missing fields together, then one clause per problem."""
    missing = [_loc(e) for e in exc.errors() if e["type"] == "missing"]
    clauses = []
    if missing:
        noun = "field" if len(missing) == 1 else "fields"
        clauses.append(f"missing {noun} {', '.join(missing)}; add {'it' if len(missing) == 1 else 'them'}")
    for error in exc.errors():
        loc = _loc(error)
        if error["type"] == "extra_forbidden":
            clauses.append(f"{loc}: unknown field; remove it or check the spelling")
        elif error["type"] == "finite_number":
            clauses.append(f"{loc}: {error['input']} is not a finite number; use a finite value")
        elif error["type"] != "missing":
            message = str(error["msg"]).removeprefix("Value error, ")
            clauses.append(f"{loc}: {message}" if loc else message)
    return "; ".join(clauses) + " (docs/recipe.md)"


def _loc(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"])
