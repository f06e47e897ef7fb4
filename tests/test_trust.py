"""How far to trust a table: seed noise against signal (checked against scipy's ANOVA and calibrated by
simulation), the seeds and items a Δ needs, decision consistency on cases with a known answer, and the
report's trust section on a study with two seeds."""

import subprocess
import sys

import numpy as np
import pytest
from fixtures.report_study import write_lm_eval
from scipy.stats import f_oneway

from ablate import stats
from ablate.names import VariantName
from ablate.report import build_report, load_folder, to_json, to_markdown, write_report

ALPHA = 0.05


def test_seed_noise_figures_and_the_f_test_agree_with_scipy():
    groups = [np.array([0.61, 0.63]), np.array([0.55, 0.58, 0.56]), np.array([0.70, 0.66])]
    noise = stats.seed_noise(groups)
    assert noise is not None
    pooled = sum(((g - g.mean()) ** 2).sum() for g in groups) / (7 - 3)
    assert noise.noise == pytest.approx(pooled**0.5)
    assert noise.signal == pytest.approx(np.std([g.mean() for g in groups], ddof=1))
    assert noise.snr == pytest.approx(noise.signal / noise.noise)
    assert noise.p_value == pytest.approx(f_oneway(*groups).pvalue)
    assert stats.seed_noise([np.array([0.5]), np.array([0.6])]) is None  # no ablation has two seeds
    assert stats.seed_noise([np.array([0.5, 0.6])]) is None  # one ablation: nothing to tell apart
    same = stats.seed_noise([np.array([0.5, 0.5]), np.array([0.5, 0.5])])  # seeds and variants change nothing
    assert same is not None and same.p_value == 1.0 and np.isnan(same.snr)
    apart = stats.seed_noise([np.array([0.5, 0.5]), np.array([0.6, 0.6])])
    assert apart is not None and apart.p_value == 0.0 and np.isinf(apart.snr)


def test_with_no_true_effect_the_f_test_fires_at_the_nominal_rate_and_finds_planted_ones():
    """Six ablations × two seeds, seed SD 1 point: no differences → about 5% "tells apart"; one
    ablation 4 points off → found most of the time (the power is printed when the test runs)."""
    rng = np.random.default_rng(0)
    trials = 4_000

    def rate(shift: float) -> float:
        fired = 0
        for _ in range(trials):
            scores = rng.normal(0.6, 0.01, size=(6, 2))
            scores[0] += shift
            fired += stats.seed_noise(list(scores)).p_value < ALPHA  # type: ignore[union-attr]
        return fired / trials

    null, planted = rate(0.0), rate(0.04)
    spread = 3 * (ALPHA * (1 - ALPHA) / trials) ** 0.5
    assert abs(null - ALPHA) < spread, null
    print(f"F-test: {null:.3f} with no effect; power {planted:.2f} for one ablation 4 seed SDs off")
    assert planted > 0.6


def test_seeds_and_items_needed_invert_the_detectable_effect():
    p, n, sd = 0.6, 20_000, 0.01
    assert stats.detectable_effect(p, n, 0.0, 1) == pytest.approx(stats.minimum_detectable_effect(n, p))
    seeds = stats.seeds_needed(0.02, p, n, sd)
    assert seeds is not None
    assert stats.detectable_effect(p, n, sd, seeds) <= 0.02 < stats.detectable_effect(p, n, sd, seeds - 1)
    items = stats.items_needed(0.02, p, 8, sd)
    assert items is not None
    assert stats.detectable_effect(p, items, sd, 8) <= 0.02 < stats.detectable_effect(p, items - 1, sd, 8)
    assert stats.seeds_needed(0.02, p, 2_000, sd) is None  # 2,000 items alone cannot see 2 points
    assert stats.items_needed(0.005, p, 2, sd) is None  # two seeds of SD 1 point cannot see half a point


def test_pair_agreement_on_known_orders():
    a = np.array([0.1, 0.4, 0.3, 0.9])
    assert stats.pair_agreement(a, a + 0.05)[0] == 1.0
    assert stats.pair_agreement(a, -a)[0] == 0.0
    assert stats.pair_agreement(np.array([0.1, 0.2]), np.array([0.3, 0.3]))[0] == 0.5  # a tie counts half
    rng = np.random.default_rng(1)
    random = stats.pair_agreement(rng.random((2_000, 8)), rng.random((2_000, 8)))
    assert random.mean() == pytest.approx(0.5, abs=0.01)


def test_decision_consistency_is_one_for_identical_rankings_and_a_half_for_independent_ones():
    rng = np.random.default_rng(2)
    accuracy = np.linspace(0.2, 0.8, 6)[:, None]
    a = (rng.random((6, 400)) < accuracy).astype(float)
    b = (rng.random((6, 400)) < accuracy).astype(float)  # the same true order, other draws
    same, draws = stats.decision_consistency(a, a, resamples=500, rng=rng)
    assert same == 1.0 and (draws == 1.0).all()
    clear, _ = stats.decision_consistency(a, b, resamples=200, rng=rng)
    assert clear >= 13 / 15  # 10-point steps over 400 items: nearly every pair ordered alike

    points = []
    for _ in range(300):  # no true differences: each setting's order is a coin flip per pair
        a = (rng.random((6, 100)) < 0.5).astype(float)
        b = (rng.random((6, 100)) < 0.5).astype(float)
        points.append(stats.decision_consistency(a, b, resamples=100, rng=rng)[0])
    assert np.mean(points) == pytest.approx(0.5, abs=0.03)


def test_decision_consistency_resamples_clusters_and_its_interval_covers_the_truth():
    """Two settings that order six variants 10 points apart in truth; the interval from one study of
    40 clusters of 5 items should cover the share of pairs they agree on in expectation (here close
    to 1) and be wider with clusters than when the same items are drawn one by one."""
    rng = np.random.default_rng(3)
    accuracy = np.linspace(0.3, 0.8, 6)[:, None]
    clusters = np.repeat(np.arange(40), 5)
    known_a = rng.random((6, 40)) < accuracy  # a variant knows a fact or not: its 5 items agree
    known_b = rng.random((6, 40)) < accuracy
    a, b = known_a[:, clusters].astype(float), known_b[:, clusters].astype(float)
    _, by_cluster = stats.decision_consistency(a, b, resamples=2_000, rng=rng, clusters=clusters)
    _, by_item = stats.decision_consistency(a, b, resamples=2_000, rng=rng)
    assert by_cluster.std() > by_item.std()


def test_decision_consistency_with_the_seed_term_covers_what_reruns_agree_on():
    """Five variants 1.5 points apart, 8,000 items, each run shifted by its own seed (SD 2 points): the share
    of pairs two fresh runs of both settings order alike is 0.72 on average. Over 40 simulated studies the
    95% interval from items alone held it in 78% (its items pin each run's own order, not a rerun's); with
    each mean's seed SD drawn in, in 98%. The floor here is 90%."""
    k, n, sd = 5, 8_000, 0.02
    means = 0.5 + 0.015 * np.arange(k)
    rng = np.random.default_rng(0)
    reruns = [means + rng.normal(0, sd, (4_000, k)) + rng.normal(0, 0.5 / n**0.5, (4_000, k)) for _ in range(2)]
    truth = stats.pair_agreement(*reruns).mean()
    hits = 0
    for study in range(40):
        r = np.random.default_rng(100 + study)
        a, b = ((r.random((k, n)) < (means + r.normal(0, sd, k))[:, None]).astype(float) for _ in range(2))
        _, draws = stats.decision_consistency(a, b, resamples=400, rng=r, seed_sd=np.full(2 * k, sd))
        low, high = np.quantile(draws, [0.025, 0.975])
        hits += low <= truth <= high
    assert hits >= 36, hits


def two_seed_study(folder, *, planted: float, seed: int = 4):
    """Baseline and three removals, two seeds each, on a task where `no-a` loses `planted` and on one
    (`flat`) where nothing differs; seed noise: each seed flips a few items."""
    rng = np.random.default_rng(seed)
    truth = {"t": (rng.random(600) < 0.6).astype(float), "flat": (rng.random(600) < 0.5).astype(float)}
    for ablation in ("baseline", "no-a", "no-b", "no-c"):
        for s in (1, 2):
            tasks = {}
            for task, values in truth.items():
                scores = np.where(rng.random(600) < 0.05, 1 - values, values)  # seed noise
                if task == "t" and ablation == "no-a":
                    scores = np.where(rng.random(600) < planted / 0.6, 0.0, scores)
                tasks[task] = {"acc": scores}
            write_lm_eval(folder / str(VariantName(ablation, seed=s)), tasks)


def test_the_report_says_how_far_to_trust_a_two_seed_table(tmp_path):
    two_seed_study(tmp_path, planted=0.15)
    report = build_report(load_folder(tmp_path))
    assert report.trust is not None
    rows = {t.task: t for t in report.trust.tasks}
    assert rows["t"].distinguishes and not rows["flat"].distinguishes
    assert rows["t"].snr > rows["flat"].snr
    assert rows["t"].ablations == 4 and rows["t"].seeds == 2
    consistency = rows["t"].consistency
    assert consistency is not None and consistency.first == [1] and consistency.second == [2]
    assert consistency.pairs == 6 and consistency.low <= consistency.agreement <= consistency.high
    markdown = to_markdown(report)
    assert "## How far to trust this table" in markdown and "seeds for Δ=2" in markdown
    assert to_json(report)["trust"]["tasks"][0]["task"] == "t"
    by_key = {(r.variant, r.task): r for r in report.rows.itertuples()}
    assert by_key[("no-a", "t")].sign_kept > 0.99  # 15 points down: every resample agrees


def test_one_seed_has_no_trust_section_and_says_how_to_get_one(tmp_path):
    rng = np.random.default_rng(5)
    for name in ("baseline", "no-a"):
        write_lm_eval(tmp_path / name, {"t": {"acc": (rng.random(100) < 0.5).astype(float)}})
    report = build_report(load_folder(tmp_path))
    markdown = to_markdown(report)
    assert report.trust is None and "How far to trust" not in markdown
    assert "No replicate run" in markdown and "ablations.baseline_seeds: 2" in markdown


def phase_study(folder, *, orders_alike: bool):
    """Four ablations at two phase lengths, one seed: the removals cost 0, 5, 10, 20 points at p25;
    at p10 they cost half as much (the same order) or, with `orders_alike` False, the reverse order."""
    rng = np.random.default_rng(6)
    truth = (rng.random(800) < 0.7).astype(float)
    costs = {"baseline": 0.0, "no-a": 0.05, "no-b": 0.10, "no-c": 0.20}
    for label, scale in (("p10", 0.5), ("p25", 1.0)):
        for number, (arm, cost) in enumerate(costs.items()):
            if label == "p10" and not orders_alike and arm != "baseline":
                cost = 0.20 - 0.05 * number  # no-a loses most, no-c least
            scores = np.where(rng.random(800) < cost * scale / 0.7, 0.0, truth)
            write_lm_eval(folder / str(VariantName(arm, label)), {"t": {"acc": scores}})


def test_a_phase_study_compares_each_phase_with_its_own_baseline_and_ranks_the_phases(tmp_path):
    phase_study(tmp_path, orders_alike=True)
    report = build_report(load_folder(tmp_path))
    assert report.phases == ["p10", "p25"] and report.baselines == ["baseline@p10", "baseline@p25"]
    rows = {(r.variant, r.task): r for r in report.rows.itertuples()}
    assert rows[("no-c@p25", "t")].delta == pytest.approx(-0.20, abs=0.03)
    assert rows[("no-c@p10", "t")].delta == pytest.approx(-0.10, abs=0.03)  # against baseline@p10, not @p25
    (agreement,) = report.phase_agreement
    assert (agreement.short, agreement.long, agreement.variants, agreement.pairs) == ("p10", "p25", 4, 6)
    assert agreement.agreement == 1.0
    markdown = to_markdown(report)
    assert "## Δ by phase length" in markdown and "| no-c | " in markdown
    assert "orders 6 pairs of 4 variants as the 25% phase does for 6 of them: 1.00" in markdown
    assert "| baseline@p10 |" not in markdown.split("## Δ vs")[1]  # baselines have no Δ row
    written = {path.name for path in write_report(report, tmp_path / "out")}
    assert {"deltas.png", "phases.png"} <= written

    reversed_folder = tmp_path / "reversed"
    phase_study(reversed_folder, orders_alike=False)
    (flipped,) = build_report(load_folder(reversed_folder)).phase_agreement
    assert flipped.agreement <= 0.5  # only the pairs with the baseline keep their order


def test_the_demo_refuses_fast_with_trust_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "demo", "--fast", "--trust", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--fast, --trust and --suggest" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing written
