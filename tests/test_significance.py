"""Significance over a whole Δ table: bootstrap p-values, Holm and Benjamini–Hochberg, calibrated by
simulation. A null table is many cells with no true effect: each variant and the baseline answer the
same items, independently, at the same accuracy."""

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from ablate import stats

ALPHA = 0.05
TABLES, CELLS, ITEMS, RESAMPLES = 1_000, 10, 200, 1_000


def test_benjamini_hochberg_agrees_with_scipy_and_holm_with_the_hand_computation():
    p = np.random.default_rng(0).uniform(size=50) ** 3
    assert stats.adjust_p_values(p, "bh") == pytest.approx(false_discovery_control(p, method="bh"))
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running maximum, back in input order.
    assert stats.adjust_p_values(np.array([0.01, 0.04, 0.03, 0.005]), "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.adjust_p_values(p, "none").tolist() == p.tolist()
    with pytest.raises(ValueError, match="unknown adjustment"):
        stats.adjust_p_values(p, "bonferroni")


def test_a_bootstrap_p_value_matches_the_interval():
    rng = np.random.default_rng(1)
    shifted = rng.normal(3.0, 1.0, size=9_999)  # 0 lies 3 sd out: p ≈ 0.0027
    assert stats.bootstrap_p_value(shifted) == pytest.approx(0.0027, abs=0.0015)
    assert stats.bootstrap_p_value(np.ones(999)) == 2 / 1000  # never 0 from finitely many resamples
    assert stats.bootstrap_p_value(rng.normal(0.0, 1.0, size=9_999)) > 0.5
    for location in (1.5, 1.8, 2.2, 2.5):  # p < 0.05 when the 95% interval leaves 0 out (away from the edge)
        draws = rng.normal(location, 1.0, size=9_999)
        low, high = stats.percentile_interval(draws, 0.95)
        assert (stats.bootstrap_p_value(draws) < 0.05) == (low > 0 or high < 0), location


def simulated_p_values(effects: np.ndarray, seed: int) -> np.ndarray:
    """Tables × cells bootstrap p-values; cell (t, c) plants a gain of effects[c] in accuracy."""
    rng = np.random.default_rng(seed)
    p = np.empty((TABLES, len(effects)))
    for table in range(TABLES):
        baseline = rng.random((len(effects), ITEMS)) < 0.6
        variant = rng.random((len(effects), ITEMS)) < 0.6 + effects[:, None]
        for cell in range(len(effects)):
            draws = stats.paired_bootstrap(variant[cell].astype(float), baseline[cell].astype(float),
                                           resamples=RESAMPLES, rng=rng, paired_seeds=True)  # fmt: skip
            p[table, cell] = stats.bootstrap_p_value(draws)
    return p


def flags(p: np.ndarray, method: str) -> np.ndarray:
    return np.array([stats.adjust_p_values(row, method) < ALPHA for row in p])


def within(rate: float, level: float, trials: int) -> bool:
    """At or below `level`, allowing three binomial standard errors of simulation noise."""
    return rate <= level + 3 * (level * (1 - level) / trials) ** 0.5


def test_with_no_true_effect_raw_flags_fire_at_the_nominal_rate_and_adjusted_ones_control_their_error():
    p = simulated_p_values(np.zeros(CELLS), seed=2)
    raw = (p < ALPHA).mean()
    assert 0.035 < raw < 0.065, raw  # per cell: about 5%, so about one false `*` in every two 10-cell tables
    any_raw = (p < ALPHA).any(axis=1).mean()
    assert any_raw > 0.3, any_raw  # ... which is why a table needs adjusting
    for method in ("holm", "bh"):  # with every null true, FDR = family-wise error: both at most 5%
        family = flags(p, method).any(axis=1).mean()
        assert within(family, ALPHA, TABLES), (method, family)


def test_with_planted_effects_bh_keeps_false_discoveries_below_its_level_with_more_power_than_holm():
    effects = np.r_[np.full(3, 0.15), np.zeros(CELLS - 3)]  # 3 real 15-point gains among 10 cells
    p = simulated_p_values(effects, seed=3)
    real = effects > 0
    found = {}
    for method in ("none", "holm", "bh"):
        flagged = flags(p, method)
        false = flagged & ~real
        found[method] = flagged[:, real].mean()  # power: the share of real effects flagged
        if method == "bh":
            proportion = false.sum(axis=1) / np.maximum(flagged.sum(axis=1), 1)  # false discovery proportion
            assert within(proportion.mean(), ALPHA, TABLES), proportion.mean()
        if method == "holm":
            assert within(false.any(axis=1).mean(), ALPHA, TABLES)
    assert found["none"] >= found["bh"] > found["holm"] > 0.5, found
