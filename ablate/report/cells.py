"""The Δ of one ablation on one task, with its interval: the statistics behind each cell of the report.

`Cells` turns the items table into one variants × items matrix per task, once, then pairs a variant's
items with the baseline's: a paired bootstrap where every seed has item logs, else a normal interval
from lm-eval's stderr; either way plus the seed term of the study's replicates (ablate.report.noise)
where it has any. The estimators themselves are in ablate/stats/; this module decides which one
applies and feeds it aligned items.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ablate import stats
from ablate.names import VariantName
from ablate.report.load import StudyResults
from ablate.report.noise import Key, SeedNoise

PAIRED, NORMAL, NO_CI = "paired bootstrap", "normal (stderr)", "no interval"  # how a cell's interval was made
# A task's items: (variant → row, values, doc_hash codes, scored, cluster codes or None), see _matrix.
_TaskItems = tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class DeltaCell:
    """One measured Δ of an ablation on a task or category, in fractions: the two scores, the interval's
    bounds on Δ (None without one), and the resample draws a category average combines (None where
    there are none), with the two-sided p-value they give. Built whole by `measured`; `with_seed_noise`
    gives the same Δ with the study's seed term in its draws."""

    score: float
    baseline_score: float
    low: float | None
    high: float | None
    n_items: int | None
    method: str  # PAIRED, NORMAL or NO_CI
    draws: np.ndarray | None  # the resampled Δs the interval and p-value are read from
    p_value: float | None
    n_clusters: int | None  # where clusters were drawn
    item_draws: np.ndarray | None  # the draws before any seed term
    seed_sd: float | None = None  # the seed noise added, where the study has replicates
    seed_df: float | None = None

    @property
    def delta(self) -> float:
        return self.score - self.baseline_score

    @classmethod
    def measured(
        cls,
        score: float,
        base_score: float,
        low: float | None,
        high: float | None,
        n_items: int | None,
        method: str,
        draws: np.ndarray | None,
        n_clusters: int | None = None,
    ) -> DeltaCell:
        """A Δ from its item (or stderr) draws alone, before any seed term."""
        p_value = None if draws is None else stats.bootstrap_p_value(draws)
        return cls(score, base_score, low, high, n_items, method, draws, p_value, n_clusters, draws)

    def with_seed_noise(
        self, noise: SeedNoise, seeds: int, base_seeds: int, ci: float, rng: np.random.Generator
    ) -> DeltaCell:
        """This Δ with the seed term added to its item draws (which it must have): interval, p-value and
        sign from the sum. The item draws stay in `item_draws`, for a category to combine before adding
        its own seed term."""
        assert self.item_draws is not None
        term = stats.seed_term(noise.sd, noise.df, seeds, base_seeds, resamples=len(self.item_draws), rng=rng)
        draws = self.item_draws + term
        low, high = stats.percentile_interval(draws, ci)
        p_value = stats.bootstrap_p_value(draws)
        return replace(self, low=low, high=high, draws=draws, p_value=p_value, seed_sd=noise.sd, seed_df=noise.df)


@dataclass(frozen=True)
class Cells:
    """Per-task matrices of item values, built once (`read`), and the Δ of one ablation on one task.
    `noise`: (phase, task) → the seed noise its Δs add to item noise; it is read off the items' own
    flips (flip_variance), so `read` leaves it empty and `with_noise` gives the Cells that add it."""

    ci: float
    resamples: int
    seed: int
    scores: dict[tuple[str, str], Any]  # (variant, task) → its lm-eval aggregate row
    task_items: dict[str, _TaskItems]
    noise: dict[Key, SeedNoise] = field(default_factory=dict)

    @classmethod
    def read(cls, results: StudyResults, metrics: dict[str, str], *, ci: float, resamples: int, seed: int) -> Cells:
        """Each task's items of its reported metric (`metrics`) as one variants × items matrix."""
        score_rows: Iterable[Any] = results.scores.itertuples()  # pandas-stubs cannot type a row's fields
        scores = {(r.variant, r.task): r for r in score_rows if metrics.get(r.task) == r.metric}
        task_items: dict[str, _TaskItems] = {}
        items = results.items
        if len(items):
            variant_codes, variant_names = _codes(items.variant)
            hash_codes, _ = _codes(items.doc_hash)
            cluster_codes, _ = _codes(items.cluster)  # −1 where an item has no cluster
            task_codes, task_names = _codes(items.task)
            metric_codes, metric_names = _codes(items.metric)
            metric_index = {str(m): i for i, m in enumerate(metric_names)}
            for code, task in enumerate(task_names):
                if str(task) not in metrics or metrics[str(task)] not in metric_index:
                    continue
                chosen = np.flatnonzero((task_codes == code) & (metric_codes == metric_index[metrics[str(task)]]))
                task_items[str(task)] = _matrix(
                    variant_codes[chosen],
                    variant_names,
                    items.doc_id.to_numpy()[chosen],
                    hash_codes[chosen],
                    items.value.to_numpy()[chosen],
                    cluster_codes[chosen],
                )
        return cls(ci, resamples, seed, scores, task_items)

    def with_noise(self, noise: dict[Key, SeedNoise]) -> Cells:
        """The same items, every Δ from them adding `noise`'s seed term."""
        return replace(self, noise=noise)

    def mean_score(self, variants: list[str], task: str) -> float | None:
        found = [self.scores[(v, task)].score for v in variants if (v, task) in self.scores]
        return float(np.mean(found)) if found and len(found) == len(variants) else None

    def items(self, task: str) -> int | None:
        """Items of a task in its lm-eval results (the largest count any variant reports)."""
        counts = [r.n_items for (v, t), r in self.scores.items() if t == task and pd.notna(r.n_items)]
        return int(max(counts)) if counts else None

    def all_deltas(
        self, jobs: dict[str, list[str]], bases: dict[str, list[str]], tasks: list[str]
    ) -> dict[tuple[str, str], tuple[DeltaCell | None, list[str]]]:
        """(ablation, task) → (cell, notes) for every job (ablation → its done seeds) and task, against
        `bases[ablation]` (its baseline's done seeds). Tasks run on a few threads: numpy's random draws
        release the GIL, and each cell's generator is seeded from its own names, so the figures do not
        depend on the number of threads or on which other variants exist."""

        def one_task(task: str) -> dict[tuple[str, str], tuple[DeltaCell | None, list[str]]]:
            return {(a, task): self.delta(a, done, bases[a], task) for a, done in jobs.items()}

        workers = max(1, min(len(tasks), len(os.sched_getaffinity(0)), 8))
        with ThreadPoolExecutor(workers) as pool:
            return {key: value for part in pool.map(one_task, tasks) for key, value in part.items()}

    def delta(self, ablation: str, done: list[str], base: list[str], task: str) -> tuple[DeltaCell | None, list[str]]:
        """Δ of `ablation` on `task` and notes about it: paired bootstrap where every seed has item
        logs, else a normal interval from lm-eval's stderr."""
        rng = np.random.default_rng([self.seed, zlib.crc32(ablation.encode()), zlib.crc32(task.encode())])
        notes: list[str] = []
        cell = self._paired(ablation, done, base, task, rng, notes)
        if cell is None:
            cell = self._normal(ablation, done, base, task, rng, notes)
        noise = self.noise.get((VariantName.parse_ablation(ablation).label, task))
        if cell is None or noise is None or cell.draws is None:
            return cell, notes
        return cell.with_seed_noise(noise, len(done), len(base), self.ci, rng), notes

    def _paired(
        self, ablation: str, done: list[str], base: list[str], task: str, rng: np.random.Generator, notes: list[str]
    ) -> DeltaCell | None:
        if task not in self.task_items:
            return None
        rows, values, hashes, scored, clusters = self.task_items[task]
        if any(v not in rows for v in done + base):
            return None
        v_idx, b_idx = [rows[v] for v in done], [rows[v] for v in base]
        both = scored[v_idx + b_idx].all(axis=0)
        n_items = int(both.sum())
        if n_items == 0:
            return None
        code = hashes[v_idx + b_idx][:, both]
        if (code != code[:1]).any():
            notes.append(f"{ablation} × {task}: item texts differ from the baseline's (doc_hash), so not paired")
            return None
        full = int(scored[v_idx + b_idx].sum(axis=1).max())
        if n_items < full:
            notes.append(f"{ablation} × {task}: Δ on the {n_items} items both sides scored (of {full})")
        variant, baseline = values[v_idx][:, both], values[b_idx][:, both]
        labels = _cluster_labels(clusters, v_idx + b_idx, both)
        draws = stats.paired_bootstrap(variant, baseline, resamples=self.resamples, rng=rng, clusters=labels)
        score, base_score = float(variant.mean()), float(baseline.mean())
        low, high = stats.percentile_interval(draws, self.ci)
        n_clusters = None if labels is None else len(np.unique(labels))
        return DeltaCell.measured(score, base_score, low, high, n_items, PAIRED, draws, n_clusters)

    def item_means(self, task: str, groups: list[list[str]]) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Each group's mean over its variants of every item they all scored (groups × items), and the
        items' cluster labels (None: unclustered); None without item logs for every variant."""
        if task not in self.task_items:
            return None
        rows, values, _, scored, clusters = self.task_items[task]
        if any(v not in rows for group in groups for v in group):
            return None
        index = [rows[v] for group in groups for v in group]
        both = scored[index].all(axis=0)
        if not both.any():
            return None
        means = np.stack([values[[rows[v] for v in group]][:, both].mean(axis=0) for group in groups])
        return means, _cluster_labels(clusters, index, both)

    def flip_variance(self, task: str, groups: list[list[str]]) -> tuple[float, int] | None:
        """What a run's score on `task` varies by from its items' own flips between seeds alone, and its
        degrees of freedom: over each group's seeds (one ablation's replicates), the variance of every
        item's value (a cluster's sum, for a clustered task), summed over them / n², pooled over the
        groups. As long as a seed does not move one item up where it moves another down, the whole-run
        variance is at least this (a shift of the whole task adds to it), and it is read off every
        item, not a run or two: a floor that one replicate can trust. None without item logs for two
        seeds of a group."""
        if task not in self.task_items:
            return None
        rows, values, _, scored, clusters = self.task_items[task]
        total, df = 0.0, 0
        for group in groups:
            index = [rows[v] for v in group if v in rows]
            both = scored[index].all(axis=0)
            if len(index) < 2 or not both.any():
                continue
            units, _ = stats.resample_units(values[index][:, both], _cluster_labels(clusters, index, both))
            total += (len(index) - 1) * float(units.var(axis=0, ddof=1).sum()) / int(both.sum()) ** 2
            df += len(index) - 1
        return (total / df, df) if df else None

    def design_effect(self, base: list[str], task: str) -> tuple[int, float] | None:
        """(clusters, design effect) of a clustered task, from the baseline's items (mean over its
        seeds); None where the task is not clustered."""
        if task not in self.task_items or any(v not in self.task_items[task][0] for v in base):
            return None
        rows, values, _, scored, clusters = self.task_items[task]
        index = [rows[v] for v in base]
        both = scored[index].all(axis=0)
        labels = _cluster_labels(clusters, index, both)
        if labels is None:
            return None
        return len(np.unique(labels)), stats.design_effect(values[index][:, both].mean(axis=0), labels)

    def _normal(
        self, ablation: str, done: list[str], base: list[str], task: str, rng: np.random.Generator, notes: list[str]
    ) -> DeltaCell | None:
        missing = [v for v in done + base if (v, task) not in self.scores]
        if missing:
            notes.append(f"{ablation} × {task}: not evaluated for {', '.join(missing)}")
            return None
        found_v = [self.scores[(v, task)] for v in done]
        found_b = [self.scores[(v, task)] for v in base]
        score = float(np.mean([r.score for r in found_v]))
        base_score = float(np.mean([r.score for r in found_b]))
        stderr = stats.unpaired_stderr([r.stderr for r in found_v], [r.stderr for r in found_b])
        n_items = int(found_v[0].n_items) if pd.notna(found_v[0].n_items) else None
        if math.isnan(stderr):
            notes.append(f"{ablation} × {task}: no per-item logs and no stderr from lm-eval, so Δ has no interval")
            return DeltaCell.measured(score, base_score, None, None, n_items, NO_CI, None)
        low, high = stats.normal_interval(score - base_score, stderr, self.ci)
        draws = stats.normal_draws(score - base_score, stderr, resamples=self.resamples, rng=rng)
        return DeltaCell.measured(score, base_score, low, high, n_items, NORMAL, draws)


def _codes(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and their labels: free for a categorical column, one factorize otherwise."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(), column.cat.categories
    codes, labels = pd.factorize(column)
    return codes, pd.Index(labels)


def _matrix(
    variant_codes: np.ndarray,
    variant_names: pd.Index,
    doc_ids: np.ndarray,
    hash_codes: np.ndarray,
    values: np.ndarray,
    cluster_codes: np.ndarray,
) -> _TaskItems:
    """(variant → row, values, doc_hash codes, scored, cluster codes): variants × items, NaN / False / −1
    where not scored; cluster codes None where no item of the task has a cluster."""
    present, rows = _dense(variant_codes)
    ids, columns = _dense(doc_ids)
    matrix = np.full((len(present), len(ids)), np.nan)
    matrix[rows, columns] = values
    hashes, clusters = np.full(matrix.shape, -1), np.full(matrix.shape, -1)
    hashes[rows, columns] = hash_codes
    clusters[rows, columns] = cluster_codes
    scored = np.zeros(matrix.shape, dtype=bool)
    scored[rows, columns] = True
    variant_rows = {str(variant_names[code]): i for i, code in enumerate(present)}
    return variant_rows, matrix, hashes, scored, clusters if (cluster_codes >= 0).any() else None


def _cluster_labels(clusters: np.ndarray | None, index: list[int], columns: np.ndarray) -> np.ndarray | None:
    """Each chosen item's cluster code, if every one of them has a cluster in every chosen row (the
    bootstrap then resamples clusters); else None (items are resampled one by one)."""
    if clusters is None:
        return None
    chosen = clusters[index][:, columns]
    return chosen[0] if (chosen >= 0).all() else None


def _dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_inverse=True) without the sort when keys are small non-negative integers
    (doc ids 0..n−1, category codes): a presence table, O(n)."""
    keys = np.asarray(keys)
    if len(keys) and keys.dtype.kind in "iu" and keys.min() >= 0 and keys.max() < 4 * len(keys) + 1024:
        present = np.zeros(int(keys.max()) + 1, dtype=bool)
        present[keys] = True
        return np.flatnonzero(present), (np.cumsum(present) - 1)[keys]
    return np.unique(keys, return_inverse=True)
