"""Experiment trackers from the recipe: each variant one run with its mixture and hashes as parameters.

MLflow is real, with its local file store (llm-foundry already brings mlflow); W&B runs in its offline
mode, which writes the run to disk instead of sending it.
"""

from __future__ import annotations

import json

import pytest
import yaml
from tiny_study import STUDY, ablate, status


@pytest.mark.slow
def test_a_variant_is_one_mlflow_run_with_its_mixture_and_hash(tiny):
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed; `make venv` installs it with llm-foundry")
    store = tiny.root / "mlruns"
    raw = yaml.safe_load(tiny.recipe.read_text())
    raw["loggers"] = {"mlflow": {"tracking_uri": store.as_uri(), "experiment": "tiny-study"}, "wandb": {}}
    recipe = tiny.root / "tracked.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    results = tiny.root / "tracked"
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tiny.root), "WANDB_SILENT": "true"}
    assert ablate("plan", "--recipe", str(recipe), "--remove", "g", cwd=tiny.root, results=results).returncode == 0
    for _ in range(2):  # the second run has nothing to do: still one tracked run
        done = ablate("run", "--variant", "no-g", cwd=tiny.root, results=results, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
    variant = json.loads((results / STUDY / "plan.json").read_text())["variants"]
    no_g = next(v for v in variant if v["name"] == "no-g")
    assert status(results, "no-g")["state"] == "done"
    # Trained like the untracked study: a tracker changes no result.
    assert status(results, "no-g")["scores"] == status(tiny.results, "no-g")["scores"]

    client = mlflow.MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("tiny-study")
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_name for run in runs] == [f"tiny-no-g-{no_g['train_hash'][:8]}"]
    params = runs[0].data.params
    assert params["hash"] == no_g["hash"] and params["removed"] == "g" and params["job"] == "no-g"
    assert {key: float(value) for key, value in params.items() if key.startswith("mixture/")} == {
        f"mixture/{subset}": share for subset, share in no_g["mixture"].items()
    }
    losses = client.get_metric_history(runs[0].info.run_id, "loss/train/total")
    assert len(losses) >= 10 and losses[-1].value < losses[0].value
    offline = list((tiny.root / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, offline
