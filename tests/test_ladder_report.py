"""A ladder's report across scale (ablate.report.ladder) on synthetic rungs: removals whose Δ changes sign
between the small and the large sizes are marked, and the Δ predicted at a larger target has the true sign.

Each rung is a study as `ablate report` loads it: a baseline and three removals of subsets a, b, c, each with
its held-out losses per sequence drawn from a joint scale law L(r, N) = E(r) + A(r)·(N/N₀)^−α (plus each
sequence's own difficulty, the same text at every rung, and noise). The law is planted so that removing c
lowers the loss at small N (its A falls) and raises it at large N (its E rises), and removing a does the
opposite; b's removal mirrors a's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ablate.analyze.across import fit_across
from ablate.analyze.scale import ScalePoints
from ablate.names import rung_label
from ablate.report import Settings, build_report, to_markdown
from ablate.analyze.conclusions import across
from ablate.report.ladder import Rung, ladder_results
from ablate.report.load import ITEM_COLUMNS, SCORE_COLUMNS, VARIANT_COLUMNS, StudyResults
from ablate.study.artifacts import HeldOut

SUBSETS = ("a", "b", "c")
MIXTURES = {
    "baseline": (1 / 3, 1 / 3, 1 / 3),
    "no-a": (0.0, 0.5, 0.5),
    "no-b": (0.5, 0.0, 0.5),
    "no-c": (0.5, 0.5, 0.0),
}
E = np.array([2.0, 2.0, 2.0 - 3 * 0.0714])  # removing c raises the floor by 0.0714
LOG_A = np.array([np.log(0.2394), np.log(0.2394), 3 * np.log(0.3) - 2 * np.log(0.2394)])  # and lowers A by 0.0606
ALPHA = 0.5
SIZES = (1e6, 4e6, 1.6e7, 6.4e7)
TARGET = (2.56e8, 1e9)  # 4× the largest rung
TOKENS = 1e9
SEQUENCES = 300


def law(shares: np.ndarray, size: float) -> np.ndarray:
    centre = np.exp(np.mean(np.log(SIZES)))
    return shares @ E + np.exp(shares @ LOG_A) * (size / centre) ** -ALPHA


def true_delta(name: str, size: float) -> float:
    shares = np.array([MIXTURES[name], MIXTURES["baseline"]])
    found = law(shares, size)
    return float(found[0] - found[1])


def rung(study: str, size: float, difficulty: np.ndarray, rng: np.random.Generator) -> StudyResults:
    """One study at `size`: every variant done, its held-out losses per sequence from the law."""
    variants, heldout = [], {}
    for name, shares in MIXTURES.items():
        variants.append({"variant": name, "ablation": name, "seed": 0, "state": "done"})
        nll = law(np.array([shares]), size)[0] + difficulty + rng.normal(0, 0.01, SEQUENCES)
        heldout[name] = HeldOut.model_validate({"domains": {"web": {
            "nll": list(nll), "loss": float(nll.mean()), "sequences": SEQUENCES, "tokens": SEQUENCES,
            "fingerprint": "web-text"}}})  # fmt: skip
    return StudyResults(
        name=study,
        source=Path(study),
        variants=pd.DataFrame(variants, columns=VARIANT_COLUMNS),
        scores=pd.DataFrame(columns=SCORE_COLUMNS),
        items=pd.DataFrame(columns=ITEM_COLUMNS),
        tasks=[],
        heldout=heldout,
    )


@pytest.fixture(scope="module")
def ladder_report():
    rng = np.random.default_rng(5)
    difficulty = rng.normal(0, 0.3, SEQUENCES)  # the same held-out text at every rung
    rungs = [Rung(rung_label(i), f"s{i + 1}", int(n), int(TOKENS)) for i, n in enumerate(SIZES)]
    studies = {r.study: rung(r.study, r.params, difficulty, rng) for r in rungs}
    report = build_report(ladder_results(studies, rungs), Settings(resamples=2000))
    names = list(MIXTURES)
    points = ScalePoints(
        [n for _ in SIZES for n in names],
        list(SUBSETS),
        np.array([MIXTURES[n] for _ in SIZES for n in names]),
        np.repeat(np.array(SIZES), len(names)),
        np.full(len(SIZES) * len(names), TOKENS),
        np.array([studies[r.study].heldout[n].domains["web"].loss for r in rungs for n in names]),
    )
    targets = fit_across({"loss:web": points}, models=None, resamples=100, seed=0, at=TARGET, baseline="baseline")
    return report.with_across(across(report, rungs, targets, TARGET)), targets


def test_the_planted_law_flips_c_and_a_between_the_small_and_large_rungs():
    """The law itself, before any measurement: no-c's Δ is −0.10 at the smallest rung and +0.05 at the
    largest, no-a's the other way round; at the target no-c's is +0.06, no-a's −0.03."""
    assert true_delta("no-c", SIZES[0]) < -0.05 and true_delta("no-c", SIZES[-1]) > 0.03
    assert true_delta("no-a", SIZES[0]) > 0.03 and true_delta("no-a", SIZES[-1]) < -0.01
    assert true_delta("no-c", TARGET[0]) > 0.05 and true_delta("no-a", TARGET[0]) < -0.02


def test_a_sign_that_changes_across_rungs_is_marked_and_the_target_sign_is_predicted(ladder_report):
    report, targets = ladder_report
    (fitted,) = targets
    assert fitted.chosen == "joint"
    rows = {r.ablation: r for r in report.across.rows if r.target == "loss:web"}
    assert set(rows) == {"no-a", "no-b", "no-c"}
    for name in ("no-a", "no-c"):
        row = rows[name]
        assert row.sign == "beyond noise", row  # one rung's interval above 0, another's below
        measured = [d.value for d in row.rungs]
        assert [np.sign(v) for v in measured] == [np.sign(true_delta(name, n)) for n in SIZES]
        assert row.predicted is not None and row.model == "joint", row
        assert np.sign(row.predicted.value) == np.sign(true_delta(name, TARGET[0]))
        assert row.predicted.low <= true_delta(name, TARGET[0]) <= row.predicted.high
        assert not row.turns  # the largest rung already has the target's sign
    text = to_markdown(report)
    assert "## Across scale" in text and "| no-c |" in text and " ± " in f" {text} "


def test_a_prediction_of_the_other_sign_than_the_largest_rung_is_marked(ladder_report):
    """Read over the two smaller rungs only, where no-c's Δ is still negative, against the positive Δ the
    whole ladder predicts at the target: every removal's prediction turns (b's mirrors a's), and says so."""
    report, targets = ladder_report
    found = across(report, report.across.rungs[:2], targets, TARGET)
    rows = {r.ablation: r for r in found.rows if r.target == "loss:web"}
    assert rows["no-c"].rungs[-1].value < 0 < rows["no-c"].predicted.value
    assert all(row.turns for row in rows.values())
    assert rows["no-c"].sign == ""  # both small rungs negative: no change across them


@pytest.mark.slow
def test_ablate_report_reads_a_real_ladder_across_scale(ladder, monkeypatch):
    """`ablate report --study ... --at` on the real four-size ladder (tests/ladder_study.py): every rung's Δ,
    each rung's decision accuracy against the largest, a predicted Δ at 3.5× the largest size, the files
    in the first study's folder; --at without a ladder is refused in one line."""
    import json
    import os
    import subprocess
    import sys

    from ablate.plan.study import load_plan

    monkeypatch.setenv("ABLATE_RESULTS", str(ladder.results))
    env = dict(os.environ)
    tokens = load_plan(ladder.studies[-1]).variants[0].tokens
    base = [sys.executable, "-m", "ablate.cli", "report", *(f"--study={s}" for s in ladder.studies)]
    run = subprocess.run([*base, "--at", f"params=1.2M,tokens={tokens}", "--bootstrap", "500", "--no-plot"],
                         cwd=ladder.root, capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    folder = ladder.results / ladder.studies[0]
    text = (folder / "ladder-report.md").read_text()
    assert "## Across scale" in text and "Decision accuracy @r1 vs @r4" in text, text
    saved = json.loads((folder / "ladder-report.json").read_text())["across"]
    assert [r["study"] for r in saved["rungs"]] == list(ladder.studies)
    losses = [r for r in saved["rows"] if r["target"].startswith("loss:")]
    assert len(losses) == 9 and all(len(r["rungs"]) == 4 for r in losses)
    own = [r for r in losses if r["target"] == f"loss:{r['ablation'].removeprefix('no-')}"]
    assert all(r["predicted"] is not None and r["predicted"]["value"] > 0 for r in own), own  # a subset's own loss
    refused = subprocess.run([*base[:4], f"--study={ladder.studies[0]}", "--at", "params=1B,tokens=1B"],
                             cwd=ladder.root, capture_output=True, text=True, env=env)  # fmt: skip
    assert refused.returncode == 2 and "runs at one scale; a target scale needs a ladder" in refused.stderr


def test_the_scale_figure_draws_every_target_with_its_prediction(ladder_report, tmp_path):
    from ablate.report import write_report

    report, _ = ladder_report
    written = write_report(report, tmp_path, prefix="ladder-")
    assert [p.name for p in written] == [
        "ladder-report.md", "ladder-report.csv", "ladder-report.json", "ladder-deltas.png", "ladder-scale.png",
    ]  # fmt: skip
    assert (tmp_path / "ladder-scale.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_a_ladder_in_one_plan_runs_every_rung_and_matches_the_studies_it_replaces(ladder, monkeypatch):
    """One recipe naming the four pretrained starts as `ladder.rungs` (no model section: each start brings
    its own; each continues at its own LR): plan crosses baseline and no-alpha with the rungs, run trains
    all eight, and report and fit read them across scale. Each rung's Δ equals the separate study's at
    that size: the same start, data, seed and LR make the same weights."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    monkeypatch.setenv("ABLATE_RESULTS", str(ladder.results))
    raws = [yaml.safe_load(path.read_text()) for path in ladder.recipes]
    raw = {k: v for k, v in raws[0].items() if k not in ("model", "checkpoints", "start")} | {"name": "one-plan"}
    raw["training"]["schedule"]["peak"] = "checkpoint"
    tokens = int(raw["training"]["total_tokens"] * raw["training"]["phase"])
    starts = [r["checkpoints"]["pretrained"] for r in reversed(raws)]  # any order: plan sorts them by size
    raw["ladder"] = {"rungs": starts, "target": {"params": 1.2e6, "tokens": tokens}}
    (ladder.root / "one-plan.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ablate.cli", *args], cwd=ladder.root, capture_output=True,
                              text=True, env=dict(os.environ), timeout=900)  # fmt: skip

    planned = cli("plan", "--recipe", "one-plan.yaml")
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "at every rung: @r1:" in planned.stdout and "Against one variant at the target" in planned.stdout
    ran = cli("run", "--study", "one-plan", "--parallel", "2")
    assert ran.returncode == 0, ran.stderr[-3000:]
    shown = cli("status", "--study", "one-plan")
    assert shown.returncode == 0 and "16 done" in shown.stdout, shown.stdout
    report = cli("report", "--study", "one-plan", "--bootstrap", "500", "--no-plot")
    assert report.returncode == 0 and "## Across scale" in report.stdout, report.stderr[-3000:]
    across = json.loads((ladder.results / "one-plan" / "report.json").read_text())["across"]
    assert [r["label"] for r in across["rungs"]] == ["r1", "r2", "r3", "r4"]
    for row in (r for r in across["rows"] if r["target"].startswith("loss:")):
        domain = row["target"].removeprefix("loss:")
        for study, measured in zip(ladder.studies, row["rungs"], strict=True):
            found = {
                v: json.loads((ladder.results / study / v / "heldout.json").read_text())["domains"][domain]["loss"]
                for v in ("baseline", row["ablation"])
            }
            delta = found[row["ablation"]] - found["baseline"]
            assert measured["value"] == pytest.approx(delta, abs=1e-6), (study, row["target"])
        assert row["model"] or row["note"]  # the recipe's ladder.target is predicted, or says why not
    fitted = cli("fit", "--study", "one-plan", "--target", "loss:alpha", "--bootstrap", "20")
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    result = json.loads((ladder.results / "one-plan" / "fit.json").read_text())
    assert result["across_scale"] and result["targets"][0]["sizes"] == [float(r["params"]) for r in across["rungs"]]
    predicted = (ladder.results / "one-plan" / "fit.predictions.csv").read_text()
    assert ",1200000.0," in predicted  # at the recipe's ladder.target, with no --at
    suggested = cli("suggest", "--study", "one-plan", "--objective", "loss:alpha", "--bootstrap", "20")
    assert suggested.returncode == 0 and "train it at N = 1.2e+06" in suggested.stdout, suggested.stderr[-3000:]
