"""The recipe's `training:` section: the run's length and batch, the optimizer, the phase's LR
schedule and FSDP sharding."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from ablate.recipe.section import Section

# The seeds every consumer takes: Composer's seed_all (composer.utils.reproducibility.MAX_SEED) and
# numpy's legacy RandomState accept 0 ≤ seed ≤ 2**32 - 1 and refuse the rest only when a job starts.
MAX_SEED = 2**32 - 1
# Token counts stay below 2**53 (about 9.0e15, hundreds of times any real run): the phase's share is
# round(total_tokens × phase), float arithmetic that counts every token exactly only below 2**53, and
# every count then fits the int64 that numpy and Composer's Time hold it in.
MAX_TOKENS = 2**53


def _seed(value: Any) -> Any:
    """A number outside the seeds Composer and numpy take is refused while planning, not in a job."""
    if isinstance(value, int | float) and not 0 <= value <= MAX_SEED:
        raise ValueError(f"{value} is not a seed; use an integer from 0 to {MAX_SEED} (what Composer and numpy take)")
    return value


def _countable(value: Any) -> Any:
    """A number of tokens at or above MAX_TOKENS is refused before it becomes an int (1e36 as well)."""
    if isinstance(value, int | float) and value >= MAX_TOKENS:
        raise ValueError(f"{value:.3g} tokens is more than ablate counts exactly (2**53, about 9.0e15); lower it")
    return value


Seed = Annotated[int, BeforeValidator(_seed)]  # a data-order or initialisation seed
Tokens = Annotated[int, BeforeValidator(_countable)]  # a number of tokens

# The optimizers a recipe can name (ablate.run.train builds them): torch's adamw and sgd, Composer's
# two (decoupled_sgdw is what a bare Composer Trainer defaults to), and llm-foundry 0.22's registry,
# built through that registry, so they need llm-foundry installed; so do the names other packages add
# to the registry through this entry-point group.
BUILT_OPTIMIZERS = ("decoupled_adamw", "decoupled_sgdw", "adamw", "sgd")
FOUNDRY_OPTIMIZERS = ("decoupled_lionw", "clip_lion", "adalr_lion", "no_op")
FOUNDRY_PLUGINS = "llmfoundry_optimizers"
# The class each name builds, by the name Composer keys a checkpoint's optimizer state with: what plan
# matches a start checkpoint's state against without importing torch (a plugin's is known only at run).
OPTIMIZER_CLASSES = {
    "decoupled_adamw": "DecoupledAdamW", "decoupled_sgdw": "DecoupledSGDW", "adamw": "AdamW", "sgd": "SGD",
    "decoupled_lionw": "DecoupledLionW", "clip_lion": "DecoupledClipLion", "adalr_lion": "DecoupledAdaLRLion",
    "no_op": "NoOp",
}  # fmt: skip
OWN_FIELDS = ("params", "lr", "betas", "eps", "weight_decay")  # what `args` must not repeat


class Optimizer(Section):
    """The phase's optimizer. From a Composer checkpoint it continues with the checkpoint's state
    (moments, and its saved betas, eps, weight decay and args: torch restores the parameter groups
    with the state), which only the optimizer class that saved it can take over; `state: fresh`
    keeps the checkpoint's weights and timestamp and starts this optimizer anew with the recipe's
    settings, for switching optimizer at the anneal (give the phase a `schedule.warmup_tokens`)."""

    name: str = Field("decoupled_adamw", description="one of BUILT_OPTIMIZERS or llm-foundry's registry")
    lr: Annotated[float, Field(gt=0)] = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    eps: Annotated[float, Field(gt=0)] | None = Field(None, description="None = the optimizer's own default")
    args: dict[str, Any] = Field(
        default_factory=dict, description="more keyword arguments of the optimizer, e.g. {momentum: 0.9}"
    )
    state: Literal["checkpoint", "fresh"] = Field(
        "checkpoint", description="continue the start checkpoint's optimizer state, or drop it and start afresh"
    )

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from importlib.metadata import entry_points

        if name in BUILT_OPTIMIZERS + FOUNDRY_OPTIMIZERS or name in entry_points(group=FOUNDRY_PLUGINS).names:
            return name
        raise ValueError(f"'{name}' is not an optimizer ablate builds; one of {', '.join(BUILT_OPTIMIZERS)} or "
                         f"llm-foundry's {', '.join(FOUNDRY_OPTIMIZERS)}")  # fmt: skip

    @field_validator("args")
    @classmethod
    def _not_repeated(cls, args: dict[str, Any]) -> dict[str, Any]:
        repeated = sorted(set(args) & set(OWN_FIELDS))
        if repeated:
            raise ValueError(f"{', '.join(repeated)}: set as training.optimizer's own fields, not in args")
        return args


class Schedule(Section):
    """LR over the phase, in absolute token units so a resumed run continues it exactly.

    Which peak: a Composer checkpoint of a run that is still decaying (or was stopped mid-cosine)
    is best continued from the LR it was at (`peak: checkpoint`, as OLMo-core's anneals do), so
    the phase does not jump the LR up before decaying; `peak: recipe` starts at optimizer.lr,
    right for a checkpoint taken at a constant LR (a warmup-stable-decay run) and for a study that
    fixes the phase's LR on purpose. A Hugging Face start has no optimizer state: its Adam moments
    start at zero, so give it a short `warmup_tokens` (a few hundred steps)."""

    name: Literal["constant", "linear", "cosine"] = "linear"
    final_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="LR at the end of the phase as a fraction of the peak (linear, cosine)"
    )
    peak: Literal["recipe", "checkpoint"] = Field(
        "recipe",
        description="the phase's starting LR: training.optimizer.lr, or the LR the start checkpoint's "
        "optimizer was at when it was saved (a Composer checkpoint)",
    )
    warmup_tokens: Annotated[Tokens, Field(ge=0)] = Field(
        0, description="rise linearly from 0 to the peak over the phase's first tokens, then decay"
    )


class Fsdp(Section):
    """Sharded data parallelism (PyTorch FSDP2 through Composer's `parallelism_config`): weights,
    gradients and optimizer state split over the job's processes, so a model whose AdamW state
    (~16 bytes per parameter) does not fit one device trains on several. Each transformer block
    (the model's `_no_split_modules`, or the model's own `fsdp_wrap_fn`) is one shard unit.

    Only `mixed_precision` can change the numbers (with an amp precision) and is in the training
    hash; the rest decides where memory goes, not what is computed."""

    reshard_after_forward: bool = Field(
        True,
        description="free each block's gathered weights after its forward (full sharding, ZeRO-3); "
        "False keeps them until the backward (ZeRO-2: faster, more memory)",
    )
    activation_checkpointing: bool = Field(
        False, description="recompute each block's activations in the backward instead of keeping them"
    )
    activation_cpu_offload: bool = Field(False, description="keep saved activations in CPU memory")
    mixed_precision: Literal["DEFAULT", "PURE", "FULL"] = Field(
        "DEFAULT",
        description="with an amp precision: DEFAULT computes in it and reduces gradients in fp32, PURE "
        "does both in it, FULL keeps everything fp32 (Composer's FSDP2 settings)",
    )
    state_dict_type: Literal["sharded", "full"] = Field(
        "sharded",
        description="checkpoints: 'sharded' (a folder, each process writes its shard: what a 7B needs) or "
        "'full' (one file gathered on rank 0); the start checkpoint must be of the same form",
    )


class Training(Section):
    total_tokens: Annotated[Tokens, Field(gt=0)] = Field(description="tokens of the full pretraining run")
    phase: Annotated[float, Field(gt=0, lt=1)] = Field(description="fraction of the run in the final phase")
    batch_size: Annotated[int, Field(gt=0)] = Field(description="global batch, in sequences")
    microbatch_size: Annotated[int, Field(gt=0)] | None = Field(None, description="per device; None = batch")
    optimizer: Optimizer = Optimizer()
    warmup_tokens: Annotated[Tokens, Field(ge=0)] = Field(0, description="linear warm-up at the start of pretraining")
    schedule: Schedule = Schedule()
    grad_clip_norm: Annotated[float, Field(gt=0)] | None = Field(
        None, description="clip the global gradient norm to this before each step; None = no clipping"
    )
    seed: Seed = 17
    precision: Literal["fp32", "amp_bf16", "amp_fp16"] = "fp32"
    checkpoint_every_tokens: Annotated[Tokens, Field(gt=0)] | None = Field(
        None, description="save a resumable checkpoint this often; None = only at the end"
    )
    fsdp: Fsdp | None = Field(
        None, description="shard the model over the job's processes (FSDP2); None = every process holds it all (DDP)"
    )
    canonical_nodes: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description="streaming's num_canonical_nodes: the phase's sample order is the same on any number of "
        "nodes that divides it or that it divides; None = the number of nodes a variant first runs on",
    )

    @property
    def phase_tokens(self) -> int:
        return round(self.total_tokens * self.phase)

    @property
    def start_tokens(self) -> int:
        """Tokens the shared checkpoint has seen when the phase begins."""
        return self.total_tokens - self.phase_tokens
