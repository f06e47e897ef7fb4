"""Mixing-law fits on synthetic results drawn from known laws: parameters recovered within stated
tolerances, out-of-sample error that prefers the true form, refusals when variants are too few, and
`ablate fit` on a study folder."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from fixtures.report_study import fixed_recipe, heldout_domain, write_lm_eval

from ablate.analyze.fit import fit_targets
from ablate.analyze.laws import Points, bootstrap, cross_validate, fit, take
from ablate.analyze.suggest import Bounds, SuggestRequest, kl_divergence, maximize, propose
from ablate.errors import AblateError
from ablate.plan.build import swarm
from ablate.recipe import Design

CENTER = {"web": 0.4, "math": 0.3, "code": 0.2, "facts": 0.1}
PHASE = 512_000
HEAVY = ("torch", "composer", "streaming", "lm_eval", "transformers", "sklearn", "lightgbm")


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
    draws = np.array([d.params for d in bootstrap(points, "law", resamples=200, seed=0)])
    low, high = np.quantile(draws, [0.025, 0.975], axis=0)
    assert ((low <= truth) & (truth <= high)).all(), (low, high)


def test_the_power_law_is_recovered():
    """Tolerance: γ within 0.05 and each β within 0.05, from 24 mixtures at noise 0.002."""
    fitted = fit(swarm_points(power), "power")
    assert fitted.names[:2] == ["c", "gamma"] and fitted.note == ""  # converged inside γ's bounds
    assert fitted.params[1] == pytest.approx(0.6, abs=0.05)
    assert np.abs(fitted.params[2:] - np.array([0.2, 0.5, 0.1, 0.3])).max() < 0.05


def test_a_power_law_fitted_to_logarithmic_returns_says_why_gamma_sits_at_its_bound():
    """RegMix's losses fall like log(share): the power form's best γ is its lower bound, and its note says so."""
    fitted = fit(swarm_points(lambda r, d: 3 - 0.2 * np.log(d / PHASE + 0.01).sum(axis=1), n=40, noise=0), "power")
    assert fitted.params[1] < 0.01
    assert "≈ 0 (bound 0.001): the data favour the power law's logarithmic limit" in fitted.note


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
    """docs/fit-suggest.md's rule: a model with as many parameters as the variants minus one is not fitted."""
    few = swarm_points(law, n=6)  # law has 5 parameters: 6 variants fit it with one degree of freedom
    with pytest.raises(AblateError, match="law: 5 parameters but 4 variants"):
        fit(Points(few.names[:4], few.subsets, few.shares[:4], few.tokens[:4], few.target[:4]), "law")
    with pytest.raises(AblateError, match=r"--model law: needs at least 7 done variants \(5 parameters\), t has 6"):
        fit_targets({"t": few}, models=["law"], resamples=10, seed=0)
    (result,) = fit_targets({"t": few}, models=None, resamples=10, seed=0)
    assert [f.model for f in result.fits] == ["linear"]  # 4 parameters, 6 variants
    assert result.left_out == ["loglinear: needs 7 variants (5 parameters), has 6",
                               "law: needs 7 variants (5 parameters), has 6",
                               "power: needs 8 variants (6 parameters), has 6",
                               "gbm: needs 40 variants (boosted trees with leaves of 20), has 6",
                               "ensemble: needs 7 variants (two members), has 6"]  # fmt: skip
    (five,) = fit_targets({"t": take(few, np.arange(5))}, models=None, resamples=10, seed=0)
    assert five.fits == [] and five.left_out[0] == "linear: needs 6 variants (4 parameters), has 5"


SEQUENCES, TOKENS = 200, 63  # held-out sequences of the planted prose domain, predicted tokens in each
DIFFICULTY = np.random.default_rng(7).normal(0, 0.3, SEQUENCES)  # per sequence, the same in every variant


def prose_loss(mixture):
    """The planted held-out prose loss, nats per token: 2 − 1 × the prose share."""
    return 2.0 - mixture["prose"]


def write_heldout(folder, mixture, rng):
    """heldout.json as ablate.run.heldout writes it: the planted prose loss per sequence, with noise."""
    from ablate.study.store import write_json

    per_token = prose_loss(mixture) + DIFFICULTY + rng.normal(0, 0.02, SEQUENCES)
    domain = heldout_domain(per_token * TOKENS, TOKENS, 2 * TOKENS)
    write_json(folder / "heldout.json", {"seq_len": TOKENS + 1, "domains": {"prose": domain}})


def swarm_study(results):
    """results/fixed/ as a swarm of 10 mixtures around the fixed recipe's mix, all done, t_math's
    accuracy planted as 20% + 60% × the arithmetic share (400 items), and a held-out prose loss of
    2 − 1 × the prose share (200 sequences)."""
    from ablate.plan.build import build_plan
    from ablate.recipe import parse_recipe
    from ablate.study.store import write_json

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
    assert re.search(r"\| t_math \| (\*\*)?linear(\*\*)? \| 4 \|", result.stdout), result.stdout
    assert re.search(r"\| t_math \| (\*\*)?law(\*\*| \(unusable\))? \| 5 \|", result.stdout), result.stdout
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
    found = maximize(lambda rows: rows @ w, base, Bounds(np.zeros(4), np.ones(4), 0.1))
    assert found == pytest.approx(tilted(lam), abs=2e-3)
    assert kl_divergence(found, base) == pytest.approx(0.1, abs=1e-4)
    capped_found = maximize(lambda rows: rows @ w, base, Bounds(np.zeros(4), np.array([1, 0.35, 1, 1]), 0.1))
    assert capped_found[1] <= 0.35 + 1e-6 and capped_found.sum() == pytest.approx(1)


def test_suggest_lands_near_the_true_constrained_optimum_of_a_known_law():
    """Fitted on 24 noisy swarm mixtures, the suggestion is within 0.03 (L1) of the mixture that
    maximizes the true law inside the same KL ball and cap, and its predicted gain covers the true one."""
    points = swarm_points(law)
    base = np.array(list(CENTER.values()))
    bounds = Bounds(np.zeros(4), np.array([1.0, 1.0, 0.35, 1.0]), 0.15)
    truth = maximize(lambda rows: law(rows, rows * PHASE), base, bounds)
    points = Points([*points.names, "baseline"], points.subsets, np.vstack([points.shares, base]),
                    np.vstack([points.tokens, base * PHASE]), np.r_[points.target, law(base[None, :], None)])  # fmt: skip
    asked = SuggestRequest({"t": 1.0}, model="law", caps={"code": 0.35}, radius=0.15, resamples=100)
    found = propose({"t": points}, asked, baseline="baseline", ablation="suggested")
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
    from ablate.study.store import write_json

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

    for task in ("t_web", "t_math", "t_code"):  # plan checks that lm-eval registers every task
        (in_tmp / "tasks").mkdir(exist_ok=True)
        (in_tmp / "tasks" / f"{task}.yaml").write_text(f"task: {task}\n")
    raw = {**fixed_recipe(), "ablations": {"control": False, "design": {"kind": "swarm", "n": 3}}}
    recipe = parse_recipe({**raw, "eval": {**raw["eval"], "include": ["tasks"]}})
    plan = plan_study(recipe)
    save_plan(
        replan(plan, recipe, mixtures={"suggested": {"prose": 0.1, "arithmetic": 0.4, "code": 0.3, "facts": 0.2}})
    )
    again = plan_study(recipe)
    assert [v.name for v in again.variants] == ["baseline", "baseline.s1", "swarm-1", "swarm-2", "swarm-3", "suggested"]


# ---- runs made elsewhere: ablate fit/suggest --from RUNS.csv ------------------------------------


def write_runs(path, points: Points, split: list[str] | None = None, **columns) -> None:
    """RUNS.csv as a team that ran its own swarm writes it: run, share:<domain>, target t, a split."""
    import pandas as pd

    table = {"run": points.names, **{f"share:{s}": points.shares[:, j] for j, s in enumerate(points.subsets)}}
    pd.DataFrame({**table, "t": points.target, **({"split": split} if split else {}), **columns}).to_csv(
        path, index=False
    )


def cli_in(folder):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "ablate.cli", *args], cwd=folder, capture_output=True,
                              text=True, env=dict(os.environ), timeout=300)  # fmt: skip

    return cli


def test_fit_from_a_csv_with_a_held_out_split_recovers_the_known_ranking(tmp_path):
    """160 swarm runs of a known mixing law (noise 0.002), 40 of them held out: the true form is chosen
    by 10-fold error and ranks the held-out runs as the truth does (ρ > 0.98); every model, the boosted
    trees and the ensemble included, is scored on the held-out runs it never saw."""
    from scipy.stats import spearmanr

    points = swarm_points(law, n=160)
    write_runs(tmp_path / "runs.csv", points, ["train"] * 120 + ["test"] * 40)
    done = cli_in(tmp_path)("fit", "--from", "runs.csv", "--test-split", "split", "--bootstrap", "20")
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads((tmp_path / "runs.fit.json").read_text())["targets"]
    assert result["validation"] == "10-fold" and result["best"] == "law"
    assert set(result["test_measured"]) == set(points.names[120:])
    assert set(result["variants"]) == set(points.names[:120])
    fits = {f["model"]: f for f in result["fits"]}
    assert list(fits) == ["linear", "loglinear", "law", "power", "gbm", "ensemble"]
    truth = law(points.shares[120:], None)
    best = [fits["law"]["test_predicted"][n] for n in points.names[120:]]
    assert spearmanr(best, truth).statistic > 0.98 and fits["law"]["test_rank_correlation"] > 0.98
    assert all(f["usable"] and f["test_rmse"] is not None for f in fits.values())
    members = fits["ensemble"]["note"].removeprefix("mean of ").split(" and ")
    assert "law" in members and fits["ensemble"]["predicted"]["swarm-0"] == pytest.approx(
        np.mean([fits[m]["predicted"]["swarm-0"] for m in members])
    )  # its cross-validated prediction is its members' mean
    markdown = (tmp_path / "runs.fit.md").read_text()
    assert "| t | **law** | 5 |" in markdown and "held-out rank ρ |" in markdown


def test_bad_run_tables_are_refused_in_one_line_and_write_nothing(tmp_path):
    points = swarm_points(law, n=12)
    cli = cli_in(tmp_path)
    off = Points(points.names, points.subsets, points.shares * 0.9, points.tokens, points.target)
    write_runs(tmp_path / "off.csv", off)
    write_runs(tmp_path / "few.csv", take(points, np.arange(5)))  # linear over 4 domains needs 6
    write_runs(tmp_path / "ok.csv", points)
    write_runs(tmp_path / "split.csv", points, ["train"] * 10 + ["tset"] * 2)
    for args, message in (
        (["--from", "off.csv"], "run swarm-0: its shares sum to 0.9, not 1 within 0.01"),
        (["--from", "few.csv"], "5 runs to fit on, too few for any model (linear over 4 domains needs 6)"),
        (["--from", "ok.csv", "--target", "nope"], "--target nope: no measured task"),
        (["--from", "split.csv"], "column split, row 1: `train` is not a number (a train/test column? name it"),
        (["--from", "split.csv", "--test-split", "split"], "--test-split split: run swarm-10 is `tset`; use train or"),
        (["--from", "ok.csv", "--test-split", "fold"], "--test-split fold: ok.csv has no column fold"),
        (["--from", "ok.csv", "--study", "fixed"], "--from: fits the runs of a CSV, not a study"),
    ):
        refused = cli("fit", *args)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert message in refused.stderr, refused.stderr
    assert not list(tmp_path.glob("*.fit.*"))
    from ablate.analyze.runs import read_runs

    write_runs(tmp_path / "twice.csv", Points(["a", "a", *points.names[2:]], *list(vars(points).values())[1:]))
    write_runs(tmp_path / "words.csv", points, note=["fine"] * 12)
    for name, message in (("twice.csv", "run a appears twice"), ("words.csv", "column note, row 1: `fine`")):
        with pytest.raises(AblateError, match=message):
            read_runs(tmp_path / name)


def test_suggest_from_a_csv_around_a_given_baseline_mix_with_the_law_and_the_trees(tmp_path):
    """160 swarm runs of a known law, none of them the baseline (--baseline-mix gives it). The default
    model (the law, best by 10-fold error) lands within 0.03 (L1) of the true optimum inside the KL ball
    and cap; the boosted trees, searched inside the same ball and cap, take at least half its true gain."""
    points = swarm_points(law, n=160)
    write_runs(tmp_path / "runs.csv", points)
    base = np.array(list(CENTER.values()))
    truth = maximize(lambda rows: law(rows, None), base, Bounds(np.zeros(4), np.array([1, 1, 0.35, 1]), 0.1))
    best_gain = float(law(truth[None, :], None)[0] - law(base[None, :], None)[0])
    cli = cli_in(tmp_path)
    mix = ",".join(f"{domain}={share}" for domain, share in CENTER.items())
    args = ["suggest", "--from", "runs.csv", "--objective", "t", "--max", "code=0.35", "--bootstrap", "20"]
    missing = cli(*args)
    assert missing.returncode == 2 and "no run is named baseline" in missing.stderr, missing.stderr
    for extra in (["--name", "best"], ["--name", "trees", "--model", "gbm"]):
        made = cli(*args, "--baseline-mix", mix, *extra)
        assert made.returncode == 0 and "Written to runs.suggested.json" in made.stdout, made.stderr
    saved = json.loads((tmp_path / "runs.suggested.json").read_text())
    assert saved["best"]["models"] == {"t": "law"} and saved["trees"]["models"] == {"t": "gbm"}
    for name in ("best", "trees"):
        shares = np.array([saved[name]["mixture"].get(s, 0.0) for s in CENTER])
        assert kl_divergence(shares, base) <= 0.1 + 1e-6 and shares[2] <= 0.35 + 1e-6
        gain = float(law(shares[None, :], None)[0] - law(base[None, :], None)[0])
        assert gain > (0.9 if name == "best" else 0.5) * best_gain, (name, shares, truth)
    assert np.abs(np.array([saved["best"]["mixture"].get(s, 0.0) for s in CENTER]) - truth).sum() < 0.03


def test_absurd_fits_are_flagged_in_fit_md_and_on_the_console_and_never_chosen(tmp_path):
    """Issue #26: a leave-one-out design of 8 runs of noise: the law's and the power law's leave-one-out
    errors run to 1e9 and 3e5 (the target's spread is 1.2); they are marked unusable, not chosen."""
    base = np.array(list(CENTER.values()))
    rng = np.random.default_rng(5)
    rows = np.array([base, *[np.where(np.arange(4) == j, 0, base) / (1 - base[j]) for j in range(4)],
                     *rng.dirichlet(8 * base, size=3)])  # fmt: skip
    write_runs(
        tmp_path / "loo.csv", Points([f"v{i}" for i in range(8)], list(CENTER), rows, rows, 50 + rng.normal(0, 2, 8))
    )
    done = cli_in(tmp_path)("fit", "--from", "loo.csv", "--bootstrap", "20")
    assert done.returncode == 0, done.stderr
    (result,) = json.loads((tmp_path / "loo.fit.json").read_text())["targets"]
    flagged = {f["model"] for f in result["fits"] if not f["usable"]}
    assert {"law", "power"} <= flagged and "linear" not in flagged and result["best"] not in flagged
    markdown = (tmp_path / "loo.fit.md").read_text()
    assert "| t | law (unusable) | 5 |" in markdown and "CAUTION law: unusable: its leave-one-out RMSE" in markdown
    assert "CAUTION t law: unusable" in done.stderr and "CAUTION t power: unusable" in done.stderr


def test_suggest_refuses_when_no_model_beats_the_mean(tmp_path):
    # t_web is planted at 50% whatever the mixture: any model's optimum is noise, so nothing is added.
    cli = swarm_cli(tmp_path)
    plan_before = (tmp_path / "results" / "fixed" / "plan.json").read_text()
    refused = cli("suggest", "--objective", "t_web", "--study", "fixed", "--bootstrap", "30")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "no model predicts t_web better than its mean over the 11 variants" in refused.stderr
    assert (tmp_path / "results" / "fixed" / "plan.json").read_text() == plan_before
    assert not (tmp_path / "results" / "fixed" / "suggested.json").exists()
