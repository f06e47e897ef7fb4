"""The translation as a whole: from_foundry reads the YAML's data, model and checkpoints itself and
its training block through ablate.foundry.training; render writes the recipe with its notes."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ablate.errors import RecipeError
from ablate.foundry.fields import BOOL, INT, MAP, NUMBER, STR, get
from ablate.foundry.training import translate_training

# Top-level keys translated into the recipe, and those that only steer llm-foundry's own loop
# (logging, evaluation cadence, devices), which nothing in a study depends on: dropped without a note.
TRANSLATED = {
    "max_seq_len", "model", "tokenizer", "train_loader", "optimizer", "scheduler", "algorithms", "max_duration",
    "global_train_batch_size", "device_train_microbatch_size", "precision", "save_folder", "seed", "global_seed",
    "run_name", "variables", "icl_tasks", "eval_gauntlet", "fsdp_config", "parallelism_config", "save_latest_filename",
}  # fmt: skip
LOOP_ONLY = {
    "eval_interval", "eval_first", "eval_subset_num_batches", "device_eval_batch_size", "progress_bar",
    "log_to_console", "console_log_interval", "callbacks", "save_interval", "save_num_checkpoints_to_keep",
    "save_overwrite", "save_weights_only", "dist_timeout", "python_log_level", "autoresume", "eval_loader",
    "data_local", "data_remote",
}  # fmt: skip
MCLI = {"command", "image", "compute", "integrations", "scheduling", "env_variables"}  # an mcli run file's keys
# Dataset fields only llm-foundry's finetuning loader reads (prompt/response pairs, not token shards).
FINETUNING = {"hf_name", "hf_kwargs", "preprocessing_fn", "decoder_only_format", "allow_pad_trimming",
              "packing_ratio", "target_prompts", "target_responses"}  # fmt: skip


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """The YAML with llm-foundry's `${...}` interpolations filled in (OmegaConf, as llm-foundry does)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        resolved = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    except OmegaConfBaseException as exc:
        problem = str(getattr(exc, "msg", None) or exc or type(exc).__name__).splitlines()[0]
        where = f"{exc.full_key}: " if getattr(exc, "full_key", None) else ""
        raise RecipeError(f"llm-foundry YAML: {where}cannot resolve ({problem}); fix that ${{...}}") from None
    assert isinstance(resolved, dict)
    return {str(key): value for key, value in resolved.items()}


def from_foundry(
    raw: dict[str, Any],
    *,
    name: str,
    samples: Callable[[str], int | None],
    tokens: Callable[[str], int | None] | None = None,
    run_name: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The recipe (a plain mapping that `parse_recipe` accepts) and the notes on what was not translated.
    `samples` and `tokens`: what a local MDS folder holds (None where unknown), for streaming's weights
    and the subsets' `tokens` (none written without it). `run_name`: $RUN_NAME, which llm-foundry
    (through Composer) uses where the YAML's run_name is blank."""
    notes: list[str] = []
    raw, platform_name = _unwrapped(raw, notes)
    cfg = resolve(raw)
    _pretraining(cfg)
    seq_len = get(cfg, "max_seq_len", kind=INT, required=True)
    batch = get(cfg, "global_train_batch_size", kind=INT, required=True)
    subsets, base = _subsets(cfg, samples, tokens or (lambda _: None), notes)
    model, tokenizer = _model(cfg, notes)
    training = translate_training(cfg, seq_len, batch, notes)
    run = get(cfg, "run_name", kind=STR) or run_name
    recipe: dict[str, Any] = {
        "name": _study_name(run or platform_name or name),
        "seq_len": seq_len,
        "tokenizer": tokenizer,
        "model": model,
        "subsets": subsets,
        "mixes": {"base": base, "upsample": dict(base)},
        "training": training,
        **_checkpoints(cfg, run, platform_name, notes),
        "eval": {"tasks": ["lambada_openai"]},
    }
    notes.append("mixes.upsample is a copy of the base mix: set the end-of-training mix the study ablates")
    notes.append("eval.tasks is a placeholder: list the lm-eval tasks to score (local copies; ablate is offline)")
    if "icl_tasks" in cfg or "eval_gauntlet" in cfg:
        notes.append("icl_tasks / eval_gauntlet: llm-foundry's evaluation is not translated; use lm-eval task names")
    if "fsdp_config" in cfg or "parallelism_config" in cfg:
        notes.append("fsdp_config: not translated; variants train data-parallel (see training.fsdp)")
    ignored = sorted(set(cfg) - TRANSLATED - LOOP_ONLY)
    if ignored:
        notes.append(f"not translated (no counterpart in a recipe): {', '.join(ignored)}")
    return recipe, notes


def render(recipe: dict[str, Any], notes: list[str], *, source: str) -> str:
    """The recipe as YAML, its notes as comments above it."""
    import yaml

    header = [f"# Written by `ablate recipe from-foundry {source}`; check each note, then `ablate plan`."]
    header += [f"# NOTE: {note}" for note in notes]
    return "\n".join(header) + "\n" + yaml.safe_dump(recipe, sort_keys=False)


def _unwrapped(raw: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], str | None]:
    """The training YAML itself, and the run's name on the platform when `raw` is an mcli run file
    (its `parameters:` is the YAML, which the platform hands the command as parameters.yaml)."""
    if "parameters" not in raw or not (set(raw) & MCLI):
        return raw, None
    parameters = get(raw, "parameters", kind=MAP)
    if not parameters:
        trains = re.findall(r"(\S+\.ya?ml)\b", str(raw.get("command") or ""))
        named = [path for path in trains if not path.startswith("/mnt/config/")]
        fix = f"translate the YAML its command trains from ({named[0]})" if named else "translate its training YAML"
        raise RecipeError(f"llm-foundry YAML: an mcli run file with empty parameters; {fix}")
    notes.append("an mcli run file: its parameters are the training YAML translated here")
    platform = raw.get("name")
    return parameters, str(platform) if isinstance(platform, str) and platform else None


def _pretraining(cfg: dict[str, Any]) -> None:
    """Refuse what is not pretraining on token shards: llm-foundry's finetuning loader, or another."""
    if get(cfg, "train_loader", kind=MAP) is None:
        raise RecipeError("llm-foundry YAML: no train_loader, so not a training YAML (an evaluation or conversion "
                          "run?); translate the YAML the pretraining run trained from")  # fmt: skip
    kind = get(cfg, "train_loader", "name", kind=STR)
    dataset = get(cfg, "train_loader", "dataset", kind=MAP) or {}
    streams = get(cfg, "train_loader", "dataset", "streams", kind=MAP) or {}
    keys = set(dataset) | {key for stream in streams.values() if isinstance(stream, dict) for key in stream}
    finetuning = sorted(keys & FINETUNING)
    if kind == "finetuning" or (finetuning and kind in (None, "text")):
        why = "train_loader.name is finetuning" if kind == "finetuning" else f"train_loader.dataset has {finetuning[0]}"
        raise RecipeError(
            f"llm-foundry YAML: {why}: a finetuning run (prompt/response pairs), not pretraining on MDS token "
            "shards; ablate studies the end of pretraining, so translate the pretraining YAML"
        )
    if kind not in (None, "text"):
        raise RecipeError(
            f"llm-foundry YAML: train_loader.name is {kind}, not llm-foundry's text loader; ablate reads MDS "
            "token shards as the text loader does"
        )


def _study_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")
    return cleaned or "study"


# ---- the parts ---------------------------------------------------------------------------------


def _subsets(
    cfg: dict[str, Any], samples: Callable[[str], int | None], tokens: Callable[[str], int | None], notes: list[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """train_loader.dataset's streams (or the one dataset) → subsets and base-mix weights."""
    at = ("train_loader", "dataset")
    dataset = get(cfg, *at, kind=MAP) or {}
    streams = get(cfg, *at, "streams", kind=MAP)
    if not streams:
        if streams is not None or not (dataset.get("local") or dataset.get("remote")):
            raise RecipeError("llm-foundry YAML: train_loader.dataset has no streams and no local/remote; add them")
        notes.append("one dataset, no streams: a single subset 'data'; split it into subsets to ablate them")
    where = {str(key): (*at, "streams", key) for key in streams} if streams else {"data": at}
    given = [get(cfg, *stream, "proportion", kind=NUMBER) is not None for stream in where.values()]
    if any(given) and not all(given):
        raise RecipeError(
            "llm-foundry YAML: train_loader.dataset.streams: some streams have a proportion and some not; "
            "give every stream one or none (streaming's rule)"
        )
    subsets: dict[str, Any] = {}
    weights: dict[str, float] = {}
    for key, stream in where.items():
        local, remote, split = (get(cfg, *stream, field, kind=STR) for field in ("local", "remote", "split"))
        folder = remote or local or get(cfg, *at, "remote", kind=STR) or get(cfg, *at, "local", kind=STR)
        if not folder:
            raise RecipeError(f"llm-foundry YAML: stream {key} has neither local nor remote; give it one")
        split = split or get(cfg, *at, "split", kind=STR)
        subsets[key] = {"location": _join(folder, split)}
        if remote and local:
            notes.append(f"subsets.{key}: reads remote {subsets[key]['location']}; its local {local} was a cache")
        proportion, repeat = (get(cfg, *stream, field, kind=NUMBER) for field in ("proportion", "repeat"))
        choose = get(cfg, *stream, "choose", kind=INT)
        if min(proportion or 0, choose or 0, repeat or 0) < 0:
            raise RecipeError(f"llm-foundry YAML: stream {key} has a negative proportion, choose or repeat; fix it")
        readable = _join(local or folder, split)  # a remote stream's local cache, where it has one
        size = None if proportion is not None else samples(readable)
        if (count := tokens(readable)) is not None:  # what the folder holds, whatever its samples' length
            subsets[key]["tokens"] = count
        if size is None and proportion is None and choose is None:
            notes.append(f"mixes.base.{key}: its size is unknown (no readable index.json); the weight 1 is a guess")
        # streaming's rule: a proportion, else the samples a stream gives: choose, repeat × size, or its size
        weights[key] = float(proportion if proportion is not None else choose if choose is not None else
                             (1 if repeat is None else repeat) * (1 if size is None else size))  # fmt: skip
    total = sum(weights.values())
    if total <= 0:
        raise RecipeError("llm-foundry YAML: train_loader.dataset.streams: every stream's weight is 0; give one more")
    return subsets, {key: round(weight / total, 6) for key, weight in weights.items()}


def _join(folder: str, split: str | None) -> str:
    """streaming reads `split` as a subfolder of a stream's local and remote."""
    if not split:
        return folder
    return f"{folder.rstrip('/')}/{split}" if "://" in folder else os.path.join(folder, split)


MPT_FIELDS = {"d_model": INT, "n_heads": INT, "n_layers": INT, "expansion_ratio": NUMBER, "max_seq_len": INT,
              "vocab_size": INT}  # fmt: skip


def _model(cfg: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], str]:
    """The model config (for FLOPs; a variant's model comes from its start checkpoint) and the tokenizer."""
    tokenizer = get(cfg, "tokenizer", "name", kind=STR)
    if not tokenizer:
        raise RecipeError("llm-foundry YAML: tokenizer.name is missing; the recipe needs the tokenizer")
    if not os.path.isdir(tokenizer):
        notes.append(f"tokenizer: {tokenizer} is not a local folder; ablate is offline, save it and point here")
    model = get(cfg, "model", kind=MAP) or {}
    kind = get(cfg, "model", "name", kind=STR)
    if kind == "mpt_causal_lm":
        given = {key: get(cfg, "model", key, kind=want) for key, want in MPT_FIELDS.items()}
        config = {"model_type": "mpt", **{key: value for key, value in given.items() if value is not None}}
        spec: dict[str, Any] = {"config": config}
        if all(given[key] for key in ("d_model", "n_layers", "vocab_size")):
            spec["params"] = _mpt_params(cfg)
        dropped = sorted(set(model) - set(MPT_FIELDS) - {"name", "init_device"})
        if dropped:
            notes.append(f"model: {', '.join(dropped)} kept by the checkpoint, not the recipe (FLOPs use the rest)")
        return spec, tokenizer
    if kind == "hf_causal_lm":
        source = get(cfg, "model", "pretrained_model_name_or_path", kind=STR)
        notes.append(
            f"model: hf_causal_lm {source}; set model.params (or its config's hidden_size, num_hidden_layers, "
            "vocab_size) for the cost estimate"
        )
        return {"config": dict(get(cfg, "model", "config_overrides", kind=MAP) or {})}, tokenizer
    notes.append(f"model: {kind} is not translated; set model.params for the cost estimate")
    return {}, tokenizer


def _mpt_params(cfg: dict[str, Any]) -> int:
    """MPT's parameters, as llm-foundry builds it: per block Wqkv and out (4·d²) and the MLP (2·ratio·d²),
    two LayerNorms, and biases on all of them unless no_bias; a final LayerNorm; tied embeddings, plus
    learned positions unless ALiBi replaces them."""
    d, layers, vocab = (int(get(cfg, "model", key, kind=INT)) for key in ("d_model", "n_layers", "vocab_size"))
    ratio = get(cfg, "model", "expansion_ratio", kind=NUMBER) or 4
    hidden = int(ratio * d)  # llm-foundry's MLP width
    bias = not get(cfg, "model", "no_bias", kind=BOOL)
    norm = 2 * d if bias else d
    block = 4 * d * d + 2 * hidden * d + 2 * norm + (4 * d + hidden + d if bias else 0)
    alibi = bool(get(cfg, "model", "attn_config", "alibi", kind=BOOL))
    learned = get(cfg, "model", "learned_pos_emb", kind=BOOL) is not False
    positions = (get(cfg, "model", "max_seq_len", kind=INT) or 2048) * d if learned and not alibi else 0
    return layers * block + norm + vocab * d + positions


def _checkpoints(cfg: dict[str, Any], run: str | None, platform: str | None, notes: list[str]) -> dict[str, Any]:
    """save_folder → the run's latest checkpoint as the study's start, named as llm-foundry names it:
    save_latest_filename, else latest-sharded-rank0 for sharded FSDP checkpoints, else latest-rank0.pt."""
    folder = get(cfg, "save_folder", kind=STR)
    if not folder:
        notes.append("save_folder: none; add the run's checkpoint at (1 − phase) under checkpoints and set start")
        return {}
    sharded = get(cfg, "fsdp_config", "state_dict_type", kind=STR) == "sharded"
    latest = get(cfg, "save_latest_filename", kind=STR) or (
        "latest-sharded-rank{rank}" if sharded else "latest-rank{rank}.pt"
    )
    path = f"{folder.rstrip('/')}/{latest}".replace("{rank}", "0")
    if "{run_name}" in path and not run:
        named = f"the platform's name for it ({platform}-<suffix>)" if platform else "a random one (<time>-<words>)"
        notes.append(
            f"run_name: blank and $RUN_NAME unset, so Composer named the run {named}; set checkpoints to the "
            f"checkpoint in {folder} under that name, and start"
        )
        return {}
    notes.append(
        "checkpoints.latest is the run's latest save; the phase should start from the one at (1 − phase) of the run"
    )
    return {"checkpoints": {"latest": path.replace("{run_name}", run or "")}, "start": "latest"}
