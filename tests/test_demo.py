"""`ablate demo --fast` end to end on the real stack: killed mid-run, resumed, planted effects recovered.

One demo run serves every assertion (it is the suite's most expensive test): the first attempt is
SIGKILLed once a variant has finished, the rerun must finish without redoing it, and the final
report must show the planted diagonal: each group's removal lowers its own task by at least 10
points with an interval below zero, more than it moves any other task and more than any other
removal lowers that task.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablate.demo.study import demo_recipe

pytestmark = pytest.mark.slow

GROUP_TASK = {"web": "demo_web", "math": "demo_math", "code": "demo_code", "knowledge": "demo_knowledge"}


def _demo(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "demo", "--fast", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )


def _done_variants(study: Path) -> dict[str, float]:
    """Variant → the time its status last changed, for variants that are done."""
    done = {}
    for status in study.glob("*/status.json"):
        payload = json.loads(status.read_text())
        if payload.get("state") == "done" and status.parent.name not in ("pretrain", "start"):
            done[status.parent.name] = payload["updated"]
    return done


def test_demo_is_resumable_and_recovers_the_planted_diagonal(tmp_path):
    study = tmp_path / "results" / demo_recipe(fast=True).name

    first = _demo(tmp_path)
    deadline = time.time() + 900
    while not _done_variants(study) and first.poll() is None and time.time() < deadline:
        time.sleep(1)
    assert first.poll() is None, f"demo ended before it could be interrupted:\n{first.stdout.read()}"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finished_before = _done_variants(study)
    assert finished_before, "no variant finished before the deadline"

    second = _demo(tmp_path)
    output, _ = second.communicate(timeout=900)
    assert second.returncode == 0, output[-3000:]
    after = _done_variants(study)
    for name, stamp in finished_before.items():
        assert after[name] == stamp, f"{name} was redone after the interruption"
    for name in ("baseline", *(f"no-{g}" for g in GROUP_TASK)):
        assert name in after

    rows = list(csv.DictReader((study / "report.csv").open()))
    delta = {(r["variant"], r["task"]): r for r in rows if r["delta_pp"]}
    for group, task in GROUP_TASK.items():
        own = delta[(f"no-{group}", task)]
        assert float(own["delta_pp"]) <= -10 and float(own["ci_high_pp"]) < 0, (group, own)
        assert own["significant"] == "true", (group, own)
        others_in_row = [float(delta[(f"no-{group}", t)]["delta_pp"]) for t in GROUP_TASK.values() if t != task]
        others_in_column = [float(delta[(f"no-{g}", task)]["delta_pp"]) for g in GROUP_TASK if g != group]
        assert float(own["delta_pp"]) < min(others_in_row + others_in_column), (group, own)
    assert (study / "deltas.png").stat().st_size > 10_000
    assert "full run" in (study / "report.md").read_text()  # the study cost is stated
