"""The statistics behind the Δ table, checked against hand computations and simulated studies."""

import numpy as np
import pytest

from ablate import stats


def rng(seed=0):
    return np.random.default_rng(seed)


# ---- small exact cases -------------------------------------------------------------------------


def test_two_items_give_the_textbook_bootstrap_distribution():
    # d = [1, 0]: a resample draws 0, 1 or 2 copies of the +1 item: Δ* = 0, 0.5, 1 with p = 1/4, 1/2, 1/4.
    draws = stats.paired_bootstrap(np.array([1.0, 0.0]), np.array([0.0, 0.0]), resamples=40_000, rng=rng(),
                                   paired_seeds=True)
    values, counts = np.unique(draws, return_counts=True)
    assert values.tolist() == [0.0, 0.5, 1.0]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.01)
    assert stats.percentile_interval(draws, 0.95) == (0.0, 1.0)


def test_planted_difference_matches_the_hand_computation():
    # 1,000 items; the variant gains 120 and loses 40 of them: Δ = +8 pp. The bootstrap distribution of a
    # mean of d has sd = sd(d) / sqrt(n) (population sd), so the 95% interval is Δ ± 1.96 · that.
    n = 1000
    baseline = np.r_[np.ones(500), np.zeros(500)]
    variant = baseline.copy()
    variant[500:620] = 1  # 120 wrong → right
    variant[:40] = 0  # 40 right → wrong
    d = variant - baseline
    delta = d.mean()
    assert delta == pytest.approx(0.08)
    sd = np.sqrt((d**2).mean() - delta**2) / np.sqrt(n)  # sqrt(0.16 − 0.0064) / sqrt(1000) = 0.01239
    assert sd == pytest.approx(0.012394, abs=1e-6)
    draws = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(1), paired_seeds=True)
    low, high = stats.percentile_interval(draws, 0.95)
    assert draws.mean() == pytest.approx(delta, abs=0.0005)
    assert draws.std() == pytest.approx(sd, rel=0.03)
    assert low == pytest.approx(delta - 1.96 * sd, abs=0.002)  # 0.0557
    assert high == pytest.approx(delta + 1.96 * sd, abs=0.002)  # 0.1043


def test_pairing_narrows_the_interval_when_items_vary_in_difficulty():
    # Same items, mostly the same answers: the paired interval is far narrower than an unpaired one.
    items = rng(2).random(2000) < 0.5
    variant = items.astype(float)
    variant[:30] = 1 - variant[:30]
    baseline = items.astype(float)
    low, high = stats.percentile_interval(
        stats.paired_bootstrap(variant, baseline, resamples=5000, rng=rng(3), paired_seeds=True), 0.95
    )
    unpaired = stats.normal_interval(0.0, stats.unpaired_stderr([0.5 / np.sqrt(2000)], [0.5 / np.sqrt(2000)]), 0.95)
    assert high - low < 0.3 * (unpaired[1] - unpaired[0])


def test_many_distinct_values_resample_indices_with_the_same_spread():
    # Continuous per-item scores (thousands of patterns) take the index-resampling path.
    values = rng(4).normal(size=3000)
    patterns, _ = stats.item_patterns(values[None, :])
    assert patterns.shape[1] > stats.MAX_PATTERNS
    draws = stats.paired_bootstrap(values + 0.1, np.zeros(3000), resamples=4000, rng=rng(5), paired_seeds=True)
    assert draws.mean() == pytest.approx(values.mean() + 0.1, abs=0.003)
    assert draws.std() == pytest.approx(values.std() / np.sqrt(3000), rel=0.05)


def test_item_patterns_match_numpy_unique_on_columns():
    rows = rng(6).integers(0, 3, size=(3, 500)).astype(float)
    patterns, counts = stats.item_patterns(rows)
    expected, expected_counts = np.unique(rows, axis=1, return_counts=True)
    order = np.lexsort(patterns[::-1])
    assert np.array_equal(patterns[:, order], expected)
    assert np.array_equal(counts[order], expected_counts)


def test_seeds_are_resampled_not_averaged_away():
    # Every item scores the same within a seed; the variant's two seeds differ by 0.2 (training noise).
    # Resampling seeds: Δ* = 0.1, 0.2, 0.3 with p = 1/4, 1/2, 1/4 (both seeds drawn once each, or one twice).
    n = 50
    variant = np.vstack([np.full(n, 0.6), np.full(n, 0.8)])
    baseline = np.vstack([np.full(n, 0.5), np.full(n, 0.5)])
    draws = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(7), paired_seeds=True)
    values, counts = np.unique(np.round(draws, 9), return_counts=True)
    assert values.tolist() == [0.1, 0.2, 0.3]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.01)


def test_unpaired_seeds_draw_each_side_independently():
    variant = np.vstack([np.full(10, 1.0), np.full(10, 0.0)])  # two seeds
    baseline = np.full((1, 10), 0.5)  # one seed
    draws = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(8), paired_seeds=False)
    values, counts = np.unique(np.round(draws, 9), return_counts=True)
    assert values.tolist() == [-0.5, 0.0, 0.5]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.01)
    with pytest.raises(ValueError):
        stats.paired_bootstrap(variant, baseline, resamples=10, rng=rng(), paired_seeds=True)


def test_percentile_interval_is_numpys_linear_quantile():
    draws = rng(9).normal(size=10_001)
    assert stats.percentile_interval(draws, 0.9) == pytest.approx(tuple(np.quantile(draws, [0.05, 0.95])))
    assert stats.percentile_interval(draws[:37], 0.95) == pytest.approx(tuple(np.quantile(draws[:37], [0.025, 0.975])))


def test_normal_fallback_by_hand():
    # Variant 0.62 ± 0.02, baseline 0.55 ± 0.015: se = sqrt(0.02² + 0.015²) = 0.025; 95%: 0.07 ± 0.049.
    se = stats.unpaired_stderr([0.02], [0.015])
    assert se == pytest.approx(0.025)
    low, high = stats.normal_interval(0.07, se, 0.95)
    assert (low, high) == pytest.approx((0.07 - 1.959964 * 0.025, 0.07 + 1.959964 * 0.025))
    # Two seeds a side: the mean of two independent scores has a variance a quarter of the sum.
    assert stats.unpaired_stderr([0.02, 0.02], [0.02, 0.02]) == pytest.approx(np.sqrt(4 * 0.0004 / 4))


def test_gauntlet_by_hand():
    # Chance 25% and 50%: scores 40% and 75% normalize to 0.2 and 0.5; the category is 0.35.
    assert stats.gauntlet_score([0.40, 0.75], [0.25, 0.5]) == pytest.approx(0.35)
    # A Δ of +6 pp and −10 pp: chance cancels, 0.06/0.75 = 0.08 and −0.1/0.5 = −0.2; mean −0.06.
    assert stats.gauntlet_delta([0.06, -0.10], [0.25, 0.5]) == pytest.approx(-0.06)
    draws = stats.gauntlet_delta([np.array([0.06, 0.0]), np.array([-0.10, 0.1])], [0.25, 0.5])
    assert draws == pytest.approx([-0.06, 0.1])


def test_minimum_detectable_effect_by_hand():
    # (z_0.975 + z_0.8) · sqrt(2 · 0.5 · 0.5 / 1000) = (1.95996 + 0.84162) · 0.022361 = 0.062646
    assert stats.minimum_detectable_effect(1000, 0.5) == pytest.approx(0.062646, abs=1e-5)


# ---- simulated studies -------------------------------------------------------------------------


def _null_study(generator, n_items=300):
    """Variant and baseline drawn from the same per-item distribution (items differ in difficulty)."""
    difficulty = generator.beta(2, 2, size=n_items)
    return (generator.random(n_items) < difficulty).astype(float), (generator.random(n_items) < difficulty).astype(float)


def test_calibration_null_intervals_exclude_zero_about_five_percent_of_the_time():
    generator = rng(2024)
    simulations, excluded = 400, 0
    for _ in range(simulations):
        variant, baseline = _null_study(generator)
        low, high = stats.percentile_interval(
            stats.paired_bootstrap(variant, baseline, resamples=1000, rng=generator, paired_seeds=True), 0.95
        )
        excluded += low > 0 or high < 0
    assert 0.02 <= excluded / simulations <= 0.09, excluded


def test_calibration_check_catches_an_interval_that_ignores_the_baseline_noise():
    # Negative control for the test above: resampling only the variant (the baseline taken as exact)
    # halves the variance at p = 0.5, so about 17% of null intervals exclude zero; the band rejects it.
    generator = rng(2024)
    simulations, excluded = 400, 0
    for _ in range(simulations):
        variant, baseline = (generator.random((2, 300)) < 0.5).astype(float)
        too_narrow = stats.paired_bootstrap(variant, np.zeros_like(variant), resamples=1000, rng=generator,
                                            paired_seeds=True) - baseline.mean()
        low, high = stats.percentile_interval(too_narrow, 0.95)
        excluded += low > 0 or high < 0
    assert excluded / simulations > 0.09


def test_power_a_planted_effect_of_the_minimum_detectable_size_is_found_at_least_80_percent_of_the_time():
    # The MDE treats the two sides as independent, so with paired items it is conservative.
    generator = rng(7)
    n_items, p = 400, 0.5
    effect = stats.minimum_detectable_effect(n_items, p)
    simulations, found = 200, 0
    for _ in range(simulations):
        baseline = (generator.random(n_items) < p).astype(float)
        variant = (generator.random(n_items) < p + effect).astype(float)
        low, _ = stats.percentile_interval(
            stats.paired_bootstrap(variant, baseline, resamples=1000, rng=generator, paired_seeds=True), 0.95
        )
        found += low > 0
    assert found / simulations >= 0.72  # 80% nominal, minus simulation noise (sd ≈ 2.8%)
