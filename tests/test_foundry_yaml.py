"""`ablate recipe from-foundry` on the shapes llm-foundry's own example YAMLs take: `variables:` with
interpolations, one dataset or several streams (proportion, repeat, choose), mpt_causal_lm or
hf_causal_lm, durations in batches, tokens or samples. Each recipe written must load; nothing trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_study import ablate

from ablate.errors import RecipeError
from ablate.foundry import from_foundry
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
    assert t.optimizer.eps == 1e-8 and t.optimizer.args == {}
    assert t.grad_clip_norm == 1.0
    assert parsed.checkpoints == {"latest": "./mpt-125m-run/checkpoints/latest-rank0.pt"}
    assert parsed.start == "latest"
    # 12 blocks of 12·d² + 13·d (attention, MLP ×4, norms and biases), a final norm, tied embeddings, positions
    assert parsed.model.config["model_type"] == "mpt" and parsed.model.params == 125_311_488
    said = " ".join(notes)
    for untranslated in ("fsdp_config", "tokenizer: EleutherAI/gpt-neox-20b is not a local folder",
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
    assert (parsed.training.optimizer.name, parsed.training.optimizer.lr) == ("decoupled_lionw", 1e-4)  # MPT's
    for untranslated in ("inv_sqrt_with_warmup", "'auto'", "loggers", "hf_causal_lm",
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
    tokens = {"/d/a": 100 * 512, "/d/b": 300 * 1024}.get  # a's samples are shorter than max_seq_len
    recipe, _ = from_foundry(raw, name="x", samples={"/d/a": 100, "/d/b": 300, "/d/c": 200}.get, tokens=tokens)
    assert recipe["mixes"]["base"] == {"a": 0.4, "b": 0.2, "c": 0.4}
    assert recipe["subsets"]["a"]["tokens"] == 100 * 512 and recipe["subsets"]["b"]["tokens"] == 300 * 1024
    assert "tokens" not in recipe["subsets"]["c"]  # samples known, their length not: no size guessed


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"max_duration": "3ep"}, "max_duration"),
        ({"max_seq_len": None}, "max_seq_len"),
        ({"tokenizer": {}}, "tokenizer.name"),
        ({"max_seq_len": "${variables.nowhere}"}, r"max_seq_len: cannot resolve \(Interpolation key 'variables"),
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
    from streaming import MDSWriter

    shards = tmp_path / "web" / "train"  # 40 samples of 512 tokens (--concat_tokens 512), zstd as foundry writes
    with MDSWriter(out=str(shards), columns={"tokens": "ndarray:int32"}, compression="zstd", size_limit=20_000,
                   progress_bar=False) as writer:  # fmt: skip
        for i in range(40):
            writer.write({"tokens": np.arange(i, i + 512, dtype=np.int32)})
    assert len(json.loads((shards / "index.json").read_text())["shards"]) > 1
    raw = yaml.safe_load(PRETRAIN)
    raw["train_loader"]["dataset"] = {"split": "train", "streams": {"web": {"local": str(tmp_path / "web")}}}
    source = tmp_path / "train.yaml"
    source.write_text(yaml.safe_dump(raw))
    target = tmp_path / "recipe.yaml"
    done = cli("recipe", "from-foundry", str(source), "--out", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(target.read_text())
    assert written["subsets"]["web"]["tokens"] == 40 * 512  # the samples' length, not max_seq_len (2048)
    assert not list(shards.glob("*.mds")), "read in place: no shard decompressed beside the source"
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


# ---- shapes beyond pretraining, and what a user gets wrong ----------------------------------------

FINETUNE = """
variables:
  max_seq_len: 2048
max_seq_len: ${variables.max_seq_len}
run_name:  # blank: llm-foundry reads $RUN_NAME
model:
  name: hf_causal_lm
  pretrained_model_name_or_path: mosaicml/mpt-7b
tokenizer:
  name: mosaicml/mpt-7b
train_loader:
  name: finetuning
  dataset:
    hf_name: json
    hf_kwargs:
      data_dir: /path/to/data
    split: train
    max_seq_len: ${variables.max_seq_len}
    decoder_only_format: true
scheduler:
  name: linear_decay_with_warmup
  t_warmup: 0ba
  alpha_f: 0
optimizer:
  name: decoupled_lionw
  lr: 5.0e-7
  betas: [0.9, 0.95]
max_duration: 1ep
global_train_batch_size: 64
"""

MCLI_RUN = """
name: mpt-anneal
image: mosaicml/llm-foundry:2.7.0_cu128-latest
integrations:
- integration_type: git_repo
  git_repo: mosaicml/llm-foundry
command: |
  cd llm-foundry/scripts
  composer train/train.py /mnt/config/parameters.yaml
compute:
  gpus: 8
parameters:
  variables:
    max_seq_len: 1024
  max_seq_len: ${variables.max_seq_len}
  run_name:
  model: {name: mpt_causal_lm, d_model: 64, n_heads: 4, n_layers: 2, vocab_size: 128}
  tokenizer: {name: EleutherAI/gpt-neox-20b}
  train_loader:
    name: text
    dataset: {streams: {web: {remote: s3://b/web, proportion: 0.9}, math: {remote: s3://b/math, proportion: 0.1}}}
  optimizer: {name: adalr_lion, lr: 1e-4, betas: [0.9, 0.99], outlier_threshold: 5.0, timeout: 100}
  max_duration: 1000ba
  global_train_batch_size: 32
  save_folder: s3://b/{run_name}/checkpoints
  fsdp_config: {sharding_strategy: FULL_SHARD, state_dict_type: sharded}
"""


def test_finetuning_yamls_are_refused_in_one_line():
    with pytest.raises(RecipeError, match=r"^llm-foundry YAML: train_loader\.name is finetuning: a finetuning run") as e:
        translate(FINETUNE)
    assert "\n" not in str(e.value) and "translate the pretraining YAML" in str(e.value)
    edited = yaml.safe_load(FINETUNE)
    edited["train_loader"]["name"] = "text"  # renamed by hand; its dataset is still prompt/response pairs
    with pytest.raises(RecipeError, match=r"train_loader\.dataset has decoder_only_format: a finetuning run"):
        from_foundry(edited, name="x", samples=lambda _: None)
    del edited["train_loader"]["name"]
    with pytest.raises(RecipeError, match="a finetuning run"):
        from_foundry(edited, name="x", samples=lambda _: None)
    edited["train_loader"]["name"] = "my_loader"
    with pytest.raises(RecipeError, match=r"train_loader\.name is my_loader, not llm-foundry's text loader"):
        from_foundry(edited, name="x", samples=lambda _: None)


def test_an_mcli_run_file_is_read_for_the_yaml_in_its_parameters():
    recipe, notes = translate(MCLI_RUN)
    parsed = parse_recipe(recipe)
    assert parsed.name == "mpt-anneal" and parsed.seq_len == 1024  # the platform's run name names the study
    assert parsed.mixes.base == {"web": 0.9, "math": 0.1} and parsed.training.total_tokens == 1000 * 32 * 1024
    optimizer = parsed.training.optimizer
    assert (optimizer.name, optimizer.lr, optimizer.betas) == ("adalr_lion", 1e-4, (0.9, 0.99))  # 1e-4: a number
    assert optimizer.args == {"outlier_threshold": 5.0, "timeout": 100}  # passed on to llm-foundry's class
    said = " ".join(notes)
    assert "an mcli run file" in said and "mpt-anneal-<suffix>" in said  # the platform adds a suffix to the name
    assert parsed.checkpoints == {} and parsed.start is None  # which folder is not known: said, not guessed
    # The platform sets $RUN_NAME to the run's full name; with it, the sharded checkpoint's link as llm-foundry names it.
    recipe, _ = from_foundry(yaml.safe_load(MCLI_RUN), name="x", samples=lambda _: None, run_name="mpt-anneal-x1y2")
    assert recipe["name"] == "mpt-anneal-x1y2"
    assert recipe["checkpoints"] == {"latest": "s3://b/mpt-anneal-x1y2/checkpoints/latest-sharded-rank0"}
    empty = yaml.safe_load(MCLI_RUN) | {"parameters": {}}
    empty["command"] = "composer train/train.py train/yamls/pretrain/mpt-1b.yaml max_duration=100ba"
    with pytest.raises(RecipeError, match=r"empty parameters; translate the YAML its command trains from "
                                          r"\(train/yamls/pretrain/mpt-1b\.yaml\)$"):  # fmt: skip
        from_foundry(empty, name="x", samples=lambda _: None)


def test_a_blank_run_name_is_filled_as_llm_foundry_fills_it():
    raw = yaml.safe_load(PRETRAIN)
    raw["variables"]["run_name"] = None
    recipe, notes = from_foundry(raw, name="mpt-125m", samples=lambda _: None, run_name="from-env")
    assert recipe["name"] == "from-env" and recipe["checkpoints"] == {"latest": "./from-env/checkpoints/latest-rank0.pt"}
    recipe, notes = from_foundry(raw, name="mpt-125m", samples=lambda _: None)
    assert recipe["name"] == "mpt-125m" and "checkpoints" not in recipe  # never './/checkpoints/latest-rank0.pt'
    assert any("run_name: blank and $RUN_NAME unset, so Composer named the run a random one" in n for n in notes)
    parse_recipe(recipe)
    raw["save_folder"] = "/ckpt/fixed"  # no {run_name} in it: the folder is known either way
    recipe, _ = from_foundry(raw, name="mpt-125m", samples=lambda _: None)
    assert recipe["checkpoints"] == {"latest": "/ckpt/fixed/latest-rank0.pt"}


WRONG_TYPES = [
    (("train_loader", "dataset", "streams", "web"), "s3://bucket/web", "streams.web is 's3://bucket/web', not a mapping"),
    (("optimizer", "betas"), 0.9, "optimizer.betas is 0.9, not a list"),
    (("optimizer", "betas"), [0.9], r"optimizer\.betas is \[0\.9\], not two numbers"),
    (("optimizer", "betas"), ["a", 0.9], r"betas\.0 is 'a', not a number"),
    (("optimizer", "lr"), "fast", "optimizer.lr is 'fast', not a number"),
    (("optimizer", "name"), 3, "optimizer.name is 3, not a string"),
    (("optimizer",), "adamw", "optimizer is 'adamw', not a mapping"),
    (("scheduler", "alpha_f"), "low", "scheduler.alpha_f is 'low', not a number"),
    (("scheduler", "t_warmup"), [1], r"scheduler\.t_warmup is \[1\], not an integer or a string"),
    (("global_train_batch_size",), "64", "global_train_batch_size is '64', not an integer"),
    (("max_seq_len",), 1024.5, "max_seq_len is 1024.5, not an integer"),
    (("max_duration",), [10], r"max_duration is \[10\], not an integer or a string"),
    (("model", "n_layers"), "two", "model.n_layers is 'two', not an integer"),
    (("model", "attn_config"), "flash", "model.attn_config is 'flash', not a mapping"),
    (("tokenizer",), "gpt2", "tokenizer is 'gpt2', not a mapping"),
    (("train_loader", "dataset", "streams"), ["web"], r"streams is \['web'\], not a mapping"),
    (("train_loader", "dataset", "streams", "web", "proportion"), "most", "web.proportion is 'most', not a number"),
    (("train_loader", "dataset", "streams", "web", "local"), 7, "web.local is 7, not a string"),
    (("algorithms", "gradient_clipping", "clipping_threshold"), "one", "clipping_threshold is 'one', not a number"),
    (("save_folder",), ["a"], r"save_folder is \['a'\], not a string"),
    (("run_name",), 5, "run_name is 5, not a string"),
    (("seed",), "17", "seed is '17', not an integer"),
    (("precision",), True, "precision is True, not a string"),
    (("model", "expansion_ratio"), "four", "model.expansion_ratio is 'four', not a number"),
]


def _mpt_streams(tmp_path) -> dict:
    raw = yaml.safe_load(PRETRAIN)
    raw["train_loader"]["dataset"] = {"streams": {"web": {"local": str(tmp_path / "web"), "proportion": 0.5},
                                                  "code": {"local": str(tmp_path / "code"), "proportion": 0.5}}}  # fmt: skip
    return raw


@pytest.mark.parametrize(("path", "value", "says"), WRONG_TYPES)
def test_a_wrong_type_anywhere_is_one_line_naming_the_field(tmp_path, path, value, says):
    raw = _mpt_streams(tmp_path)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(RecipeError, match=says) as caught:
        from_foundry(raw, name="x", samples=lambda _: None)
    assert str(caught.value).startswith("llm-foundry YAML: ") and "\n" not in str(caught.value)


def test_all_zero_or_negative_stream_weights_are_one_line(tmp_path):
    raw = _mpt_streams(tmp_path)
    for stream in raw["train_loader"]["dataset"]["streams"].values():
        stream["proportion"] = 0
    with pytest.raises(RecipeError, match="every stream's weight is 0"):
        from_foundry(raw, name="x", samples=lambda _: None)
    raw["train_loader"]["dataset"]["streams"]["web"]["proportion"] = -1
    with pytest.raises(RecipeError, match="stream web has a negative proportion"):
        from_foundry(raw, name="x", samples=lambda _: None)


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


@pytest.mark.parametrize("shape", ["pretrain", "streams", "mcli"])
def test_no_malformed_field_ends_in_a_traceback(tmp_path, shape):
    """Every field of each shape, replaced by values of every other kind: a recipe that loads, or one line."""
    text = {"pretrain": PRETRAIN, "streams": STREAMS.format(tokenizer=tmp_path), "mcli": MCLI_RUN}[shape]
    tried = 0
    for path in list(_paths(yaml.safe_load(text))):
        for value in ("text", -1, 0.5, True, [1, "a"], {"k": 1}, None, "${nowhere}"):
            raw = yaml.safe_load(text)
            node = raw
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            try:
                parse_recipe(from_foundry(raw, name="x", samples=lambda _: None)[0])
            except RecipeError as exc:
                assert "\n" not in str(exc), (path, value, str(exc))
            tried += 1
    assert tried > 250


def test_the_command_refuses_finetuning_in_one_line_and_names_a_run_by_RUN_NAME(tmp_path):
    (tmp_path / "sft.yaml").write_text(FINETUNE)
    refused = cli("recipe", "from-foundry", str(tmp_path / "sft.yaml"), cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().count("\n") == 0 and "a finetuning run" in refused.stderr
    (tmp_path / "run.yaml").write_text(MCLI_RUN)
    target = tmp_path / "recipe.yaml"
    made = ablate("recipe", "from-foundry", str(tmp_path / "run.yaml"), "--out", str(target), cwd=tmp_path,
                  results=tmp_path / "results", env={"RUN_NAME": "mpt-anneal-abc123"})  # fmt: skip
    assert made.returncode == 0, made.stderr
    written = parse_recipe(yaml.safe_load(target.read_text()))
    assert written.checkpoints == {"latest": "s3://b/mpt-anneal-abc123/checkpoints/latest-sharded-rank0"}
