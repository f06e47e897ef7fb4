"""llm-foundry's users: a study started from a checkpoint that llm-foundry's own training entry point
wrote for its MPT model with MPT's optimizer (decoupled_lionw, built by llm-foundry's registry), with
the recipe that `ablate recipe from-foundry` made from the same YAML.

llm-foundry trains a 2-layer MPT on the tiny study's MDS shards (its text dataloader reads ablate's
`tokens` column as int32); nothing of ablate's writes that checkpoint. Skips where llm-foundry is not
installed; `make venv` installs it (the `foundry` extra), so CI runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny_study import SEQ_LEN, ablate, recipe_dict

STEPS = 20  # llm-foundry's run: 20 batches of 8 × 64 tokens = 10,240 tokens


def foundry_yaml(root: Path) -> dict:
    mds = root / "mds"
    return {
        "variables": {"run_name": "tiny-mpt", "seed": 17},
        "run_name": "${variables.run_name}",
        "seed": "${variables.seed}",
        "max_seq_len": SEQ_LEN,
        "model": {
            "name": "mpt_causal_lm",
            "init_device": "cpu",
            "loss_fn": "torch_crossentropy",  # the fused one needs a GPU
            "d_model": 64,
            "n_heads": 4,
            "n_layers": 2,
            "expansion_ratio": 2,
            "max_seq_len": SEQ_LEN,
            "vocab_size": 128,
            "attn_config": {"attn_impl": "torch"},
        },
        "tokenizer": {"name": str(root / "tokenizer"), "kwargs": {"model_max_length": SEQ_LEN}},
        "train_loader": {
            "name": "text",
            "dataset": {
                "streams": {
                    name: {"local": str(mds / name), "proportion": share}
                    for name, share in (("alpha", 0.45), ("beta", 0.45), ("gamma", 0.1))
                },
                "shuffle": True,
                "shuffle_seed": 17,
                "max_seq_len": SEQ_LEN,
                "token_encoding_type": "int32",
            },
            "drop_last": True,
            "num_workers": 0,
            "prefetch_factor": None,  # torch refuses these two without worker processes
            "persistent_workers": False,
        },
        "scheduler": {"name": "cosine_with_warmup", "t_warmup": "4ba", "alpha_f": 0.1},
        "optimizer": {"name": "decoupled_lionw", "lr": 5e-4, "betas": [0.9, 0.99], "weight_decay": 0},
        "algorithms": {"gradient_clipping": {"clipping_type": "norm", "clipping_threshold": 1.0}},
        "max_duration": f"{STEPS}ba",
        "global_train_batch_size": 8,
        "device_train_microbatch_size": 8,
        "precision": "fp32",
        "save_folder": str(root / "foundry" / "{run_name}" / "checkpoints"),
        "save_interval": f"{STEPS}ba",
        "progress_bar": False,
        "log_to_console": False,
    }


@pytest.fixture(scope="module")
def foundry_run(tiny):
    """llm-foundry's train_from_yaml, as its users run it; the YAML it read."""
    pytest.importorskip("llmfoundry", reason="llm-foundry is not installed; `make venv` installs the foundry extra")
    path = tiny.root / "foundry-train.yaml"
    path.write_text(yaml.safe_dump(foundry_yaml(tiny.root), sort_keys=False))
    train = "import sys; from llmfoundry.command_utils import train_from_yaml; train_from_yaml(sys.argv[1], [])"
    done = subprocess.run([sys.executable, "-c", train, str(path)], cwd=tiny.root, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tiny.root / "foundry" / "tiny-mpt" / "checkpoints" / "latest-rank0.pt").exists()
    return path


@pytest.mark.slow
def test_a_variant_continues_llm_foundrys_mpt_checkpoint_from_its_own_yaml(tiny, foundry_run):
    results = tiny.root / "foundry-results"
    recipe_path = tiny.root / "from-foundry.yaml"
    made = ablate("recipe", "from-foundry", str(foundry_run), "--out", str(recipe_path), cwd=tiny.root, results=results)
    assert made.returncode == 0, made.stderr
    recipe = yaml.safe_load(recipe_path.read_text())
    assert recipe["training"]["total_tokens"] == STEPS * 8 * SEQ_LEN
    assert recipe["mixes"]["base"] == {"alpha": 0.45, "beta": 0.45, "gamma": 0.1}
    assert recipe["training"]["optimizer"] == {"name": "decoupled_lionw", "lr": 5e-4, "weight_decay": 0.0,
                                               "betas": [0.9, 0.99]}  # fmt: skip
    # A wish the continued state overrides: torch restores the saved parameter groups with the moments.
    recipe["training"]["optimizer"]["betas"] = [0.5, 0.5]
    # What the user adds: the end-of-training mix and the tasks (here the tiny study's).
    recipe["mixes"]["upsample"] = {"alpha": 1, "beta": 1, "gamma": 1}
    recipe["eval"] = recipe_dict(tiny.root)["eval"]
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    planned = ablate("plan", "--recipe", str(recipe_path), "--remove", "gamma", cwd=tiny.root, results=results)
    assert planned.returncode == 0, planned.stderr
    run = ablate("run", "--variant", "no-gamma", cwd=tiny.root, results=results, timeout=600)
    assert run.returncode == 0, run.stderr
    variant = json.loads((results / "tiny-mpt" / "no-gamma" / "status.json").read_text())
    assert variant["state"] == "done", variant
    assert variant["tokens_done"] == variant["tokens"] > 0
    assert set(variant["scores"]) == {"tiny_alpha", "tiny_gamma"}
    import torch

    # llm-foundry's LionW state, and the variant's: the same optimizer, continued (its betas, not the wish)
    for folder in (tiny.root / "foundry" / "tiny-mpt", results / "tiny-mpt" / "no-gamma"):
        state = torch.load(folder / "checkpoints" / "latest-rank0.pt", map_location="cpu", weights_only=False)["state"]
        [(name, saved)] = state["optimizers"].items()
        assert name == "DecoupledLionW" and tuple(saved["param_groups"][0]["betas"]) == (0.9, 0.99), folder
        assert {"exp_avg"} == {key for moments in saved["state"].values() for key in moments}
    exported = json.loads((results / "tiny-mpt" / "no-gamma" / "model" / "config.json").read_text())
    assert exported["architectures"] == ["MPTForCausalLM"]  # evaluated as llm-foundry's MPT, not transformers'


def test_without_llm_foundry_an_mpt_checkpoint_asks_for_the_extra(monkeypatch):
    from ablate.errors import AblateError
    from ablate.run.start import _saved_model

    for module in [name for name in sys.modules if name.startswith("llmfoundry.")] + ["llmfoundry"]:
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    saved = {"class": "llmfoundry.models.mpt.modeling_mpt.MPTForCausalLM", "content": {"model_type": "mpt"}}
    with pytest.raises(AblateError, match=r"install llm-foundry beside ablate \(pip install 'ablate\[foundry\]'\)"):
        _saved_model(saved, "ckpt.pt")


def test_without_llm_foundry_its_optimizers_ask_for_the_extra(monkeypatch):
    from ablate.errors import AblateError
    from ablate.run.train import optimizer_class, recipe_name

    for module in [name for name in sys.modules if name.startswith("llmfoundry.")] + ["llmfoundry"]:
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(AblateError, match=r"^training\.optimizer\.name: decoupled_lionw is built by llm-foundry's "
                                          r"registry; install llm-foundry beside ablate \(pip install 'ablate\[foundry\]'\)"):  # fmt: skip
        optimizer_class("decoupled_lionw")
    assert optimizer_class("decoupled_sgdw").__name__ == "DecoupledSGDW"  # Composer's own need nothing more
    # Known by name without it (plan reads a checkpoint's class so): the fix names it, building it asks for the extra.
    assert recipe_name("DecoupledLionW") == "decoupled_lionw" and recipe_name("DecoupledSGDW") == "decoupled_sgdw"
