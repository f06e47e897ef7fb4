"""Training-seed noise per score, from a study's replicate runs: what every Δ adds to item noise. Pure.

A Δ between two training runs scored on the same items moves with the runs' data order as well as
with the items: rerun the same variant with another seed and its scores change by points. A study
measures that spread from its replicates, the ablations with two or more done seeds (by default a
second baseline seed, `ablations.baseline_seeds`), and every cell's interval adds a seed term with
the pooled variance and its degrees of freedom (ablate.stats.seed_term). The variance is pooled per
phase (a phase study's short and long phases need not be as noisy) and per column: each task, each
category's gauntlet score and each held-out domain's loss, since tasks differ in how much a seed
moves them. `ablate report --seed-noise-from STUDY` adds an earlier study's replicates on the same
start: their sums of squares and degrees of freedom pool with this study's.

One replicate gives a task one degree of freedom, and two runs can agree on a task's score by chance
while their items flip by the dozen: read off whole-run scores alone, such a task looks noiseless and
its Δs are flagged where the next seed undoes them (the demo, seed 0: three freed-share cells of
+9.5 to +16.4 that seed 10 did not flag). So a task's variance is never below its floor, what the
items' own flips between replicates add up to (Cells.flip_variance): that is read off hundreds of
items (or dozens of clusters), not off one pair of scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ablate import stats
from ablate.names import VariantName
from ablate.recipe import Category
from ablate.report.load import DONE, START


@dataclass(frozen=True)
class SeedNoise:
    """One column's seed variance (squared fractions, or nats² for a loss) and its degrees of freedom."""

    variance: float
    df: float  # moderated: the prior's df added to the column's own (ablate.stats.moderated_variances)
    floor: float = 0.0  # the part its items' own flips show, read off every item (Cells.flip_variance)

    @property
    def sd(self) -> float:
        return math.sqrt(self.variance)

    def pooled(self, other: SeedNoise | None) -> SeedNoise:
        if other is None:
            return self
        df = self.df + other.df
        variance = (self.variance * self.df + other.variance * other.df) / df
        return SeedNoise(max(variance, self.floor, other.floor), df, max(self.floor, other.floor))


Key = tuple[str | None, str]  # (phase label or None, column): a task, a category or loss:<domain>


@dataclass(frozen=True)
class Measured:
    """A study's figures per variant: what its seed noise is read from."""

    scores: pd.DataFrame  # variant × task and category, fractions
    losses: pd.DataFrame  # variant × loss:<domain>, nats per token
    variants: pd.DataFrame  # StudyResults.variants: each variant's ablation and state
    floors: dict[Key, SeedNoise]  # (phase, task) → what its replicates' items' own flips add up to, with df


def seed_noise(
    own: Measured, tasks: list[str], categories: dict[str, Category], borrowed: Measured | None = None
) -> dict[Key, SeedNoise]:
    """The seed noise every Δ of a report adds, per phase and column: each column's variance pooled over
    this study's replicates (and `borrowed`'s, an earlier study on the same start), moderated with the
    others of its kind, raised to its floor (what the replicates' items' own flips add up to, pooled
    over both studies alike) where that is larger (why: the module docstring), then each category's
    from its tasks' and its own."""
    found, floors = _estimate(own), own.floors
    losses = set(own.losses.columns)
    if borrowed is not None:
        found, floors = _combine(found, _estimate(borrowed)), _combine(floors, borrowed.floors)
        losses |= set(borrowed.losses.columns)
    found = _moderated(found, [tasks, sorted({column for _, column in found if column in losses})])
    for key, floor in floors.items():
        if key in found:
            found[key] = SeedNoise(max(found[key].variance, floor.variance), found[key].df, floor.variance)
    return _with_categories(found, categories, tasks)


def replicates(variants: pd.DataFrame) -> dict[str | None, list[list[str]]]:
    """Phase label → the done seeds of each ablation that has two or more: what seed noise is read from."""
    done = variants[(variants.state == DONE) & (variants.ablation != START)]
    out: dict[str | None, list[list[str]]] = {}
    for ablation, group in done.groupby("ablation", sort=False):
        if len(group) >= 2:
            out.setdefault(VariantName.parse_ablation(str(ablation)).label, []).append([str(v) for v in group.variant])
    return out


def _estimate(measured: Measured) -> dict[Key, SeedNoise]:
    """The pooled seed variance of every column of `measured`, per phase, over the study's replicates;
    a column none of them measured has none."""
    values = pd.concat([measured.scores, measured.losses], axis=1)
    found: dict[Key, SeedNoise] = {}
    for label, groups in replicates(measured.variants).items():
        for column in values.columns:
            scored = [values.loc[[v for v in g if v in values.index], column].dropna().to_numpy(float) for g in groups]
            variance, df = stats.pooled_variance(scored)
            if df:
                found[(label, str(column))] = SeedNoise(variance, df)
    return found


def _moderated(noise: dict[Key, SeedNoise], kinds: list[list[str]]) -> dict[Key, SeedNoise]:
    """Each column's variance moderated with the others of its kind at its phase (tasks with tasks,
    categories with categories, domains with domains: stats.moderated_variances). One extra baseline
    seed gives a task one degree of freedom, and a t with one df cannot flag anything over a table;
    the tasks' common level lends each the df their agreement supports, and no more."""
    out = dict(noise)
    for label in {phase for phase, _ in noise}:
        for kind in kinds:
            keys = [(label, column) for column in kind if (label, column) in noise]
            shrunk = stats.moderated_variances([noise[k].variance for k in keys], [noise[k].df for k in keys])
            out.update({k: SeedNoise(v, df) for k, (v, df) in zip(keys, shrunk, strict=True)})
    return out


def _with_categories(
    noise: dict[Key, SeedNoise], categories: dict[str, Category], tasks: list[str]
) -> dict[Key, SeedNoise]:
    """Each category's seed variance: what its tasks' (moderated) variances give it, as if the tasks'
    seed effects were independent — Σ var_t / (1 − chance_t)² / T² for a gauntlet mean — pooled with
    the category score's own measured variance, so that tasks a seed moves together show up in it.
    A category's own figure alone has the df of its replicates (one, with one extra baseline seed),
    which leaves a t too wide to flag anything; its tasks lend it theirs."""
    out = dict(noise)
    for label in {phase for phase, _ in noise}:
        for name, spec in categories.items():
            if not all((label, t) in noise for t in spec.tasks) or not set(spec.tasks) <= set(tasks):
                continue
            parts = [noise[(label, t)] for t in spec.tasks]
            chance = spec.chances
            n = len(parts)
            weights = [1 / (1 - c) ** 2 / n**2 for c in chance]
            variance = sum(part.variance * w for part, w in zip(parts, weights, strict=True))
            floor = sum(part.floor * w for part, w in zip(parts, weights, strict=True))
            from_tasks = SeedNoise(variance, min(part.df for part in parts), floor)
            out[(label, name)] = from_tasks.pooled(noise.get((label, name)))
    return out


def _combine(own: dict[Key, SeedNoise], borrowed: dict[Key, SeedNoise]) -> dict[Key, SeedNoise]:
    """This study's estimates pooled with an earlier study's, column by column."""
    return {key: noise.pooled(own.get(key)) for key, noise in borrowed.items()} | {
        key: noise for key, noise in own.items() if key not in borrowed
    }
