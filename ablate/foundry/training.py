"""The training block of a recipe from llm-foundry's: the run's length, batch, seed and precision,
its optimizer and scheduler in ablate's terms, gradient clipping; Composer durations read in tokens."""

from __future__ import annotations

import re
from typing import Any

from ablate.errors import RecipeError
from ablate.foundry.fields import INT, LIST, MAP, NUMBER, STR, get
from ablate.recipe import BUILT_OPTIMIZERS, FOUNDRY_OPTIMIZERS

# What llm-foundry's schedulers are in ablate's terms (their `alpha_f` is the final LR ratio).
SCHEDULES = {"cosine_with_warmup": "cosine", "linear_decay_with_warmup": "linear", "constant_with_warmup": "constant"}
PRECISIONS = ("fp32", "amp_bf16", "amp_fp16")
PHASE = 0.2  # the paper's best phase lengths are 10–20% of the run; the user sets their own
DURATION = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*(ba|tok|sp|ep|dur)\s*$")


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


def translate_training(cfg: dict[str, Any], seq_len: int, batch: int, notes: list[str]) -> dict[str, Any]:
    duration = get(cfg, "max_duration", kind=(int, str), required=True)
    total = _tokens(duration, "max_duration", seq_len, batch, notes)
    if total is None:
        raise RecipeError(
            f"llm-foundry YAML: max_duration is {duration!r}; training.total_tokens needs it in ba, tok or sp "
            "(epochs depend on the dataset's size), so write the run's length in batches"
        )
    training: dict[str, Any] = {"total_tokens": total, "phase": PHASE, "batch_size": batch}
    notes.append(f"training.phase: {PHASE} is a default (the paper found 10–20% of the run best); set your own")
    micro = get(cfg, "device_train_microbatch_size", kind=(int, str))
    if isinstance(micro, int):
        training["microbatch_size"] = micro
    elif micro is not None:
        notes.append(f"device_train_microbatch_size: '{micro}' is not a number; training.microbatch_size left out")
    seed = get(cfg, "seed", kind=INT)
    seed = get(cfg, "global_seed", kind=INT) if seed is None else seed
    if seed is not None:
        training["seed"] = seed
    precision = get(cfg, "precision", kind=STR)
    if precision in PRECISIONS:
        training["precision"] = precision
    elif precision is not None:
        notes.append(f"precision: {precision} is not one of {', '.join(PRECISIONS)}; fp32 is used")
    training.update(_optimizer(cfg, notes))
    training.update(_schedule(cfg, seq_len, batch, notes))
    clipping = ("algorithms", "gradient_clipping")
    if get(cfg, *clipping, kind=MAP):
        kind = get(cfg, *clipping, "clipping_type", kind=STR) or "norm"
        threshold = get(cfg, *clipping, "clipping_threshold", kind=NUMBER)
        if kind == "norm" and threshold is not None:
            training["grad_clip_norm"] = float(threshold)
        else:
            notes.append(f"algorithms.gradient_clipping: {kind} clipping is not translated")
    return training


def _optimizer(cfg: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """llm-foundry's optimizer block: the registry's names are the recipe's; its other keywords are args."""
    optimizer = get(cfg, "optimizer", kind=MAP)
    if not optimizer:
        return {}
    name = get(cfg, "optimizer", "name", kind=STR)
    if name not in BUILT_OPTIMIZERS + FOUNDRY_OPTIMIZERS:
        notes.append(f"optimizer: {name} is not one ablate builds; decoupled_adamw is used, and its settings dropped")
        return {"optimizer": {"name": "decoupled_adamw"}}
    out: dict[str, Any] = {"name": name}
    for key in ("lr", "weight_decay", "eps"):
        value = get(cfg, "optimizer", key, kind=NUMBER)
        if value is not None:
            out[key] = float(value)
    betas = get(cfg, "optimizer", "betas", kind=LIST)
    if betas is not None:
        if len(betas) != 2:
            raise RecipeError(f"llm-foundry YAML: optimizer.betas is {betas!r}, not two numbers; fix it")
        out["betas"] = [float(get({"betas": {"0": beta}}, "betas", "0", kind=NUMBER)) for beta in betas]
    args = {key: value for key, value in optimizer.items() if key not in ("name", *out, "betas")}
    if args:
        out["args"] = args
        notes.append(f"training.optimizer.args: {', '.join(sorted(args))} passed to {name} as llm-foundry does")
    return {"optimizer": out}


def _schedule(cfg: dict[str, Any], seq_len: int, batch: int, notes: list[str]) -> dict[str, Any]:
    if not get(cfg, "scheduler", kind=MAP):
        return {}
    name = get(cfg, "scheduler", "name", kind=STR)
    schedule = SCHEDULES.get(str(name))
    if schedule is None:
        notes.append(f"scheduler: {name} is not translated; the phase decays linearly to 0")
        return {}
    out: dict[str, Any] = {"schedule": {"name": schedule}}
    if schedule != "constant":
        out["schedule"]["final_ratio"] = float(get(cfg, "scheduler", "alpha_f", kind=NUMBER) or 0.0)
    warmup = get(cfg, "scheduler", "t_warmup", kind=(int, str))
    if warmup is not None:
        tokens = _tokens(warmup, "scheduler.t_warmup", seq_len, batch, notes)
        if tokens is not None:
            out["warmup_tokens"] = tokens
    return out
