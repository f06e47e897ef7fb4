"""Training mechanics: LR schedules, starts from Composer checkpoints and model folders, checks."""

from __future__ import annotations

import json
import math
import os

import pytest

from ablate.errors import AblateError
from ablate.run.worker import token_mismatch
from ablate.recipe import load_recipe
from tiny_study import BATCH, FINAL_RATIO, LR, SEQ_LEN, TOTAL_TOKENS, write_tiny_study

PHASE = TOTAL_TOKENS // 2


# ---- light: no torch -----------------------------------------------------------------------


def test_token_mismatch_allows_one_batch_of_rounding(tmp_path):
    recipe = load_recipe(write_recipe_only(tmp_path))
    start, slack = recipe.training.start_tokens, BATCH * SEQ_LEN
    assert token_mismatch(start, recipe) is None
    assert token_mismatch(start + slack - 1, recipe) is None
    warning = token_mismatch(start + slack, recipe)
    expected = f"checkpoint has seen {start + slack:,} tokens but the recipe's phase starts at {start:,}"
    assert warning.startswith(expected)


def write_recipe_only(root):
    import yaml

    from tiny_study import recipe_dict

    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(root)))
    return path


def test_a_job_resumes_only_checkpoints_of_the_form_it_trains_in(tmp_path):
    import yaml

    from ablate.run.start import resume_problem
    from tiny_study import recipe_dict

    raw = recipe_dict(tmp_path)
    unsharded = load_recipe(write_recipe_only(tmp_path))
    raw["training"]["fsdp"] = {"state_dict_type": "sharded"}
    (tmp_path / "sharded.yaml").write_text(yaml.safe_dump(raw))
    sharded = load_recipe(tmp_path / "sharded.yaml")
    one_file, folder = tmp_path / "ep0-ba4-rank0.pt", tmp_path / "ep0-ba4"
    one_file.write_bytes(b"")
    folder.mkdir()
    (folder / ".metadata").write_bytes(b"")
    assert resume_problem(one_file, unsharded) is None and resume_problem(folder, sharded) is None
    assert resume_problem(tmp_path / "none-yet", sharded) is None
    assert "are full, but the recipe now has training.fsdp.state_dict_type: sharded" in resume_problem(one_file, sharded)
    assert "no training.fsdp; set training.fsdp.state_dict_type: sharded to resume" in resume_problem(folder, unsharded)


def test_the_vllm_backend_is_one_line_where_vllm_is_not_installed():
    import importlib.util

    from ablate.recipe import Eval
    from ablate.run.evaluate import require_backend

    if importlib.util.find_spec("vllm"):
        pytest.skip("vLLM is installed here")
    with pytest.raises(AblateError, match=r"^eval\.backend: vllm is not installed here; .*or set eval\.backend: hf$"):
        require_backend(Eval(tasks=["t"], backend="vllm"))
    require_backend(Eval(tasks=["t"]))  # hf comes with ablate


# ---- heavy: torch and Composer -------------------------------------------------------------


@pytest.mark.slow
def test_schedules_by_hand():
    from ablate.run.train import Schedule

    linear = Schedule(peak=1.0, start=100, length=200, shape="linear", final_ratio=0.1)
    assert [linear(t) for t in (0, 100, 200, 300, 400)] == pytest.approx([1.0, 1.0, 0.55, 0.1, 0.1])
    cosine = Schedule(peak=2.0, start=0, length=100, shape="cosine", final_ratio=0.0)
    assert [cosine(t) for t in (0, 50, 100)] == pytest.approx([2.0, 1.0, 0.0])
    assert cosine(25) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert Schedule(1.0, 0, 100, "constant", 0.5)(80) == 1.0
    warmup = Schedule(1.0, 0, 100, "warmup")
    assert [warmup(t) for t in (0, 50, 100, 5000)] == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert Schedule(1.0, 0, 0, "warmup")(0) == 1.0  # no warm-up: the peak from the first step
    warmed = Schedule(1.0, 100, 200, "linear", 0.0, warmup=50)  # rise over [100, 150], decay over [150, 300]
    assert [warmed(t) for t in (100, 125, 150, 225, 300, 400)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """The tiny study's data and a Composer checkpoint trained on it for the pre-phase tokens."""
    from ablate.plan.build import normalize
    from ablate.run.start import new_model
    from ablate.run.train import fit, pretrain_schedule

    root = tmp_path_factory.mktemp("train")
    recipe = load_recipe(write_tiny_study(root))
    folder = root / "pretrain"
    start = new_model(recipe)
    fit(
        start, recipe, mixture=normalize(recipe.mixes.base), seed=1, folder=folder, run_name="t",
        schedule=pretrain_schedule(recipe), end_tokens=recipe.training.start_tokens,
    )  # fmt: skip
    return root, recipe, folder / "checkpoints" / "latest-rank0.pt", start.model


@pytest.mark.slow
def test_composer_checkpoint_rebuilds_model_and_tokenizer_alone(pretrained):
    import torch

    from ablate.run.start import load_start, load_tokenizer

    root, recipe, checkpoint, trained = pretrained
    start = load_start(str(checkpoint))
    assert start.tokens == PHASE and start.load_path == str(checkpoint)
    bare = load_start(str(checkpoint), weights=False)
    expected = load_tokenizer(recipe.tokenizer)("abc")["input_ids"]
    assert start.tokenizer("abc")["input_ids"] == bare.tokenizer("abc")["input_ids"] == expected
    assert start.model.config.hidden_size == recipe.model.config["hidden_size"]
    for name, value in trained.state_dict().items():
        assert torch.equal(value, start.model.state_dict()[name]), name


@pytest.mark.slow
def test_model_folder_start_gets_a_fresh_optimizer_and_the_whole_schedule(pretrained, tmp_path):
    from ablate.run.start import load_start
    from ablate.run.train import fit, phase_schedule

    root, recipe, checkpoint, _ = pretrained
    composer_start = load_start(str(checkpoint))
    composer_start.model.save_pretrained(tmp_path / "hf")
    composer_start.tokenizer.save_pretrained(tmp_path / "hf")
    start = load_start(str(tmp_path / "hf"))
    assert start.load_path is None and start.tokens == 0
    result = fit(
        start, recipe, mixture={"gamma": 1.0}, seed=0, folder=tmp_path / "run", run_name="hf",
        schedule=phase_schedule(recipe, start), end_tokens=PHASE,
    )  # fmt: skip
    assert result.began == 0 and result.tokens == PHASE and result.samples_per_subset == {"gamma": PHASE // SEQ_LEN}
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").open()]
    assert log[0]["tokens"] == BATCH * SEQ_LEN and log[-1]["tokens"] == PHASE
    assert log[0]["lr"] == pytest.approx(LR * (1 - (1 - FINAL_RATIO) * BATCH * SEQ_LEN / PHASE))
    assert log[-1]["lr"] == pytest.approx(LR * FINAL_RATIO)


@pytest.mark.slow
def test_a_phase_starts_at_the_checkpoints_lr_or_warms_a_fresh_optimizer_up(pretrained, tmp_path):
    from ablate.recipe import parse_recipe
    from ablate.run.start import load_start
    from ablate.run.train import fit, phase_schedule

    _, recipe, checkpoint, _ = pretrained
    steps, step = 4, BATCH * SEQ_LEN
    raw = recipe.model_dump(mode="json")
    raw["training"]["optimizer"]["lr"] = LR / 3  # not where the checkpoint stands: its warm-up ended at LR
    raw["training"]["schedule"]["peak"] = "checkpoint"
    continued = parse_recipe(raw)
    start = load_start(str(checkpoint), weights=False)
    assert start.optimizer == "DecoupledAdamW" and start.lr == pytest.approx(LR)
    fit(
        start, continued, mixture={"gamma": 1.0}, seed=0, folder=tmp_path / "continued", run_name="c",
        schedule=phase_schedule(continued, start), end_tokens=PHASE + steps * step,
    )  # fmt: skip
    log = [json.loads(line)["lr"] for line in (tmp_path / "continued" / "train_log.jsonl").open()]
    assert log == pytest.approx([LR * (1 - (1 - FINAL_RATIO) * k * step / PHASE) for k in range(1, steps + 1)])

    composer_start = load_start(str(checkpoint))
    composer_start.model.save_pretrained(tmp_path / "hf")
    composer_start.tokenizer.save_pretrained(tmp_path / "hf")
    fresh = load_start(str(tmp_path / "hf"))
    with pytest.raises(AblateError, match="holds no optimizer LR; start from a Composer checkpoint or set peak: recipe"):
        phase_schedule(continued, fresh)
    raw["training"]["schedule"] |= {"peak": "recipe", "warmup_tokens": 2 * step}
    warmed = parse_recipe(raw)
    fit(
        fresh, warmed, mixture={"gamma": 1.0}, seed=0, folder=tmp_path / "warmed", run_name="w",
        schedule=phase_schedule(warmed, fresh), end_tokens=steps * step,
    )  # fmt: skip
    log = [json.loads(line)["lr"] for line in (tmp_path / "warmed" / "train_log.jsonl").open()]
    decay = PHASE - 2 * step
    expected = [LR / 6, LR / 3, *(LR / 3 * (1 - (1 - FINAL_RATIO) * k * step / decay) for k in (1, 2))]
    assert log == pytest.approx(expected)  # up to optimizer.lr over two steps, then down


@pytest.mark.slow
def test_unusable_starts_fail_with_one_line(pretrained, tmp_path):
    import torch

    from ablate.run.start import load_start

    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"state": {"model": {}}}, tmp_path / "bare.pt")
    cases = {
        str(tmp_path / "missing.pt"): "missing.pt: no such file",
        str(tmp_path / "empty"): "a folder without config.json",
        str(tmp_path / "junk.pt"): "junk.pt: cannot load it",
        str(tmp_path / "bare.pt"): "no 'integrations' entry; it needs the Hugging Face metadata",
    }
    for path, expected in cases.items():
        with pytest.raises(AblateError, match=expected) as caught:
            load_start(path)
        assert "\n" not in str(caught.value)


def test_a_stuck_prefix_lock_holder_is_waited_for_only_so_long(tmp_path):
    import fcntl
    import time

    from ablate.run.stream import _flock_within

    path = tmp_path / "prefix.lock"
    with path.open("a") as holder, path.open("a") as waiter:
        assert _flock_within(holder, 0)
        started = time.monotonic()
        assert not _flock_within(waiter, 0.3)  # a stuck holder: give up, build without the lock
        assert 0.3 <= time.monotonic() - started < 5
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert _flock_within(waiter, 0.3)
