"""How far to trust a study's table: seed noise against signal per task, the seeds or items a Δ of a
given size needs, and whether two halves of the seeds order the variants alike.

Pure, like build.py: from the loaded results, the report's score table and the cells' item matrices.
Needs two or more seeds per ablation; with one seed there is no seed noise to measure and `trust`
returns None (the report then says so in one footnote). The estimators are in ablate/stats/:
`seed_noise` (pooled seed SD, spread of ablation means, SNR, the F-test), `detectable_effect`,
`seeds_needed`, `items_needed` and `decision_consistency`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.names import VariantName
from ablate.report.cells import Cells
from ablate.report.load import DONE, START, StudyResults


@dataclass(frozen=True)
class Power:
    """One task's power at its baseline's score: the smallest Δ a study of this size detects (fractions);
    a clustered task counts its effective items, n / design effect."""

    n_items: int
    baseline_score: float
    mde: float  # two-sided at the report's level, 80% power
    n_clusters: int | None = None  # the clustered task's, else None
    design_effect: float | None = None
    n_effective: float | None = None

    @property
    def effective(self) -> float:
        """The items the MDE counts: effective items for a clustered task, else its items."""
        return self.n_items if self.n_effective is None else self.n_effective


@dataclass(frozen=True)
class Consistency:
    """The share of variant pairs that one half of the seeds orders as the other half does."""

    first: list[int]  # the seeds of each half
    second: list[int]
    pairs: int
    agreement: float
    low: float
    high: float


@dataclass(frozen=True)
class TaskTrust:
    """One task's row of the trust section; scores and Δs in fractions."""

    task: str
    ablations: int  # ablations with at least two done seeds, the baseline among them
    seeds: int  # the baseline's done seeds: what "now" means below
    seed_sd: float
    spread: float
    snr: float
    p_value: float  # F-test: every ablation has the same expected score
    p_adjusted: float  # over the tasks, with the report's adjustment
    distinguishes: bool
    detectable: float | None  # smallest Δ detectable now, items and seeds together
    seeds_needed: int | None  # for a Δ of Trust.detect_pp at these items; None: items are the limit
    items_needed: int | None  # for that Δ at these seeds; None: seed noise is the limit
    least_items: int | None  # for that Δ with unlimited seeds: what "more items" means
    least_seeds: int | None  # for that Δ with unlimited items: what "more seeds" means
    stable_signs: int  # removals whose Δ keeps its sign in ≥ STABLE of resamples
    removals: int
    consistency: Consistency | None


@dataclass(frozen=True)
class PhaseAgreement:
    """On one task, how often a shorter phase orders the variants' pairs as the longest phase does."""

    task: str
    short: str  # phase labels: p10
    long: str
    variants: int  # removals (baseline and control included) done at both phases
    pairs: int
    agreement: float
    low: float
    high: float


@dataclass(frozen=True)
class Trust:
    detect_pp: float  # the Δ the "seeds/items for Δ" columns aim at (`--detect`, in percentage points)
    tasks: list[TaskTrust]
    phase: str | None  # a phase study's: the phase these figures are at (the longest)


STABLE = 0.95  # a removal's sign counts as stable when this share of resamples keeps it


def trust(
    results: StudyResults,
    scores: pd.DataFrame,
    cells: Cells,
    rows: pd.DataFrame,
    power: dict[str, Power],
    *,
    baseline: str,
    phase: str | None,
    tasks: list[str],
    ci: float,
    resamples: int,
    seed: int,
    adjust: str,
    detect_pp: float,
) -> Trust | None:
    """The trust section's figures, or None when no ablation has two done seeds. In a phase study,
    over the ablations of `phase` (the longest): the phases are compared by `phase_agreement`."""
    variants = results.variants[(results.variants.state == DONE) & (results.variants.ablation != START)]
    variants = variants.loc[
        np.array([VariantName.parse_ablation(a).label == phase for a in variants.ablation], dtype=bool)
    ]
    by_ablation = variants.groupby("ablation", sort=False)
    members = {str(a): [str(v) for v in group.sort_values("seed").variant] for a, group in by_ablation}
    members = {a: vs for a, vs in members.items() if len(vs) >= 2}
    if baseline not in members or len(members) < 2:
        return None
    seed_of = variants.set_index("variant").seed
    halves = _halves(members, seed_of)
    measured = []
    for task in tasks:
        if task not in scores:
            continue
        groups = [scores.loc[vs, task].dropna().to_numpy(dtype=float) for vs in members.values()]
        noise = stats.seed_noise(groups)
        if noise is not None:
            measured.append((task, noise))
    if not measured:
        return None
    adjusted = stats.adjust_p_values(np.array([n.p_value for _, n in measured]), adjust)
    out = []
    for (task, noise), p_adjusted in zip(measured, adjusted, strict=True):
        ours = rows.variant.isin(list(members)) & (rows.variant != baseline)
        task_rows = rows[(rows.task == task) & ours & rows.sign_kept.notna()]
        consistency = None
        if halves is not None:
            rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
            consistency = _consistency(cells, task, members, halves, seed_of, resamples, rng, ci)
        out.append(
            TaskTrust(
                task=task,
                ablations=len(members),
                seeds=len(members[baseline]),
                seed_sd=noise.noise,
                spread=noise.signal,
                snr=noise.snr,
                p_value=noise.p_value,
                p_adjusted=float(p_adjusted),
                distinguishes=bool(p_adjusted < 1 - ci),
                **_needs(power.get(task), noise.noise, len(members[baseline]), detect_pp / 100, ci),
                stable_signs=int((task_rows.sign_kept >= STABLE).sum()),
                removals=len(task_rows),
                consistency=consistency,
            )
        )
    return Trust(detect_pp=detect_pp, tasks=out, phase=phase)


def _needs(power: Power | None, seed_sd: float, seeds: int, delta: float, ci: float) -> dict[str, Any]:
    """Detectable Δ now, and the seeds or items a Δ of `delta` needs, at the baseline's score and
    effective items (a clustered task's items needed are counted as raw items: × design effect)."""
    if power is None:
        return dict.fromkeys(("detectable", "seeds_needed", "items_needed", "least_items", "least_seeds"))
    n = power.effective
    score = 100 * power.baseline_score / 100  # through percent, as report.json's figures were first made
    p = min(max(score, 1 / power.n_items), 1 - 1 / power.n_items)

    def raw(effective: int | None) -> int | None:
        return None if effective is None else int(np.ceil(effective * (power.design_effect or 1.0)))

    return {
        "detectable": stats.detectable_effect(p, n, seed_sd, seeds, ci),
        "seeds_needed": stats.seeds_needed(delta, p, n, seed_sd, ci),
        "items_needed": raw(stats.items_needed(delta, p, seeds, seed_sd, ci)),
        "least_items": raw(stats.items_needed(delta, p, math.inf, seed_sd, ci)),
        "least_seeds": stats.seeds_needed(delta, p, math.inf, seed_sd, ci),
    }


def _halves(members: dict[str, list[str]], seed_of: pd.Series) -> tuple[list[int], list[int]] | None:
    """The seeds every ablation ran, split into a first and a second half (by seed value)."""
    common = sorted(set.intersection(*(set(int(seed_of[v]) for v in vs) for vs in members.values())))
    if len(common) < 2:
        return None
    return common[: len(common) // 2], common[len(common) // 2 :]


def _consistency(
    cells: Cells,
    task: str,
    members: dict[str, list[str]],
    halves: tuple[list[int], list[int]],
    seed_of: pd.Series,
    resamples: int,
    rng: np.random.Generator,
    ci: float,
) -> Consistency | None:
    """Decision consistency of the two seed halves on `task`."""
    first, second = ([[v for v in vs if int(seed_of[v]) in half] for vs in members.values()] for half in halves)
    found = _agreement(cells, task, first, second, resamples, rng, ci)
    k = len(members)
    return None if found is None else Consistency(halves[0], halves[1], k * (k - 1) // 2, *found)


def _agreement(
    cells: Cells,
    task: str,
    first: list[list[str]],
    second: list[list[str]],
    resamples: int,
    rng: np.random.Generator,
    ci: float,
    labels: tuple[str | None, str | None] | None = None,
) -> tuple[float, float, float] | None:
    """(agreement, low, high): how often the variants' means over `first` (one list of variants per
    variant compared) and over `second` order the pairs alike on `task`, its items (or clusters)
    resampled alike for both and, with the two phases' `labels`, each mean's seed term where the phase's
    replicates measured it (not for two halves of one phase's seeds, whose spread is the seed noise
    compared); None without item logs."""
    matrix = cells.item_means(task, first + second)
    if matrix is None:
        return None
    means, clusters = matrix
    k = len(first)
    found = [cells.noise.get((label, task)) for label in labels or ()]
    seed_sd, df = None, math.inf
    if any(n is not None for n in found):
        sds = [0.0 if n is None else n.sd for n in found]
        seed_sd = np.array([sds[0] / math.sqrt(len(g)) for g in first] + [sds[1] / math.sqrt(len(g)) for g in second])
        df = min(n.df for n in found if n is not None)
    agreement, draws = stats.decision_consistency(
        means[:k], means[k:], resamples=resamples, rng=rng, clusters=clusters, seed_sd=seed_sd, df=df
    )
    return (agreement, *stats.percentile_interval(draws, ci))


def phase_agreement(
    results: StudyResults,
    cells: Cells,
    tasks: list[str],
    phases: list[str],
    *,
    resamples: int,
    seed: int,
    ci: float,
) -> list[PhaseAgreement]:
    """Per task and shorter phase: the share of variant pairs it orders as the longest phase does,
    each variant its mean over its done seeds, with a bootstrap interval over the items (the same
    items drawn for both phases) and each phase's seed noise where its replicates measured it. Empty
    with fewer than two phases."""
    if len(phases) < 2:
        return []
    done = results.variants[(results.variants.state == DONE) & (results.variants.ablation != START)]
    by_phase: dict[str, dict[str, list[str]]] = {}
    for variant, ablation in zip(done.variant, done.ablation, strict=True):
        name = VariantName.parse_ablation(str(ablation))
        if name.label is not None:
            by_phase.setdefault(name.label, {}).setdefault(name.base, []).append(str(variant))
    longest = phases[-1]
    out = []
    for short in phases[:-1]:
        arms = [a for a in by_phase.get(longest, {}) if a in by_phase.get(short, {})]
        if len(arms) < 2:
            continue
        first, second = [by_phase[short][a] for a in arms], [by_phase[longest][a] for a in arms]
        for task in tasks:
            rng = np.random.default_rng([seed, zlib.crc32(f"{short}:{longest}:{task}".encode())])
            found = _agreement(cells, task, first, second, resamples, rng, ci, (short, longest))
            if found is not None:
                k = len(arms)
                out.append(PhaseAgreement(task, short, longest, k, k * (k - 1) // 2, *found))
    return out
