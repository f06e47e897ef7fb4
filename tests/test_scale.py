"""Scale models on synthetic ladders drawn from known laws with noise: the held-out largest size predicted
within 1%, exponent intervals that cover the truth at about their nominal rate, refusals that say why,
and checks that fail when the data break the law."""

import numpy as np
import pytest

from ablate.analyze.ladder import FAR, choose, extrapolation, held_out_scales, scale_folds, unchecked
from ablate.analyze.scale import ScalePoints, bootstrap, exponent_band, fit
from ablate.errors import AblateError

SUBSETS = ["web", "code", "math"]
ALPHA, BETA = 0.34, 0.28  # Chinchilla's exponents (Hoffmann et al., 2022)
SIZES = (2e7, 5e7, 1.5e8, 4e8)
PER_PARAM = np.geomspace(2, 40, 7)  # tokens per parameter: D from 4e7 (2e7 at 2) to 1.6e10 (4e8 at 40)
E = np.array([1.9, 1.6, 1.75])  # joint: E(r) = r·E, A(r) = 406·exp(r·LOG_A), B(r) = 411·exp(r·LOG_B)
LOG_A, LOG_B = np.log(406) + np.array([0.0, 0.3, -0.2]), np.log(411) + np.array([0.0, -0.2, 0.25])
T = np.array([0.0, -1.0, 0.6])  # nested: c + k·exp(r·T) + A·N^−α + B·D^−β


def joint_law(r, n, d):
    return r @ E + np.exp(r @ LOG_A) * n**-ALPHA + np.exp(r @ LOG_B) * d**-BETA


def nested_law(r, n, d):
    """Every assumption of the nested form holds: a token law per run, a size law per mixture, both with
    shared exponents, and a Data Mixing Law across mixtures at every (N, D)."""
    return 1.2 + 0.8 * np.exp(r @ T) + 406 * n**-ALPHA + 411 * d**-BETA


def ladder(law, *, mixtures=8, sizes=SIZES, per_param=PER_PARAM, tokens=(), noise=0.003, seed=0) -> ScalePoints:
    """`mixtures` Dirichlet mixtures around (0.5, 0.3, 0.2), each at every size for every tokens-per-parameter
    ratio (or for every count in `tokens`), the law's loss times 1 + N(0, noise)."""
    rng = np.random.default_rng(seed)
    shares = rng.dirichlet(10 * np.array([0.5, 0.3, 0.2]), size=mixtures)
    counts = [(lambda n, d=d: d) for d in tokens] or [(lambda n, t=t: n * t) for t in per_param]
    rows = [(k, n, count(n)) for k in range(mixtures) for n in sizes for count in counts]
    k, n, d = (np.array(column, dtype=float) for column in zip(*rows, strict=True))
    y = law(shares[k.astype(int)], n, d) * (1 + rng.normal(0, noise, len(rows)))
    return ScalePoints([f"m{a:.0f}-{b:.0e}-{c:.0e}" for a, b, c in rows], SUBSETS, shares[k.astype(int)], n, d, y)


def truth_at(points: ScalePoints, law, index) -> np.ndarray:
    return law(points.shares[index], points.size[index], points.tokens[index])


@pytest.mark.parametrize("law", [joint_law, nested_law], ids=["joint-law", "nested-law"])
def test_the_held_out_largest_size_is_predicted_within_one_percent(law):
    """8 mixtures × 3 sizes × 7 token counts, noise 0.3%, predicting 4e8 (2.7× the largest fitted) at all
    its token counts. Measured, seeds 0–4: mean relative error to the measured values 0.21–0.28% (joint)
    and 0.25–0.34% (nested) on joint-law data, 0.29–0.51% and 0.26–0.34% on nested-law data; to the
    noiseless truth every row within 0.92% (joint) and 0.89% (nested). Rank ρ of the mixtures' final
    losses 0.90–1.00 (joint), 0.88–1.00 (nested). The joint form is chosen on joint-law data (every seed),
    the nested form on nested-law data in 3 of 5."""
    points = ladder(law)
    held = np.flatnonzero(points.size == SIZES[-1])
    best, checks = choose(points, ("joint", "nested"))  # separate fits one axis; this ladder varies both
    for model, folds in checks.items():
        assert [f.value for f in folds] == [SIZES[-1]], model  # three sizes below: one fold that can extrapolate
        fold = folds[0]
        assert fold.note == "" and fold.rows == 8 * 7
        assert fold.relative < 0.01, (model, fold.relative)
        error = np.abs(fold.predicted / truth_at(points, law, held) - 1)
        assert error.mean() < 0.005 and error.max() < 0.01, (model, error.max())
        assert fold.rank_correlation > 0.8, (model, fold.rank_correlation)  # the final losses' order of mixtures
    if law is joint_law:
        assert best == "joint"


def test_a_new_mixture_is_predicted_at_a_larger_scale_with_an_interval_that_covers_it():
    """A mixture no run used, at 4e8 parameters × 1.6e10 tokens, from the three smaller sizes: within 1% by
    both models (measured: joint −0.03%, nested −0.49%), and the 95% interval from 60 refits holds the
    truth and is narrower than 5% (measured 1.9% and 1.4% of the prediction)."""
    points = ladder(nested_law)
    train = points.rows(np.flatnonzero(points.size < SIZES[-1]))
    new = np.array([[0.35, 0.45, 0.2]])
    truth = nested_law(new, SIZES[-1], SIZES[-1] * PER_PARAM[-1])[0]
    for model in ("joint", "nested"):
        fitted = fit(train, model)
        predicted = fitted.predict(new, SIZES[-1], SIZES[-1] * PER_PARAM[-1])[0]
        refits = bootstrap(train, model, resamples=60, seed=1, whole=fitted)
        low, high = np.quantile([r.predict(new, 4e8, 1.6e10) for r in refits], [0.025, 0.975], axis=0)
        assert abs(predicted / truth - 1) < 0.01, model
        assert low[0] <= truth <= high[0], (model, low, high, truth)
        assert extrapolation(fitted, 4e8, 1.6e10, (predicted, low[0], high[0])) is None


@pytest.mark.parametrize("model", ["joint", "nested"])
def test_the_exponents_come_back_with_intervals_that_cover_them(model):
    """One ladder (joint-law, seed 3), 95% intervals from 100 refits: each holds the true α and β."""
    points = ladder(joint_law, seed=3)
    whole = fit(points, model)
    assert whole.note == ""
    draws = bootstrap(points, model, resamples=100, seed=0, whole=whole)
    for name, truth in (("alpha", ALPHA), ("beta", BETA)):
        low, high = exponent_band(draws, name)
        assert low <= truth <= high and low < whole.exponent(name) < high, (name, low, high)


def test_the_joint_form_s_exponent_intervals_cover_at_about_their_nominal_rate():
    """30 seeded joint-law ladders, 90% percentile intervals from 60 refits on draws of whole runs (~3 s).
    Measured: α covered in 23 of 30 ladders (77%), β in 26 (87%); over 150 ladders at 200 refits, 87% and
    82%, and the 95% intervals 89% and 91%. A little under nominal, as percentile intervals are in samples
    of this size: their median width matches the spread of α's estimates across ladders (0.022 against
    3.29 × 0.0069) and falls 10% short for β's; drawing single rows instead of runs did no better (87%
    and 85% over 150). The checks fail on intervals that collapse (coverage under 70%) or that cover by
    being wide (a median width over three times the 90% spread of the estimates across these ladders)."""
    hits, widths, estimates = np.zeros(2), [], []
    for seed in range(30):
        points = ladder(joint_law, seed=100 + seed)
        whole = fit(points, "joint")
        draws = bootstrap(points, "joint", resamples=60, seed=seed, whole=whole)
        bands = [exponent_band(draws, name, ci=0.9) for name in ("alpha", "beta")]
        hits += [low <= truth <= high for (low, high), truth in zip(bands, (ALPHA, BETA), strict=True)]
        widths.append([high - low for low, high in bands])
        estimates.append([whole.exponent("alpha"), whole.exponent("beta")])
    coverage = hits / 30
    assert (coverage >= 0.7).all(), coverage
    assert (np.median(widths, axis=0) < 3 * 3.29 * np.std(estimates, axis=0)).all()  # 3.29 σ: a 90% interval


@pytest.mark.slow
def test_the_nested_form_s_exponent_intervals_cover_at_about_their_nominal_rate():
    """30 seeded nested-law ladders, 90% intervals from 100 refits on draws of whole mixtures (~45 s).
    Measured: α covered in 23 of 30 (77%), β in 26 (87%); over 100 ladders, 84% and 82%. Eight mixtures
    are few units to resample; the estimates themselves are unbiased (mean α 0.339, β 0.280)."""
    hits = np.zeros(2)
    for seed in range(30):
        points = ladder(nested_law, seed=100 + seed)
        draws = bootstrap(points, "nested", resamples=100, seed=seed)
        bands = [exponent_band(draws, name, ci=0.9) for name in ("alpha", "beta")]
        hits += [low <= truth <= high for (low, high), truth in zip(bands, (ALPHA, BETA), strict=True)]
    assert (hits / 30 >= 0.7).all(), hits


def test_one_model_size_refuses_to_extrapolate_in_size_and_says_so():
    points = ladder(joint_law, sizes=(1.2e8,))
    fitted = fit(points, "joint")
    assert fitted.names[-1] == "beta" and "alpha" not in fitted.names  # no size term to fit
    reason = extrapolation(fitted, 1e9, 1e10)
    assert reason == "one model size only (N = 1.2e+08): cannot extrapolate in size"
    assert extrapolation(fitted, 1.2e8, 1e10) is None  # a longer run of the same model: in its token law's range
    with pytest.raises(AblateError, match="8 of 8 mixtures at fewer than 3 model sizes"):
        fit(points, "nested")
    fold = held_out_scales(points, "joint")[0]  # one size: the folds hold out token counts
    assert fold.dimension == "tokens" and fold.value == points.tokens.max() and fold.relative < 0.01
    with pytest.raises(AblateError, match="every row is at N = 1.2e[+]08, D = 2e[+]09: no scale to fit"):
        fit(ladder(joint_law, sizes=(1.2e8,), tokens=(2e9,)), "joint")


def test_one_token_count_refuses_to_extrapolate_in_tokens():
    """Every size trained for the same 2e9 tokens (a removal study from start checkpoints of several sizes)."""
    points = ladder(joint_law, tokens=(2e9,))
    fitted = fit(points, "joint")
    assert "beta" not in fitted.names and np.isnan(fitted.exponent("beta"))  # no token term
    assert extrapolation(fitted, 4e8, 1e10) == "one token count only (D = 2e+09): cannot extrapolate in tokens"
    assert extrapolation(fitted, 1e9, 2e9) is None  # a larger model for the same tokens: the size law's to say


def test_two_sizes_do_not_pin_alpha_down():
    """Fitted on two sizes, α is free (E absorbs it): a third size is refused, the fitted ones are not."""
    points = ladder(joint_law, sizes=SIZES[:2])
    fitted = fit(points, "joint")
    reason = extrapolation(fitted, 1.5e8, 3e9)
    assert reason is not None and reason.startswith("two model sizes only (N = 2e+07, 5e+07): any alpha fits")
    assert extrapolation(fitted, 5e7, 1e9) is None


def test_far_targets_and_wide_intervals_are_refused():
    fitted = fit(ladder(joint_law), "joint")
    assert extrapolation(fitted, 3e9, 1e10) is None  # 7.5× the largest size
    far = extrapolation(fitted, 4e8 * 2 * FAR, 1e10)
    assert far == (
        "N = 8e+09 is 20× above the largest fitted model size (4e+08): beyond 10×, further than ladders have "
        "been checked against measured runs"
    )
    assert extrapolation(fitted, 4e8, 1e6).startswith("D = 1e+06 is 40× below the smallest fitted token count (4e+07)")
    wide = extrapolation(fitted, 4e8, 1e10, (3.0, 2.9, 3.1))
    assert wide is not None and wide.startswith("its interval [2.9, 3.1] spans 7% of the prediction 3")


def test_the_folds_hold_out_whole_sizes_that_can_be_extrapolated_to():
    assert scale_folds(ladder(joint_law)) == ("size", [4e8])  # 1.5e8 has two sizes below it: α not identified
    five = ladder(joint_law, sizes=(*SIZES, 1e9), per_param=PER_PARAM[::2])
    assert scale_folds(five) == ("size", [1e9, 4e8])
    folds = held_out_scales(five, "joint")
    assert [f.note for f in folds] == ["", ""] and all(f.relative < 0.01 for f in folds)
    short = ladder(joint_law, sizes=SIZES[:3])
    assert scale_folds(short) == ("size", []) and held_out_scales(short, "joint") == []
    assert unchecked(short).startswith("3 model sizes: holding out the largest leaves 2, and extrapolating needs 3")


def test_a_scrambled_target_or_a_broken_law_fails_the_held_out_check():
    """Negative checks: the held-out error is a test the models can fail. Targets shuffled across rows, and a
    ladder whose largest size misses the law by 3% (as when a recipe stops scaling), are both off by more
    than 1%, while the same ladder without the break is within 1%."""
    points = ladder(joint_law)
    scrambled = np.random.default_rng(0).permutation(points.target)
    shuffled = ScalePoints(points.names, SUBSETS, points.shares, points.size, points.tokens, scrambled)
    broken_target = np.where(points.size == SIZES[-1], 1.03, 1.0) * points.target
    broken = ScalePoints(points.names, SUBSETS, points.shares, points.size, points.tokens, broken_target)
    for model in ("joint", "nested"):
        assert held_out_scales(points, model)[0].relative < 0.01
        scrambled_fold = held_out_scales(shuffled, model)[0]  # refused (an exponent at its bound) or far off
        assert scrambled_fold.note.startswith("alpha") or scrambled_fold.relative > 0.05, (model, scrambled_fold)
        assert held_out_scales(broken, model)[0].relative > 0.02, model
    best, checks = choose(broken)
    assert best is not None and checks[best][0].relative > 0.02  # chosen, and its error says what it is worth
