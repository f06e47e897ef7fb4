"""The sigmoid link from correct-answer loss to accuracy (ablate.analyze.accuracy) on ladders drawn from a
known sigmoid with binomial noise: parameters recovered, extrapolation within tolerance, intervals
calibrated by simulation, and the refusals."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ablate.analyze.accuracy import (
    LEAST,
    Link,
    accuracy_draws,
    bootstrap_link,
    link,
    through,
)
from ablate.errors import AblateError

CHANCE = 0.25  # four choices
TRUTH = Link(a=0.65, b=CHANCE, k=-6.0, l0=1.1, chance=CHANCE, rmse=0.0, span=(0.8, 1.6))  # 0.25 → 0.9
HELD = np.array([0.65, 1.8])  # beyond the ladder's losses [0.8, 1.6] on both sides, by a quarter of its span


def ladder(seed: int, runs: int = 80, items: int = 300, span: tuple[float, float] = (0.8, 1.6)):
    """Runs' (loss, accuracy): losses spread over `span`, accuracy a binomial draw of `items` at TRUTH."""
    rng = np.random.default_rng(seed)
    loss = rng.uniform(*span, runs)
    return loss, rng.binomial(items, TRUTH.predict(loss)) / items


def test_parameters_are_recovered():
    found = link(*ladder(0, items=2000, span=(0.7, 1.7)), CHANCE, items=2000)
    assert isinstance(found, Link)
    assert (found.a, found.b, found.l0) == pytest.approx((TRUTH.a, TRUTH.b, TRUTH.l0), abs=0.03)
    assert found.k == pytest.approx(TRUTH.k, rel=0.1)
    assert found.rmse == pytest.approx(np.sqrt(0.9 * 0.1 / 2000), rel=1.0)  # binomial noise, not misfit
    assert found.span[0] >= 0.7 and found.span[1] <= 1.7


def test_predictions_beyond_the_fitted_losses_stay_close():
    """A quarter of the span beyond the runs only the sigmoid's form carries a prediction. Over 50 ladders
    of 80 runs the error at HELD had rms 0.021 and 0.013, at most 0.063 and 0.031: tolerances 0.03 (rms)
    and 0.07 (each) over 20 ladders."""
    errors = np.array([link(*ladder(seed), CHANCE).predict(HELD) - TRUTH.predict(HELD) for seed in range(20)])
    assert np.sqrt((errors**2).mean(axis=0)).max() < 0.03 and np.abs(errors).max() < 0.07


def test_intervals_cover_the_truth_in_most_simulated_ladders():
    """50 ladders of 40 runs, 100 link refits each. Measured: the link's own interval covered the true
    accuracy at HELD in 47 and 45 of 50 (94%, 90%); with a predicted loss off by N(0, 0.03) and its
    draws, 45 and 45 (90%). Nominal 95%; the floor here is 84%."""
    link_hits, composed_hits = np.zeros(2), np.zeros(2)
    truth = TRUTH.predict(HELD)
    for seed in range(50):
        loss, accuracy = ladder(seed, runs=40)
        whole = link(loss, accuracy, CHANCE, items=300)
        assert isinstance(whole, Link)
        draws = bootstrap_link(loss, accuracy, CHANCE, 100, seed, whole=whole)
        low, high = _interval(draws, np.broadcast_to(HELD, (len(draws), 2)))
        link_hits += (low <= truth) & (truth <= high)
        rng = np.random.default_rng(1000 + seed)
        predicted = HELD + rng.normal(0, 0.03, 2)  # what scale.py would predict, and its bootstrap draws
        low, high = _interval(draws, predicted + rng.normal(0, 0.03, (400, 2)))
        composed_hits += (low <= truth) & (truth <= high)
    assert (link_hits >= 42).all() and (composed_hits >= 42).all(), (link_hits, composed_hits)


def _interval(links: list[Link], loss_draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% interval of loss draws carried through link draws, paired as ablate.analyze.linked pairs them."""
    low, high = np.quantile(accuracy_draws(links, loss_draws), [0.025, 0.975], axis=0)
    return low, high


def test_a_bootstrap_of_200_refits_on_80_runs_is_fast():
    loss, accuracy = ladder(1)
    whole = link(loss, accuracy, CHANCE)
    assert isinstance(whole, Link)
    tick = time.perf_counter()
    draws = bootstrap_link(loss, accuracy, CHANCE, 200, 0, whole=whole)
    seconds = time.perf_counter() - tick
    assert len(draws) == 200 and seconds < 2.0, seconds  # ~0.25 s here
    assert draws == bootstrap_link(loss, accuracy, CHANCE, 200, 0, whole=whole)  # seeded


def test_a_loss_interval_is_carried_through_the_link():
    found = link(*ladder(2), CHANCE)
    assert isinstance(found, Link)
    draws = np.random.default_rng(0).normal([0.9, 1.4], 0.05, (1000, 2))
    predicted, low, high = through(found, draws)
    assert predicted == pytest.approx(found.predict(np.median(draws, axis=0)))
    # the link falls with loss: the accuracy interval is the loss interval's image, ends swapped
    loss_low, loss_high = np.quantile(draws, [0.025, 0.975], axis=0)
    assert low == pytest.approx(found.predict(loss_high), abs=1e-3) and high == pytest.approx(
        found.predict(loss_low), abs=1e-3
    )
    assert (low < predicted).all() and (predicted < high).all()
    # one link, no loss draws: no width; the whole fit without refits is the same link repeated
    assert accuracy_draws([found], np.ones((1, 1)))[0, 0] == pytest.approx(found.predict(1.0))


def test_near_chance_runs_are_refused_with_the_reason():
    se = np.sqrt(CHANCE * (1 - CHANCE) / 200)
    rng = np.random.default_rng(0)
    accuracy = CHANCE + rng.uniform(-1.5, 1.5, 12) * se
    why = link(np.linspace(1.5, 2.5, 12), accuracy, CHANCE, items=200)
    assert why == (
        "every run's accuracy is within 2 binomial standard errors of chance (0.25): the task has not "
        "emerged at these scales, so its loss does not show in accuracy yet."
    )


def test_flat_accuracy_is_refused_without_item_counts():
    """Accuracy at chance whatever the loss: the trend rule refused 195 of 200 such ladders (97.5%)."""
    refused = [link(*_flat(seed), CHANCE) for seed in range(100)]
    assert sum(isinstance(r, str) for r in refused) >= 90
    assert next(r for r in refused if isinstance(r, str)).startswith(
        "accuracy does not fall with loss beyond noise (a straight line through the runs has slope t = "
    )


def _flat(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.8, 1.6, 80), rng.binomial(500, CHANCE, 80) / 500


def test_rising_accuracy_and_too_few_runs_are_refused():
    loss, accuracy = ladder(3)
    rising = link(2.4 - loss, accuracy, CHANCE)  # the losses mirrored: accuracy rises with them
    assert isinstance(rising, str) and rising.startswith("accuracy does not fall with loss beyond noise")
    few = link(loss[: LEAST - 1], accuracy[: LEAST - 1], CHANCE)
    assert few == "5 runs of distinct loss, the sigmoid link needs 6 (two more than its 4 parameters)."
    assert isinstance(link(np.r_[loss[:5], loss[:5]], np.r_[accuracy[:5], accuracy[:5]], CHANCE), str)


@pytest.mark.parametrize(
    ("loss", "accuracy", "chance", "message"),
    [
        ([1.0, 2.0], [0.5], 0.25, "loss and accuracy: 2 and 1 values; give one of each per run"),
        ([1.0, np.nan], [0.5, 0.4], 0.25, "loss and accuracy: a value is not a finite number"),
        ([1.0, 2.0], [0.5, 0.4], 1.0, "chance 1.0: a guesser's accuracy lies in (0, 1)"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(loss, accuracy, chance, message):
    with pytest.raises(AblateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        link(np.array(loss), np.array(accuracy), chance)


def test_bootstrap_of_refused_runs_says_why():
    with pytest.raises(AblateError, match="bootstrap_link: accuracy does not fall with loss beyond noise"):
        bootstrap_link(*_flat(7), CHANCE, 10, 0)
