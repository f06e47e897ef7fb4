"""Identity of results: content hashes of everything that decides what a job produces. Pure.

    train_hash(recipe, mixture, seed=0, start="ckpt-800B")         # a variant's trained weights
    train_hash(recipe, normalize(recipe.mixes.base), phase=False)  # the shared pretraining
    result_hash(train, recipe.eval)                          # a variant's scores: weights + evaluation
    start_hash("ckpt-800B", recipe.eval)                     # the start checkpoint's scores

Results are stored under these hashes and a folder whose recorded hash differs from the plan's is
never reused (ablate.study.job decides what happens to it). One function, `train_hash`, lists the
inputs of training for the pretraining and for every phase alike, so the two cannot drift apart.
Left out on purpose: `checkpoint_every_tokens` (where checkpoints are saved does not change the
weights: a resumed run ends bit-identical), for the pretraining the phase's LR `schedule`, and of
`fsdp` everything but `mixed_precision`: sharding lays the same computation out over the devices
(like the world size, which is not hashed either; on the tiny study its loss curve matches the
unsharded run's to float rounding). Without an `fsdp` block the hash is what it was before the
block existed, so adding the field changed no study's results.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ablate.errors import AblateError
from ablate.names import SCALE_MARK
from ablate.recipe import Eval, Recipe
from ablate.study.job import CACHE, PRETRAIN, START, STARTS

# A variant's name is its folder's name in results/<study>/, beside the study's own entries (ablate.study.store).
STUDY_ENTRIES = {
    START, PRETRAIN, STARTS, CACHE, "slurm", "plan.json", "checkpoints.json", "suggested.json", "demo_timings.json",
    "report.md", "report.csv", "report.json", "deltas.png", "phases.png", "scale.png", "fit.md", "fit.json", "fit.png",
}  # fmt: skip

NOT_TRAINING = {"checkpoint_every_tokens", "fsdp"}  # bookkeeping, not an input of the weights
# Fields added after studies had results, hashed only when set off their default: adding them
# turned no finished result stale, nor made one be evaluated again.
LATER_FIELDS: dict[str, Any] = {
    "schedule": {"peak": "recipe", "warmup_tokens": 0},
    "optimizer": {"eps": None, "args": {}, "state": "checkpoint"},
}
LATER_EVAL: dict[str, Any] = {"backend": "hf", "model_args": {}, "heldout": {}, "heldout_sequences": None}


def content_hash(payload: Any) -> str:
    """Short sha256 of sorted-key JSON: equal inputs, equal hash, on any machine."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_hash(
    recipe: Recipe, mixture: dict[str, float], *, phase: bool = True, seed: int | None = None, start: str | None = None
) -> str:
    """Hash of everything that changes the weights a training run produces, and nothing else.

    `phase`: a continuation from `start` (the checkpoint's name or path) with data-order `seed`;
    False for the pretraining, from scratch, whose LR is the warm-up, so the phase `schedule` is not
    one of its inputs (its seed is training.seed, inside `training`).
    """
    excluded = NOT_TRAINING | (set() if phase else {"schedule"})
    inputs: dict[str, Any] = {
        "mixture": mixture,
        "locations": {s: recipe.subsets[s].location for s in sorted(mixture)},
        "seq_len": recipe.seq_len,
        "tokenizer": recipe.tokenizer,
        "model": recipe.model.model_dump(mode="json"),
        "training": _defaults_dropped(recipe.training.model_dump(mode="json", exclude=excluded)),
    }
    if recipe.training.fsdp is not None:
        inputs["fsdp_mixed_precision"] = recipe.training.fsdp.mixed_precision
    if phase:
        inputs |= {"seed": seed, "checkpoint": start}
    return content_hash(inputs)


def _defaults_dropped(training: dict[str, Any]) -> dict[str, Any]:
    for block, defaults in LATER_FIELDS.items():
        if block in training:
            training[block] = _off_default(training[block], defaults)
    return training


def _off_default(fields: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key not in defaults or defaults[key] != value}


def result_hash(train: str, evaluation: Eval) -> str:
    """A variant's results: its trained weights (by train_hash) evaluated under these settings."""
    return content_hash({"train": train, "eval": _evaluation(evaluation)})


def start_hash(checkpoint: str | None, evaluation: Eval) -> str:
    """The start checkpoint's results: that checkpoint evaluated under these settings (its lm-eval
    scores only: held-out loss is measured on the variants)."""
    tasks = evaluation.model_copy(update={"heldout": {}, "heldout_sequences": None})
    return content_hash({"checkpoint": checkpoint, "eval": _evaluation(tasks)})


def _evaluation(evaluation: Eval) -> dict[str, Any]:
    return _off_default(evaluation.model_dump(mode="json"), LATER_EVAL)


def check_name(name: str, what: str, fix: str) -> str:
    """`name` if it can name a variant: one folder inside the study folder (not a path out of it, nor
    one of the study's own entries); otherwise one AblateError line naming `what` and the `fix`. The
    plan adds the phase (`@p10`) and seed (`.s1`) suffixes itself, so a given name holds no '@'."""
    if not name:
        problem = "is empty"
    elif "/" in name or "\\" in name or "\0" in name:
        problem = "holds a path separator"
    elif name.startswith(".") or ".." in name:
        problem = "starts with '.' or holds '..'"
    elif SCALE_MARK in name:
        problem = f"holds '{SCALE_MARK}', which marks a phase study's phase (no-math@p10)"
    elif name in STUDY_ENTRIES:
        problem = "is one of the study folder's own entries"
    else:
        return name
    raise AblateError(f"{what} {name!r}: {problem}; {fix}")
