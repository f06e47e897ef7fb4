"""A newcomer's own study (#26): `ablate init` from raw text, then every stage on what it wrote; and
the report's heatmap saying what its marks mean, with the held-out loss beside the tasks."""

import json
import shutil
from pathlib import Path

import numpy as np
from conftest import REPO
from fixtures.report_study import heldout_domain

FIXTURES = REPO / "tests" / "fixtures"


# ---- the heatmap -----------------------------------------------------------------------------


def _fixed_with_heldout(root: Path) -> None:
    """The fixed report study under root/results, each done variant measured on two held-out domains:
    no-math's loss on `web` 0.3 nats higher than the baseline's, `code` alike for all."""
    shutil.copytree(FIXTURES / "results", root / "results")
    study = root / "results" / "fixed"
    rng = np.random.default_rng(0)
    for folder in sorted(study.iterdir()):
        status = folder / "status.json"
        if status.exists() and json.loads(status.read_text())["state"] == "done" and folder.name != "start":
            shift = 0.3 if folder.name == "no-math" else 0.0
            domains = {"web": rng.normal(2 + shift, 0.02, 40) * 63, "code": rng.normal(2, 0.05, 40) * 63}
            (folder / "heldout.json").write_text(
                json.dumps({"domains": {d: heldout_domain(nll, 63, 126) for d, nll in domains.items()}})
            )


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]  # the heatmaps, not their colour bars


def test_heatmap_legend_says_the_stars_are_adjusted_and_held_out_loss_is_plotted(in_tmp, monkeypatch):
    import matplotlib.pyplot as plt

    from ablate.report import Settings, build_report
    from ablate.report.heatmap import draw_deltas
    from ablate.report.load import load_study

    _fixed_with_heldout(in_tmp)
    monkeypatch.setenv("ABLATE_RESULTS", "results")
    report = build_report(load_study("fixed"), Settings(resamples=2000))
    tasks, losses = _panels(draw_deltas(report))
    assert "* and outline: significant after Benjamini–Hochberg adjustment at 0.05" in tasks.get_title("left")
    starred = {t.get_text() for t in tasks.texts if t.get_text().endswith("*")}
    flagged = report.rows[report.rows.significant_adjusted.eq(True)]
    assert len(starred) == len(flagged) > 0

    assert [t.get_text() for t in losses.get_xticklabels()] == ["web", "code"]
    assert "Δ held-out loss" in losses.get_title("left") and "unadjusted" in losses.get_title("left")
    cells = {(c.ablation, c.domain): c for c in report.heldout if c.delta is not None}
    written = {t.get_text() for t in losses.texts}
    assert {f"{c.delta:+.4f}" for c in cells.values()} <= written
    web = cells["no-math", "web"]
    assert 0.25 < web.delta < 0.35 and web.low > 0  # the planted 0.3 nats, outlined
    outlined = sum(c.low > 0 or c.high < 0 for c in cells.values())
    assert len(losses.patches) == outlined >= 1
    assert "failed" in written  # no-code failed: its state, as in the task panel

    unadjusted = build_report(load_study("fixed"), Settings(resamples=2000, adjust="none"))
    (tasks_only, _) = _panels(draw_deltas(unadjusted))
    assert "* and outline: p < 0.05, unadjusted" in tasks_only.get_title("left")
    plt.close("all")


def test_heatmap_without_held_out_cells_has_one_panel(in_tmp, monkeypatch):
    from ablate.report import Settings, build_report
    from ablate.report.heatmap import draw_deltas
    from ablate.report.load import load_study

    shutil.copytree(FIXTURES / "results", in_tmp / "results")
    monkeypatch.setenv("ABLATE_RESULTS", "results")
    assert len(_panels(draw_deltas(build_report(load_study("fixed"), Settings(resamples=500))))) == 1
