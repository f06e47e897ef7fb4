"""`ablate recipe from-foundry` on the shapes llm-foundry's own example YAMLs take: `variables:` with
interpolations, one dataset or several streams (proportion, repeat, choose), mpt_causal_lm or
hf_causal_lm, durations in batches, tokens or samples. Each recipe written must load; nothing trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tiny_study import ablate

from ablate.errors import RecipeError
from ablate.foundry import _mpt_params, from_foundry
from ablate.recipe import parse_recipe

PRETRAIN = """
variables:
  data_local: ./my-copy-c4
  data_remote:
  max_seq_len: 2048
  global_seed: 17
  run_name: mpt-125m-run
max_seq_len: ${variables.max_seq_len}
run_name: ${variables.run_name}
model:
  name: mpt_causal_lm
  init_device: meta
  d_model: 768
  n_heads: 12
  n_layers: 12
  expansion_ratio: 4
  max_seq_len: ${variables.max_seq_len}
  vocab_size: 50368
  attn_config:
    attn_impl: flash
tokenizer:
  name: EleutherAI/gpt-neox-20b
  kwargs:
    model_max_length: ${variables.max_seq_len}
train_loader:
  name: text
  dataset:
    local: ${variables.data_local}
    remote: ${variables.data_remote}
    split: train
    shuffle: true
    max_seq_len: ${variables.max_seq_len}
    shuffle_seed: ${variables.global_seed}
  drop_last: true
  num_workers: 8
scheduler:
  name: cosine_with_warmup
  t_warmup: 100ba
  alpha_f: 0.1
optimizer:
  name: decoupled_adamw
  lr: 6.0e-4
  betas: [0.9, 0.95]
  eps: 1.0e-08
  weight_decay: 0.0
algorithms:
  gradient_clipping:
    clipping_type: norm
    clipping_threshold: 1.0
max_duration: 4800ba
eval_interval: 500ba
global_train_batch_size: 256
seed: ${variables.global_seed}
device_eval_batch_size: 16
device_train_microbatch_size: 16
precision: amp_bf16
fsdp_config:
  sharding_strategy: FULL_SHARD
  mixed_precision: PURE
progress_bar: false
log_to_console: true
callbacks:
  speed_monitor:
    window_size: 10
save_folder: ./{run_name}/checkpoints
"""

STREAMS = """
max_seq_len: 1024
global_train_batch_size: 64
max_duration: 2.5e9tok
model:
  name: hf_causal_lm
  pretrained_model_name_or_path: meta-llama/Llama-3.2-1B
  config_overrides:
    num_hidden_layers: 4
tokenizer:
  name: {tokenizer}
train_loader:
  name: text
  dataset:
    split: train
    streams:
      web:
        local: /data/web
        remote: s3://bucket/web
        proportion: 0.8
      math:
        local: /data/math
        proportion: 0.15
      code:
        local: /data/code
        proportion: 0.05
optimizer:
  name: decoupled_lionw
  lr: 1.0e-4
scheduler:
  name: inv_sqrt_with_warmup
  t_warmup: 10ba
device_train_microbatch_size: auto
loggers:
  wandb: {{}}
"""


def cli(*args: str, cwd: Path):  # type: ignore[no-untyped-def]
    return ablate(*args, cwd=cwd, results=cwd / "results")


def translate(text: str, sizes: dict[str, int] | None = None) -> tuple[dict, list[str]]:
    sizes = sizes or {}
    return from_foundry(yaml.safe_load(text), name="example", samples=sizes.get)


def test_a_pretraining_yaml_with_variables_becomes_a_recipe_that_loads():
    recipe, notes = translate(PRETRAIN)
    parsed = parse_recipe(recipe)
    assert parsed.name == "mpt-125m-run" and parsed.seq_len == 2048
    assert parsed.subsets["data"].location == "./my-copy-c4/train"
    t = parsed.training
    assert t.total_tokens == 4800 * 256 * 2048 and t.batch_size == 256 and t.microbatch_size == 16
    assert t.warmup_tokens == 100 * 256 * 2048 and t.seed == 17 and t.precision == "amp_bf16"
    assert (t.schedule.name, t.schedule.final_ratio) == ("cosine", 0.1)
    assert (t.optimizer.name, t.optimizer.lr, t.optimizer.betas) == ("decoupled_adamw", 6e-4, (0.9, 0.95))
    assert t.grad_clip_norm == 1.0
    assert parsed.checkpoints == {"latest": "./mpt-125m-run/checkpoints/latest-rank0.pt"}
    assert parsed.start == "latest"
    assert parsed.model.config["model_type"] == "mpt" and parsed.model.params == _mpt_params(recipe["model"]["config"])
    said = " ".join(notes)
    for untranslated in ("eps", "fsdp_config", "tokenizer: EleutherAI/gpt-neox-20b is not a local folder",
                         "mixes.upsample", "eval.tasks", "training.phase", "one dataset"):  # fmt: skip
        assert untranslated in said, untranslated
    assert "callbacks" not in said and "progress_bar" not in said  # llm-foundry's own loop: no note


def test_streams_with_proportions_are_the_base_mix(tmp_path):
    recipe, notes = translate(STREAMS.format(tokenizer=tmp_path))
    parsed = parse_recipe(recipe)
    assert parsed.mixes.base == {"web": 0.8, "math": 0.15, "code": 0.05}
    assert parsed.subsets["web"].location == "s3://bucket/web/train"  # remote is the source; local a cache
    assert parsed.subsets["math"].location == "/data/math/train"
    assert parsed.training.total_tokens == 2_500_000_000 and parsed.training.microbatch_size is None
    said = " ".join(notes)
    for untranslated in ("decoupled_lionw", "inv_sqrt_with_warmup", "'auto'", "loggers", "hf_causal_lm",
                         "save_folder: none"):  # fmt: skip
        assert untranslated in said, untranslated
    assert "is not a local folder" not in said


def test_repeat_and_choose_weigh_streams_by_the_samples_they_contribute(tmp_path):
    streams = {
        "a": {"local": "/d/a", "repeat": 2},  # 2 × 100 samples
        "b": {"local": "/d/b", "choose": 100},
        "c": {"local": "/d/c"},  # its whole 200
    }
    raw = yaml.safe_load(STREAMS.format(tokenizer=tmp_path))
    raw["train_loader"]["dataset"] = {"streams": streams}
    recipe, _ = from_foundry(raw, name="x", samples={"/d/a": 100, "/d/b": 300, "/d/c": 200}.get)
    assert recipe["mixes"]["base"] == {"a": 0.4, "b": 0.2, "c": 0.4}
    assert recipe["subsets"]["a"]["tokens"] == 100 * 1024


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"max_duration": "3ep"}, "max_duration"),
        ({"max_seq_len": None}, "max_seq_len"),
        ({"tokenizer": {}}, "tokenizer.name"),
        ({"max_seq_len": "${variables.nowhere}"}, "interpolation"),
    ],
)
def test_what_cannot_become_a_recipe_is_one_line(change, says):
    raw = yaml.safe_load(PRETRAIN)
    raw.update(change)
    with pytest.raises(RecipeError, match=says):
        from_foundry(raw, name="x", samples=lambda _: None)


def test_proportions_on_some_streams_only_are_refused(tmp_path):
    raw = yaml.safe_load(STREAMS.format(tokenizer=tmp_path))
    del raw["train_loader"]["dataset"]["streams"]["code"]["proportion"]
    with pytest.raises(RecipeError, match="give every stream one or none"):
        from_foundry(raw, name="x", samples=lambda _: None)


def test_the_command_writes_a_recipe_once_and_reads_sizes_from_the_shards(tmp_path):
    shards = tmp_path / "web" / "train"
    shards.mkdir(parents=True)
    (shards / "index.json").write_text(json.dumps({"shards": [{"samples": 30}, {"samples": 10}]}))
    raw = yaml.safe_load(PRETRAIN)
    raw["train_loader"]["dataset"] = {"split": "train", "streams": {"web": {"local": str(tmp_path / "web")}}}
    source = tmp_path / "train.yaml"
    source.write_text(yaml.safe_dump(raw))
    target = tmp_path / "recipe.yaml"
    done = cli("recipe", "from-foundry", str(source), "--out", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(target.read_text())
    assert written["subsets"]["web"]["tokens"] == 40 * 2048
    assert target.read_text().startswith("# Written by `ablate recipe from-foundry")
    again = cli("recipe", "from-foundry", str(source), "--out", str(target), cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    missing = cli("recipe", "from-foundry", str(tmp_path / "nowhere.yaml"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read it" in missing.stderr


def test_printed_without_out(tmp_path: Path):
    source = tmp_path / "train.yaml"
    source.write_text(PRETRAIN)
    shown = cli("recipe", "from-foundry", str(source), cwd=tmp_path)
    assert shown.returncode == 0 and "# NOTE:" in shown.stdout
    assert parse_recipe(yaml.safe_load(shown.stdout)).name == "mpt-125m-run"
