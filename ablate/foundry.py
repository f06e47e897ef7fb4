"""An llm-foundry training YAML → an ablate recipe: what the YAML already says, translated.

    from ablate.foundry import from_foundry
    recipe, notes = from_foundry(yaml.safe_load(text), name="mpt-125m", samples=index_samples)

Pure: the caller reads the YAML, says how many samples an MDS folder holds (`samples`), which
streaming's `repeat` and `choose` need to become weights, and what $RUN_NAME says (llm-foundry's
fallback for a blank run_name). An mcli run file is read for the training YAML in its
`parameters:`. Every field read is type-checked, so a wrong one is one line naming it. Every field
llm-foundry has and ablate cannot use becomes a note, written as a comment at the top of the
recipe; the two things only the user knows (the end-of-training mix and the eval tasks) are
written as placeholders that validate, and say so. A finetuning YAML is refused: ablate studies
the end of pretraining on MDS token shards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ablate.errors import RecipeError
from ablate.recipe import BUILT_OPTIMIZERS, FOUNDRY_OPTIMIZERS

# What llm-foundry's schedulers are in ablate's terms (their `alpha_f` is the final LR ratio).
SCHEDULES = {"cosine_with_warmup": "cosine", "linear_decay_with_warmup": "linear", "constant_with_warmup": "constant"}
PRECISIONS = ("fp32", "amp_bf16", "amp_fp16")
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
PHASE = 0.2  # the paper's best phase lengths are 10–20% of the run; the user sets their own
DURATION = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*(ba|tok|sp|ep|dur)\s*$")
# A number as llm-foundry's YAML loader (OmegaConf's) reads it where PyYAML reads a string: 1e-4.
FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$")

# ---- typed access: a wrong type is one line naming the field -----------------------------------

INT, NUMBER, STR, MAP, LIST, BOOL = (int,), (int, float), (str,), (dict,), (list,), (bool,)
NAMES = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list", bool: "a bool"}


def _get(node: Any, *keys: Any, kind: tuple[type, ...], required: bool = False) -> Any:
    """`node[keys[0]][keys[1]]...`, None where absent (or an error if `required`), else of `kind`."""
    value, path = node, list[str]()
    for key in keys:
        if value is None:
            break
        if not isinstance(value, dict):
            _wrong(".".join(path), value, MAP)
        path.append(str(key))
        value = value.get(key)
    if value is None and required:
        raise RecipeError(f"llm-foundry YAML: {'.'.join(path)} is missing; the recipe needs it")
    if kind == NUMBER and isinstance(value, str) and FLOAT.match(value.strip()) and any(c.isdigit() for c in value):
        return float(value.replace("_", ""))
    if value is not None and (isinstance(value, bool) != (kind == BOOL) or not isinstance(value, kind)):
        _wrong(".".join(path), value, kind)
    return value


def _wrong(where: str, value: Any, kind: tuple[type, ...]) -> None:
    shown = repr(value) if len(repr(value)) <= 40 else f"a {type(value).__name__}"
    wanted = " or ".join(NAMES[t] for t in kind if not (t is int and float in kind))
    raise RecipeError(f"llm-foundry YAML: {where} is {shown}, not {wanted}; fix its type")


# ---- the whole ---------------------------------------------------------------------------------


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
    raw: dict[str, Any], *, name: str, samples: Callable[[str], int | None], run_name: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The recipe (a plain mapping that `parse_recipe` accepts) and the notes on what was not translated.
    `run_name`: $RUN_NAME, which llm-foundry (through Composer) uses where the YAML's run_name is blank."""
    notes: list[str] = []
    raw, platform_name = _unwrapped(raw, notes)
    cfg = resolve(raw)
    _pretraining(cfg)
    seq_len = _get(cfg, "max_seq_len", kind=INT, required=True)
    batch = _get(cfg, "global_train_batch_size", kind=INT, required=True)
    subsets, base = _subsets(cfg, seq_len, samples, notes)
    model, tokenizer = _model(cfg, notes)
    training = _training(cfg, seq_len, batch, notes)
    run = _get(cfg, "run_name", kind=STR) or run_name
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
    parameters = _get(raw, "parameters", kind=MAP)
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
    if _get(cfg, "train_loader", kind=MAP) is None:
        raise RecipeError("llm-foundry YAML: no train_loader, so not a training YAML (an evaluation or conversion "
                          "run?); translate the YAML the pretraining run trained from")  # fmt: skip
    kind = _get(cfg, "train_loader", "name", kind=STR)
    dataset = _get(cfg, "train_loader", "dataset", kind=MAP) or {}
    streams = _get(cfg, "train_loader", "dataset", "streams", kind=MAP) or {}
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
    cfg: dict[str, Any], seq_len: int, samples: Callable[[str], int | None], notes: list[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """train_loader.dataset's streams (or the one dataset) → subsets and base-mix weights."""
    at = ("train_loader", "dataset")
    dataset = _get(cfg, *at, kind=MAP) or {}
    streams = _get(cfg, *at, "streams", kind=MAP)
    if not streams:
        if streams is not None or not (dataset.get("local") or dataset.get("remote")):
            raise RecipeError("llm-foundry YAML: train_loader.dataset has no streams and no local/remote; add them")
        notes.append("one dataset, no streams: a single subset 'data'; split it into subsets to ablate them")
    where = {str(key): (*at, "streams", key) for key in streams} if streams else {"data": at}
    given = [_get(cfg, *stream, "proportion", kind=NUMBER) is not None for stream in where.values()]
    if any(given) and not all(given):
        raise RecipeError(
            "llm-foundry YAML: train_loader.dataset.streams: some streams have a proportion and some not; "
            "give every stream one or none (streaming's rule)"
        )
    subsets: dict[str, Any] = {}
    weights: dict[str, float] = {}
    for key, stream in where.items():
        local, remote, split = (_get(cfg, *stream, field, kind=STR) for field in ("local", "remote", "split"))
        folder = remote or local or _get(cfg, *at, "remote", kind=STR) or _get(cfg, *at, "local", kind=STR)
        if not folder:
            raise RecipeError(f"llm-foundry YAML: stream {key} has neither local nor remote; give it one")
        split = split or _get(cfg, *at, "split", kind=STR)
        subsets[key] = {"location": _join(folder, split)}
        if remote and local:
            notes.append(f"subsets.{key}: reads remote {subsets[key]['location']}; its local {local} was a cache")
        proportion, repeat = (_get(cfg, *stream, field, kind=NUMBER) for field in ("proportion", "repeat"))
        choose = _get(cfg, *stream, "choose", kind=INT)
        if min(proportion or 0, choose or 0, repeat or 0) < 0:
            raise RecipeError(f"llm-foundry YAML: stream {key} has a negative proportion, choose or repeat; fix it")
        size = None if proportion is not None else samples(_join(local or folder, split))
        if size is not None:
            subsets[key]["tokens"] = size * seq_len
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
    tokenizer = _get(cfg, "tokenizer", "name", kind=STR)
    if not tokenizer:
        raise RecipeError("llm-foundry YAML: tokenizer.name is missing; the recipe needs the tokenizer")
    if not os.path.isdir(tokenizer):
        notes.append(f"tokenizer: {tokenizer} is not a local folder; ablate is offline, save it and point here")
    model = _get(cfg, "model", kind=MAP) or {}
    kind = _get(cfg, "model", "name", kind=STR)
    if kind == "mpt_causal_lm":
        given = {key: _get(cfg, "model", key, kind=want) for key, want in MPT_FIELDS.items()}
        config = {"model_type": "mpt", **{key: value for key, value in given.items() if value is not None}}
        spec: dict[str, Any] = {"config": config}
        if all(given[key] for key in ("d_model", "n_layers", "vocab_size")):
            spec["params"] = _mpt_params(cfg)
        dropped = sorted(set(model) - set(MPT_FIELDS) - {"name", "init_device"})
        if dropped:
            notes.append(f"model: {', '.join(dropped)} kept by the checkpoint, not the recipe (FLOPs use the rest)")
        return spec, tokenizer
    if kind == "hf_causal_lm":
        source = _get(cfg, "model", "pretrained_model_name_or_path", kind=STR)
        notes.append(
            f"model: hf_causal_lm {source}; set model.params (or its config's hidden_size, num_hidden_layers, "
            "vocab_size) for the cost estimate"
        )
        return {"config": dict(_get(cfg, "model", "config_overrides", kind=MAP) or {})}, tokenizer
    notes.append(f"model: {kind} is not translated; set model.params for the cost estimate")
    return {}, tokenizer


def _mpt_params(cfg: dict[str, Any]) -> int:
    """MPT's parameters, as llm-foundry builds it: per block Wqkv and out (4·d²) and the MLP (2·ratio·d²),
    two LayerNorms, and biases on all of them unless no_bias; a final LayerNorm; tied embeddings, plus
    learned positions unless ALiBi replaces them."""
    d, layers, vocab = (int(_get(cfg, "model", key, kind=INT)) for key in ("d_model", "n_layers", "vocab_size"))
    ratio = _get(cfg, "model", "expansion_ratio", kind=NUMBER) or 4
    hidden = int(ratio * d)  # llm-foundry's MLP width
    bias = not _get(cfg, "model", "no_bias", kind=BOOL)
    norm = 2 * d if bias else d
    block = 4 * d * d + 2 * hidden * d + 2 * norm + (4 * d + hidden + d if bias else 0)
    alibi = bool(_get(cfg, "model", "attn_config", "alibi", kind=BOOL))
    learned = _get(cfg, "model", "learned_pos_emb", kind=BOOL) is not False
    positions = (_get(cfg, "model", "max_seq_len", kind=INT) or 2048) * d if learned and not alibi else 0
    return layers * block + norm + vocab * d + positions


def _tokens(value: Any, field: str, seq_len: int, batch: int, notes: list[str]) -> int | None:
    """A Composer duration (e.g. 4800ba, 2.5e9tok, 1000sp) in tokens; None with a note where it has none.
    A bare integer is Composer's epochs."""
    match = DURATION.match(f"{value}ep" if isinstance(value, int) else value)
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
    duration = _get(cfg, "max_duration", kind=(int, str), required=True)
    total = _tokens(duration, "max_duration", seq_len, batch, notes)
    if total is None:
        raise RecipeError(
            f"llm-foundry YAML: max_duration is {duration!r}; training.total_tokens needs it in ba, tok or sp "
            "(epochs depend on the dataset's size), so write the run's length in batches"
        )
    training: dict[str, Any] = {"total_tokens": total, "phase": PHASE, "batch_size": batch}
    notes.append(f"training.phase: {PHASE} is a default (the paper found 10–20% of the run best); set your own")
    micro = _get(cfg, "device_train_microbatch_size", kind=(int, str))
    if isinstance(micro, int):
        training["microbatch_size"] = micro
    elif micro is not None:
        notes.append(f"device_train_microbatch_size: '{micro}' is not a number; training.microbatch_size left out")
    seed = _get(cfg, "seed", kind=INT)
    seed = _get(cfg, "global_seed", kind=INT) if seed is None else seed
    if seed is not None:
        training["seed"] = seed
    precision = _get(cfg, "precision", kind=STR)
    if precision in PRECISIONS:
        training["precision"] = precision
    elif precision is not None:
        notes.append(f"precision: {precision} is not one of {', '.join(PRECISIONS)}; fp32 is used")
    training.update(_optimizer(cfg, notes))
    training.update(_schedule(cfg, seq_len, batch, notes))
    clipping = ("algorithms", "gradient_clipping")
    if _get(cfg, *clipping, kind=MAP):
        kind = _get(cfg, *clipping, "clipping_type", kind=STR) or "norm"
        threshold = _get(cfg, *clipping, "clipping_threshold", kind=NUMBER)
        if kind == "norm" and threshold is not None:
            training["grad_clip_norm"] = float(threshold)
        else:
            notes.append(f"algorithms.gradient_clipping: {kind} clipping is not translated")
    return training


def _optimizer(cfg: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """llm-foundry's optimizer block: the registry's names are the recipe's; its other keywords are args."""
    optimizer = _get(cfg, "optimizer", kind=MAP)
    if not optimizer:
        return {}
    name = _get(cfg, "optimizer", "name", kind=STR)
    if name not in BUILT_OPTIMIZERS + FOUNDRY_OPTIMIZERS:
        notes.append(f"optimizer: {name} is not one ablate builds; decoupled_adamw is used, and its settings dropped")
        return {"optimizer": {"name": "decoupled_adamw"}}
    out: dict[str, Any] = {"name": name}
    for key in ("lr", "weight_decay", "eps"):
        value = _get(cfg, "optimizer", key, kind=NUMBER)
        if value is not None:
            out[key] = float(value)
    betas = _get(cfg, "optimizer", "betas", kind=LIST)
    if betas is not None:
        if len(betas) != 2:
            raise RecipeError(f"llm-foundry YAML: optimizer.betas is {betas!r}, not two numbers; fix it")
        out["betas"] = [float(_get({"betas": {"0": beta}}, "betas", "0", kind=NUMBER)) for beta in betas]
    args = {key: value for key, value in optimizer.items() if key not in ("name", *out, "betas")}
    if args:
        out["args"] = args
        notes.append(f"training.optimizer.args: {', '.join(sorted(args))} passed to {name} as llm-foundry does")
    return {"optimizer": out}


def _schedule(cfg: dict[str, Any], seq_len: int, batch: int, notes: list[str]) -> dict[str, Any]:
    if not _get(cfg, "scheduler", kind=MAP):
        return {}
    name = _get(cfg, "scheduler", "name", kind=STR)
    schedule = SCHEDULES.get(str(name))
    if schedule is None:
        notes.append(f"scheduler: {name} is not translated; the phase decays linearly to 0")
        return {}
    out: dict[str, Any] = {"schedule": {"name": schedule}}
    if schedule != "constant":
        out["schedule"]["final_ratio"] = float(_get(cfg, "scheduler", "alpha_f", kind=NUMBER) or 0.0)
    warmup = _get(cfg, "scheduler", "t_warmup", kind=(int, str))
    if warmup is not None:
        tokens = _tokens(warmup, "scheduler.t_warmup", seq_len, batch, notes)
        if tokens is not None:
            out["warmup_tokens"] = tokens
    return out


def _checkpoints(cfg: dict[str, Any], run: str | None, platform: str | None, notes: list[str]) -> dict[str, Any]:
    """save_folder → the run's latest checkpoint as the study's start, named as llm-foundry names it:
    save_latest_filename, else latest-sharded-rank0 for sharded FSDP checkpoints, else latest-rank0.pt."""
    folder = _get(cfg, "save_folder", kind=STR)
    if not folder:
        notes.append("save_folder: none; add the run's checkpoint at (1 − phase) under checkpoints and set start")
        return {}
    sharded = _get(cfg, "fsdp_config", "state_dict_type", kind=STR) == "sharded"
    latest = _get(cfg, "save_latest_filename", kind=STR) or (
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
