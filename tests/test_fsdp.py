"""Sharded training (FSDP2) on two CPU processes with gloo, with the real Composer, streaming and lm-eval.

The tiny study's no-g variant is trained again with `training.fsdp` under Composer's launcher
(`--launcher torchrun --gpus 2`): from the study's one-file pretrained checkpoint (converted once to
the sharded form), checkpointing sharded folders, exporting a Hugging Face folder and evaluating it.
It is compared with the one-process, unsharded run of the same variant in the `tiny` fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import yaml
from tiny_study import BATCH, PHASE, SEQ_LEN, STUDY, TOTAL_TOKENS, ablate, recipe_dict, status

pytestmark = pytest.mark.slow

FSDP = {"state_dict_type": "sharded", "activation_checkpointing": True}
LOSS_TOLERANCE = 1e-5  # relative, per step (measured: at most 2.3e-7); FSDP2 differs only in summation order


def sharded_study(
    tiny, name: str, fsdp: dict | None = FSDP, start: str | None = None, optimizer: str | None = None
) -> SimpleNamespace:
    """The tiny recipe with `training.fsdp` (another start, optimizer), planned (--remove g) under a fresh root."""
    raw = recipe_dict(tiny.root)
    if optimizer is not None:
        raw["training"]["optimizer"]["name"] = optimizer
    if fsdp is not None:
        raw["training"]["fsdp"] = fsdp
    if start is not None:
        raw["start"] = start
    recipe = tiny.root / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
    results = tiny.root / name
    planned = ablate("plan", "--recipe", str(recipe), "--remove", "g", cwd=tiny.root, results=results, timeout=120)
    assert planned.returncode == 0, planned.stderr
    return SimpleNamespace(recipe=recipe, results=results, folder=results / STUDY / "no-g")


def run_sharded(tiny, results: Path, gpus: int = 2) -> list:
    tiny.patch.setenv("ABLATE_RESULTS", str(results))
    try:
        from ablate.run.runner import Launch, run_study

        return run_study(variants=["no-g"], how=Launch("torchrun" if gpus > 1 else "local", gpus=gpus))
    finally:
        tiny.patch.setenv("ABLATE_RESULTS", str(tiny.results))


def losses(folder: Path) -> list[tuple[int, float]]:
    return [(entry["tokens"], entry["loss"]) for entry in map(json.loads, (folder / "train_log.jsonl").open())]


def exported(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def sharded(tiny):
    """One uninterrupted sharded run of no-g on two processes."""
    study = sharded_study(tiny, "fsdp")
    study.outcomes = run_sharded(tiny, study.results)
    return study


def test_a_sharded_variant_trains_exports_and_evaluates_like_the_unsharded_one(tiny, sharded):
    import torch

    assert [(o.job, o.state) for o in sharded.outcomes] == [("start", "done"), ("no-g", "done")], sharded.outcomes
    done = status(sharded.results, "no-g")
    assert done["world_size"] == 2 and done["tokens_done"] == PHASE and done["resumed_at"] == 0
    checkpoint = sharded.folder / "checkpoints" / "latest-rank0.pt"
    assert {p.name for p in checkpoint.iterdir()} == {".metadata", "__0_0.distcp", "__1_0.distcp"}  # one shard each
    [converted] = (sharded.results / STUDY / "starts").iterdir()  # the one-file start, converted once
    assert (converted / ".metadata").is_file()

    unsharded = losses(tiny.results / STUDY / "no-g")
    curve = losses(sharded.folder)
    steps = list(range(PHASE + BATCH * SEQ_LEN, TOTAL_TOKENS + 1, BATCH * SEQ_LEN))
    assert [t for t, _ in curve] == [t for t, _ in unsharded] == steps
    for (tokens, loss), (_, reference) in zip(curve, unsharded, strict=True):
        assert loss == pytest.approx(reference, rel=LOSS_TOLERANCE), tokens

    reference = torch.load(
        tiny.results / STUDY / "no-g" / "checkpoints" / "latest-rank0.pt", weights_only=False, map_location="cpu"
    )["state"]["model"]
    weights = exported(sharded.folder)
    assert set(weights) <= {key.removeprefix("model.") for key in reference}
    for key, value in weights.items():
        assert torch.allclose(value, reference["model." + key], atol=1e-4), key
    assert done["scores"] == status(tiny.results, "no-g")["scores"]


def test_a_killed_sharded_run_resumes_bit_identical(tiny, sharded):
    import torch

    study = sharded_study(tiny, "fsdp-killed")
    checkpoints = study.folder / "checkpoints"
    runner = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "run", "--variant", "no-g", "--launcher", "torchrun", "--gpus", "2"],
        cwd=tiny.root, env={**os.environ, "ABLATE_RESULTS": str(study.results)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (checkpoints / "latest-rank0.pt").exists():  # Composer links a sharded checkpoint once it is whole
        assert runner.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.01)
    # The whole job dies at once, as on a failed node: Composer's launcher starts each rank in a
    # session of its own, so the runner's process group alone would leave the ranks running.
    job = psutil.Process(runner.pid)
    doomed = [job, *job.children(recursive=True)]
    for process in doomed:
        process.send_signal(signal.SIGKILL)
    runner.wait()
    psutil.wait_procs(doomed, timeout=60)  # gone, and with them the folder's lock
    assert status(study.results, "no-g")["state"] == "training" and not (study.folder / "model").exists()

    [outcome] = [o for o in run_sharded(tiny, study.results) if o.job == "no-g"]
    assert outcome.state == "done", outcome
    assert 0 < outcome.status.resumed_at < PHASE  # it resumed, it did not start over
    assert losses(study.folder) == losses(sharded.folder)
    resumed, uninterrupted = exported(study.folder), exported(sharded.folder)
    assert resumed.keys() == uninterrupted.keys()
    for key, value in resumed.items():
        assert torch.equal(value, uninterrupted[key]), key
    assert outcome.status.scores == status(sharded.results, "no-g")["scores"]


def test_a_sharded_checkpoint_from_a_plain_composer_run_continues_sharded_or_not(tiny):
    from ablate.run.launch import OFFLINE, free_master_port

    save = tiny.root / "composer-run"
    script = Path(__file__).parent / "fixtures" / "composer_sharded.py"
    command = [sys.executable, "-m", "composer.cli.launcher", "-n", "2", "--master_port", str(free_master_port()),
               str(script), str(tiny.root / "tokenizer"), str(save)]  # fmt: skip
    written = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE})
    assert written.returncode == 0, written.stdout[-3000:] + written.stderr[-3000:]
    start = save / "latest-rank0.pt"
    assert (start / ".metadata").is_file()

    # The recipe's decoupled_adamw cannot take over AdamW's state: plan reads the class off the sharded
    # checkpoint and refuses it, before the start's evaluation (#33).
    raw = recipe_dict(tiny.root) | {"start": str(start)}
    (tiny.root / "composer-optimizer.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    refused = ablate("plan", "--recipe", str(tiny.root / "composer-optimizer.yaml"), "--remove", "g", cwd=tiny.root,
                     results=tiny.root / "composer-optimizer")  # fmt: skip
    assert refused.returncode == 2 and "holds AdamW state" in refused.stderr, refused.stderr
    assert "set training.optimizer.name: adamw" in refused.stderr

    # Sharded on the two processes that wrote it, sharded on one (torch.distributed.checkpoint reshards
    # on load), and unsharded on one (converted once to a file).
    for name, fsdp, gpus in (
        ("composer-sharded", FSDP, 2),
        ("composer-resharded", FSDP, 1),
        ("composer-unsharded", None, 1),
    ):
        study = sharded_study(tiny, name, fsdp, start=str(start), optimizer="adamw")
        outcomes = run_sharded(tiny, study.results, gpus=gpus)
        assert [(o.job, o.state) for o in outcomes] == [("start", "done"), ("no-g", "done")], (name, outcomes)
        begun = status(study.results, "start")
        assert begun["checkpoint_tokens"] == 4 * BATCH * SEQ_LEN and "recipe's phase starts at" in begun["warning"]
        done = status(study.results, "no-g")
        assert done["tokens_done"] == PHASE and done["world_size"] == gpus
        log = losses(study.folder)
        assert log[0][0] == 4 * BATCH * SEQ_LEN + BATCH * SEQ_LEN  # it continued the checkpoint's count
        assert (study.folder / "model" / "model.safetensors").is_file()
    [converted] = (study.results / STUDY / "starts").iterdir()  # unsharded: the folder became one file
    assert converted.is_file() and converted.suffix == ".pt"


def test_the_exported_folder_scores_the_same_in_the_lm_eval_cli(tiny, sharded):
    import torch

    out = tiny.root / "exported" / "no-g"
    exported_cli = ablate("export", "no-g", str(out), cwd=tiny.root, results=sharded.results, timeout=120)
    assert exported_cli.returncode == 0, exported_cli.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    again = ablate("export", "no-g", str(out), cwd=tiny.root, results=sharded.results, timeout=120)
    assert again.returncode == 2 and "pass --force" in again.stderr and again.stderr.count("\n") == 1
    pending = ablate("export", "baseline", str(tiny.root / "b"), cwd=tiny.root, results=sharded.results, timeout=120)
    assert pending.returncode == 2 and "not trained yet" in pending.stderr and not (tiny.root / "b").exists()

    runs = tiny.root / "lm-eval-cli"
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={out},tokenizer={out},max_length={SEQ_LEN}",
        "--tasks", "tiny_alpha,tiny_gamma", "--include_path", str(tiny.root / "tasks"),
        "--output_path", str(runs), "--log_samples", "--device", "cpu", "--batch_size", "32",
    ]  # fmt: skip
    cli = subprocess.run(command, cwd=tiny.root, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    [results] = runs.glob("**/results_*.json")
    measured = {task: metrics["acc,none"] for task, metrics in json.loads(results.read_text())["results"].items()}
    assert measured == status(sharded.results, "no-g")["scores"]

    # A variant whose model folder is gone (trained before export existed) is exported from its
    # sharded checkpoint, read in one process: the same weights.
    copy = tiny.root / "fsdp-no-model"
    shutil.copytree(sharded.results, copy, symlinks=True)
    shutil.rmtree(copy / STUDY / "no-g" / "model")
    rebuilt = tiny.root / "exported" / "rebuilt"
    assert ablate("export", "no-g", str(rebuilt), cwd=tiny.root, results=copy, timeout=120).returncode == 0
    from safetensors.torch import load_file

    one, two = load_file(str(out / "model.safetensors")), load_file(str(rebuilt / "model.safetensors"))
    assert one.keys() == two.keys() and all(torch.equal(one[key], two[key]) for key in one)
