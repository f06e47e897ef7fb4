"""Recipe: the YAML file that describes a study, validated on load.

    from ablate.recipe import load_recipe
    recipe = load_recipe("recipes/demo.yaml")

pydantic owns every default and every cross-field check; nothing downstream re-reads raw YAML.
Relative paths in a recipe resolve against the working directory, like `results/`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ablate.errors import RecipeError

# The demo recipe ships inside the package (recipes/demo.yaml in a checkout links to it), so `ablate
# plan` and `ablate demo` work from any folder after a plain install; its paths resolve against the
# working directory like every recipe's.
DEMO_RECIPE = Path(__file__).resolve().parent / "demo" / "recipe.yaml"


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a recipe must not be silently ignored. Numbers are finite:
    'nan' or 'inf' given as text (`lr: nan` is a string in YAML) would otherwise become a float."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Subset(_Strict):
    """One data subset: MDS shards at `location`, built from `source` by `ablate data build`."""

    location: str = Field(description="MDS folder: a local path or a remote URI (s3://, gs://, ...)")
    source: str | None = Field(None, description="raw JSONL or text file(s), path or glob, for `data build`")
    text_field: str = Field("text", description="JSONL field that holds the document text")
    tokens: Annotated[int, Field(gt=0)] | None = Field(
        None, description="tokens in the subset; read from the shard manifest when omitted"
    )
    groups: list[str] = Field(default_factory=list, description="groups this subset belongs to")
    max_passes: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="repetition cap: at most this many passes over the subset in the phase; swarm and perturb "
        "designs keep every mixture under it (leave-one-out variants above it get a warning)",
    )


class ModelSpec(_Strict):
    """The architecture, as a Hugging Face config (used by `ablate pretrain` and for FLOPs)."""

    config: dict[str, Any] = Field(default_factory=dict, description="Hugging Face config fields")
    params: Annotated[int, Field(gt=0)] | None = Field(
        None, description="parameter count N for 6·N·D; computed from `config` when omitted"
    )


# The optimizers a recipe can name (ablate.run.train builds them): torch's adamw and sgd, Composer's
# two (decoupled_sgdw is what a bare Composer Trainer defaults to), and llm-foundry 0.22's registry,
# built through that registry, so they need llm-foundry installed; so do the names other packages add
# to the registry through this entry-point group.
BUILT_OPTIMIZERS = ("decoupled_adamw", "decoupled_sgdw", "adamw", "sgd")
FOUNDRY_OPTIMIZERS = ("decoupled_lionw", "clip_lion", "adalr_lion", "no_op")
FOUNDRY_PLUGINS = "llmfoundry_optimizers"
OWN_FIELDS = ("params", "lr", "betas", "eps", "weight_decay")  # what `args` must not repeat


class Optimizer(_Strict):
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


class Schedule(_Strict):
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
    warmup_tokens: Annotated[int, Field(ge=0)] = Field(
        0, description="rise linearly from 0 to the peak over the phase's first tokens, then decay"
    )


class Fsdp(_Strict):
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


class Training(_Strict):
    total_tokens: Annotated[int, Field(gt=0)] = Field(description="tokens of the full pretraining run")
    phase: Annotated[float, Field(gt=0, lt=1)] = Field(description="fraction of the run in the final phase")
    batch_size: Annotated[int, Field(gt=0)] = Field(description="global batch, in sequences")
    microbatch_size: Annotated[int, Field(gt=0)] | None = Field(None, description="per device; None = batch")
    optimizer: Optimizer = Optimizer()
    warmup_tokens: Annotated[int, Field(ge=0)] = Field(0, description="linear warm-up at the start of pretraining")
    schedule: Schedule = Schedule()
    grad_clip_norm: Annotated[float, Field(gt=0)] | None = Field(
        None, description="clip the global gradient norm to this before each step; None = no clipping"
    )
    seed: int = 17
    precision: Literal["fp32", "amp_bf16", "amp_fp16"] = "fp32"
    checkpoint_every_tokens: Annotated[int, Field(gt=0)] | None = Field(
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


class Category(_Strict):
    """A group of tasks averaged gauntlet-style: (score − random) / (1 − random)."""

    tasks: list[str] = Field(min_length=1)
    random_baseline: dict[str, Annotated[float, Field(ge=0, lt=1)]] = Field(
        default_factory=dict, description="task → chance accuracy; 0 where omitted"
    )


class HeldOut(_Strict):
    """One domain's held-out text for per-domain loss: MDS shards of `seq_len`-token samples, as
    `data build` writes them (from `source`, when given) or any MDS folder with a `tokens` column."""

    location: str = Field(description="local MDS folder of held-out sequences (never trained on)")
    source: str | None = Field(None, description="raw JSONL or text file(s) that `data build` tokenizes there")
    text_field: str = Field("text", description="JSONL field that holds the document text")

    @model_validator(mode="before")
    @classmethod
    def _folder_alone(cls, value: Any) -> Any:
        """`prose: data/heldout/prose` is short for `prose: {location: data/heldout/prose}`."""
        return {"location": value} if isinstance(value, str) else value

    @field_validator("location")
    @classmethod
    def _local(cls, location: str) -> str:
        if "://" in location:
            raise ValueError(f"{location} is remote; copy the held-out shards to a local folder")
        return location


class Eval(_Strict):
    tasks: list[str] = Field(min_length=1, description="lm-eval task names")
    include: list[str] = Field(default_factory=list, description="local task folders (lm-eval include_path)")
    num_fewshot: int | dict[str, int] = Field(0, description="one count for all tasks, or task → count")
    batch_size: Annotated[int, Field(gt=0)] = 32
    limit: Annotated[int, Field(gt=0)] | None = Field(None, description="items per task; None = all")
    categories: dict[str, Category] = Field(default_factory=dict)
    backend: Literal["hf", "vllm"] = Field(
        "hf",
        description="lm-eval's model backend: hf (transformers, on rank 0's device) or vllm (the exported "
        "folder served by vLLM on the job's GPUs: pip install 'ablate[vllm]', never required)",
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description="more lm-eval model_args for the backend, e.g. {dtype: bfloat16}, or for vllm "
        "{tensor_parallel_size: 8} or {data_parallel_size: 8, gpu_memory_utilization: 0.8}",
    )
    heldout: dict[str, HeldOut] = Field(
        default_factory=dict,
        description="domain → held-out MDS folder: each variant's loss and bits per byte on each domain, "
        "once per variant (what `ablate fit` can fit as loss:<domain>)",
    )
    heldout_sequences: Annotated[int, Field(gt=0)] | None = Field(
        None, description="held-out sequences per domain, the first ones of each folder; None = all"
    )

    @model_validator(mode="after")
    def _categories_name_tasks(self) -> Eval:
        for name, category in self.categories.items():
            unknown = sorted(set(category.tasks) - set(self.tasks))
            if unknown:
                raise ValueError(f"categories.{name} lists {unknown}, which are not in eval.tasks")
            # A chance level for a task the category does not hold would be ignored, and its own stay 0.
            stray = sorted(set(category.random_baseline) - set(category.tasks))
            if stray:
                raise ValueError(f"categories.{name}.random_baseline names {stray}, which are not in its tasks")
        if isinstance(self.num_fewshot, dict) and (stray := sorted(set(self.num_fewshot) - set(self.tasks))):
            raise ValueError(f"num_fewshot names {stray}, which are not in eval.tasks")
        return self

    def fewshot(self, task: str) -> int:
        return self.num_fewshot if isinstance(self.num_fewshot, int) else self.num_fewshot.get(task, 0)


Renormalize = str  # "proportional" or "into:<subset>"


class Design(_Strict):
    """Which mixtures a study tries besides the baseline: leave-one-out removals, or a swarm of mixtures
    around the baseline mix, or each subset weighted up and down (the perturbed runs mixing laws fit)."""

    kind: Literal["loo", "swarm", "perturb"] = Field("loo", description="loo | swarm | perturb")
    n: Annotated[int, Field(gt=0)] = Field(16, description="swarm: how many mixtures")
    concentration: Annotated[float, Field(gt=0)] = Field(
        20.0, description="swarm: Dirichlet concentration around the baseline mix (larger: closer to it)"
    )
    factor: Annotated[float, Field(gt=1)] = Field(2.0, description="perturb: each subset's weight × and ÷ this")
    seed: int = Field(0, description="swarm: the draw's seed")


class Ablations(_Strict):
    each: Literal["group", "subset"] = Field("group", description="default leave-one-out granularity")
    renormalize: Renormalize = Field(
        "proportional", description="'proportional', or 'into:<subset>' to give all freed mass to one subset"
    )
    control: bool = Field(True, description="add a `control` variant that continues on the base mix")
    design: Design = Field(default_factory=Design, description="the mixtures tried besides the baseline")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="replicates per variant")
    baseline_seeds: Annotated[int, Field(ge=0)] = Field(
        2,
        description="seeds the baseline runs (at least `seeds`): the replicates whose spread puts training-seed "
        "noise into every Δ's interval; 0 or 1: none, and the report's flags hold for one training run only",
    )
    phases: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=list,
        description="phase lengths to ablate (fractions of the run, e.g. [0.05, 0.1, 0.2]): every variant at every "
        "phase, each continued from the checkpoint at (1 − phase) of the run; empty: training.phase only",
    )

    @field_validator("renormalize")
    @classmethod
    def _renormalize_form(cls, value: str) -> str:
        if value != "proportional" and not (value.startswith("into:") and len(value) > 5):
            raise ValueError("must be 'proportional' or 'into:<subset>'")
        return value

    @field_validator("seeds", "phases")
    @classmethod
    def _distinct(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("values must be distinct")
        return value


class Slurm(_Strict):
    """How `ablate run --launcher slurm` asks a cluster for resources. Nothing here changes a result,
    so none of it is in a hash; `ablate run --slurm FIELD=VALUE` overrides any field for one submission."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)  # time: 60, mem: 0

    partition: str | None = Field(None, description="#SBATCH --partition")
    account: str | None = Field(None, description="#SBATCH --account")
    qos: str | None = Field(None, description="#SBATCH --qos")
    time: str | None = Field(None, description="#SBATCH --time, per array task, e.g. 2-00:00:00")
    constraint: str | None = Field(None, description="#SBATCH --constraint, e.g. h100")
    cpus_per_task: Annotated[int, Field(gt=0)] | None = Field(None, description="#SBATCH --cpus-per-task")
    mem: str | None = Field(None, description="#SBATCH --mem: memory per node (one task per node), e.g. 500G")
    gpu_request: Literal["auto", "gpus-per-node", "gres", "none"] = Field(
        "auto",
        description="how GPUs are asked for: --gpus-per-node=N, --gres=gpu:N, or not at all; 'auto' asks "
        "sinfo whether the partition has GPU GRES and leaves the request out where it has none",
    )
    requeue: bool = Field(False, description="#SBATCH --requeue: a preempted task restarts and resumes")
    extra: list[str] = Field(
        default_factory=list, description="more #SBATCH options, one each, e.g. --exclusive or --mail-type=END"
    )

    @field_validator("extra")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        for option in value:
            if not option.startswith("-") or "\n" in option:
                raise ValueError(
                    f"'{option}' is not one sbatch option; write it as it follows '#SBATCH ', e.g. --exclusive"
                )
        return value


class MLflow(_Strict):
    tracking_uri: str | None = Field(
        None,
        description="a tracking server URL or a local store (file:///path); None = $MLFLOW_TRACKING_URI or ./mlruns",
    )
    experiment: str | None = Field(None, description="experiment name; None = the study's name")


class WandB(_Strict):
    project: str | None = Field(None, description="W&B project; None = the study's name")
    entity: str | None = Field(None, description="W&B team or user; None = your default")


class Loggers(_Strict):
    """Experiment trackers, as Composer's loggers. The pretraining and each variant is one run, named
    <study>-<job>-<train hash>, with its mixture, seed and hashes as parameters and its training curve
    as metrics; a resumed job continues its run. Nothing here changes a result, so none of it is hashed."""

    mlflow: MLflow | None = None
    wandb: WandB | None = None


class Mixes(_Strict):
    base: dict[str, float] = Field(description="the pretraining mix, subset → weight")
    upsample: dict[str, float] = Field(description="the end-of-training mix: the study's baseline")


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="study name: results/<name>/")
    seq_len: Annotated[int, Field(gt=0)]
    tokenizer: str = Field(description="local Hugging Face tokenizer folder")
    model: ModelSpec = ModelSpec()
    subsets: dict[str, Subset] = Field(min_length=1)
    mixes: Mixes
    training: Training
    checkpoints: dict[str, str] = Field(default_factory=dict, description="name → checkpoint path or URI")
    start: str | None = Field(
        None,
        description="default start checkpoint: a name in `checkpoints`, `pretrained` (registered by "
        "`ablate pretrain` in the study), or a path/URI; resolved when `run` starts",
    )
    eval: Eval
    ablations: Ablations = Ablations()
    slurm: Slurm = Slurm()
    loggers: Loggers = Loggers()

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, raw: Any) -> Any:
        """No NaN or infinity anywhere, in typed fields or free-form ones (model.config, eval.model_args):
        YAML's .nan and .inf, or 1e999, parse as floats that would reach training or a hash."""
        found = _non_finite(raw)
        if found is not None:
            where, value = found
            raise _FieldError(where, f"{value} is not a finite number; use a finite value")
        return raw

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        for mix_name in ("base", "upsample"):
            weights = getattr(self.mixes, mix_name)
            unknown = sorted(set(weights) - set(self.subsets))
            if unknown:
                raise _FieldError(
                    f"mixes.{mix_name}", f"names unknown subsets {unknown}; known: {sorted(self.subsets)}"
                )
            negative = sorted(k for k, w in weights.items() if w < 0)
            if negative:
                raise _FieldError(f"mixes.{mix_name}", f"has negative weights for {negative}; use weights ≥ 0")
            if not weights or sum(weights.values()) <= 0:
                raise _FieldError(f"mixes.{mix_name}", "has no positive weight; give at least one subset a weight > 0")
        warmup, phase = self.training.schedule.warmup_tokens, self.training.phase_tokens
        if warmup >= phase:
            raise _FieldError(
                "training.schedule.warmup_tokens",
                f"{warmup:,} is not shorter than the phase ({phase:,} tokens); lower it",
            )
        for field, length in [
            ("training.phase", self.training.phase),
            *(("ablations.phases", p) for p in self.ablations.phases),
        ]:
            problem = self.phase_too_short(length)
            if problem:
                raise _FieldError(field, problem)
        groups = self.groups
        clash = sorted(name for name in set(groups) & set(self.subsets) if groups[name] != [name])
        if clash:
            raise _FieldError(
                "subsets", f"{clash} name both a subset and a larger group; rename one so --remove is unambiguous"
            )
        if self.ablations.renormalize.startswith("into:"):
            target = self.ablations.renormalize[5:]
            if target not in self.mixes.upsample:
                raise _FieldError(
                    "ablations.renormalize",
                    f"'into:{target}' needs a subset of mixes.upsample: {sorted(self.mixes.upsample)}",
                )
        return self

    def phase_too_short(self, phase: float) -> str | None:
        """Why a phase of this length (a fraction of the run) cannot take one optimizer step: its tokens
        are fewer than one batch's; None when it can. Such a phase would plan, then fail in training."""
        batch = self.training.batch_size * self.seq_len
        tokens = self.training.model_copy(update={"phase": phase}).phase_tokens
        if batch <= tokens:
            return None
        return (
            f"one batch (training.batch_size × seq_len = {batch:,} tokens) is more than the {phase:g} phase's "
            f"{tokens:,} tokens; lower training.batch_size or lengthen the phase"
        )

    @property
    def groups(self) -> dict[str, list[str]]:
        """Group name → its subsets, in recipe order."""
        out: dict[str, list[str]] = {}
        for subset_name, subset in self.subsets.items():
            for group in subset.groups:
                out.setdefault(group, []).append(subset_name)
        return out


class _FieldError(ValueError):
    """A cross-field problem that knows which field it is about."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def _non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """The first NaN or infinite float in a parsed YAML tree, with its dotted path; None if none."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _non_finite(child, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


# ---- reading YAML ----------------------------------------------------------------------------


class _RepeatedKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error: PyYAML keeps the
    last value, so a recipe listing `math:` twice would silently lose the first one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, whose keys a mapping may override
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not key_node.start_mark:
                where = f"key '{key}' at line {key_node.start_mark.line + 1} repeats the one at line {first.line + 1}"
                raise _RepeatedKey(None, None, where, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML strictly (no repeated keys); a problem is one RecipeError line naming `source` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except _RepeatedKey as exc:
        raise RecipeError(f"{source}: {exc.problem}; YAML would keep only the last, so remove one") from None
    except yaml.constructor.ConstructorError as exc:
        raise RecipeError(f"{source}: malformed YAML ({exc.problem}); fix it there") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{source}: malformed YAML{where}; fix the syntax there") from None


def recipe_path(path: str | os.PathLike[str] | None) -> Path:
    """The recipe to use: the argument, else $ABLATE_RECIPE, else recipes/demo.yaml where the working
    directory has one (a checkout, or a copy edited by hand), else the demo recipe in the package."""
    local = Path("recipes/demo.yaml")
    return Path(path or os.environ.get("ABLATE_RECIPE") or (local if local.is_file() else DEMO_RECIPE))


def load_recipe(path: str | os.PathLike[str] | None = None) -> Recipe:
    """Read and validate a recipe; every problem becomes one `RecipeError` line naming the field."""
    source = recipe_path(path)
    try:
        text = source.read_text()
    except OSError as exc:
        raise RecipeError(
            f"recipe {source}: cannot read it ({exc.strerror}); pass --recipe PATH to an existing file"
        ) from None
    raw = read_yaml(text, f"recipe {source}")
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {source}: expected a mapping of fields at the top level, got {type(raw).__name__}")
    return parse_recipe(raw, source=str(source))


def parse_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(f"recipe {source}: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """All of pydantic's errors as one line: missing fields together, then one clause per problem."""
    missing = [_loc(e) for e in exc.errors() if e["type"] == "missing"]
    clauses = []
    if missing:
        noun = "field" if len(missing) == 1 else "fields"
        clauses.append(f"missing {noun} {', '.join(missing)}; add {'it' if len(missing) == 1 else 'them'}")
    for error in exc.errors():
        loc = _loc(error)
        if error["type"] == "extra_forbidden":
            clauses.append(f"{loc}: unknown field; remove it or check the spelling")
        elif error["type"] == "finite_number":
            clauses.append(f"{loc}: {error['input']} is not a finite number; use a finite value")
        elif error["type"] != "missing":
            message = str(error["msg"]).removeprefix("Value error, ")
            clauses.append(f"{loc}: {message}" if loc else message)
    return "; ".join(clauses) + " (README: Recipe format)"


def _loc(error: Any) -> str:
    return ".".join(str(part) for part in error["loc"])
