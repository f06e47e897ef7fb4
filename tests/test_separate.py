"""The `separate` scale model (ablate.analyze.separate): each mixture its own size law with one shared exponent,
on ladders whose loss is convex in the shares, which the joint form's linear E cannot follow: chosen on the
held-out size, its target predictions and their Δ within a percent, intervals calibrated by simulation, and
the mixtures and ladders it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from ablate.analyze.across import fit_across
from ablate.analyze.ladder import choose
from ablate.analyze.scale import ScalePoints, bootstrap, fit
from ablate.analyze.separate import OTHER_MIXTURE
from ablate.errors import AblateError

SUBSETS = ["a", "b", "c"]
MIXTURES = np.array(
    [[1 / 3, 1 / 3, 1 / 3], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0], [0.6, 0.2, 0.2], [0.2, 0.6, 0.2]]
)
NAMES = ["baseline", "no-a", "no-b", "no-c", "up-a", "up-b"]
SIZES = np.array([1e6, 3e6, 1e7, 3e7])
TARGET, TOKENS = 1e8, 2e9  # 3.3× the largest rung


def law(shares: np.ndarray, size: float | np.ndarray) -> np.ndarray:
    """Convex in the shares (E = 1.8 + 0.9·Σ r²), each mixture's amplitude its own, α = 0.35."""
    return 1.8 + 0.9 * np.sum(shares**2, axis=1) + np.exp(shares @ np.array([0.2, 0.5, -0.3])) * (size / 1e7) ** -0.35


def ladder(seed: int, noise: float = 0.005, tokens: np.ndarray | None = None) -> ScalePoints:
    """Every mixture at every size (or, with `tokens`, at one size and every token count), relative noise."""
    rng = np.random.default_rng(seed)
    axis = SIZES if tokens is None else tokens
    shares = np.tile(MIXTURES, (len(axis), 1))
    along = np.repeat(axis, len(MIXTURES))
    size = along if tokens is None else np.full(len(along), 1e7)
    drawn = np.full(len(along), TOKENS) if tokens is None else along
    scale = along if tokens is None else along / TOKENS * 1e7  # a law in D mirrors the law in N
    y = law(shares, scale) * (1 + rng.normal(0, noise, len(along)))
    return ScalePoints(NAMES * len(axis), SUBSETS, shares, size, drawn, y)


def test_separate_is_chosen_where_the_loss_is_convex_in_the_shares_and_predicts_within_a_percent():
    """Measured, seeds 0–29: separate chosen on every one; its worst mixture at the target at most 1.8% off
    (mean of the worst 1.2%); on seed 29 the held-out size was 1.5% off by separate, 3.4% by the joint form."""
    for seed in range(5):
        points = ladder(seed)
        best, checks = choose(points)
        assert best == "separate", {m: c[0].relative for m, c in checks.items() if c}
        assert checks["separate"][0].relative < checks["joint"][0].relative
        predicted = fit(points, "separate").predict(MIXTURES, TARGET, TOKENS)
        assert np.abs(predicted / law(MIXTURES, TARGET) - 1).max() < 0.025, seed


def test_its_intervals_cover_the_target_and_the_delta_at_about_the_nominal_rate():
    """40 ladders, 200 residual refits each: at 95% nominal the target's level was covered in 94.6% of 240
    mixtures and each removal's Δ against the baseline in 96% (noise 0.5% and 1% alike; drawing each
    mixture's rows instead covered 81%). The floor here is 88%."""
    levels, deltas = [], []
    truth = law(MIXTURES, TARGET)
    for seed in range(40):
        points = ladder(seed)
        whole = fit(points, "separate")
        drawn = np.array([d.predict(MIXTURES, TARGET, TOKENS) for d in bootstrap(points, "separate", resamples=200,
                                                                                 seed=seed, whole=whole)])  # fmt: skip
        low, high = np.quantile(drawn, [0.025, 0.975], axis=0)
        levels += list((low <= truth) & (truth <= high))
        low, high = np.quantile(drawn[:, 1:] - drawn[:, [0]], [0.025, 0.975], axis=0)
        deltas += list((low <= truth[1:] - truth[0]) & (truth[1:] - truth[0] <= high))
    assert np.mean(levels) >= 0.88 and np.mean(deltas) >= 0.88, (np.mean(levels), np.mean(deltas))


def test_the_delta_at_the_target_is_reported_and_a_mixture_it_did_not_fit_is_refused_with_the_reason():
    points = ladder(3, noise=0.001)  # at 0.1% noise the Δ machinery, not the noise, is what is checked
    new = (["new", *NAMES], np.vstack([[0.4, 0.4, 0.2], MIXTURES]))
    (target,) = fit_across({"loss:web": points}, models=["separate"], resamples=100, seed=0,
                           at=(TARGET, TOKENS), mix=new, baseline="baseline")  # fmt: skip
    by = {p.run: p for p in target.predictions}
    assert by["new"].predicted is None and by["new"].note == OTHER_MIXTURE
    assert by["no-a"].predicted == pytest.approx(law(MIXTURES[1:2], TARGET)[0], rel=0.02)
    deltas = {p.run: p for p in target.deltas}
    truth = law(MIXTURES, TARGET)
    assert deltas["no-c"].predicted == pytest.approx(truth[3] - truth[0], abs=0.01)
    assert deltas["no-c"].low <= truth[3] - truth[0] <= deltas["no-c"].high
    assert deltas["new"].predicted is None and deltas["new"].note == OTHER_MIXTURE


def test_a_phase_ladder_in_tokens_fits_the_law_in_d():
    points = ladder(1, tokens=np.array([2e8, 6e8, 2e9, 6e9]))
    found = fit(points, "separate")
    assert found.names == ["beta"] and found.exponent("beta") == pytest.approx(0.35, abs=0.08)


def test_a_ladder_it_cannot_fit_is_refused_in_one_line():
    both = ladder(0)
    both = ScalePoints(both.names, both.subsets, both.shares, both.size, both.size * 20, both.target)
    with pytest.raises(AblateError, match="the ladder varies both model size and tokens; it fits one axis"):
        fit(both, "separate")
    two = ladder(0).rows(np.flatnonzero(ladder(0).size <= 3e6))
    with pytest.raises(AblateError, match="6 of 6 mixtures at fewer than 3 model sizes"):
        fit(two, "separate")
    (target,) = fit_across({"loss:web": both}, models=None, resamples=10, seed=0)
    assert any(note.startswith("separate: the ladder varies both") for note in target.left_out), target.left_out
