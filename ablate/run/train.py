"""Training mechanics: one Composer `Trainer` call for the shared pretraining and for every phase.

    from ablate.run.train import fit, load_start, phase_schedule
    start = load_start("results/demo/pretrain/checkpoints/latest-rank0.pt", weights=False)
    fit(start, recipe, mixture={"prose": 0.5, "code": 0.5}, seed=0, folder=Path("out"), run_name="demo-x",
        schedule=phase_schedule(recipe, start.tokens), end_tokens=start.tokens + recipe.training.phase_tokens)

What goes in: a Hugging Face model (built from the recipe's config, or rebuilt from a checkpoint
alone), a `StreamingDataset` whose streams are weighted by a mixture, and an LR that is a function of
the absolute tokens seen, set before every batch. Because the LR depends only on
`state.timestamp.token`, a run resumed by Composer's autoresume continues the same curve exactly.
The folder and status bookkeeping around a run lives in `ablate.run.worker`; this module only trains.

Heavy imports (torch, composer, streaming, transformers) sit at module level: import this module
only inside the commands that train.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
import transformers
from composer import Callback, Logger, State, Trainer
from composer.algorithms import GradientClipping
from composer.models import HuggingFaceModel
from composer.optim import DecoupledAdamW
from composer.utils import get_file
from streaming import Stream, StreamingDataset
from streaming.base.dataset import _ShardState
from torch.utils.data import DataLoader

from ablate.errors import AblateError
from ablate.data.manifest import is_remote
from ablate.recipe import Recipe

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


def rank() -> int:
    """Global rank, from the launcher's environment (valid before torch.distributed starts)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


# ---- model and tokenizer -------------------------------------------------------------------


@dataclass
class Start:
    """Where a run begins: the model and tokenizer, and what the Trainer must load on top."""

    model: transformers.PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    load_path: str | None  # Composer checkpoint (weights, optimizer, timestamp); None: fresh optimizer
    tokens: int  # tokens the start has seen: the timestamp of a Composer checkpoint, 0 for a model folder


def load_tokenizer(path: str) -> transformers.PreTrainedTokenizerBase:
    if not Path(path).is_dir():
        raise AblateError(f"tokenizer {path}: no such folder; run `ablate data demo` or point `tokenizer` at one")
    return transformers.AutoTokenizer.from_pretrained(path)


def new_model(recipe: Recipe) -> Start:
    """A freshly initialised model from the recipe's Hugging Face config, seeded by training.seed."""
    config = dict(recipe.model.config)
    if "model_type" not in config:
        raise AblateError("model.config: needs model_type (e.g. llama) to build a model; add it")
    tokenizer = load_tokenizer(recipe.tokenizer)
    hf_config = transformers.AutoConfig.for_model(**config)
    if hf_config.vocab_size < len(tokenizer):
        raise AblateError(
            f"model.config.vocab_size: {hf_config.vocab_size} is smaller than the tokenizer's {len(tokenizer)} "
            "tokens; raise it"
        )
    torch.manual_seed(recipe.training.seed)
    return Start(transformers.AutoModelForCausalLM.from_config(hf_config), tokenizer, None, 0)


def load_start(path: str, *, weights: bool = True) -> Start:
    """Rebuild model and tokenizer from a checkpoint alone.

    Accepts a Composer checkpoint carrying Hugging Face metadata (as `HuggingFaceModel` and
    llm-foundry write them) or a `save_pretrained` folder. A URI (s3://, gs://, hf://, ...) is
    fetched once into a temporary folder, which the Trainer then loads from. With `weights=False`
    the weights are left for the Trainer's `load_path` to fill in.
    """
    local = Path(path)
    if is_remote(path):
        local = Path(tempfile.mkdtemp(prefix="ablate-ckpt-")) / Path(path).name
        try:
            get_file(path, str(local))
        except Exception as exc:  # noqa: BLE001 - any transport error is the user's to fix
            raise AblateError(f"checkpoint {path}: cannot fetch it ({exc}); check the URI and credentials") from None
    if local.is_dir():
        if not (local / "config.json").exists():
            raise AblateError(
                f"checkpoint {path}: a folder without config.json; pass a Composer checkpoint file or a "
                "Hugging Face save_pretrained folder"
            )
        model = transformers.AutoModelForCausalLM.from_pretrained(str(local))
        return Start(model, load_tokenizer(str(local)), None, 0)
    if not local.exists():
        raise AblateError(f"checkpoint {path}: no such file; pass --checkpoint NAME|PATH to an existing one")
    try:
        saved = torch.load(local, map_location="cpu", weights_only=False, mmap=True)
        hf_state = saved["state"]["integrations"]["huggingface"]
        timestamp = saved["state"]["timestamp"]
        tokens = int(timestamp.get("Timestamp", timestamp)["token"])
    except KeyError as exc:
        raise AblateError(
            f"checkpoint {path}: no {exc.args[0]!r} entry; it needs the Hugging Face metadata that "
            "composer.models.HuggingFaceModel saves (with a tokenizer), or pass a save_pretrained folder"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file, whatever torch says about it
        raise AblateError(f"checkpoint {path}: cannot load it ({type(exc).__name__}: {exc})") from None
    with tempfile.TemporaryDirectory(prefix="ablate-tokenizer-") as tmp:
        tokenizer = HuggingFaceModel.load_huggingface_tokenizer_from_saved_state(hf_state, tokenizer_save_dir=tmp)
    if tokenizer is None:
        raise AblateError(
            f"checkpoint {path}: saved without a tokenizer; save it from HuggingFaceModel(model, tokenizer)"
        )
    model = HuggingFaceModel.load_huggingface_model_from_saved_state(hf_state, saved, None, None)
    if weights:
        model.load_state_dict({k.removeprefix("model."): v for k, v in saved["state"]["model"].items()})
    return Start(model, tokenizer, str(local), tokens)


# ---- data ----------------------------------------------------------------------------------


def _collate(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """MDS samples of `seq_len` token ids → a causal-LM batch (the model shifts the labels itself)."""
    ids = torch.from_numpy(np.stack([s["tokens"] for s in samples]).astype(np.int64))
    return {"input_ids": ids, "labels": ids}


PREFIX_LOCK_SECONDS = 60  # building a dataset takes well under a second; a holder this slow is stuck


@contextmanager
def _one_dataset_at_a_time() -> Iterator[None]:
    """Jobs on one machine (`ablate run --parallel`) build their StreamingDatasets in turn.

    streaming names a dataset's shared memory after the first prefix free on the node, found by
    listing /dev/shm and then created: two datasets built at the same moment can pick the same one
    and the second fails (FileExistsError: '/000694_locals'). A flock per node and user closes that
    window for ablate's jobs.
    Only a job's local rank 0 takes it: streaming's ranks meet at barriers inside the constructor,
    where the other ranks of a job must reach their leader, not queue behind it. A holder stuck for
    PREFIX_LOCK_SECONDS (a hung job) is passed by: the lock only narrows a race, it must not stop
    every job on the node.
    """
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        yield
        return
    # One lock per user: a file another user created could not be opened for writing.
    with (Path(tempfile.gettempdir()) / f"ablate-streaming-prefix-{os.getuid()}.lock").open("a") as handle:
        locked = _flock_within(handle, PREFIX_LOCK_SECONDS)
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _flock_within(handle: IO[str], seconds: float) -> bool:
    """Take an exclusive flock on `handle`, waiting at most `seconds`; whether it was taken."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


class _LocalShards(StreamingDataset):
    """A StreamingDataset over shards already on local disk, which checks each shard once.

    streaming's helper thread calls prepare_shard for every sample: a file lock, a stat and a
    timestamp (~250 µs), which on a small model contends with training for the GIL (+8–17% per step
    for the demo's, benchmarks/train_overhead.py). Without a cache limit nothing evicts a local
    shard, so once it is known to be local the later checks cannot change anything; the samples
    and their order are the same.
    """

    def prepare_shard(self, shard_id: int, blocking: bool = True) -> None:
        known = self.__dict__.setdefault("_known_local", set())
        if shard_id in known:
            return
        super().prepare_shard(shard_id, blocking)
        if self._shard_states[shard_id] == _ShardState.LOCAL:
            known.add(shard_id)


def per_device_batch(recipe: Recipe) -> int:
    batch, world = recipe.training.batch_size, world_size()
    if batch % world:
        raise AblateError(f"training.batch_size: {batch} does not split over {world} processes; use a multiple")
    return batch // world


def build_dataloader(
    recipe: Recipe, mixture: dict[str, float], *, seed: int, samples: int, cache: Path
) -> tuple[DataLoader, dict[str, int]]:
    """A loader over one `Stream` per subset, weighted by `mixture`, for exactly `samples` samples.

    Returns the loader and the samples each subset contributes to the epoch, so a subset repeated
    past its size (which streaming does silently) shows up in the run's summary.
    """
    from streaming.base.util import clean_stale_shared_memory

    owners: dict[str, str] = {}
    for name in mixture:
        location = recipe.subsets[name].location
        if location in owners:
            raise AblateError(
                f"subsets.{name}.location: {location} is also subset '{owners[location]}'s; streaming reads a "
                "folder once per dataset, so give each subset its own shards"
            )
        owners[location] = name
    streams, remote = [], False
    for name, proportion in mixture.items():
        location = recipe.subsets[name].location
        remote = remote or is_remote(location)
        where = {"remote": location, "local": str(cache / name)} if is_remote(location) else {"local": location}
        streams.append(Stream(**where, proportion=proportion))
    if remote:
        # A killed run leaves shared memory that still claims its download cache, and a rerun would
        # refuse the cache. Cleaning is global to the node (it would break another live dataset), so
        # only runs that download pay it; local shards have no cache to claim.
        clean_stale_shared_memory()
    batch = per_device_batch(recipe)
    with _one_dataset_at_a_time():
        dataset = (StreamingDataset if remote else _LocalShards)(
            streams=streams, shuffle=True, shuffle_seed=seed, batch_size=batch, epoch_size=samples,
            # Local shards need no download, so streaming's two helper threads may walk the whole epoch
            # at once and exit. Held to the default (8 batches ahead) they wake every 7 ms to check, and
            # each wake-up makes the training thread wait for the GIL: +20% per step for the demo's model
            # on a busy 2-core machine (benchmarks/train_overhead.py). Downloads keep the default.
            predownload=None if remote else samples,
        )
    drawn = {name: int(stream.choose) for name, stream in zip(mixture, dataset.streams)}
    return DataLoader(dataset, batch_size=batch, collate_fn=_collate), drawn


# ---- learning rate -------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """LR as a function of absolute tokens: `shape` over [start, start + length], flat outside.

    'warmup' rises linearly from 0 to the peak (pretraining, then stable at the peak);
    'constant', 'linear' and 'cosine' go from the peak to peak × final_ratio (the phase).
    """

    peak: float
    start: int
    length: int
    shape: str
    final_ratio: float = 0.0

    def __call__(self, tokens: int) -> float:
        x = min(max((tokens - self.start) / self.length, 0.0), 1.0) if self.length > 0 else 1.0
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


def phase_schedule(recipe: Recipe, start_tokens: int) -> Schedule:
    spec = recipe.training.schedule
    training = recipe.training
    return Schedule(training.optimizer.lr, start_tokens, training.phase_tokens, spec.name, spec.final_ratio)


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


def _optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    spec = recipe.training.optimizer
    if spec.name == "decoupled_adamw":
        return DecoupledAdamW(model.parameters(), lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    if spec.name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)


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
) -> FitResult:
    """Train `start` on `mixture` until `end_tokens` (absolute), checkpointing into folder/checkpoints.

    From a Composer checkpoint the optimizer state and timestamp carry over and its dataset state is
    dropped (the phase reads a new mix). A checkpoint of this run already in folder/checkpoints
    wins (autoresume), dataset position included, so an interrupted run ends where an
    uninterrupted one would.
    """
    began_setup = time.perf_counter()
    training = recipe.training
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
        optimizers=_optimizer(start.model, recipe),
        callbacks=[TokenLR(schedule), log],
        algorithms=[GradientClipping("norm", training.grad_clip_norm)] if training.grad_clip_norm else [],
        load_path=start.load_path,
        # A new mix, and the phase's own seed: neither the old data position nor the old RNG carries over.
        load_ignore_keys=["state/dataset_state", "rng"] if start.load_path else None,
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
        loggers=[],
    )
    timestamp = trainer.state.timestamp
    if int(timestamp.token) == start.tokens and int(timestamp.batch_in_epoch) > 0:
        # Loaded mid-epoch of another dataset: the phase's data is a new epoch, from its first sample.
        trainer.state.timestamp = timestamp.to_next_epoch()
    began, tick = int(trainer.state.timestamp.token), time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - tick
    tokens = int(trainer.state.timestamp.token) - began
    trainer.close()
    return FitResult(began, tokens, tick - began_setup, seconds, log.last_loss, drawn)

