"""From a task's correct-answer loss to its accuracy: the second step of the OLMo ladder (Bhagia et al.,
arXiv 2412.04403). Accuracy follows no power law in N and D (it sits at chance, then emerges), but the
loss on the correct answers does (scale.py predicts it); accuracy is then a sigmoid of that loss,

    Acc(L) = a / (1 + exp(−k·(L − L0))) + b          k < 0: accuracy falls as the loss rises

fitted by least squares over every (loss, accuracy) pair of a ladder's runs (ablate.report.answers
reads them). b, the floor a model with no grip on the answers scores, starts at chance and lies in
[0, chance + FLOOR_TOP·(1 − chance)]: bounded at chance, b could only err low where a ladder barely
reaches the floor, and 95% intervals beyond the runs' losses covered 72–78% instead of 90–98% (in
simulations like tests/test_accuracy.py's). a = h·(1 − b) with h in [0, 1], so the ceiling a + b never passes 1;
k lies in ±SLOPE over the loss's standard deviation and L0 within REACH of them (the fit runs on the
loss standardized, so one set of bounds and starts serves any unit).

`link` refuses, in one sentence, where the data cannot pin a sigmoid: fewer runs than LEAST; every
run within NEAR_CHANCE binomial standard errors of chance (given the items per run); no fall of
accuracy with loss beyond noise (TREND); or a fitted slope that is not negative. `bootstrap_link`
refits on draws of runs, so an interval holds the link's own uncertainty; `through` carries draws of a
predicted loss through one link; `accuracy_draws` pairs loss draws with link draws for both.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ablate.errors import AblateError

PARAMETERS = ("a", "b", "k", "L0")
LEAST = len(PARAMETERS) + 2  # with one fewer, four parameters fit any data and the residual checks nothing
NEAR_CHANCE = 2.0  # binomial standard errors: a run within this of chance is indistinguishable from a guesser
# (two-sided 95%); when every run is, the sigmoid's shape would be the noise's, the emergence the paper warns of
TREND = 2.0  # t of a straight line's slope of accuracy on loss: above −2 the fall is within noise (one-sided
# ~2% false links on flat data, whatever the runs' items; it needs no item count, so it also catches saturation)
FLOOR_TOP = 0.5  # b's bound, as a share of the way from chance to 1: a higher floor leaves nothing to rise through
SLOPE = 30.0  # |k| × sd(loss): a transition sharper than 1/30 of the loss's spread is a step no ladder resolves
REACH = 10.0  # L0 within this many sd of the mean loss: farther, the runs see only one flat tail
STARTS = ((-1.0, -1.0), (-1.0, 0.0), (-1.0, 1.0), (-4.0, -1.0), (-4.0, 0.0), (-4.0, 1.0))  # (k·sd, (L0−mean)/sd)


@dataclass(frozen=True)
class Link:
    """A fitted sigmoid from correct-answer loss to accuracy; `predict` maps any loss (vectorized)."""

    a: float
    b: float
    k: float  # per unit of loss; negative
    l0: float  # the loss at the midpoint, accuracy b + a/2
    chance: float
    rmse: float  # in-sample, in accuracy
    span: tuple[float, float]  # the losses fitted: beyond them `predict` extrapolates

    def predict(self, loss: np.ndarray | float) -> np.ndarray:
        """Accuracy at each loss."""
        return _sigmoid(np.asarray(loss, dtype=float), self.a, self.b, self.k, self.l0)


def _sigmoid(
    loss: np.ndarray, a: np.ndarray | float, b: np.ndarray | float, k: np.ndarray | float, l0: np.ndarray | float
) -> np.ndarray:
    from scipy.special import expit

    return b + a * expit(k * (loss - l0))


def link(
    loss: np.ndarray, accuracy: np.ndarray, chance: float, *, items: np.ndarray | float | None = None
) -> Link | str:
    """The sigmoid link fitted on runs' (loss, accuracy), or one sentence saying why it may not link.
    `chance`: a guesser's accuracy (multiple choice: mean 1 / choices); `items`: items per run (one
    number or one per run), for the near-chance rule, which is skipped without it."""
    x, y = _checked(loss, accuracy, chance)
    distinct = len(np.unique(x))
    if distinct < LEAST:
        return f"{distinct} runs of distinct loss, the sigmoid link needs {LEAST} (two more than its 4 parameters)."
    if items is not None:
        se = np.sqrt(chance * (1 - chance) / np.broadcast_to(np.asarray(items, dtype=float), y.shape))
        if (np.abs(y - chance) <= NEAR_CHANCE * se).all():
            return (
                f"every run's accuracy is within {NEAR_CHANCE:g} binomial standard errors of chance ({chance:.3g}): "
                "the task has not emerged at these scales, so its loss does not show in accuracy yet."
            )
    t = _trend(x, y)
    if t > -TREND:
        return (
            f"accuracy does not fall with loss beyond noise (a straight line through the runs has slope "
            f"t = {t:+.1f}, a link needs t ≤ −{TREND:g}): near chance or saturated at every run."
        )
    found = _fit(x, y, chance, [np.array([chance, _ceiling(y, chance), k, x0]) for k, x0 in STARTS])
    if found.k >= 0 or found.a <= 0:
        return f"the fitted sigmoid's slope k = {found.k:+.3g} is not negative: accuracy does not fall as loss rises."
    return found


def _checked(loss: np.ndarray, accuracy: np.ndarray, chance: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(loss, dtype=float).ravel(), np.asarray(accuracy, dtype=float).ravel()
    if len(x) != len(y):
        raise AblateError(f"loss and accuracy: {len(x)} and {len(y)} values; give one of each per run")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise AblateError("loss and accuracy: a value is not a finite number; leave out runs without both")
    if not 0 < chance < 1:
        raise AblateError(f"chance {chance}: a guesser's accuracy lies in (0, 1); multiple choice: 1 / choices")
    return x, y


def _trend(x: np.ndarray, y: np.ndarray) -> float:
    """The t statistic of the least-squares slope of y on x (−inf for a perfect falling line)."""
    dx, dy = x - x.mean(), y - y.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ dy) / sxx
    residual = dy - slope * dx
    se = np.sqrt(float(residual @ residual) / (len(x) - 2) / sxx)
    if se == 0:
        return -np.inf if slope < 0 else (np.inf if slope > 0 else 0.0)
    return slope / se


def _ceiling(y: np.ndarray, chance: float) -> float:
    """A start for h: the highest accuracy's share of the way from chance to 1, kept off the bounds."""
    return float(np.clip((y.max() - chance) / (1 - chance) + 0.05, 0.05, 0.95))


# ---- the fit, in standardized loss ----------------------------------------------------------


def _fit(x: np.ndarray, y: np.ndarray, chance: float, starts: list[np.ndarray]) -> Link:
    """The best of least-squares fits from `starts` (b, h, k·sd, (L0 − mean)/sd), exact Jacobian."""
    from scipy.optimize import least_squares
    from scipy.special import expit

    mean, sd = float(x.mean()), float(x.std()) or 1.0
    z = (x - mean) / sd
    low, high = np.array([0.0, 0.0, -SLOPE, -REACH]), np.array([chance + FLOOR_TOP * (1 - chance), 1.0, SLOPE, REACH])

    def residual(p: np.ndarray) -> np.ndarray:
        return p[0] + (1 - p[0]) * p[1] * expit(p[2] * (z - p[3])) - y

    def jacobian(p: np.ndarray) -> np.ndarray:
        s = expit(p[2] * (z - p[3]))
        slope = (1 - p[0]) * p[1] * s * (1 - s)
        return np.column_stack([1 - p[1] * s, (1 - p[0]) * s, slope * (z - p[3]), -slope * p[2]])

    best = None
    for start in starts:
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            found = least_squares(residual, np.clip(start, low + 1e-9, high - 1e-9), jac=jacobian, bounds=(low, high))
        if best is None or found.cost < best.cost:
            best = found
    assert best is not None
    b, h, k, x0 = (float(v) for v in best.x)
    rmse = float(np.sqrt(2 * best.cost / len(y)))
    return Link((1 - b) * h, b, k / sd, mean + x0 * sd, chance, rmse, (float(x.min()), float(x.max())))


def _params(found: Link) -> np.ndarray:
    """A link's parameters in the fit's standardized form, for a refit to start from (about its own runs)."""
    h = found.a / (1 - found.b) if found.b < 1 else 0.0
    return np.array([found.b, h, found.k, found.l0])


# ---- intervals: refits on draws of runs, and loss draws carried through ---------------------------------


def bootstrap_link(
    loss: np.ndarray,
    accuracy: np.ndarray,
    chance: float,
    resamples: int,
    seed: int,
    *,
    whole: Link | None = None,
) -> list[Link]:
    """The link refitted on `resamples` seeded draws of runs with replacement, each from `whole` (the
    link of every run, fitted here if not given; refused data raise): the link's own uncertainty. A draw
    with fewer than LEAST distinct losses is drawn again. No refusal applies to a draw: one with a flat
    fit is a draw, and widens the interval as it should."""
    x, y = _checked(loss, accuracy, chance)
    if whole is None:
        found = link(x, y, chance)
        if isinstance(found, str):
            raise AblateError(f"bootstrap_link: {found}")
        whole = found
    rng = np.random.default_rng(seed)
    draws: list[Link] = []
    for _ in range(20 * resamples):
        pick = rng.integers(0, len(x), size=len(x))
        if len(np.unique(x[pick])) < LEAST:
            continue
        xs = x[pick]
        mean, sd = float(xs.mean()), float(xs.std())
        start = _params(whole)
        start[2], start[3] = start[2] * sd, (start[3] - mean) / sd  # into this draw's standardized loss
        draws.append(_fit(xs, y[pick], chance, [start]))
        if len(draws) == resamples:
            break
    return draws


def through(
    found: Link, loss_draws: np.ndarray, loss: np.ndarray | float | None = None, ci: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A predicted loss's draws (axis 0: draws) carried through one link: (predicted, low, high) accuracy,
    predicted at `loss` (default: the draws' median) and the percentile interval of the draws. The link
    is monotone, so the interval is the loss interval's image."""
    draws = np.asarray(loss_draws, dtype=float)
    centre = np.median(draws, axis=0) if loss is None else np.asarray(loss, dtype=float)
    low, high = np.quantile(found.predict(draws), [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return found.predict(centre), low, high


def accuracy_draws(links: list[Link], loss_draws: np.ndarray) -> np.ndarray:
    """The i-th loss draw (axis 0) through the i-th link draw (cycled when fewer): accuracy draws that
    carry both uncertainties, paired across the rows of a draw (a Δ between rows keeps the pairing)."""
    which = np.arange(len(loss_draws)) % len(links)
    shape = (len(loss_draws),) + (1,) * (loss_draws.ndim - 1)
    a, b, k, l0 = (np.array([getattr(links[i], f) for i in which]).reshape(shape) for f in ("a", "b", "k", "l0"))
    return _sigmoid(loss_draws, a, b, k, l0)
