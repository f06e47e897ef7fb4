"""The statistics behind the Δ table, checked against hand computations and simulated studies."""

import numpy as np
import pytest

from ablate import stats


def rng(seed=0):
    return np.random.default_rng(seed)


# ---- small exact cases -------------------------------------------------------------------------


def test_two_items_give_the_textbook_bootstrap_distribution():
    # d = [1, 0]: a resample draws 0, 1 or 2 copies of the +1 item: Δ* = 0, 0.5, 1 with p = 1/4, 1/2, 1/4.
    draws = stats.paired_bootstrap(np.array([1.0, 0.0]), np.array([0.0, 0.0]), resamples=40_000, rng=rng())
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
    draws = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(1))
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
        stats.paired_bootstrap(variant, baseline, resamples=5000, rng=rng(3)), 0.95
    )
    unpaired = stats.normal_interval(0.0, stats.unpaired_stderr([0.5 / np.sqrt(2000)], [0.5 / np.sqrt(2000)]), 0.95)
    assert high - low < 0.3 * (unpaired[1] - unpaired[0])


def test_many_distinct_values_resample_indices_with_the_same_spread():
    # Continuous per-item scores (thousands of patterns) take the index-resampling path.
    values = rng(4).normal(size=3000)
    patterns, _ = stats.item_patterns(values[None, :])
    assert patterns.shape[1] > stats.MAX_PATTERNS
    draws = stats.paired_bootstrap(values + 0.1, np.zeros(3000), resamples=4000, rng=rng(5))
    assert draws.mean() == pytest.approx(values.mean() + 0.1, abs=0.003)
    assert draws.std() == pytest.approx(values.std() / np.sqrt(3000), rel=0.05)


def test_item_patterns_match_numpy_unique_on_columns():
    rows = rng(6).integers(0, 3, size=(3, 500)).astype(float)
    patterns, counts = stats.item_patterns(rows)
    expected, expected_counts = np.unique(rows, axis=1, return_counts=True)
    order = np.lexsort(patterns[::-1])
    assert np.array_equal(patterns[:, order], expected)
    assert np.array_equal(counts[order], expected_counts)


def test_seeds_are_averaged_item_by_item_and_their_noise_comes_from_the_seed_term():
    # Every item scores the same within a seed; the variant's two seeds differ by 0.2 (training noise).
    # The item draws see only the seed mean (0.7 − 0.5 = 0.2 in every resample): resampling two seeds
    # would understate their spread, so seed noise is the seed term's, from replicate runs.
    n = 50
    variant = np.vstack([np.full(n, 0.6), np.full(n, 0.8)])
    baseline = np.full((1, n), 0.5)
    draws = stats.paired_bootstrap(variant, baseline, resamples=2_000, rng=rng(7))
    assert np.allclose(draws, 0.2)
    with pytest.raises(ValueError):
        stats.paired_bootstrap(variant, np.full((1, n + 1), 0.5), resamples=10, rng=rng())


def test_pooled_variance_and_the_seed_term_match_the_hand_computation():
    # Two ablations: seeds {0.50, 0.54} and {0.60, 0.62, 0.58}: SS = 0.0008 + 0.0008, df = 1 + 2.
    variance, df = stats.pooled_variance([np.array([0.50, 0.54]), np.array([0.60, 0.62, 0.58]), np.array([0.7])])
    assert df == 3 and variance == pytest.approx(0.0016 / 3)
    assert stats.pooled_variance([np.array([0.5]), np.array([0.6])])[1] == 0
    # One variant seed against two baseline seeds: scale √(1 + 1/2); Student's t tails with 1 df.
    draws = stats.seed_term(0.02, 1, 1, 2, resamples=200_000, rng=rng(8))
    t_975 = 12.706  # scipy.stats.t.ppf(0.975, 1)
    assert np.quantile(draws, 0.975) == pytest.approx(0.02 * np.sqrt(1.5) * t_975, rel=0.05)
    known = stats.seed_term(0.02, np.inf, 2, 2, resamples=200_000, rng=rng(9))
    assert known.std() == pytest.approx(0.02, rel=0.01)


# ---- clusters ----------------------------------------------------------------------------------


def test_clusters_of_unequal_size_give_the_textbook_cluster_bootstrap():
    # Cluster a holds two +1 items, cluster b one 0 item. Drawing 2 clusters: aa → 4/4, ab or ba → 2/3,
    # bb → 0/1, p = 1/4, 1/2, 1/4. Averaging cluster means instead would give 1/2, not 2/3.
    draws = stats.paired_bootstrap(np.array([1.0, 1.0, 0.0]), np.zeros(3), resamples=40_000, rng=rng(10),
                                   clusters=np.array(["a", "a", "b"]))
    values, counts = np.unique(np.round(draws, 9), return_counts=True)
    assert values.tolist() == [0.0, round(2 / 3, 9), 1.0]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.01)


def test_perfectly_correlated_clusters_count_once_per_cluster():
    # 100 facts asked 8 times each, every item of a fact answered alike: the cluster bootstrap equals the
    # item bootstrap of one item per fact, and is sqrt(8) times wider than the naive item bootstrap.
    generator = rng(11)
    facts_v, facts_b = (generator.random((2, 100)) < 0.5).astype(float)
    labels = np.repeat(np.arange(100), 8)
    variant, baseline = np.repeat(facts_v, 8), np.repeat(facts_b, 8)
    clustered = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(12),
                                       clusters=labels)
    one_per_fact = stats.paired_bootstrap(facts_v, facts_b, resamples=20_000, rng=rng(13))
    naive = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(14))
    assert clustered.mean() == pytest.approx(variant.mean() - baseline.mean(), abs=0.003)
    assert stats.percentile_interval(clustered, 0.95) == pytest.approx(stats.percentile_interval(one_per_fact, 0.95),
                                                                       abs=0.011)
    assert clustered.std() / naive.std() == pytest.approx(np.sqrt(8), rel=0.05)


def test_singleton_clusters_are_the_item_bootstrap():
    generator = rng(15)
    variant, baseline = (generator.random((2, 500)) < 0.6).astype(float)
    singletons = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(16),
                                        clusters=np.arange(500))
    items = stats.paired_bootstrap(variant, baseline, resamples=20_000, rng=rng(17))
    quantiles = [0.025, 0.25, 0.5, 0.75, 0.975]
    assert np.quantile(singletons, quantiles) == pytest.approx(np.quantile(items, quantiles), abs=0.004)


def test_many_cluster_patterns_resample_cluster_indices_with_the_same_result():
    # Continuous scores make every cluster's sum distinct (the index path); clusters of 1 to 5 items.
    generator = rng(18)
    sizes = generator.integers(1, 6, size=400)
    labels = np.repeat(np.arange(400), sizes)
    effect = np.repeat(generator.normal(size=400), sizes)  # shared within a cluster
    values = effect + 0.1 * generator.normal(size=len(labels))
    draws = stats.paired_bootstrap(values, np.zeros(len(labels)), resamples=4000, rng=rng(19),
                                   clusters=labels)
    # The ratio estimator's bootstrap sd: sqrt(Σ_clusters (sum − size · mean)²) / n (delta method).
    residual_sums = np.bincount(labels, weights=values - values.mean())
    assert draws.mean() == pytest.approx(values.mean(), abs=0.01)
    assert draws.std() == pytest.approx(np.sqrt((residual_sums**2).sum()) / len(values), rel=0.06)


def test_every_seed_and_both_sides_share_one_cluster_draw():
    # Unpaired seeds put the variant and the (negated) baseline in separate rows: with the same items on
    # both sides, Δ* is 0 in every resample only if the rows share the cluster draw.
    values = (rng(20).random(300) < 0.5).astype(float)
    labels = np.arange(300) // 3
    draws = stats.paired_bootstrap(values, values, resamples=2000, rng=rng(21), clusters=labels)
    assert np.abs(draws).max() < 1e-12
    with pytest.raises(ValueError, match="one label per item"):
        stats.paired_bootstrap(values, values, resamples=10, rng=rng(), clusters=labels[:-1])


def test_design_effect_by_hand():
    # Clusters of 4 whose items agree: the variance of the mean is 4 times the item bootstrap's.
    agree = np.repeat([1.0, 0.0, 1.0, 0.0, 0.0], 4)
    assert stats.design_effect(agree, np.repeat(np.arange(5), 4)) == pytest.approx(4.0)
    assert stats.design_effect(agree, np.arange(20)) == pytest.approx(1.0)  # singletons: no inflation
    # Every cluster holds one right and one wrong item: negative correlation is not credited.
    assert stats.design_effect(np.tile([1.0, 0.0], 5), np.repeat(np.arange(5), 2)) == 1.0
    # No variance to estimate it from: assume a cluster's items agree, n / clusters = 3.
    assert stats.design_effect(np.ones(12), np.repeat(np.arange(4), 3)) == pytest.approx(3.0)


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
            stats.paired_bootstrap(variant, baseline, resamples=1000, rng=generator), 0.95
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
        too_narrow = stats.paired_bootstrap(variant, np.zeros_like(variant), resamples=1000, rng=generator) - baseline.mean()
        low, high = stats.percentile_interval(too_narrow, 0.95)
        excluded += low > 0 or high < 0
    assert excluded / simulations > 0.09


def test_calibration_with_clusters_only_the_cluster_bootstrap_holds_its_level():
    # 40 facts asked 10 times each; each model knows a fact with the same chance (a null study). Items
    # of a fact move together, so the item bootstrap is sqrt(10) times too narrow and mostly excludes 0.
    generator = rng(2025)
    labels = np.repeat(np.arange(40), 10)
    simulations, excluded = 300, {"clusters": 0, "items": 0}
    for _ in range(simulations):
        variant, baseline = np.repeat(generator.random((2, 40)) < 0.5, 10, axis=1).astype(float)
        for name, clusters in [("clusters", labels), ("items", None)]:
            low, high = stats.percentile_interval(stats.paired_bootstrap(
                variant, baseline, resamples=1000, rng=generator, clusters=clusters), 0.95)
            excluded[name] += low > 0 or high < 0
    assert 0.02 <= excluded["clusters"] / simulations <= 0.10, excluded
    assert excluded["items"] / simulations > 0.4, excluded


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
            stats.paired_bootstrap(variant, baseline, resamples=1000, rng=generator), 0.95
        )
        found += low > 0
    assert found / simulations >= 0.72  # 80% nominal, minus simulation noise (sd ≈ 2.8%)
