"""A start checkpoint brings its own architecture and optimizer (#33): `ablate plan` reads them off the
checkpoint without torch, so the recipe's `model` section and optimizer name may be left out, and what the
recipe does say is checked against the checkpoint before anything is written.

The checkpoints are real: a bare Composer Trainer's (tests/fixtures/composer_bare.py, its default
DecoupledSGDW), a sharded one of Composer's FSDP2 (tests/fixtures/composer_sharded.py), llm-foundry's MPT
from its own `train_from_yaml`, and a `save_pretrained` folder with safetensors weights.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_study import BATCH, SEQ_LEN, TOTAL_TOKENS, ablate, recipe_dict, write_tiny_study

from ablate.plan.model import count_params

FIXTURES = Path(__file__).parent / "fixtures"
HEAVY = ("torch", "composer", "streaming", "lm_eval", "transformers")
TINY_LLAMA = recipe_dict(Path("."))["model"]["config"]  # the shape of every Llama checkpoint here
PHASE_TOKENS = TOTAL_TOKENS // 2  # the tiny recipe's phase: 0.5


def planned(root: Path, name: str, edit, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`ablate plan` (a subprocess) of the tiny recipe as `edit` changes it; its results folder."""
    raw = recipe_dict(root)
    edit(raw)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    results = root / f"results-{name}"
    return ablate("plan", "--recipe", str(path), "--remove", "g", *extra, cwd=root, results=results), results


def starting_at(checkpoint: Path, *, model: bool = False, optimizer: bool = False):
    """An edit: start from `checkpoint`, keeping the recipe's model section and optimizer name only if asked."""

    def edit(raw: dict) -> None:
        raw |= {"checkpoints": {"ck": str(checkpoint)}, "start": "ck"}
        if not model:
            del raw["model"]
        if not optimizer:
            del raw["training"]["optimizer"]["name"]

    return edit


def heavy_imports_of_plan(root: Path, name: str) -> list[str]:
    """The heavy libraries `ablate plan` (of the recipe `planned` wrote as `name`) imported, planning again."""
    probe = (
        "import sys, runpy; sys.argv = ['ablate'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('ablate.cli', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "plan", "--recipe", str(root / f"{name}.yaml"), "--remove", "g", "--force"],
        cwd=root, capture_output=True, text=True, env={**os.environ, "ABLATE_RESULTS": str(root / f"results-{name}")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


def plan_json(results: Path) -> dict:
    return json.loads((results / "tiny" / "plan.json").read_text())


def assert_refused(done: subprocess.CompletedProcess, results: Path, *expected: str) -> None:
    """One line, exit 2, no traceback, nothing written."""
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert not results.exists()


# ---- fast: the reader itself, and a save_pretrained folder ------------------------------------


def test_a_checkpoints_pickle_runs_none_of_its_own_code(tmp_path):
    from ablate.plan.pickled import Opaque, loads

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    loaded = loads(pickle.dumps({"state": Evil()}, protocol=2))
    assert isinstance(loaded["state"], Opaque) and loaded["state"].origin in ("posix.system", "os.system")
    assert not (tmp_path / "ran").exists()


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("start-model")
    write_tiny_study(root)
    return root


def test_plan_without_model_counts_a_save_pretrained_folders_weights_without_torch(tiny_root):
    import numpy as np
    from safetensors.numpy import save_file

    folder = tiny_root / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY_LLAMA, "architectures": ["LlamaForCausalLM"]}))
    h, inter, vocab = 32, 64, 128
    weights = {"model.embed_tokens.weight": np.zeros((vocab, h), np.float32), "model.norm.weight": np.zeros(h)}
    for layer in range(2):  # as save_pretrained writes a tied Llama: no lm_head
        for name, shape in (("self_attn.q_proj", (h, h)), ("self_attn.k_proj", (h, h)), ("self_attn.v_proj", (h, h)),
                            ("self_attn.o_proj", (h, h)), ("mlp.gate_proj", (inter, h)), ("mlp.up_proj", (inter, h)),
                            ("mlp.down_proj", (h, inter)), ("input_layernorm", (h,)),
                            ("post_attention_layernorm", (h,))):  # fmt: skip
            weights[f"model.layers.{layer}.{name}.weight"] = np.zeros(shape, np.float32)
    save_file(weights, str(folder / "model.safetensors"))
    params = sum(w.size for w in weights.values())
    assert params == count_params(TINY_LLAMA)

    done, results = planned(tiny_root, "folder", starting_at(folder, optimizer=True))
    assert done.returncode == 0, done.stderr
    assert heavy_imports_of_plan(tiny_root, "folder") == []
    plan = plan_json(results)
    assert plan["params"] == params and plan["recipe"]["model"] == {"config": {}, "params": None}
    assert {v["flops"] for v in plan["variants"]} == {6.0 * params * PHASE_TOKENS}

    # A field the checkpoint's config contradicts is refused at plan, in one line, nothing written.
    done, results = planned(tiny_root, "folder-heads", lambda raw: (
        starting_at(folder, model=True, optimizer=True)(raw), raw["model"]["config"].update(num_attention_heads=4)
    ))  # fmt: skip
    assert_refused(
        done, results, f"model.config.num_attention_heads: the recipe says 4, start checkpoint `ck` at {folder} "
        "has 2; set it to the checkpoint's value or leave it out"
    )  # fmt: skip


# ---- slow: checkpoints Composer and llm-foundry write ----------------------------------------


def _trained(command: list[str], cwd: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def bare(tiny_root) -> Path:
    """A bare Composer Trainer's one-file checkpoint (DecoupledSGDW) of a tied Llama: one batch."""
    _trained([sys.executable, str(FIXTURES / "composer_bare.py"), str(tiny_root / "tokenizer"),
              str(tiny_root / "bare"), "1"], tiny_root)  # fmt: skip
    return tiny_root / "bare" / "latest-rank0.pt"


@pytest.mark.slow
def test_plan_takes_architecture_params_and_optimizer_from_a_composer_checkpoint(tiny_root, bare):
    done, results = planned(tiny_root, "bare", starting_at(bare))
    assert done.returncode == 0, done.stderr
    plan = plan_json(results)
    assert plan["params"] == count_params(TINY_LLAMA) == 24_736  # the tied embedding counted once
    assert {v["flops"] for v in plan["variants"]} == {6.0 * 24_736 * PHASE_TOKENS}
    assert plan["recipe"]["training"]["optimizer"]["name"] == "decoupled_sgdw"  # the class it holds the state of
    assert plan["recipe"]["model"] == {"config": {}, "params": None}
    assert heavy_imports_of_plan(tiny_root, "bare") == []  # the checkpoint's pickle read without torch

    # Named, another optimizer is refused at plan with the line the job gives (ablate.run.train.fit).
    done, results = planned(tiny_root, "bare-adamw", starting_at(bare, optimizer=True))
    assert_refused(
        done, results, f"start checkpoint {bare}: holds DecoupledSGDW state, but training.optimizer.name "
        "decoupled_adamw builds DecoupledAdamW; set training.optimizer.name: decoupled_sgdw to continue that state, "
        "or set training.optimizer.state: fresh to keep the weights and start the optimizer anew"
    )  # fmt: skip
    # state: fresh starts the recipe's optimizer anew: nothing to take over, nothing refused.
    done, _ = planned(tiny_root, "bare-fresh", lambda raw: (
        starting_at(bare, optimizer=True)(raw), raw["training"]["optimizer"].update(state="fresh"),
        raw["training"]["schedule"].update(warmup_tokens=BATCH * SEQ_LEN),
    ))  # fmt: skip
    assert done.returncode == 0, done.stderr

    # A partial model section: its fields must be the checkpoint's; another family's field is explained.
    done, results = planned(tiny_root, "bare-heads", lambda raw: (
        starting_at(bare)(raw), raw.update(model={"config": {"num_attention_heads": 4}})
    ))  # fmt: skip
    assert_refused(done, results, "model.config.num_attention_heads: the recipe says 4, start checkpoint `ck`")
    done, results = planned(tiny_root, "bare-mpt", lambda raw: (
        starting_at(bare)(raw), raw.update(model={"config": {"d_model": 32}})
    ))  # fmt: skip
    assert_refused(
        done, results, f"model.config.d_model: start checkpoint `ck` at {bare} has no d_model (its model: "
        "model_type: llama, vocab_size: 128, hidden_size: 32,", "leave it out"
    )  # fmt: skip


@pytest.mark.slow
def test_a_full_model_section_beside_its_checkpoint_plans_the_hashes_it_planned_before(tiny_root, bare):
    """What plan now reads changes no hash of a study whose recipe restates the model and names its optimizer."""
    from ablate.plan.build import build_plan
    from ablate.plan.request import PlanRequest
    from ablate.recipe import parse_recipe

    def restated(raw: dict) -> None:
        starting_at(bare, model=True, optimizer=True)(raw)
        raw["training"]["optimizer"]["name"] = "decoupled_sgdw"

    done, results = planned(tiny_root, "bare-full", restated)
    assert done.returncode == 0, done.stderr
    raw = recipe_dict(tiny_root)
    restated(raw)
    alone = build_plan(parse_recipe(raw), PlanRequest(removes=["g"]))  # from the recipe alone, as before
    plan = plan_json(results)
    assert [(v["name"], v["train_hash"], v["hash"]) for v in plan["variants"]] == [
        (v.name, v.train_hash, v.hash) for v in alone.variants
    ]
    assert plan["start_hash"] == alone.start_hash and plan["params"] == alone.params


@pytest.mark.slow
def test_plan_reads_a_sharded_composer_checkpoint(tiny_root):
    from ablate.run.launch import OFFLINE, free_master_port

    save = tiny_root / "sharded"
    command = [sys.executable, "-m", "composer.cli.launcher", "-n", "2", "--master_port", str(free_master_port()),
               str(FIXTURES / "composer_sharded.py"), str(tiny_root / "tokenizer"), str(save)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    checkpoint = save / "latest-rank0.pt"
    assert (checkpoint / ".metadata").is_file()

    done, results = planned(tiny_root, "sharded", starting_at(checkpoint))
    assert done.returncode == 0, done.stderr
    plan = plan_json(results)
    assert plan["params"] == 24_736  # the parameters AdamW trains: lm_head is saved apart, but tied
    assert plan["recipe"]["training"]["optimizer"]["name"] == "adamw"
    done, results = planned(tiny_root, "sharded-mine", starting_at(checkpoint, model=True, optimizer=True))
    assert_refused(done, results, "holds AdamW state, but training.optimizer.name decoupled_adamw builds "
                                  "DecoupledAdamW; set training.optimizer.name: adamw")  # fmt: skip


@pytest.mark.slow
def test_plan_takes_an_llm_foundry_mpt_checkpoints_architecture_without_any_mpt_field(tiny_root):
    pytest.importorskip("llmfoundry", reason="llm-foundry is not installed; `make venv` installs the foundry extra")
    from test_foundry import foundry_yaml

    config = foundry_yaml(tiny_root) | {"max_duration": "2ba", "save_interval": "2ba"}
    (tiny_root / "foundry.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    train = "import sys; from llmfoundry.command_utils import train_from_yaml; train_from_yaml(sys.argv[1], [])"
    _trained([sys.executable, "-c", train, str(tiny_root / "foundry.yaml")], tiny_root)
    checkpoint = tiny_root / "foundry" / "tiny-mpt" / "checkpoints" / "latest-rank0.pt"

    import torch
    from llmfoundry.models.mpt import MPTConfig, MPTForCausalLM

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["state"]["integrations"]
    content = saved["huggingface"]["model"]["config"]["content"] | {"init_device": "cpu"}
    built = MPTForCausalLM(MPTConfig.from_dict(content))
    params = sum(p.numel() for p in built.parameters())  # 79,360: wte, wpe, biases; nothing a Llama count sees

    done, results = planned(tiny_root, "mpt", starting_at(checkpoint))
    assert done.returncode == 0, done.stderr
    plan = plan_json(results)
    assert plan["params"] == params and {v["flops"] for v in plan["variants"]} == {6.0 * params * PHASE_TOKENS}
    assert plan["recipe"]["training"]["optimizer"]["name"] == "decoupled_lionw"

    # The tiny recipe's Llama model section beside the MPT: refused on its model_type, in one line.
    done, results = planned(tiny_root, "mpt-llama", starting_at(checkpoint, model=True))
    assert_refused(done, results, f"model.config.model_type: the recipe says llama, start checkpoint `ck` at "
                                  f"{checkpoint} has mpt; set it to the checkpoint's value or leave it")  # fmt: skip
    done, results = planned(tiny_root, "mpt-width", lambda raw: (
        starting_at(checkpoint)(raw), raw.update(model={"config": {"hidden_size": 64}})
    ))  # fmt: skip
    assert_refused(done, results, "model.config.hidden_size: start checkpoint `ck`", "has no hidden_size (its model: "
                                  "model_type: mpt, vocab_size: 128, d_model: 64, n_layers: 2")  # fmt: skip
