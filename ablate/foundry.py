"""An llm-foundry training YAML → an ablate recipe: what the YAML already says, translated.

    from ablate.foundry import from_foundry
    recipe, notes = from_foundry(yaml.safe_load(text), name="mpt-125m", samples=index_samples)

Pure: the caller reads the YAML and says how many samples an MDS folder holds (`samples`), which
streaming's `repeat` and `choose` need to become weights. Every field llm-foundry has and ablate
cannot use becomes a note, written as a comment at the top of the recipe; the two things only the
user knows (the end-of-training mix and the eval tasks) are written as placeholders that validate,
and say so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ablate.errors import RecipeError

# What llm-foundry's schedulers are in ablate's terms (their `alpha_f` is the final LR ratio).
SCHEDULES = {"cosine_with_warmup": "cosine", "linear_decay_with_warmup": "linear", "constant_with_warmup": "constant"}
OPTIMIZERS = {"decoupled_adamw": "decoupled_adamw", "adamw": "adamw", "sgd": "sgd"}
PRECISIONS = ("fp32", "amp_bf16", "amp_fp16")
# Top-level keys translated into the recipe, and those that only steer llm-foundry's own loop
# (logging, evaluation cadence, devices), which nothing in a study depends on: dropped without a note.
TRANSLATED = {
    "max_seq_len", "model", "tokenizer", "train_loader", "optimizer", "scheduler", "algorithms", "max_duration",
    "global_train_batch_size", "device_train_microbatch_size", "precision", "save_folder", "seed", "global_seed",
    "run_name", "variables", "icl_tasks", "eval_gauntlet", "fsdp_config", "parallelism_config",
}  # fmt: skip
LOOP_ONLY = {
    "eval_interval", "eval_first", "eval_subset_num_batches", "device_eval_batch_size", "progress_bar",
    "log_to_console", "console_log_interval", "callbacks", "save_interval", "save_num_checkpoints_to_keep",
    "save_overwrite", "save_weights_only", "dist_timeout", "python_log_level", "autoresume", "eval_loader",
    "data_local", "data_remote",
}  # fmt: skip
PHASE = 0.2  # the paper's best phase lengths are 10–20% of the run; the user sets their own
DURATION = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*(ba|tok|sp|ep|dur)\s*$")


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """The YAML with llm-foundry's `${...}` interpolations filled in (OmegaConf, as llm-foundry does)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        resolved = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)
    except OmegaConfBaseException as exc:
        problem = f"cannot resolve an interpolation ({exc}); fix the ${{...}} it names"
        raise RecipeError(f"llm-foundry YAML: {problem}") from None
    assert isinstance(resolved, dict)
    return {str(key): value for key, value in resolved.items()}


def from_foundry(
    raw: dict[str, Any], *, name: str, samples: Callable[[str], int | None]
) -> tuple[dict[str, Any], list[str]]:
    """The recipe (a plain mapping that `parse_recipe` accepts) and the notes on what was not translated."""
    cfg = resolve(raw)
    notes: list[str] = []
    seq_len = _required(cfg, "max_seq_len", int)
    batch = _required(cfg, "global_train_batch_size", int)
    subsets, base = _subsets(cfg, seq_len, samples, notes)
    model, tokenizer = _model(cfg, notes)
    training = _training(cfg, seq_len, batch, notes)
    checkpoints = _checkpoints(cfg, notes)
    recipe: dict[str, Any] = {
        "name": _study_name(cfg.get("run_name") or name),
        "seq_len": seq_len,
        "tokenizer": tokenizer,
        "model": model,
        "subsets": subsets,
        "mixes": {"base": base, "upsample": dict(base)},
        "training": training,
        **checkpoints,
        "eval": {"tasks": ["lambada_openai"]},
    }
    notes.append("mixes.upsample is a copy of the base mix: set the end-of-training mix the study ablates")
    notes.append("eval.tasks is a placeholder: list the lm-eval tasks to score (local copies; ablate is offline)")
    if "icl_tasks" in cfg or "eval_gauntlet" in cfg:
        notes.append("icl_tasks / eval_gauntlet: llm-foundry's evaluation is not translated; use lm-eval task names")
    if "fsdp_config" in cfg or "parallelism_config" in cfg:
        notes.append("fsdp_config: not translated; variants train data-parallel")
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


# ---- the parts ---------------------------------------------------------------------------------


def _required(cfg: dict[str, Any], key: str, kind: type) -> Any:
    value = cfg.get(key)
    if value is None:
        raise RecipeError(f"llm-foundry YAML: {key} is missing; the recipe needs it")
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RecipeError(f"llm-foundry YAML: {key} is {value!r}, not a {kind.__name__}; the recipe needs one")
    return value


def _study_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")
    return cleaned or "study"


def _subsets(
    cfg: dict[str, Any], seq_len: int, samples: Callable[[str], int | None], notes: list[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """train_loader.dataset's streams (or the one dataset) → subsets and base-mix weights.

    streaming's rules: either every stream has a `proportion`, which is its weight; or each stream
    contributes `choose` samples, or `repeat` × its size, or its size: those sample counts are the weights.
    """
    dataset = (cfg.get("train_loader") or {}).get("dataset") or {}
    streams = dataset.get("streams") or {"data": dataset}
    if not isinstance(streams, dict) or not streams:
        raise RecipeError("llm-foundry YAML: train_loader.dataset has no streams and no local/remote; nothing to read")
    if "streams" not in dataset:
        notes.append("one dataset, no streams: a single subset 'data'; split it into subsets to ablate them")
    given = [stream.get("proportion") is not None for stream in streams.values()]
    if any(given) and not all(given):
        raise RecipeError(
            "llm-foundry YAML: train_loader.dataset.streams: some streams have a proportion and some not; "
            "give every stream one or none (streaming's rule)"
        )
    subsets: dict[str, Any] = {}
    weights: dict[str, float] = {}
    for key, stream in streams.items():
        folder = stream.get("remote") or stream.get("local") or dataset.get("remote") or dataset.get("local")
        if not folder:
            raise RecipeError(f"llm-foundry YAML: stream {key} has neither local nor remote; give it one")
        split = stream.get("split", dataset.get("split"))
        location = _join(str(folder), split)
        if stream.get("remote") and stream.get("local"):
            notes.append(f"subsets.{key}: reads remote {location}; its local {stream['local']} was a cache")
        subsets[str(key)] = {"location": location}
        if stream.get("proportion") is not None:
            weights[str(key)] = float(stream["proportion"])
            continue
        size = samples(_join(str(stream.get("local") or folder), split))
        if stream.get("choose") is not None:
            weights[str(key)] = float(stream["choose"])
        elif size is None:
            weights[str(key)] = 1.0
            notes.append(f"mixes.base.{key}: its size is unknown (no readable index.json); the weight 1 is a guess")
        else:
            weights[str(key)] = float(stream.get("repeat", 1)) * size
        if size is not None:
            subsets[str(key)]["tokens"] = size * seq_len
    total = sum(weights.values())
    return subsets, {key: round(weight / total, 6) for key, weight in weights.items()}


def _join(folder: str, split: str | None) -> str:
    """streaming reads `split` as a subfolder of a stream's local and remote."""
    if not split:
        return folder
    return f"{folder.rstrip('/')}/{split}" if "://" in folder else os.path.join(folder, split)


def _model(cfg: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], str]:
    """The model config (for FLOPs; a variant's model comes from its start checkpoint) and the tokenizer."""
    model = dict(cfg.get("model") or {})
    kind = model.pop("name", None)
    tokenizer = str((cfg.get("tokenizer") or {}).get("name") or "")
    if not tokenizer:
        raise RecipeError("llm-foundry YAML: tokenizer.name is missing; the recipe needs the tokenizer")
    if not os.path.isdir(tokenizer):
        notes.append(f"tokenizer: {tokenizer} is not a local folder; ablate is offline, save it and point here")
    if kind == "mpt_causal_lm":
        fields = ("d_model", "n_heads", "n_layers", "expansion_ratio", "max_seq_len", "vocab_size")
        config = {"model_type": "mpt", **{key: model[key] for key in fields if key in model}}
        spec: dict[str, Any] = {"config": config}
        if all(key in model for key in ("d_model", "n_layers", "vocab_size")):
            spec["params"] = _mpt_params(model)
        dropped = sorted(set(model) - set(fields) - {"init_device"})
        if dropped:
            notes.append(f"model: {', '.join(dropped)} kept by the checkpoint, not the recipe (FLOPs use the rest)")
        return spec, tokenizer
    if kind == "hf_causal_lm":
        source = model.get("pretrained_model_name_or_path")
        notes.append(
            f"model: hf_causal_lm {source}; set model.params (or its config's hidden_size, num_hidden_layers, "
            "vocab_size) for the cost estimate"
        )
        return {"config": dict(model.get("config_overrides") or {})}, tokenizer
    notes.append(f"model: {kind} is not translated; set model.params for the cost estimate")
    return {}, tokenizer


def _mpt_params(model: dict[str, Any]) -> int:
    """MPT's parameters, as llm-foundry builds it: per block Wqkv and out (4·d²) and the MLP (2·ratio·d²),
    two LayerNorms, and biases on all of them unless no_bias; a final LayerNorm; tied embeddings, plus
    learned positions unless ALiBi replaces them."""
    d, layers, vocab = int(model["d_model"]), int(model["n_layers"]), int(model["vocab_size"])
    ratio, bias = int(model.get("expansion_ratio", 4)), not model.get("no_bias", False)
    norm = 2 * d if bias else d
    block = 4 * d * d + 2 * ratio * d * d + 2 * norm + (4 * d + ratio * d + d if bias else 0)
    alibi = bool((model.get("attn_config") or {}).get("alibi", False))
    positions = int(model.get("max_seq_len", 2048)) * d if model.get("learned_pos_emb", True) and not alibi else 0
    return layers * block + norm + vocab * d + positions


def _tokens(value: Any, field: str, seq_len: int, batch: int, notes: list[str]) -> int | None:
    """A Composer duration (e.g. 4800ba, 2.5e9tok, 1000sp) in tokens; None with a note where it has none."""
    match = DURATION.match(str(value))
    if not match:
        notes.append(f"{field}: '{value}' is not a duration ablate reads (ba, tok, sp); set it in tokens")
        return None
    count, unit = float(match.group(1).replace("_", "")), match.group(2)
    per = {"ba": batch * seq_len, "sp": seq_len, "tok": 1}.get(unit)
    if per is None:
        notes.append(f"{field}: '{value}' counts epochs or a share of the run; set it in tokens")
        return None
    return round(count * per)


def _training(cfg: dict[str, Any], seq_len: int, batch: int, notes: list[str]) -> dict[str, Any]:
    total = _tokens(_required(cfg, "max_duration", object), "max_duration", seq_len, batch, notes)
    if total is None:
        raise RecipeError("llm-foundry YAML: max_duration must be in ba, tok or sp for training.total_tokens")
    training: dict[str, Any] = {"total_tokens": total, "phase": PHASE, "batch_size": batch}
    notes.append(f"training.phase: {PHASE} is a default (the paper found 10–20% of the run best); set your own")
    micro = cfg.get("device_train_microbatch_size")
    if isinstance(micro, int) and not isinstance(micro, bool):
        training["microbatch_size"] = micro
    elif micro is not None:
        notes.append(f"device_train_microbatch_size: '{micro}' is not a number; training.microbatch_size left out")
    seed = cfg.get("seed", cfg.get("global_seed"))
    if isinstance(seed, int):
        training["seed"] = seed
    precision = cfg.get("precision")
    if precision in PRECISIONS:
        training["precision"] = precision
    elif precision is not None:
        notes.append(f"precision: {precision} is not one of {', '.join(PRECISIONS)}; fp32 is used")
    training.update(_optimizer(cfg.get("optimizer") or {}, notes))
    training.update(_schedule(cfg.get("scheduler") or {}, seq_len, batch, notes))
    clipping = ((cfg.get("algorithms") or {}).get("gradient_clipping")) or {}
    if clipping.get("clipping_type", "norm") == "norm" and clipping.get("clipping_threshold") is not None:
        training["grad_clip_norm"] = float(clipping["clipping_threshold"])
    elif clipping:
        notes.append(f"algorithms.gradient_clipping: {clipping.get('clipping_type')} clipping is not translated")
    return training


def _optimizer(optimizer: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    if not optimizer:
        return {}
    name = OPTIMIZERS.get(str(optimizer.get("name")))
    if name is None:
        notes.append(f"optimizer: {optimizer.get('name')} is not one ablate builds; decoupled_adamw is used")
        name = "decoupled_adamw"
    out: dict[str, Any] = {"name": name}
    for key in ("lr", "weight_decay"):
        if optimizer.get(key) is not None:
            out[key] = float(optimizer[key])
    if optimizer.get("betas") is not None:
        out["betas"] = [float(beta) for beta in optimizer["betas"]]
    extra = sorted(set(optimizer) - {"name", "lr", "weight_decay", "betas"})
    if extra:
        notes.append(f"optimizer: {', '.join(extra)} not translated (ablate uses the optimizer's defaults)")
    return {"optimizer": out}


def _schedule(scheduler: dict[str, Any], seq_len: int, batch: int, notes: list[str]) -> dict[str, Any]:
    if not scheduler:
        return {}
    name = SCHEDULES.get(str(scheduler.get("name")))
    if name is None:
        notes.append(f"scheduler: {scheduler.get('name')} is not translated; the phase decays linearly to 0")
        return {}
    out: dict[str, Any] = {"schedule": {"name": name}}
    if name != "constant":
        out["schedule"]["final_ratio"] = float(scheduler.get("alpha_f", 0.0))
    if scheduler.get("t_warmup") is not None:
        warmup = _tokens(scheduler["t_warmup"], "scheduler.t_warmup", seq_len, batch, notes)
        if warmup is not None:
            out["warmup_tokens"] = warmup
    return out


def _checkpoints(cfg: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """save_folder → the run's latest checkpoint as the study's start."""
    folder = cfg.get("save_folder")
    if not folder:
        notes.append("save_folder: none; add the run's checkpoint at (1 − phase) under checkpoints and set start")
        return {}
    folder = str(folder).replace("{run_name}", str(cfg.get("run_name") or "")).rstrip("/")
    notes.append(
        "checkpoints.latest is the run's latest save; the phase should start from the one at (1 − phase) of the run"
    )
    return {"checkpoints": {"latest": f"{folder}/latest-rank0.pt"}, "start": "latest"}
