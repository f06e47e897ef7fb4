"""Training mechanics: LR schedules, starts from Composer checkpoints and model folders, checks."""

from __future__ import annotations

import json
import math
import os

import pytest
from tiny_study import BATCH, FINAL_RATIO, LR, SEQ_LEN, TOTAL_TOKENS, write_tiny_study

from ablate.errors import AblateError
from ablate.recipe import load_recipe
from ablate.run.worker import token_mismatch

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
    from tiny_study import recipe_dict

    from ablate.run.start import resume_problem

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


def test_shared_memory_a_killed_dataset_left_is_freed_and_a_live_ones_kept(tmp_path):
    # streaming's files of one dataset share a prefix; a live process maps at least one of them.
    import subprocess
    import sys

    from ablate.run.stream import free_dead_shared_memory

    names = ["000001_locals", "000001_barrier", "000002_locals", "000002_next_epoch", "000003", "other.lock"]
    for name in names:
        (tmp_path / name).write_bytes(bytes(4096))
    holds = "import mmap, sys, time; f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), 0); print(1, flush=True)"
    live = subprocess.Popen([sys.executable, "-c", holds + "; time.sleep(60)", str(tmp_path / "000001_locals")],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert live.stdout and live.stdout.readline().strip() == "1"
        assert sorted(free_dead_shared_memory(tmp_path)) == ["000002_locals", "000002_next_epoch"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["000001_barrier", "000001_locals", "000003", "other.lock"]
    finally:
        live.kill()
        live.wait()
    assert sorted(free_dead_shared_memory(tmp_path)) == ["000001_barrier", "000001_locals"]  # its process ended


# ---- optimizers as users bring them ---------------------------------------------------------


def test_optimizer_settings_beyond_lr_are_hashed_only_when_set(tmp_path):
    import yaml
    from tiny_study import recipe_dict

    from ablate.plan.identity import train_hash
    from ablate.recipe import parse_recipe

    raw = recipe_dict(tmp_path)
    plain = train_hash(parse_recipe(raw), {"alpha": 1.0}, seed=0, start="s")
    raw["training"]["optimizer"] |= {"eps": None, "args": {}, "state": "checkpoint"}  # the defaults, spelled out
    assert train_hash(parse_recipe(raw), {"alpha": 1.0}, seed=0, start="s") == plain
    for change in ({"eps": 1e-6}, {"args": {"amsgrad": True}}, {"state": "fresh"}, {"name": "decoupled_lionw"}):
        changed = yaml.safe_load(yaml.safe_dump(raw))
        changed["training"]["optimizer"] |= change
        assert train_hash(parse_recipe(changed), {"alpha": 1.0}, seed=0, start="s") != plain, change


@pytest.mark.parametrize(
    ("optimizer", "says"),
    [
        ({"name": "lion"}, r"training\.optimizer\.name: 'lion' is not an optimizer ablate builds; one of "),
        ({"args": {"lr": 1}}, r"training\.optimizer\.args: lr: set as training\.optimizer's own fields"),
        ({"state": "warm"}, r"training\.optimizer\.state: Input should be 'checkpoint' or 'fresh'"),
    ],
)
def test_an_optimizer_the_recipe_cannot_build_is_one_line_at_load(tmp_path, optimizer, says):
    from tiny_study import recipe_dict

    from ablate.errors import RecipeError
    from ablate.recipe import parse_recipe

    raw = recipe_dict(tmp_path)
    raw["training"]["optimizer"] |= optimizer
    with pytest.raises(RecipeError, match=says) as caught:
        parse_recipe(raw)
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_every_optimizer_composer_and_llm_foundry_ship_is_built_from_its_recipe_name():
    import torch
    from composer import optim as composer_optim

    from ablate.recipe import BUILT_OPTIMIZERS, FOUNDRY_OPTIMIZERS, Optimizer
    from ablate.run.train import _optimizer, recipe_name

    model = torch.nn.Linear(3, 2)
    shipped = {composer_optim.DecoupledAdamW, composer_optim.DecoupledSGDW}
    pytest.importorskip("llmfoundry", reason="llm-foundry is not installed; `make venv` installs the foundry extra")
    import llmfoundry.optim  # noqa: F401
    from llmfoundry.registry import optimizers

    registry = optimizers.get_all()
    assert set(FOUNDRY_OPTIMIZERS) | {"decoupled_adamw"} == set(registry)  # the recipe's list is the registry's
    for name in BUILT_OPTIMIZERS + FOUNDRY_OPTIMIZERS:
        built = _optimizer(model, Optimizer(name=name, lr=2e-3))
        assert recipe_name(type(built).__qualname__) == name
        assert built.param_groups[0]["lr"] == (0.0 if name == "no_op" else 2e-3)  # NoOp has no LR of its own
        shipped.discard(type(built))
        assert name not in registry or type(built) is registry[name]  # built as llm-foundry's registry builds it
    assert not shipped  # every optimizer class Composer ships
    sgdw = _optimizer(model, Optimizer(name="decoupled_sgdw", args={"momentum": 0.9, "nesterov": True}))
    assert sgdw.param_groups[0]["momentum"] == 0.9 and sgdw.param_groups[0]["nesterov"]
    for spec, says in (
        (Optimizer(name="sgd", eps=1e-8), r"^training\.optimizer\.eps: SGD takes no eps; it takes dampening, "),
        (Optimizer(name="adamw", args={"foo": 1}), r"^training\.optimizer\.args\.foo: AdamW takes no foo; "),
        (Optimizer(name="decoupled_lionw", betas=(2.0, 0.9)), r"^training\.optimizer: DecoupledLionW refused its"),
    ):
        with pytest.raises(AblateError, match=says):
            _optimizer(model, spec)


@pytest.fixture(scope="module")
def bare_composer(tmp_path_factory):
    """The tiny study's data, and a checkpoint from a bare Composer Trainer (its default DecoupledSGDW)
    at the phase's start: 40 batches, written by tests/fixtures/composer_bare.py in its own process."""
    import subprocess
    import sys
    from pathlib import Path

    root = tmp_path_factory.mktemp("bare")
    recipe_path = write_tiny_study(root)
    script = Path(__file__).parent / "fixtures" / "composer_bare.py"
    batches = PHASE // (BATCH * SEQ_LEN)
    command = [sys.executable, str(script), str(root / "tokenizer"), str(root / "bare-run"), str(batches)]
    written = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr[-3000:]
    return root, load_recipe(recipe_path), root / "bare-run" / "latest-rank0.pt"


def _saved_optimizer(checkpoint) -> tuple[str, dict]:
    import torch

    [(name, saved)] = torch.load(checkpoint, map_location="cpu", weights_only=False)["state"]["optimizers"].items()
    return name, saved


@pytest.mark.slow
def test_a_bare_composer_checkpoint_continues_its_default_optimizer_to_done(bare_composer):
    import yaml
    from tiny_study import ablate, recipe_dict, status

    from ablate.run.start import load_start
    from ablate.run.train import fit, phase_schedule

    root, recipe, checkpoint = bare_composer
    start = load_start(str(checkpoint), weights=False)
    assert (start.optimizer, start.lr, start.tokens) == ("DecoupledSGDW", pytest.approx(0.1), PHASE)
    with pytest.raises(AblateError) as refused:  # the tiny recipe's decoupled_adamw cannot take SGDW's state
        fit(start, recipe, mixture={"gamma": 1.0}, seed=0, folder=root / "refused", run_name="r",
            schedule=phase_schedule(recipe, start), end_tokens=PHASE + BATCH * SEQ_LEN)  # fmt: skip
    assert str(refused.value) == (
        f"start checkpoint {checkpoint}: holds DecoupledSGDW state, but training.optimizer.name decoupled_adamw "
        "builds DecoupledAdamW; set training.optimizer.name: decoupled_sgdw to continue that state, or set "
        "training.optimizer.state: fresh to keep the weights and start the optimizer anew"
    )
    raw = recipe_dict(root)
    # momentum is the recipe's wish; continuing the state, the checkpoint's parameter groups (momentum 0) win
    raw["training"]["optimizer"] = {"name": "decoupled_sgdw", "lr": 0.1, "args": {"momentum": 0.9}}
    raw |= {"checkpoints": {"bare": str(checkpoint)}, "start": "bare"}
    (root / "bare.yaml").write_text(yaml.safe_dump(raw))
    results = root / "results"
    planned = ablate("plan", "--recipe", str(root / "bare.yaml"), "--remove", "g", cwd=root, results=results)
    assert planned.returncode == 0, planned.stderr
    run = ablate("run", "--variant", "no-g", cwd=root, results=results, timeout=600)
    assert run.returncode == 0, run.stderr
    variant = status(results, "no-g")
    assert variant["state"] == "done" and variant["tokens_done"] == variant["tokens"] == PHASE, variant
    assert set(variant["scores"]) == {"tiny_alpha", "tiny_gamma"}
    name, saved = _saved_optimizer(results / "tiny" / "no-g" / "checkpoints" / "latest-rank0.pt")
    assert name == "DecoupledSGDW" and saved["param_groups"][0]["momentum"] == 0


@pytest.mark.slow
def test_a_fresh_optimizer_state_keeps_the_weights_and_warms_up(bare_composer):
    import torch

    from ablate.recipe import parse_recipe
    from ablate.run.start import load_start
    from ablate.run.train import fit, phase_schedule

    root, recipe, checkpoint = bare_composer
    steps, step = 4, BATCH * SEQ_LEN
    raw = recipe.model_dump(mode="json")
    raw["training"]["optimizer"]["state"] = "fresh"  # DecoupledAdamW over SGDW's weights: switched at the anneal
    raw["training"]["schedule"] |= {"warmup_tokens": 2 * step}
    fresh = parse_recipe(raw)
    start = load_start(str(checkpoint), weights=False)
    result = fit(
        start, fresh, mixture={"gamma": 1.0}, seed=0, folder=root / "fresh", run_name="f",
        schedule=phase_schedule(fresh, start), end_tokens=PHASE + steps * step,
    )  # fmt: skip
    assert result.began == PHASE and result.tokens == steps * step  # the checkpoint's timestamp carried over
    log = [json.loads(line)["lr"] for line in (root / "fresh" / "train_log.jsonl").open()]
    assert log[:2] == pytest.approx([LR / 2, LR])  # the phase's warm-up to optimizer.lr, not SGDW's 0.1
    name, saved = _saved_optimizer(root / "fresh" / "checkpoints" / "latest-rank0.pt")
    assert name == "DecoupledAdamW" and {int(s["step"]) for s in saved["state"].values()} == {steps}  # from 0
    before = load_start(str(checkpoint)).model.state_dict()
    after = load_start(str(root / "fresh" / "checkpoints" / "latest-rank0.pt")).model.state_dict()
    moved = max(float((after[key] - value).abs().max()) for key, value in before.items())
    assert 0 < moved <= steps * LR * 2  # the bare run's weights, moved by four Adam steps (each ≲ lr)

    raw["training"]["schedule"]["peak"] = "checkpoint"
    with pytest.raises(AblateError, match=r"^training\.schedule\.peak: checkpoint takes the LR of the optimizer state"):
        phase_schedule(parse_recipe(raw), start)
