"""Identity of results: content hashes of everything that decides what a job produces. Pure.

    train_hash(recipe, mixture, seed=0, start="ckpt-800B")         # a variant's trained weights
    train_hash(recipe, normalize(recipe.mixes.base), phase=False)  # the shared pretraining
    result_hash(train, recipe.eval)                          # a variant's scores: weights + evaluation
    start_hash("ckpt-800B", recipe.eval)                     # the start checkpoint's scores

Results are stored under these hashes and a folder whose recorded hash differs from the plan's is
never reused (ablate.job decides what happens to it). One function, `train_hash`, lists the
inputs of training for the pretraining and for every phase alike, so the two cannot drift apart.
Left out on purpose: `checkpoint_every_tokens` (where checkpoints are saved does not change the
weights: a resumed run ends bit-identical) and, for the pretraining, the phase's LR `schedule`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ablate.recipe import Eval, Recipe

NOT_TRAINING = {"checkpoint_every_tokens"}  # bookkeeping, not an input of the weights


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
        "training": recipe.training.model_dump(mode="json", exclude=excluded),
    }
    if phase:
        inputs |= {"seed": seed, "checkpoint": start}
    return content_hash(inputs)


def result_hash(train: str, evaluation: Eval) -> str:
    """A variant's results: its trained weights (by train_hash) evaluated under these settings."""
    return content_hash({"train": train, "eval": evaluation.model_dump(mode="json")})


def start_hash(checkpoint: str | None, evaluation: Eval) -> str:
    """The start checkpoint's results: that checkpoint evaluated under these settings."""
    return content_hash({"checkpoint": checkpoint, "eval": evaluation.model_dump(mode="json")})
