"""Training mechanics: one Composer `Trainer` call for the shared pretraining and for every phase.

    from ablate.run.start import load_start
    from ablate.run.train import fit, phase_schedule
    start = load_start("results/demo/pretrain/checkpoints/latest-rank0.pt", weights=False)
    fit(start, recipe, mixture={"prose": 0.5, "code": 0.5}, seed=0, folder=Path("out"), run_name="demo-x",
        schedule=phase_schedule(recipe, start), end_tokens=start.tokens + recipe.training.phase_tokens)

What goes in: a Hugging Face model (ablate.run.start), a `StreamingDataset` whose streams are
weighted by a mixture (ablate.run.stream), and an LR that is a function of
the absolute tokens seen, set before every batch. Because the LR depends only on
`state.timestamp.token`, a run resumed by Composer's autoresume continues the same curve exactly.
The folder and status bookkeeping around a run lives in `ablate.run.worker`; this module only trains.

Heavy imports (torch, composer, streaming, transformers) sit at module level: import this module
only inside the commands that train.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from composer import Algorithm, Callback, Event, Logger, State, Trainer
from composer.algorithms import GradientClipping
from composer.loggers import WandBLogger
from composer.models import HuggingFaceModel
from composer.optim import DecoupledAdamW, DecoupledSGDW
from composer.utils import dist as composer_dist
from composer.utils.checkpoint import save_checkpoint
from composer.utils.parallelism import FSDP2Config

from ablate.errors import AblateError
from ablate.job import LATEST, STARTS
from ablate.recipe import BUILT_OPTIMIZERS, Fsdp, Optimizer, Recipe
from ablate.run.dist import join_process_group, rank
from ablate.run.export import gather_weights, write_model
from ablate.run.start import Start, in_form, resume_problem
from ablate.run.stream import build_dataloader, per_device_batch

LOG = "train_log.jsonl"
FLUSH_SECONDS = 2.0  # how often the loss log and the progress figure reach the disk


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
# ---- learning rate -------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """LR as a function of absolute tokens: `shape` over [start, start + length], flat outside.

    'warmup' rises linearly from 0 to the peak (pretraining, then stable at the peak);
    'constant', 'linear' and 'cosine' go from the peak to peak × final_ratio (the phase), after
    a linear rise over the first `warmup` tokens when there is one.
    """

    peak: float
    start: int
    length: int
    shape: str
    final_ratio: float = 0.0
    warmup: int = 0  # phase shapes: rise from 0 to the peak over the first tokens, then the shape

    def __call__(self, tokens: int) -> float:
        if self.warmup > 0 and self.shape != "warmup" and tokens < self.start + self.warmup:
            return self.peak * max(tokens - self.start, 0) / self.warmup
        begin, length = self.start + self.warmup, self.length - self.warmup
        x = min(max((tokens - begin) / length, 0.0), 1.0) if length > 0 else 1.0
        r = self.final_ratio
        if self.shape == "warmup":
            return self.peak * x
        if self.shape == "constant":
            return self.peak
        if self.shape == "linear":
            return self.peak * (1.0 - (1.0 - r) * x)
        if self.shape == "cosine":
            return self.peak * (r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * x)))
        raise ValueError(f"unknown schedule shape {self.shape}")


def pretrain_schedule(recipe: Recipe) -> Schedule:
    return Schedule(recipe.training.optimizer.lr, 0, recipe.training.warmup_tokens, "warmup")


def phase_schedule(recipe: Recipe, start: Start) -> Schedule:
    """The phase's LR from where `start` stands: its peak is optimizer.lr or, with `peak:
    checkpoint`, the LR the start checkpoint's optimizer was at (ablate.recipe.Schedule says when),
    which a fresh optimizer state does not take over."""
    training = recipe.training
    spec = training.schedule
    peak = training.optimizer.lr
    if spec.peak == "checkpoint":
        if training.optimizer.state == "fresh":
            # An LR suits the optimizer that ran at it (Lion's is 3-10x smaller than AdamW's), and
            # `fresh` is there to switch optimizer: the new one's peak is the recipe's to say.
            raise AblateError(
                "training.schedule.peak: checkpoint takes the LR of the optimizer state that "
                "training.optimizer.state: fresh drops; set peak: recipe and the new optimizer's lr"
            )
        if start.lr is None:
            raise AblateError(
                f"training.schedule.peak: checkpoint, but the start {start.load_path or '(a model folder)'} holds no "
                "optimizer LR; start from a Composer checkpoint or set peak: recipe"
            )
        peak = start.lr
    return Schedule(peak, start.tokens, training.phase_tokens, spec.name, spec.final_ratio, spec.warmup_tokens)


class TokenLR(Callback):
    """Sets the LR from the tokens seen before each batch, and leaves the final value in place.

    Composer's own schedulers step before the timestamp advances, so they lag one batch; setting
    the LR here at FIT_START and after each BATCH_END makes batch k use schedule(tokens before k).
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def _apply(self, state: State) -> None:
        lr = self.schedule(int(state.timestamp.token))
        for optimizer in state.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def fit_start(self, state: State, logger: Logger) -> None:
        self._apply(state)

    def batch_end(self, state: State, logger: Logger) -> None:
        self._apply(state)


class TrainLog(Callback):
    """Appends {"tokens", "loss", "lr"} per step to train_log.jsonl, buffered, and reports progress.

    `lr` is the schedule's value at `tokens`: the LR of the next step. The loss is the float
    Composer already computed for the step, so logging adds no device sync. Lines reach the disk
    every FLUSH_SECONDS, before every checkpoint (so a checkpoint never covers steps the log lacks)
    and at the end. On resume, lines past the restored timestamp (steps to be replayed) are dropped.
    """

    def __init__(self, path: Path, checkpoint_every: int, on_progress: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.checkpoint_every = checkpoint_every
        self.on_progress = on_progress
        self.buffer: list[str] = []
        self.last_flush = time.monotonic()
        self.last_loss: float | None = None

    def fit_start(self, state: State, logger: Logger) -> None:
        if rank() != 0:
            return
        done = int(state.timestamp.token)
        kept = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["tokens"] <= done:
                        kept.append(line + "\n")
                except (json.JSONDecodeError, KeyError):
                    break  # a line cut by a crash: nothing after it is trustworthy
        from ablate.store import write_atomic

        write_atomic(self.path, "".join(kept))

    def batch_end(self, state: State, logger: Logger) -> None:
        if rank() != 0:
            return
        losses = state.total_loss_dict
        self.last_loss = float(sum(losses.values())) if losses else None
        lr = state.optimizers[0].param_groups[0]["lr"]
        tokens, before = int(state.timestamp.token), int(state.previous_timestamp.token)
        self.buffer.append(json.dumps({"tokens": tokens, "loss": self.last_loss, "lr": lr}) + "\n")
        checkpoint_next = tokens // self.checkpoint_every != before // self.checkpoint_every
        if checkpoint_next or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush(tokens)

    def fit_end(self, state: State, logger: Logger) -> None:
        if rank() == 0:
            self.flush(int(state.timestamp.token))

    def flush(self, tokens: int) -> None:
        with self.path.open("a") as handle:
            handle.writelines(self.buffer)
        self.buffer.clear()
        self.last_flush = time.monotonic()
        if self.on_progress:
            self.on_progress(tokens)


# ---- the run -------------------------------------------------------------------------------

# A new mix, and the phase's own seed: neither the old data position nor the old RNG carries over.
IGNORED = ("state/dataset_state", "rng")
KEPT = "kept"  # a run's checkpoints kept at given token counts (the pretraining's phase starts)


class KeepAt(Callback):
    """Also writes a checkpoint at the first batch end at or past each of `tokens`, into `folder` as
    tok<tokens>.pt, and keeps them all (the run's own saver keeps only the latest). Written under a
    `partial-` name and renamed when every rank is done, so a kill never leaves a cut file there."""

    def __init__(self, folder: Path, tokens: list[int]) -> None:
        self.folder, self.tokens = folder, tokens

    def batch_checkpoint(self, state: State, logger: Logger) -> None:
        now, before = int(state.timestamp.token), int(state.previous_timestamp.token)
        if not any(before < t <= now for t in self.tokens):
            return
        target = self.folder / f"tok{now}.pt"
        partial = target.with_name("partial-" + target.name)  # Composer reads the format off the suffix
        self.folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(state, str(partial))
        composer_dist.barrier()
        if rank() == 0:
            partial.replace(target)


def kept_checkpoint(folder: Path, tokens: int, batch_tokens: int) -> Path | None:
    """The checkpoint `keep_at` kept for `tokens` under folder/KEPT (within one batch past it), None
    if there is none yet."""
    found = sorted(
        (int(path.stem.removeprefix("tok")), path)
        for path in (folder / KEPT).glob("tok*.pt")
        if path.stem.removeprefix("tok").isdigit()
    )
    return next((path for count, path in found if tokens <= count < tokens + batch_tokens), None)


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
    """The recipe name that builds the optimizer class a checkpoint's state is keyed by, if any."""
    names = {optimizer_class(name).__qualname__: name for name in BUILT_OPTIMIZERS}
    if class_name not in names:
        registry = _foundry_optimizers() or {}
        names |= {built.__qualname__: name for name, built in registry.items() if isinstance(built, type)}
    return names.get(class_name)


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


def trackers(recipe: Recipe) -> list[Any]:
    """The recipe's experiment trackers as Composer loggers (rank 0 logs). MLflow resumes the run of
    the same name, so an interrupted job stays one run; its system metrics (a monitor process
    sampling the machine) are left off."""
    loggers: list[Any] = []
    if recipe.loggers.mlflow is not None:
        from composer.loggers import MLFlowLogger

        mlflow = recipe.loggers.mlflow
        loggers.append(
            MLFlowLogger(
                experiment_name=mlflow.experiment or recipe.name,
                tracking_uri=mlflow.tracking_uri,
                resume=True,
                log_system_metrics=False,
            )
        )
    if recipe.loggers.wandb is not None:
        wandb = recipe.loggers.wandb
        loggers.append(_WandB(project=wandb.project or recipe.name, entity=wandb.entity, group=recipe.name))
    return loggers


class _WandB(WandBLogger):
    """W&B for metrics only. Composer's autoresume asks every logger for a remote copy of the latest
    checkpoint before the loggers start, and WandBLogger then raises RuntimeError instead of "not
    here"; ablate's checkpoints are in the variant's folder, never in W&B, so the answer is no."""

    def download_file(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("ablate keeps checkpoints in the variant folder")


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
        named = recipe_name(saved)
        fix = f"set training.optimizer.name: {named}" if named else f"ablate builds no {saved}"
        raise AblateError(
            f"start checkpoint {start.load_path}: holds {saved} state, but training.optimizer.name "
            f"{training.optimizer.name} builds {type(optimizer).__name__}; {fix} to continue that state, or set "
            "training.optimizer.state: fresh to keep the weights and start the optimizer anew"
        )
    join_process_group()  # before streaming's dataset, which would make (and destroy) a group of its own
    load_path = in_form(start.load_path, recipe, folder.parent / STARTS) if start.load_path else None
    batch_tokens = training.batch_size * recipe.seq_len
    steps = math.ceil((end_tokens - start.tokens) / batch_tokens)
    if steps <= 0:
        raise AblateError(f"checkpoint has seen {start.tokens:,} tokens, past the end {end_tokens:,}; nothing to train")
    loader, drawn = build_dataloader(
        recipe, mixture, seed=seed, samples=steps * training.batch_size, cache=folder / "stream-cache"
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
    return FitResult(began, tokens, tick - began_setup, seconds, log.last_loss, drawn)
