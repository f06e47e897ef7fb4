"""Training mechanics: one Composer `Trainer` call for the shared pretraining and for every phase.

    from ablate.run.start import load_start
    from ablate.run.train import fit, phase_schedule
    start = load_start("results/demo/pretrain/checkpoints/latest-rank0.pt", weights=False)
    fit(start, recipe, mixture={"prose": 0.5, "code": 0.5}, seed=0, folder=Path("out"), run_name="demo-x",
        schedule=phase_schedule(recipe, start), end_tokens=start.tokens + recipe.training.phase_tokens)

What goes in: a Hugging Face model (ablate.run.start), a `StreamingDataset` whose streams are
weighted by a mixture (ablate.run.stream), the recipe's optimizer (built here), and an LR that is a
function of the absolute tokens seen, set before every batch (ablate.run.schedule). The Trainer's
other parts have a module each: the loss log (ablate.run.train_log), the checkpoints kept at phase
starts (ablate.run.kept), FSDP2 (ablate.run.fsdp) and the experiment trackers (ablate.run.trackers).
A job body needs only this module (`__all__`: what it calls). The folder and status bookkeeping
around a run lives in `ablate.run.worker`; this module only trains.

Heavy imports (torch, composer, streaming, transformers) sit at module level: import this module
only inside the commands that train.
"""

from __future__ import annotations

import importlib
import inspect
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from composer import Algorithm, Trainer
from composer.algorithms import GradientClipping
from composer.models import HuggingFaceModel
from composer.optim import DecoupledAdamW, DecoupledSGDW
from composer.utils import dist as composer_dist

from ablate.errors import AblateError
from ablate.plan.model import RECIPE_NAMES, optimizer_refusal
from ablate.recipe import BUILT_OPTIMIZERS, Optimizer, Recipe
from ablate.run.dist import join_process_group, rank
from ablate.run.export import gather_weights, write_model
from ablate.run.fsdp import GlooShardAverage, parallelism
from ablate.run.kept import KEPT, KeepAt, drop_superseded, kept_checkpoint
from ablate.run.schedule import Schedule, TokenLR, phase_schedule, pretrain_schedule
from ablate.run.start import Start, in_form, resume_problem
from ablate.run.stream import build_dataloader, per_device_batch
from ablate.run.trackers import trackers
from ablate.run.train_log import LOG, TrainLog
from ablate.study.job import CACHE, LATEST, STARTS

__all__ = [
    "FitResult",
    "Schedule",
    "fit",
    "kept_checkpoint",
    "optimizer_class",
    "parallelism",
    "phase_schedule",
    "pretrain_schedule",
    "recipe_name",
]


def _warm_up() -> None:
    """Pay at import what Composer looks up in every Trainer and HuggingFaceModel (~2.7 s on 2 cores).

    Both lookups are cached for the process: the CPU model (Composer's lru_cache around a py-cpuinfo
    subprocess) and the causal-LM class registry (importing every model class transformers knows).
    Jobs forked from the local launcher's server, which imports this module, inherit both.
    """
    from composer.utils.collect_env import get_cpu_model

    get_cpu_model()
    transformers.MODEL_FOR_CAUSAL_LM_MAPPING.values()


_warm_up()


def _signal_files_per_node() -> None:
    """Give each node's signal files its own node rank, as composer PR #2363 proposes.

    Composer 0.32.1 broadcasts rank 0's signal-file name to every node, so every node's local rank 0
    writes and then removes `._signal_file_node0_*` in the checkpoint folder. On a shared file system
    (the usual cluster set-up) that is one file, and the second node's remove fails: a variant over
    several nodes died in Trainer's autoresume with FileNotFoundError. The waits these files serve are
    within a node, so a name per node keeps their meaning.
    """
    broadcast_name = composer_dist.get_node_signal_file_name
    if getattr(broadcast_name, "per_node", False):
        return

    def per_node(rng: random.Random | None = None) -> str:
        name = broadcast_name(rng)
        return name.replace("._signal_file_node0_", f"._signal_file_node{composer_dist.get_node_rank()}_", 1)

    per_node.per_node = True  # type: ignore[attr-defined]
    composer_dist.get_node_signal_file_name = per_node


_signal_files_per_node()


# ---- the optimizer -------------------------------------------------------------------------


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The class a recipe's optimizer name builds: torch's and Composer's here, the rest from
    llm-foundry's registry (ablate.recipe lists the names), as llm-foundry's own training builds them."""
    built: dict[str, type[torch.optim.Optimizer]] = {
        "decoupled_adamw": DecoupledAdamW, "decoupled_sgdw": DecoupledSGDW, "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
    }  # fmt: skip
    if name in built:
        return built[name]
    registry = _foundry_optimizers()
    if registry is None:
        raise AblateError(
            f"training.optimizer.name: {name} is built by llm-foundry's registry; install llm-foundry beside "
            "ablate (pip install 'ablate[foundry]') or name one of " + ", ".join(BUILT_OPTIMIZERS)
        )
    if name not in registry:
        raise AblateError(
            f"training.optimizer.name: {name} is not in the installed llm-foundry's registry; name one of "
            + ", ".join(sorted(set(built) | set(registry)))
        )
    return registry[name]


def _foundry_optimizers() -> dict[str, type[torch.optim.Optimizer]] | None:
    """llm-foundry's optimizer registry (its own and its plugins'), None where it is not installed."""
    try:
        importlib.import_module("llmfoundry.optim")  # registers llm-foundry's own optimizers
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "llmfoundry":
            return None
        raise
    return dict(importlib.import_module("llmfoundry.registry").optimizers.get_all())


def recipe_name(class_name: str) -> str | None:
    """The recipe name that builds the optimizer class a checkpoint's state is keyed by, if any: one
    ablate knows by name (what plan reads too), else one a plugin adds to llm-foundry's registry."""
    if class_name in RECIPE_NAMES:
        return RECIPE_NAMES[class_name]
    registry = _foundry_optimizers() or {}
    return {built.__qualname__: name for name, built in registry.items() if isinstance(built, type)}.get(class_name)


def _optimizer(model: torch.nn.Module, spec: Optimizer) -> torch.optim.Optimizer:
    """The recipe's optimizer over the model's parameters: lr, and betas, eps and weight decay where
    the class takes them (SGD takes no betas), and `args`, which must be keywords the class takes."""
    built = optimizer_class(spec.name)
    takes = set(inspect.signature(built).parameters) - {"self", "params"}
    wrong = sorted(set(spec.args) - takes)
    if wrong or (spec.eps is not None and "eps" not in takes):
        field = f"args.{wrong[0]}" if wrong else "eps"
        raise AblateError(
            f"training.optimizer.{field}: {built.__name__} takes no {field.removeprefix('args.')}; it takes "
            f"{', '.join(sorted(takes)) or 'nothing but the parameters'}"
        )
    settings = {"lr": spec.lr, "betas": spec.betas, "eps": spec.eps, "weight_decay": spec.weight_decay}
    kwargs = {key: value for key, value in settings.items() if key in takes and value is not None}
    try:
        return built(model.parameters(), **kwargs, **spec.args)
    except Exception as exc:  # torch raises ValueError, llm-foundry's Lion a bare Exception
        raise AblateError(f"training.optimizer: {built.__name__} refused its settings ({exc}); fix them") from None


# ---- the run -------------------------------------------------------------------------------

# A new mix, and the phase's own seed: neither the old data position nor the old RNG carries over.
IGNORED = ("state/dataset_state", "rng")


def _algorithms(recipe: Recipe, sharded: bool) -> list[Algorithm]:
    """Gradient clipping if the recipe asks for it, and gloo's missing average under FSDP."""
    clip = recipe.training.grad_clip_norm
    algorithms: list[Algorithm] = [GradientClipping("norm", clip)] if clip else []
    return [*algorithms, GlooShardAverage()] if sharded else algorithms  # listed last: runs first


@dataclass
class FitResult:
    began: int  # absolute tokens when this process started training (past the start when it resumed)
    tokens: int  # tokens trained in this process
    setup_seconds: float  # data loader and Trainer construction (checkpoint loading included)
    seconds: float  # wall time of the training loop itself
    final_loss: float | None
    samples_per_subset: dict[str, int]


def fit(
    start: Start,
    recipe: Recipe,
    *,
    mixture: dict[str, float],
    seed: int,
    folder: Path,
    run_name: str,
    schedule: Schedule,
    end_tokens: int,
    on_progress: Callable[[int], None] | None = None,
    params: dict[str, Any] | None = None,
    export: Path | None = None,
    keep_at: list[int] | None = None,
) -> FitResult:
    """Train `start` on `mixture` until `end_tokens` (absolute), checkpointing into folder/checkpoints.

    From a Composer checkpoint the timestamp and the optimizer state carry over (unless
    training.optimizer.state: fresh) and its dataset state is dropped (the phase reads a new mix).
    A checkpoint of this run already in folder/checkpoints wins (autoresume), dataset position and
    optimizer state included, so an interrupted run ends where an uninterrupted one would.
    `params` describe the run to the recipe's experiment trackers; `export`: where rank 0 writes
    the trained model as a Hugging Face folder (ablate.run.export).
    `keep_at`: token counts at which a checkpoint is also kept for good, in folder/KEPT as
    tok<tokens>.pt (the first batch end at or past each count): a phase study's start points.
    """
    began_setup = time.perf_counter()
    training = recipe.training
    model_class = type(start.model)  # FSDP2 swaps the class of the model it shards for a wrapper
    sharding = parallelism(training.fsdp, start.model)
    problem = resume_problem(folder / LATEST, recipe)
    if problem:
        raise AblateError(problem)
    optimizer = _optimizer(start.model, training.optimizer)
    fresh = training.optimizer.state == "fresh"
    saved = start.optimizer
    if start.load_path and saved and not fresh and saved != type(optimizer).__qualname__:
        # Composer keys optimizer state by the optimizer's class name: another class cannot take it over.
        # Plan refuses it already where it knows both classes by name; here, a plugin's too.
        built = type(optimizer).__name__
        raise AblateError(optimizer_refusal(start.load_path, saved, training.optimizer.name, built, recipe_name(saved)))
    join_process_group()  # before streaming's dataset, which would make (and destroy) a group of its own
    load_path = in_form(start.load_path, recipe, folder.parent / STARTS) if start.load_path else None
    batch_tokens = training.batch_size * recipe.seq_len
    steps = math.ceil((end_tokens - start.tokens) / batch_tokens)
    if steps <= 0:
        raise AblateError(f"checkpoint has seen {start.tokens:,} tokens, past the end {end_tokens:,}; nothing to train")
    loader, drawn = build_dataloader(
        recipe, mixture, seed=seed, samples=steps * training.batch_size, cache=folder.parent / CACHE
    )
    every = training.checkpoint_every_tokens or end_tokens
    log = TrainLog(folder / LOG, every, on_progress)
    trainer = Trainer(
        model=HuggingFaceModel(start.model, tokenizer=start.tokenizer, use_logits=True, metrics=[]),
        train_dataloader=loader,
        max_duration=f"{end_tokens}tok",
        optimizers=optimizer,
        callbacks=[TokenLR(schedule), log, *([KeepAt(folder / KEPT, keep_at)] if keep_at else [])],
        algorithms=_algorithms(recipe, sharded=sharding is not None),
        load_path=load_path,
        # state: fresh drops the optimizer's state too (its moments and its saved hyperparameters).
        load_ignore_keys=[*IGNORED, *(["state/optimizers"] if fresh else [])] if load_path else None,
        load_progress_bar=False,
        save_folder=str(folder / "checkpoints"),
        save_interval=f"{every}tok",
        save_num_checkpoints_to_keep=1,
        save_overwrite=True,  # a save cut short by a kill leaves a file the resumed run must replace
        autoresume=True,
        run_name=run_name,
        spin_dataloaders=False,
        seed=seed,
        precision=training.precision,
        device_train_microbatch_size=training.microbatch_size or per_device_batch(recipe),
        progress_bar=False,
        log_to_console=False,
        loggers=trackers(recipe),
        parallelism_config=sharding,
    )
    if params:
        trainer.logger.log_hyperparameters(params)
    timestamp = trainer.state.timestamp
    if int(timestamp.token) == start.tokens and int(timestamp.batch_in_epoch) > 0:
        # Loaded mid-epoch of another dataset: the phase's data is a new epoch, from its first sample.
        trainer.state.timestamp = timestamp.to_next_epoch()
    began, tick = int(trainer.state.timestamp.token), time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - tick
    tokens = int(trainer.state.timestamp.token) - began
    if export is not None:
        weights = gather_weights(start.model, sharded=sharding is not None)
        if weights is not None:
            write_model(model_class, start.model.config, weights, start.tokenizer, export)
    trainer.close()
    if rank() == 0:
        drop_superseded(folder / LATEST)
    return FitResult(began, tokens, tick - began_setup, seconds, log.last_loss, drawn)
