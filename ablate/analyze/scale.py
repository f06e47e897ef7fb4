"""Models of a target (a domain's loss) across scale: runs of several mixtures r at several model
sizes N (parameters) and token counts D, fitted so that a larger run can be predicted from smaller ones.

    joint   L(r, N, D) = E(r) + A(r)·(N/N₀)^−α + B(r)·(D/D₀)^−β      one least-squares fit of every row
            E(r) = Σ_j e_j r_j,  log A(r) = Σ_j a_j r_j,  log B(r) = Σ_j b_j r_j;  α, β shared
    nested  Data Mixing Laws (Ye et al., arXiv 2403.16952), three fits in turn:
            per run (a mixture at one size) L(D) = E + B·(D/D₀)^−β over its token counts, β shared;
            per mixture L(N) = E + A·(N/N₀)^−α through those runs' values at the wanted D, α shared;
            across mixtures L(r) = c + k·exp(Σ_j t_j r_j) through those values at the wanted N
            (laws.py's `law`), which predicts any mixture, a new one too
    separate                                                           (separate.py)
            each mixture its own L(N) = E_m + A_m·(N/N₀)^−α (or in D), α shared: the mixtures it fitted only

Ye et al. fit each run's later steps (their points are checkpoints in mid-schedule); here every token count
is fitted, since a study's token counts are runs that finished their schedule (leaving out each run's
counts below a tenth of its longest, 2 of 7, moved β over 20 nested-law ladders from 0.280 ± 0.004 to
0.274 ± 0.014): a caller with mid-run checkpoints leaves their early ones out. The nested form evaluates
every run's token law at the wanted D, so where small models trained for fewer tokens it extrapolates
their token laws furthest.

N₀ and D₀ are the geometric means of the fitted N and D, so the powers are near 1 and the fit well
conditioned. The joint form's E is what a mixture reaches at infinite scale, linear in the shares (the
simplest form that lets each subset move the floor, and linear least squares once the rest is fixed); A
and B are positive and their logarithms linear in the shares, so a subset can change how fast the loss
falls with size and with tokens, and the loss is curved in the shares as a mixing law is. α and β lie in
EXPONENT: a bound reached means the data do not pin the exponent down (ladder.extrapolation says so).
A term is fitted only where its coordinate takes two values or more: one model size gives no size term.

`bootstrap` refits on draws of whole runs (a mixture at one size, with all its token counts: checkpoints
of one run share its noise); the nested form's draws are of whole mixtures, each with all its runs, the
one draw that leaves every mixture at all of its sizes, as its size laws need.
Pure numpy and scipy, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from ablate.analyze.laws import Fitted, Points, multistart, requirement
from ablate.analyze.laws import fit as fit_mixing
from ablate.analyze.separate import fit_separate
from ablate.choices import SCALE_MODELS
from ablate.errors import AblateError

EXPONENT = (0.01, 2.0)  # α and β: below 0.01 a power is a logarithm over any ladder, above 2 no published fit
LEAST = 3  # nested: values per run and sizes per mixture; a shared exponent is free with two (E and B absorb it)
STARTS = 3  # joint: least-squares starts, the best linear fits over a grid of (α, β)
GRID = (0.15, 0.4, 1.0)  # joint: the exponents tried for those starts
WARM = 100  # nested: evaluations of a mixing law started from the anchor; on joint-law ladders, where the law
# does not fit exactly and some scales ran to laws.MAX_EVALUATIONS (1000), capping at 100 moved predictions by 2e-4


@dataclass(frozen=True)
class ScalePoints:
    """What a scale fit sees: one row per measured point, a mixture trained at one model size for one
    token count. laws.Points with the scale added; a study's tokens per subset are shares × D."""

    names: list[str]
    subsets: list[str]
    shares: np.ndarray  # rows × subsets, rows sum to 1
    size: np.ndarray  # N: the model's parameters
    tokens: np.ndarray  # D: the tokens it trained
    target: np.ndarray

    def mixture_points(self) -> Points:
        """The rows as laws.py's mixture models see them: the tokens drawn from each subset, shares × D."""
        return Points(self.names, self.subsets, self.shares, self.shares * self.tokens[:, None], self.target)

    def rows(self, index: np.ndarray) -> ScalePoints:
        """The points at `index` (in that order; repeats allowed)."""
        names = list(np.asarray(self.names)[index])
        return ScalePoints(
            names, self.subsets, self.shares[index], self.size[index], self.tokens[index], self.target[index]
        )


def mixtures(shares: np.ndarray) -> np.ndarray:
    """Each row's mixture as a label 0, 1, ... in order of first appearance (equal shares to 1e-9: one mixture)."""
    _, first, inverse = np.unique(np.round(shares, 9), axis=0, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse.ravel()]


def runs(groups: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The runs, a mixture at one model size: their (mixture, N) pairs and each row's run."""
    keys, run = np.unique(np.column_stack([groups, size]), axis=0, return_inverse=True)
    return keys, run.ravel()


@dataclass(frozen=True)
class ScaleFit:
    """A scale model fitted on a ladder: predicts any mixture at any (N, D); ladder.extrapolation says where not to."""

    model: str  # joint, nested or separate
    names: list[
        str
    ]  # parameter names: e[web], a[web], alpha, b[web], beta (joint); beta, alpha (nested); alpha or beta (separate)
    params: np.ndarray
    center: tuple[float, float]  # N₀, D₀: the geometric means of the fitted N and D
    sizes: np.ndarray  # the distinct N fitted
    token_counts: np.ndarray  # the distinct D fitted
    note: str = ""  # an exponent at its bound, and what that means
    learned: Any = None  # nested: its runs' token laws (_Runs); separate: each mixture's law (separate.Separate)

    def exponent(self, name: str) -> float:
        """alpha or beta (nested: alpha at the largest D fitted); nan where the form has no such term."""
        return float(self.params[self.names.index(name)]) if name in self.names else float("nan")

    def predict(self, shares: np.ndarray, size: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        """The target of each mixture (rows × subsets) at its N and D (arrays of the rows, or one scale)."""
        r = np.atleast_2d(shares)
        n, d = np.broadcast_to(size, len(r)).astype(float), np.broadcast_to(tokens, len(r)).astype(float)
        if self.model == "joint":
            return _joint_value(self.params, r, self._logs(n, d))
        if self.model == "separate":
            return np.asarray(self.learned.predict(r, n, d))
        out = np.empty(len(r))
        scales, which = np.unique(np.column_stack([n, d]), axis=0, return_inverse=True)
        for k, (n_k, d_k) in enumerate(scales):
            rows = which.ravel() == k
            out[rows] = self.learned.mixing(n_k, d_k).predict(r[rows], r[rows] * d_k)
        return out

    def _logs(self, n: np.ndarray, d: np.ndarray) -> list[np.ndarray]:
        """log(N/N₀) and log(D/D₀) for the terms the joint form has."""
        logs = [np.log(n / self.center[0])] if "alpha" in self.names else []
        return logs + ([np.log(d / self.center[1])] if "beta" in self.names else [])


def fit(
    points: ScalePoints, model: str, *, seed: int = 0, start: ScaleFit | None = None, groups: np.ndarray | None = None
) -> ScaleFit:
    """Fit `model` (joint or nested); `seed` seeds the mixing law's random starts. `start`: a fit of the same
    model on other draws, where this one starts (the joint form's parameters, the nested form's mixing law).
    `groups`: each row's mixture, 0, 1, ... (default: rows of equal shares); a draw that holds a mixture
    twice labels the copies apart, so each weighs as one mixture in the mixing law."""
    if model not in SCALE_MODELS:
        raise AblateError(f"--model {model}: the scale models are {', '.join(SCALE_MODELS)}")
    groups = mixtures(points.shares) if groups is None else groups
    center = (float(np.exp(np.log(points.size).mean())), float(np.exp(np.log(points.tokens).mean())))
    sizes, counts = np.unique(points.size), np.unique(points.tokens)
    if model == "joint":
        names, params, note = _joint(points, groups, center, start=start)
        return ScaleFit(model, names, params, center, sizes, counts, note)
    if model == "separate":
        found = fit_separate(points.size, points.tokens, points.target, groups, points.shares, center)
        note = bound_note(found.axis, found.exponent)
        return ScaleFit(model, [found.axis], np.array([found.exponent]), center, sizes, counts, note, found)
    first = _nested(points, groups, center, seed)
    anchor = start.learned.anchor if start is not None else None  # a refit starts from the whole fit's law
    first = replace(first, anchor=first.mixing(float(sizes.max()), float(counts.max()), start=anchor))
    params = np.array([first.beta, first.size_law(float(counts.max()))[0]])
    note = " ".join(bound_note(name, value) for name, value in zip(["beta", "alpha"], params, strict=True)).strip()
    return ScaleFit(model, ["beta", "alpha"], params, center, sizes, counts, note, first)


def bound_note(name: str, value: float) -> str:
    """What an exponent at one of EXPONENT's bounds means, or nothing (ladder.extrapolation refuses on it)."""
    if value <= EXPONENT[0] * (1 + 1e-6) or value >= EXPONENT[1] * (1 - 1e-6):
        return f"{name} {value:.3g} at its bound {EXPONENT}: the ladder does not pin it down."
    return ""


# ---- joint: one least-squares fit over every row ----------------------------------------------


def _joint_value(p: np.ndarray, r: np.ndarray, logs: list[np.ndarray]) -> np.ndarray:
    """E(r) + Σ_terms exp(r·a − α·log(x)) for the terms in `logs` (log N/N₀, log D/D₀)."""
    m = r.shape[1]
    out = r @ p[:m]
    for i, log in enumerate(logs):
        block = p[m + i * (m + 1) : m + (i + 1) * (m + 1)]
        out = out + np.exp(r @ block[:m] - block[m] * log)
    return out


def _joint_jacobian(p: np.ndarray, r: np.ndarray, logs: list[np.ndarray]) -> np.ndarray:
    """The joint form's derivatives in its parameters (rows × parameters), exact."""
    m = r.shape[1]
    columns = [r]
    for i, log in enumerate(logs):
        block = p[m + i * (m + 1) : m + (i + 1) * (m + 1)]
        term = np.exp(r @ block[:m] - block[m] * log)
        columns += [term[:, None] * r, (-term * log)[:, None]]
    return np.hstack(columns)


def _joint(
    points: ScalePoints, groups: np.ndarray, center: tuple[float, float], *, start: ScaleFit | None
) -> tuple[list[str], np.ndarray, str]:
    """The joint form's names, parameters and note: the best of least-squares fits from the STARTS best
    linear fits over GRID (or from `start`). Refused on a ladder of one size and one token count (no scale),
    with fewer mixtures than subsets (E, A and B are each a number per subset) or rows than parameters + 2."""

    r, y, m = points.shares, points.target, len(points.subsets)
    logs, terms = [], []
    for name, values, unit in (("alpha", points.size, center[0]), ("beta", points.tokens, center[1])):
        if len(np.unique(values)) >= 2:
            logs.append(np.log(values / unit))
            terms.append(name)
    if not terms:
        raise AblateError(
            f"fit joint: every row is at N = {points.size[0]:.2g}, D = {points.tokens[0]:.2g}: no scale to fit; "
            "the mixture models of `ablate fit` fit one scale"
        )
    names = [f"e[{s}]" for s in points.subsets]
    for term in terms:
        names += [f"{'a' if term == 'alpha' else 'b'}[{s}]" for s in points.subsets] + [term]
    if len(np.unique(groups)) < m or len(y) < len(names) + 2:
        raise AblateError(
            f"fit joint: {len(names)} parameters need {m} mixtures and {len(names) + 2} rows, "
            f"has {len(np.unique(groups))} and {len(y)}; add runs or leave subsets out"
        )
    starts = [start.params] if start is not None else _joint_starts(r, y, logs)
    low, high = np.full(len(names), -np.inf), np.full(len(names), np.inf)
    for term in terms:
        low[names.index(term)], high[names.index(term)] = EXPONENT
    best = multistart(
        lambda p: _joint_value(p, r, logs) - y, lambda p: _joint_jacobian(p, r, logs), starts, low, high, x_scale="jac"
    )
    note = " ".join(bound_note(term, best.x[names.index(term)]) for term in terms).strip()
    return names, best.x, note


def _joint_starts(r: np.ndarray, y: np.ndarray, logs: list[np.ndarray]) -> list[np.ndarray]:
    """Starting points: for each exponent pair in GRID, E linear and A, B constant solve a linear least
    squares; the STARTS with the smallest residual, their A and B floored positive before the logarithm."""
    m, floor = r.shape[1], 1e-3 * (float(np.std(y)) or 1.0)
    tried = []
    for exponents in np.array(np.meshgrid(*[GRID] * len(logs))).reshape(len(logs), -1).T:
        powers = [np.exp(-e * log) for e, log in zip(exponents, logs, strict=True)]
        coef, *_ = np.linalg.lstsq(np.column_stack([r, *powers]), y, rcond=None)
        cost = float(np.sum((np.column_stack([r, *powers]) @ coef - y) ** 2))
        blocks = [np.r_[np.full(m, np.log(max(c, floor))), e] for c, e in zip(coef[m:], exponents, strict=True)]
        tried.append((cost, np.concatenate([coef[:m], *blocks])))
    return [p for _, p in sorted(tried, key=lambda t: t[0])[:STARTS]]


# ---- nested: Data Mixing Laws' three fits -------------------------------------------------


def shared_power(x: np.ndarray, y: np.ndarray, group: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """y ≈ E_g + B_g·x^−p in each group g with one exponent p in EXPONENT: (p, E, B). For a given p each
    group's E and B are a straight-line fit in closed form, so p is a one-dimensional search (a grid,
    then a bounded refinement around its best): fast, and never stuck in a local minimum the grid sees."""
    from scipy.optimize import minimize_scalar

    count = np.bincount(group).astype(float)
    sum_y = np.bincount(group, y)
    log = np.log(x)

    def solve(p: float) -> tuple[float, np.ndarray, np.ndarray]:
        v = np.exp(-p * log)
        sum_v, sum_vv, sum_vy = np.bincount(group, v), np.bincount(group, v * v), np.bincount(group, v * y)
        slope = (sum_vy - sum_v * sum_y / count) / (sum_vv - sum_v**2 / count)
        level = (sum_y - slope * sum_v) / count
        residual = y - level[group] - slope[group] * v
        return float(residual @ residual), level, slope

    grid = np.geomspace(*EXPONENT, 41)
    i = int(np.argmin([solve(p)[0] for p in grid]))
    found = minimize_scalar(
        lambda p: solve(p)[0], bounds=(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]), method="bounded"
    )
    p = float(found.x) if found.fun <= solve(grid[i])[0] else float(grid[i])
    return p, *solve(p)[1:]


@dataclass(frozen=True)
class _Runs:
    """The nested form's first fit, each run's token law E_g + B_g·(D/D₀)^−β, and what the later two need."""

    mixture: np.ndarray  # run → its mixture
    size: np.ndarray  # run → N
    level: np.ndarray  # E_g
    slope: np.ndarray  # B_g
    beta: float
    shares: np.ndarray  # mixture → its shares
    subsets: list[str]
    center: tuple[float, float]
    seed: int
    anchor: Fitted | None = None  # the mixing law at the largest N and D fitted: every other one starts from it

    def size_law(self, tokens: float) -> tuple[float, np.ndarray, np.ndarray]:
        """The second fit at D = `tokens`: (α, E_m, A_m) of L(N) = E_m + A_m·(N/N₀)^−α per mixture m."""
        at = self.level + self.slope * (tokens / self.center[1]) ** -self.beta
        return shared_power(self.size / self.center[0], at, self.mixture)

    def mixing(self, size: float, tokens: float, start: Fitted | None = None) -> Fitted:
        """The third fit: laws.py's Data Mixing Law across the mixtures' values at (N, D), from `start` (by
        default the anchor; with neither, laws.py's several starts). One start costs ~1 ms, several ~100."""
        alpha, level, slope = self.size_law(tokens)
        values = level + slope * (size / self.center[0]) ** -alpha
        names = [f"mixture-{k}" for k in range(len(values))]
        mixed = Points(names, self.subsets, self.shares, self.shares * tokens, values)
        first = start or self.anchor
        cap = {} if first is None else {"evaluations": WARM}
        return fit_mixing(mixed, "law", seed=self.seed, start=first, **cap)


def _nested(points: ScalePoints, groups: np.ndarray, center: tuple[float, float], seed: int) -> _Runs:
    """The first fit over every run, after checking the ladder has what the three fits need: every mixture
    at LEAST sizes, every run at LEAST token counts, and mixtures enough for the mixing law."""
    run_keys, run = runs(groups, points.size)
    counts = np.array([len(np.unique(points.tokens[run == g])) for g in range(len(run_keys))])
    mixture = run_keys[:, 0].astype(int)
    sizes = np.array([len(np.unique(run_keys[mixture == k, 1])) for k in range(mixture.max() + 1)])
    need, why = requirement("law", points.subsets)
    problems = []
    if (sizes < LEAST).any():
        problems.append(f"{(sizes < LEAST).sum()} of {len(sizes)} mixtures at fewer than {LEAST} model sizes")
    if (counts < LEAST).any():
        problems.append(f"{(counts < LEAST).sum()} of {len(counts)} runs at fewer than {LEAST} token counts")
    if len(sizes) < need:
        problems.append(f"{len(sizes)} mixtures, the mixing law needs {need} ({why})")
    if problems:
        raise AblateError(
            f"fit nested: {'; '.join(problems)}. The nested form fits a token law per run and a size law per "
            f"mixture, each with a shared exponent, so it needs every mixture at {LEAST} sizes or more and every "
            f"run at {LEAST} token counts or more; fit joint instead"
        )
    beta, level, slope = shared_power(points.tokens / center[1], points.target, run)
    shares = np.array([points.shares[groups == k][0] for k in range(mixture.max() + 1)])
    return _Runs(mixture, run_keys[:, 1], level, slope, beta, shares, points.subsets, center, seed)


# ---- intervals: refits on draws of whole runs or mixtures ----------------------------------------


def bootstrap(
    points: ScalePoints, model: str, *, resamples: int, seed: int, whole: ScaleFit | None = None
) -> list[ScaleFit]:
    """`model` refitted on `resamples` seeded draws with replacement of whole runs (joint: a run brings its
    rows at every token count) or of whole mixtures (nested: a mixture brings all its runs, since its size
    law needs every size); a draw with fewer distinct mixtures than subsets + 1 is drawn again; separate
    draws residuals instead (_separate_draws). `whole`: the model fitted on every row, where each refit starts."""
    rng = np.random.default_rng(seed)
    labels = mixtures(points.shares)
    if model == "separate":
        return _separate_draws(points, resamples, rng, whole or fit(points, model, seed=seed))
    unit = labels if model == "nested" else runs(labels, points.size)[1]
    members = [np.flatnonzero(unit == k) for k in range(unit.max() + 1)]
    whole = whole or fit(points, model, seed=seed)
    draws: list[ScaleFit] = []
    for _ in range(20 * resamples):
        pick = rng.integers(0, len(members), size=len(members))
        index = np.concatenate([members[k] for k in pick])
        if len(np.unique(labels[index])) < len(points.subsets) + 1:
            continue
        copies = np.repeat(np.arange(len(pick)), [len(members[k]) for k in pick])  # a mixture drawn twice: two
        groups = copies if model == "nested" else labels[index]
        draws.append(fit(points.rows(index), model, seed=seed, start=whole, groups=groups))
        if len(draws) == resamples:
            break
    return draws


def _separate_draws(points: ScalePoints, resamples: int, rng: np.random.Generator, whole: ScaleFit) -> list[ScaleFit]:
    """`separate` refitted on the whole fit plus its residuals drawn with replacement, centred and scaled by
    √(n/(n − p)) for the p parameters they were fitted with (Davison & Hinkley's residual bootstrap): with
    three or four rungs a mixture, drawing its rows instead leaves out its largest rung in a third of the
    draws, and covers too little (docs/fit-suggest.md gives the simulated coverage of both)."""
    fitted = whole.predict(points.shares, points.size, points.tokens)
    residual = points.target - fitted
    n, p = len(residual), 2 * len(whole.learned.level) + 1
    residual = (residual - residual.mean()) * np.sqrt(n / (n - p))
    return [fit(replace(points, target=fitted + rng.choice(residual, size=n)), "separate") for _ in range(resamples)]


class Predicts(Protocol):
    """Anything that predicts a mixture's target at a scale: a ScaleFit, or ladder.Blind."""

    def predict(self, shares: np.ndarray, size: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray: ...


def exponent_band(draws: list[ScaleFit], name: str, ci: float = 0.95) -> tuple[float, float]:
    """The percentile interval of alpha or beta over the bootstrap refits."""
    values = np.array([d.exponent(name) for d in draws])
    low, high = np.quantile(values, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high)
