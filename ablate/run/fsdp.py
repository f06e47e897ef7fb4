"""Sharded training (FSDP2): Composer's `parallelism_config` for a recipe's `training.fsdp`, and the
gradient average gloo leaves out on CPU."""

from __future__ import annotations

from typing import Any

import torch
from composer import Algorithm, Event, Logger, State
from composer.utils.parallelism import FSDP2Config

from ablate.errors import AblateError
from ablate.recipe import Fsdp


def parallelism(fsdp: Fsdp | None, model: torch.nn.Module) -> dict[str, Any] | None:
    """Composer's `parallelism_config` for a recipe's `training.fsdp` block (FSDP2), None without one.

    FSDP2 shards what the model's `fsdp_wrap_fn` names (and checkpoints the activations of what
    its `activation_checkpointing_fn` names). llm-foundry's models define both; for a Hugging Face
    model both name the blocks its class lists in `_no_split_modules` (LlamaDecoderLayer, ...), so
    only one block's weights are ever gathered at a time.
    """
    if fsdp is None:
        return None
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    for hook in ("fsdp_wrap_fn", "activation_checkpointing_fn"):
        if hasattr(model, hook):
            continue
        if not blocks:
            raise AblateError(
                f"training.fsdp: {type(model).__name__} names no transformer block (_no_split_modules) to shard "
                "by; give the model an fsdp_wrap_fn, or remove training.fsdp"
            )
        setattr(model, hook, lambda module: type(module).__name__ in blocks)
    return {"fsdp": FSDP2Config(**fsdp.model_dump())}


class GlooShardAverage(Algorithm):
    """Averages FSDP2's gradients over the processes where gloo (the CPU backend) only summed them.

    FSDP2 reduce-scatters fp32 and bf16 gradients with ReduceOp.AVG, and torch 2.7's gloo
    `reduce_scatter_tensor` treats AVG as SUM (two ranks holding 1 and 2 receive 3, not 1.5). A
    sharded run on CPU then stepped with world-size times the gradients of the same run unsharded:
    Adam hides the scale, but gradient clipping and an optimizer state carried over from an
    unsharded checkpoint do not (the tiny study's loss curve left the unsharded one at step 2).
    Runs once per batch, after every microbatch's reduction and before clipping (Composer runs
    AFTER_ events' algorithms in reverse order) and the optimizer step. NCCL averages correctly.
    """

    def match(self, event: Event, state: State) -> bool:
        distributed = torch.distributed
        return (
            event == Event.AFTER_TRAIN_BATCH
            and distributed.is_initialized()
            and distributed.get_backend() == "gloo"
            and distributed.get_world_size() > 1
        )

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        world = torch.distributed.get_world_size()
        for parameter in state.model.parameters():
            if parameter.grad is not None:
                parameter.grad.div_(world)
