"""Mixing-law fits on synthetic results drawn from known laws: parameters recovered within stated
tolerances, out-of-sample error that prefers the true form, refusals when variants are too few, and
`ablate fit` on a study folder."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ablate.analyze.fit import fit_targets, propose
from ablate.analyze.laws import Points, bootstrap, cross_validate, fit
from ablate.analyze.suggest import Bounds, kl_divergence, maximize
from ablate.errors import AblateError
from ablate.plan.build import swarm
from ablate.recipe import Design
from conftest import REPO
from fixtures.report_study import fixed_recipe, heldout_domain, write_lm_eval

CENTER = {"web": 0.4, "math": 0.3, "code": 0.2, "facts": 0.1}
PHASE = 512_000
HEAVY = ("torch", "composer", "streaming", "lm_eval", "transformers")


def swarm_points(target, n: int = 24, noise: float = 0.002, seed: int = 0) -> Points:
    """`n` swarm mixtures around CENTER and `target(shares, tokens)` plus Gaussian noise."""
    mixtures = swarm(CENTER, Design(kind="swarm", n=n, concentration=8, seed=seed + 1), {})
    shares = np.array([[m[s] for s in CENTER] for m in mixtures])
    tokens = shares * PHASE
    y = target(shares, tokens) + np.random.default_rng(seed).normal(0, noise, n)
    return Points([f"swarm-{i}" for i in range(n)], list(CENTER), shares, tokens, y)


def law(shares, tokens):  # Data Mixing Law with c = 0.3, k = 0.5, t = (0, −2, 1, −0.5)
    return 0.3 + 0.5 * np.exp(shares @ np.array([0.0, -2.0, 1.0, -0.5]))


def power(shares, tokens):  # AutoScale-style: c = 2, γ = 0.6, β = (0.2, 0.5, 0.1, 0.3)
    return 2.0 + ((tokens / PHASE + 0.01) ** -0.6) @ np.array([0.2, 0.5, 0.1, 0.3])


def test_the_mixing_law_is_recovered_and_its_intervals_cover_the_truth():
    """Tolerance: c and k within 0.02, each t within 0.1, from 24 mixtures at noise 0.002."""
    points = swarm_points(law)
    fitted = fit(points, "law")
    assert fitted.names == ["c", "k", "t[math]", "t[code]", "t[facts]"]
    truth = np.array([0.3, 0.5, -2.0, 1.0, -0.5])
    assert np.abs(fitted.params[:2] - truth[:2]).max() < 0.02
    assert np.abs(fitted.params[2:] - truth[2:]).max() < 0.1
    draws = bootstrap(points, "law", resamples=200, seed=0)
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    assert ((low <= truth) & (truth <= high)).all(), (low, high)


def test_the_power_law_is_recovered():
    """Tolerance: γ within 0.05 and each β within 0.05, from 24 mixtures at noise 0.002."""
    fitted = fit(swarm_points(power), "power")
    assert fitted.names[:2] == ["c", "gamma"]
    assert fitted.params[1] == pytest.approx(0.6, abs=0.05)
    assert np.abs(fitted.params[2:] - np.array([0.2, 0.5, 0.1, 0.3])).max() < 0.05


def test_the_linear_attribution_is_exact_on_linear_data():
    weights = np.array([40.0, 80.0, 60.0, 20.0])
    fitted = fit(swarm_points(lambda r, d: r @ weights, noise=0.01), "linear")
    assert fitted.params == pytest.approx(weights, abs=0.5)


def test_leave_one_out_prefers_the_true_form():
    points = swarm_points(law)
    errors = {model: cross_validate(points, model) for model in ("linear", "loglinear", "law")}
    assert errors["law"].rmse < 0.5 * min(errors["linear"].rmse, errors["loglinear"].rmse)
    assert errors["law"].rank_correlation > 0.95
    assert errors["law"].rmse == pytest.approx(0.002, rel=0.6)  # about the noise it was drawn with


def test_too_few_variants_are_refused_in_one_line():
    few = swarm_points(law, n=5)  # law has 5 parameters: 5 variants fit it exactly, predict nothing
    with pytest.raises(AblateError, match="law: 5 parameters but 4 variants"):
        fit(Points(few.names[:4], few.subsets, few.shares[:4], few.tokens[:4], few.target[:4]), "law")
    with pytest.raises(AblateError, match="--model law: 5 parameters need at least 6 done variants"):
        fit_targets({"t": few}, models=["law"], resamples=10, seed=0)
    (result,) = fit_targets({"t": few}, models=None, resamples=10, seed=0)
    assert [f.model for f in result.fits] == ["linear"]
    assert result.left_out == ["loglinear: 5 parameters, 5 variants", "law: 5 parameters, 5 variants",
                               "power: 6 parameters, 5 variants"]  # fmt: skip


SEQUENCES, TOKENS = 200, 63  # held-out sequences of the planted prose domain, predicted tokens in each
DIFFICULTY = np.random.default_rng(7).normal(0, 0.3, SEQUENCES)  # per sequence, the same in every variant


def prose_loss(mixture):
    """The planted held-out prose loss, nats per token: 2 − 1 × the prose share."""
    return 2.0 - mixture["prose"]


def write_heldout(folder, mixture, rng):
    """heldout.json as ablate.run.heldout writes it: the planted prose loss per sequence, with noise."""
    from ablate.store import write_json

    per_token = prose_loss(mixture) + DIFFICULTY + rng.normal(0, 0.02, SEQUENCES)
    domain = heldout_domain(per_token * TOKENS, TOKENS, 2 * TOKENS)
    write_json(folder / "heldout.json", {"seq_len": TOKENS + 1, "domains": {"prose": domain}})


def swarm_study(results):
    """results/fixed/ as a swarm of 10 mixtures around the fixed recipe's mix, all done, t_math's
    accuracy planted as 20% + 60% × the arithmetic share (400 items), and a held-out prose loss of
    2 − 1 × the prose share (200 sequences)."""
    from ablate.plan.build import build_plan
    from ablate.recipe import parse_recipe
    from ablate.store import write_json

    # One run per mixture: a replicate here would re-roll the items alone, and fit, not seed noise, is tested.
    swarm = {"kind": "swarm", "n": 10, "seed": 0}
    raw = {**fixed_recipe(), "ablations": {"control": False, "design": swarm, "baseline_seeds": 1}}
    plan = build_plan(parse_recipe(raw)).model_dump(mode="json")
    study = results / "fixed"
    write_json(study / "plan.json", plan)
    rng = np.random.default_rng(0)
    for variant in plan["variants"]:
        measure(study, variant, rng)


def test_fit_on_a_study_folder_writes_its_files_without_heavy_imports(tmp_path):
    swarm_study(tmp_path / "results")
    env = {**os.environ, "ABLATE_RESULTS": "results"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ablate.cli", "fit", "--study", "fixed", "--bootstrap", "20"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| t_math | linear | 4 |" in result.stdout and "| t_math | law | 5 |" in result.stdout
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert {"fit.md", "fit.json", "fit.png"} <= {p.name for p in (tmp_path / "results" / "fixed").iterdir()}
    fitted = json.loads((tmp_path / "results" / "fixed" / "fit.json").read_text())
    math = next(t for t in fitted["targets"] if t["target"] == "t_math")
    weights = next(f for f in math["fits"] if f["model"] == "linear")["parameters"]
    assert weights["w[arithmetic]"]["value"] > max(weights[f"w[{s}]"]["value"] for s in ("prose", "code", "facts")) + 30


def test_fit_and_suggest_on_a_study_with_nothing_done_say_so_in_one_line(tmp_path):
    swarm_study(tmp_path / "results")
    for status in (tmp_path / "results" / "fixed").glob("*/status.json"):
        status.unlink()  # planned, nothing run yet
    for args in (["fit"], ["suggest", "--objective", "t_math"]):
        result = subprocess.run(
            [sys.executable, "-m", "ablate.cli", *args, "--study", "fixed"],
            cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "ABLATE_RESULTS": "results"}, timeout=120,
        )  # fmt: skip
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "no done variants to fit yet" in result.stderr


def test_fit_refuses_a_study_too_small_for_any_model_in_one_line(tmp_path):
    shutil.copytree(REPO / "tests" / "fixtures" / "results", tmp_path / "results")  # 3 done variants
    for extra in ([], ["--model", "law"]):
        refused = subprocess.run(
            [sys.executable, "-m", "ablate.cli", "fit", "--study", "fixed", *extra],
            cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "ABLATE_RESULTS": "results"}, timeout=120,
        )  # fmt: skip
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert not (tmp_path / "results" / "fixed" / "fit.md").exists()


# ---- suggest -------------------------------------------------------------------------------


def test_the_optimizer_finds_the_kl_ball_optimum_of_a_linear_objective():
    """max w·r subject to KL(r ‖ b) ≤ κ has the closed form r ∝ b·exp(λw), λ set so KL = κ."""
    from scipy.optimize import brentq

    base, w = np.array([0.4, 0.3, 0.2, 0.1]), np.array([1.0, 3.0, 2.0, 0.5])

    def tilted(lam):
        r = base * np.exp(lam * w)
        return r / r.sum()

    lam = brentq(lambda x: kl_divergence(tilted(x), base) - 0.1, 0, 10)
    found = maximize(lambda r: float(w @ r), base, Bounds(np.zeros(4), np.ones(4), 0.1))
    assert found == pytest.approx(tilted(lam), abs=2e-3)
    assert kl_divergence(found, base) == pytest.approx(0.1, abs=1e-4)
    capped_found = maximize(lambda r: float(w @ r), base, Bounds(np.zeros(4), np.array([1, 0.35, 1, 1]), 0.1))
    assert capped_found[1] <= 0.35 + 1e-6 and capped_found.sum() == pytest.approx(1)


def test_suggest_lands_near_the_true_constrained_optimum_of_a_known_law():
    """Fitted on 24 noisy swarm mixtures, the suggestion is within 0.03 (L1) of the mixture that
    maximizes the true law inside the same KL ball and cap, and its predicted gain covers the true one."""
    points = swarm_points(law)
    base = np.array(list(CENTER.values()))
    bounds = Bounds(np.zeros(4), np.array([1.0, 1.0, 0.35, 1.0]), 0.15)
    truth = maximize(lambda r: float(law(r[None, :], r[None, :] * PHASE)[0]), base, bounds)
    points = Points([*points.names, "baseline"], points.subsets, np.vstack([points.shares, base]),
                    np.vstack([points.tokens, base * PHASE]), np.r_[points.target, law(base[None, :], None)])  # fmt: skip
    found = propose({"t": points}, {"t": 1.0}, baseline="baseline", model="law", caps={"code": 0.35}, floors={},
                    radius=0.15, name="suggested", ablation="suggested", resamples=100, seed=0)  # fmt: skip
    shares = np.array([found.mixture.get(s, 0.0) for s in CENTER])
    assert np.abs(shares - truth).sum() < 0.03, (shares, truth)
    assert shares[2] <= 0.35 + 1e-6 and found.kl <= 0.15 + 1e-6
    true_gain = float(law(truth[None, :], None)[0] - law(base[None, :], None)[0])
    assert found.gain["low"] <= true_gain <= found.gain["high"]


def swarm_cli(tmp_path):
    """The swarm study under tmp_path/results, and the CLI as a user runs it there."""
    swarm_study(tmp_path / "results")
    env = {**os.environ, "ABLATE_RESULTS": "results"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "ablate.cli", *args], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=180)  # fmt: skip

    return cli


def measure(study, variant, rng):
    """A planned variant done as a run leaves it: the planted t_math accuracy and prose loss."""
    from ablate.store import write_json

    accuracy = 0.2 + 0.6 * variant["mixture"]["arithmetic"]
    write_lm_eval(study / variant["name"] / "eval", {t: {"acc": (rng.random(400) < (accuracy if t == "t_math" else 0.5))
                                                  .astype(float)} for t in ("t_web", "t_math", "t_code")})  # fmt: skip
    write_heldout(study / variant["name"], variant["mixture"], rng)
    write_json(study / variant["name"] / "status.json", {"state": "done", "hash": variant["hash"], "tokens_done": 1,
                                                         "tokens": 1, "error": None, "updated": 0})  # fmt: skip


def test_ablate_suggest_adds_a_variant_and_the_report_compares_it(tmp_path):
    cli = swarm_cli(tmp_path)

    made = cli("suggest", "--objective", "t_math", "--study", "fixed", "--bootstrap", "30", "--max", "arithmetic=0.4")
    assert made.returncode == 0, made.stderr
    study = tmp_path / "results" / "fixed"
    plan = json.loads((study / "plan.json").read_text())
    variant = plan["variants"][-1]
    assert variant["name"] == "suggested" and variant["mixture"]["arithmetic"] == pytest.approx(0.4, abs=1e-3)
    before = cli("report", "--study", "fixed", "--no-plot")
    assert "Measured: not yet" in before.stdout
    measure(study, variant, np.random.default_rng(1))
    after = cli("report", "--study", "fixed", "--no-plot")
    assert after.returncode == 0, after.stderr
    section = after.stdout.split("## Suggested mixtures")[1]
    assert "Predicted by `ablate suggest`" in section and "- Measured: t_math +" in section
    assert "it beats the baseline" in section  # +9 points planted on 400 items
    # suggested.json as ablate wrote it before weighted objectives (one target, one model) still reports.
    proposals = json.loads((study / "suggested.json").read_text())
    old = {k: v for k, v in proposals["suggested"].items() if k not in ("objective", "models", "loo_rmse")}
    (study / "suggested.json").write_text(json.dumps({"suggested": {**old, "model": "linear", "loo_rmse": 1.5}}))
    older = cli("report", "--study", "fixed", "--no-plot")
    assert older.returncode == 0 and "(linear for t_math (leave-one-out RMSE 1.5)" in older.stdout, older.stderr
    again = cli("suggest", "--objective", "t_math", "--study", "fixed", "--bootstrap", "30")  # another mixture
    assert again.returncode == 2 and "suggested" in again.stderr and again.stderr.count("\n") == 1
    missing = cli("suggest", "--objective", "nope", "--study", "fixed")
    assert missing.returncode == 2 and "--objective nope" in missing.stderr


def test_held_out_losses_are_fitted_and_suggested_for_alone_or_weighted(tmp_path):
    """loss:prose is a target of fit (its linear attribution recovers the planted 2 − 1 × prose share)
    and of suggest, which minimizes a loss: alone it raises the prose share; weighted with t_math it
    trades the two. The report then measures the weighted objective from both terms' Δ."""
    cli = swarm_cli(tmp_path)

    fitted = cli("fit", "--study", "fixed", "--target", "loss:prose", "--model", "linear", "--bootstrap", "20")
    assert fitted.returncode == 0, fitted.stderr
    study = tmp_path / "results" / "fixed"
    (target,) = json.loads((study / "fit.json").read_text())["targets"]
    weights = {k: v["value"] for k, v in target["fits"][0]["parameters"].items()}
    assert weights["w[prose]"] == pytest.approx(1.0, abs=0.1)  # y on pure prose: 2 − 1
    assert all(weights[f"w[{s}]"] == pytest.approx(2.0, abs=0.1) for s in ("arithmetic", "code", "facts"))

    alone = cli("suggest", "--objective", "loss:prose", "--study", "fixed", "--name", "low-loss", "--bootstrap", "20")
    assert alone.returncode == 0, alone.stderr
    proposals = json.loads((study / "suggested.json").read_text())
    low = proposals["low-loss"]
    assert low["objective"] == {"loss:prose": -1.0} and low["target"] == "−loss:prose"
    assert low["mixture"]["prose"] > low["baseline_mixture"]["prose"] + 0.05 and low["gain"]["value"] > 0

    both = cli("suggest", "--objective", "t_math=1,loss:prose=100", "--study", "fixed", "--name", "both",
               "--bootstrap", "20", "--max", "arithmetic=0.4")  # fmt: skip
    assert both.returncode == 0, both.stderr
    mixed = json.loads((study / "suggested.json").read_text())["both"]
    assert mixed["objective"] == {"t_math": 1.0, "loss:prose": -100.0}
    assert mixed["target"] == "t_math − 100·loss:prose" and set(mixed["models"]) == {"t_math", "loss:prose"}
    plan = json.loads((study / "plan.json").read_text())
    measure(study, next(v for v in plan["variants"] if v["name"] == "both"), np.random.default_rng(2))
    report = cli("report", "--study", "fixed", "--no-plot")
    assert report.returncode == 0, report.stderr
    assert "## Held-out loss by domain" in report.stdout
    section = report.stdout.split("## Suggested mixtures")[1]
    assert "- Measured: t_math − 100·loss:prose +" in section and "Terms: t_math Δ +" in section
    measured = next(s for s in json.loads((study / "report.json").read_text())["suggestions"] if s["name"] == "both")
    terms = measured["measured"]["terms"]
    assert measured["measured"]["value"] == pytest.approx(terms["t_math"][0] - 100 * terms["loss:prose"][0])
    assert measured["measured"]["low"] < measured["measured"]["value"] < measured["measured"]["high"]
    bad = cli("suggest", "--objective", "loss:prose=-1", "--study", "fixed")
    assert bad.returncode == 2 and "--objective loss:prose=-1: use TARGET or TARGET=WEIGHT" in bad.stderr


def test_re_planning_keeps_the_mixtures_suggest_added(in_tmp):
    from ablate.plan.build import replan
    from ablate.plan.study import plan_study, save_plan
    from ablate.recipe import parse_recipe

    recipe = parse_recipe({**fixed_recipe(), "ablations": {"control": False, "design": {"kind": "swarm", "n": 3}}})
    plan = plan_study(recipe)
    save_plan(replan(plan, recipe, mixtures={"suggested": {"prose": 0.1, "arithmetic": 0.4, "code": 0.3, "facts": 0.2}}))
    again = plan_study(recipe)
    assert [v.name for v in again.variants] == ["baseline", "swarm-1", "swarm-2", "swarm-3", "suggested"]
