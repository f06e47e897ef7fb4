"""A task's accuracy across scale through its correct-answer loss, the OLMo ladder's two steps (Bhagia et
al., arXiv 2412.04403): a scale model predicts the loss `answer-loss:<task>` at the wanted N and D, and a
sigmoid link fitted on the ladder's (loss, accuracy) pairs turns it into accuracy (ablate.analyze.accuracy).

    found = linked(task, loss, Chance(0.25, 300), model="joint", seed=0)   # a LinkedFit, or the reason

Each scale model of the loss gives one such model of the task, `linked:<model>`. It is checked on the
held-out scales like every other model of the task (the loss model and the link both fitted on the smaller
scales only), so it is chosen only where it predicted the held-out accuracy better than fitting accuracy
directly. Its interval pairs bootstrap refits of the loss model with refits of the link: both
uncertainties. Where the link may not be fitted (too few runs, every run near chance, no fall with loss),
the reason is the model's note and it predicts nothing. Accuracy is in percent, as a study's task scores.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablate.analyze.accuracy import Link, accuracy_draws, bootstrap_link, link
from ablate.analyze.ladder import HeldOut, extrapolation, held_out_scales
from ablate.analyze.scale import ScaleFit, ScalePoints, bootstrap, fit
from ablate.analyze.separate import OTHER_MIXTURE
from ablate.errors import AblateError

PERCENT = 100.0  # a study's task scores are percentages; the link works in fractions
PREFIX = "linked:"  # linked:joint, the task's model through the loss's joint form


@dataclass(frozen=True)
class Chance:
    """What the link's near-chance rule needs of a task: a guesser's accuracy (a fraction) and items per run."""

    level: float
    items: float


@dataclass(frozen=True)
class Linked:
    """A loss model and a link: predicts the task's accuracy (percent) at any mixture and scale."""

    loss: ScaleFit
    link: Link

    def predict(self, shares: np.ndarray, size: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        return PERCENT * self.link.predict(self.loss.predict(shares, size, tokens))


@dataclass(frozen=True)
class LinkedFit:
    """linked:<model> on one task: the whole fit, the refits for intervals, the held-out scales."""

    model: str  # linked:joint
    whole: Linked
    draws: list[ScaleFit]  # the loss model's bootstrap refits
    links: list[Link]  # the link's bootstrap refits
    held_out: list[HeldOut]


def aligned(task: ScalePoints, loss: ScalePoints) -> tuple[ScalePoints, ScalePoints]:
    """The rows measured in both targets (same run name, N and D), in the task's order."""
    keys = {(n, s, d): i for i, (n, s, d) in enumerate(zip(loss.names, loss.size, loss.tokens, strict=True))}
    pairs = [(i, keys[k]) for i, k in enumerate(zip(task.names, task.size, task.tokens, strict=True)) if k in keys]
    mine, theirs = (np.array([p[j] for p in pairs], dtype=int) for j in (0, 1))
    return task.rows(mine), loss.rows(theirs)


def _fit(task: ScalePoints, loss: ScalePoints, chance: Chance, model: str, seed: int) -> Linked:
    """The loss model and the link fitted on the same rows; AblateError where either may not be."""
    found = link(loss.target, task.target / PERCENT, chance.level, items=chance.items)
    if isinstance(found, str):
        raise AblateError(f"the link from loss to accuracy: {found}")
    return Linked(fit(loss, model, seed=seed), found)


def linked(task: ScalePoints, loss: ScalePoints, chance: Chance, *, model: str, seed: int, resamples: int) -> LinkedFit:
    """linked:`model` fitted on the rows of `task` that `loss` measured too, with its held-out scales and
    refits; AblateError (the reason) where the loss model or the link may not be fitted on them."""
    task, loss = aligned(task, loss)

    def fitter(index: np.ndarray) -> tuple[Linked, ScaleFit]:
        found = _fit(task.rows(index), loss.rows(index), chance, model, seed)
        return found, found.loss

    whole = _fit(task, loss, chance, model, seed)
    draws = bootstrap(loss, model, resamples=resamples, seed=seed, whole=whole.loss)
    links = bootstrap_link(loss.target, task.target / PERCENT, chance.level, resamples, seed, whole=whole.link)
    checks = held_out_scales(task, PREFIX + model, seed=seed, fitter=fitter)
    return LinkedFit(PREFIX + model, whole, draws, links, checks)


def draws(
    found: LinkedFit, shares: np.ndarray, size: np.ndarray, tokens: np.ndarray, ci: float = 0.95, wide: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Accuracy (percent) at each row, its draws (axis 0: each loss refit through a link refit; without
    loss refits, the link's refits alone at the predicted loss), and per row the reason the loss model
    may not extrapolate there (ladder.extrapolation; with `wide`, on the loss's own interval too), or None."""
    loss = found.whole.loss.predict(shares, size, tokens)
    losses = np.array([d.predict(shares, size, tokens) for d in found.draws]) if found.draws else None
    reasons: list[str | None] = []
    for i in range(len(loss)):
        band = None if losses is None else np.quantile(losses[:, i], [(1 - ci) / 2, (1 + ci) / 2])
        interval = None if band is None or not wide else (float(loss[i]), float(band[0]), float(band[1]))
        reason = OTHER_MIXTURE if not np.isfinite(loss[i]) else extrapolation(found.whole.loss, float(size[i]),
                                                                              float(tokens[i]), interval)  # fmt: skip
        reasons.append(None if reason is None else f"its correct-answer loss: {reason}")
    paired = np.broadcast_to(loss, (len(found.links), len(loss))) if losses is None else losses
    return PERCENT * found.whole.link.predict(loss), PERCENT * accuracy_draws(found.links, paired), reasons
