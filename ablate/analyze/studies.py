"""Several studies of one removal design, each continued from a start of another model size (or trained for
another phase length), pooled into one scale ladder: the rows a scale model (ablate.analyze.scale) fits.

    from ablate.analyze.studies import pooled_points
    ladder = pooled_points(["ladder-s1", "ladder-s2", "ladder-s3"])   # any order; sorted by N, then D
    ladder.points["loss:web"]      # ScalePoints: every study's done ablations, N and D per row
    ladder.studies, ladder.sizes   # the studies smallest first, and their N

A study's points are what `ablate fit` fits within it (ablate.analyze.fit.load_points: a row per done
ablation, its mixture and the mean of its seeds), with the study's scale added: N is its plan's `params`
(the start checkpoint's parameter count), D its variants' phase tokens. Rows keep their ablation names, so
the same removal at several sizes shares a name. A target some study did not measure is left out (named in
`dropped`): a ladder with a hole at one size would fit that target's size law on fewer sizes than the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ablate.analyze.fit import EVERY, Loaded, load_points
from ablate.analyze.laws import Points
from ablate.analyze.linked import Chance
from ablate.analyze.scale import ScalePoints
from ablate.errors import AblateError
from ablate.names import VariantName
from ablate.plan.build import Plan

SAME = "a ladder's studies differ in model size or phase tokens"


@dataclass(frozen=True)
class Ladder:
    """Studies pooled into one ladder, every list in order of (N, D): smallest model first."""

    points: dict[str, ScalePoints]  # target → rows of every study, study after study
    studies: list[str]
    sizes: list[int]  # each study's N: its plan's parameter count
    tokens: list[int]  # each study's D, its phase's tokens (a phase ladder's: each phase's)
    dropped: list[str]  # targets measured in some studies only: left out of `points`
    chances: dict[str, Chance]  # multiple-choice task → chance and items (the fewest items of any study)


@dataclass(frozen=True)
class _Study:
    name: str
    size: int
    tokens: int
    subsets: list[str]
    points: dict[str, Points]
    chances: dict[str, Chance]


def pooled_points(names: list[str], phase: str | None = None) -> Ladder:
    """The ladder of the named studies at `phase` (each study's longest by default, as `ablate fit`).

    Refused in one line (AblateError): fewer than two studies; a study named twice; a study without done
    variants or without a parameter count; studies of other subsets (the difference named); two studies
    at one N and one D; no target measured by every study.
    """
    if len(names) < 2:
        raise AblateError(
            f"--study: a ladder pools two studies or more (one per model size), got {len(names)}; "
            "pass --study once per size"
        )
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise AblateError(f"--study {twice[0]}: named twice; name each study of the ladder once")
    studies = sorted((_load(name, phase) for name in names), key=lambda s: (s.size, s.tokens))
    _check(studies)
    first = studies[0]
    common = set.intersection(*(set(s.points) for s in studies))
    measured = list(dict.fromkeys(t for s in studies for t in s.points))
    if not common:
        raise AblateError(
            f"--study: no target is measured by every study ({first.name}: {', '.join(first.points)}); "
            "evaluate the same tasks and held-out domains in each"
        )
    pooled = {t: _pool(studies, t, first.subsets) for t in measured if t in common}
    return _ladder(studies, pooled, [t for t in measured if t not in common])


def one_study(name: str | None, phase: str | None = None) -> Ladder:
    """One study at its scale, as `ablate fit --study A` fits it (no points where nothing is done yet);
    with `phase` EVERY, its phases pooled as a ladder in D, each row at its own phase's tokens. A ladder
    plan's rungs (recipe `ladder:`) are pooled by default, each row at its rung's N."""
    from ablate.plan.study import load_plan
    from ablate.study.store import current_study

    if phase is None and load_plan(current_study(name)).rungs:
        phase = EVERY
    loaded = load_points(name, phase)
    if not loaded.points:
        return Ladder({}, [loaded.name], [loaded.plan.params], [], [], loaded.chances)
    if phase == EVERY:
        return _phases(loaded)
    study = _study(loaded)
    return _ladder([study], {t: _pool([study], t, study.subsets) for t in study.points}, [])


def _phases(loaded: Loaded) -> Ladder:
    """A phase study's done ablations at every phase, or a ladder plan's at every rung: rows named by
    ablation (no@p10 → no), D each phase's tokens, N each rung's parameters (the plan's without rungs)."""
    plan = loaded.plan
    tokens = {v.ablation: v.tokens for v in plan.variants}
    size = {v.ablation: v.params or plan.params for v in plan.variants}
    points = {
        target: ScalePoints(
            [VariantName.parse_ablation(n).base for n in p.names],
            p.subsets,
            p.shares,
            np.array([float(size[n]) for n in p.names]),
            np.array([float(tokens[n]) for n in p.names]),
            p.target,
        )
        for target, p in loaded.points.items()
    }
    counts = sorted({int(v) for p in points.values() for v in p.tokens})
    sizes = [r.params for r in plan.rungs] or [plan.params]
    return Ladder(points, [loaded.name], sizes, counts, [], loaded.chances)


def _ladder(studies: list[_Study], points: dict[str, ScalePoints], dropped: list[str]) -> Ladder:
    chances = {}
    for task in set.intersection(*(set(s.chances) for s in studies)):
        found = [s.chances[task] for s in studies]
        chances[task] = Chance(float(np.mean([c.level for c in found])), min(c.items for c in found))
    names, sizes, tokens = [s.name for s in studies], [s.size for s in studies], [s.tokens for s in studies]
    return Ladder(points, names, sizes, tokens, dropped, chances)


def _load(name: str, phase: str | None) -> _Study:
    """One study's points, N and D; refused without done variants or without a parameter count."""
    loaded = load_points(name, phase)
    if not loaded.points:
        raise AblateError(
            f"--study {loaded.name}: fewer than two done variants{f' at {phase}' if phase else ''}, nothing to pool; "
            f"run `ablate run --study {loaded.name}` first"
        )
    return _study(loaded)


def _study(loaded: Loaded) -> _Study:
    study, plan, points = loaded.name, loaded.plan, loaded.points
    if plan.params <= 0:
        raise AblateError(
            f"--study {study}: its plan has no parameter count (params {plan.params}), the ladder's N; "
            "set model.params in its recipe and run `ablate plan` again"
        )
    rows = next(iter(points.values()))
    return _Study(study, plan.params, _phase_tokens(plan, rows.names), rows.subsets, points, loaded.chances)


def _phase_tokens(plan: Plan, ablations: list[str]) -> int:
    """The tokens the ablations' variants trained in their phase: one count for a phase's variants."""
    counts = {v.tokens for v in plan.variants if v.ablation in ablations}
    if len(counts) != 1:
        raise AblateError(
            f"--study {plan.study}: its variants of {', '.join(ablations)} train {sorted(counts)} tokens, "
            "not one count; pass --phase to pool one phase"
        )
    return counts.pop()


def _check(studies: list[_Study]) -> None:
    """The same subsets in every study, and no two studies at one (N, D)."""
    first = studies[0]
    for study in studies[1:]:
        adds, lacks = sorted(set(study.subsets) - set(first.subsets)), sorted(set(first.subsets) - set(study.subsets))
        if adds or lacks:
            differ = "; ".join(
                [f"it {verb} {', '.join(names)}" for verb, names in (("adds", adds), ("lacks", lacks)) if names]
            )
            raise AblateError(
                f"--study {study.name}: its subsets differ from {first.name}'s ({differ}); "
                "pool studies of one removal design, planned from one recipe's subsets"
            )
    for a, b in pairwise(studies):
        if (a.size, a.tokens) == (b.size, b.tokens):
            raise AblateError(
                f"--study {a.name} and {b.name}: both at N = {a.size:,} parameters and D = {a.tokens:,} tokens; "
                f"{SAME}: pool one of them"
            )


def _pool(studies: list[_Study], target: str, subsets: list[str]) -> ScalePoints:
    """The target's rows of every study, their shares in `subsets`' order, with each study's N and D."""
    parts = [s.points[target] for s in studies]
    shares = [p.shares[:, [p.subsets.index(name) for name in subsets]] for p in parts]
    return ScalePoints(
        [name for p in parts for name in p.names],
        list(subsets),
        np.vstack(shares),
        np.concatenate([np.full(len(p.names), float(s.size)) for s, p in zip(studies, parts, strict=True)]),
        np.concatenate([np.full(len(p.names), float(s.tokens)) for s, p in zip(studies, parts, strict=True)]),
        np.concatenate([p.target for p in parts]),
    )
