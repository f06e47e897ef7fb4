"""Category scores over several tasks, Gauntlet-style: each task rescaled so chance is 0 and a
perfect score 1, then averaged; on floats and element-wise on arrays of resample draws alike."""

from __future__ import annotations


def gauntlet_score(scores: list, random_baselines: list[float]):
    """Gauntlet-style category score: per task (score − chance) / (1 − chance), 0 at chance and 1 at
    perfect, so tasks with different chance levels average fairly; then the mean over the tasks.
    Works on floats and element-wise on arrays (pandas columns, resample draws)."""
    return sum((s - rb) / (1 - rb) for s, rb in zip(scores, random_baselines, strict=True)) / len(scores)


def gauntlet_delta(deltas: list, random_baselines: list[float]):
    """The category Δ from per-task Δs: chance cancels in the difference, only 1 / (1 − chance) stays.
    Given aligned resample draws per task (tasks' items are independent), gives the category's draws."""
    return sum(d / (1 - rb) for d, rb in zip(deltas, random_baselines, strict=True)) / len(deltas)
