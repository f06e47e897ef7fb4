"""The phase mixture of leave-one-out: weights normalized, targets (groups or subsets) resolved, the
removed share handed back to the rest. Pure.

    normalize({"web": 4, "math": 2, "code": 2})                           # {"web": 0.5, "math": 0.25, ...}
    renormalize(mixture, {"math"}, "proportional")                        # the rest scaled up to 1
    renormalize(mixture, {"math"}, "into:web")                            # all freed mass to web
"""

from __future__ import annotations

from ablate.errors import AblateError
from ablate.recipe import Recipe


def normalize(weights: dict[str, float]) -> dict[str, float]:
    """Weights → proportions summing to 1, zero-weight subsets dropped."""
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items() if w > 0}


def renormalize(mixture: dict[str, float], removed: set[str], rule: str) -> dict[str, float]:
    """Drop `removed` from a normalized mixture and hand its mass back per `rule`.

    'proportional' scales the rest up; 'into:<subset>' gives all freed mass to that one subset.
    """
    kept = {name: p for name, p in mixture.items() if name not in removed}
    if not kept:
        raise AblateError(f"--remove {'+'.join(sorted(removed))}: removes every subset of the mix; keep at least one")
    if rule == "proportional":
        return normalize(kept)
    target = rule.removeprefix("into:")
    if target in removed:
        raise AblateError(f"--renormalize {rule}: '{target}' is itself removed; pick a subset that stays")
    if target not in kept:
        raise AblateError(f"--renormalize {rule}: '{target}' is not in the upsample mix {sorted(mixture)}")
    freed = 1.0 - sum(kept.values())
    return {name: p + (freed if name == target else 0.0) for name, p in kept.items()}


def resolve_target(recipe: Recipe, target: str) -> list[str]:
    """'math+code' → the subsets of the upsample mix it names (groups and subset names mix freely)."""
    groups = recipe.groups
    subsets: list[str] = []
    for part in target.split("+"):
        if part in recipe.subsets:
            members = [part]
        elif part in groups:
            members = groups[part]
        else:
            raise AblateError(
                f"--remove {target}: unknown target '{part}'; "
                f"groups: {sorted(groups)}, subsets: {sorted(recipe.subsets)}"
            )
        subsets += [s for s in members if s not in subsets]
    in_mix = [s for s in subsets if recipe.mixes.upsample.get(s, 0) > 0]
    if not in_mix:
        raise AblateError(f"--remove {target}: none of {subsets} has weight in mixes.upsample, so it removes nothing")
    return in_mix


def default_targets(recipe: Recipe, each: str) -> list[str]:
    """One target per group (or subset) that has weight in the upsample mix, in recipe order."""
    live = {s for s, w in recipe.mixes.upsample.items() if w > 0}
    if each == "subset":
        return [s for s in recipe.subsets if s in live]
    return [g for g, members in recipe.groups.items() if live & set(members)]
