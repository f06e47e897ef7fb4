"""The whole recipe: its subsets, mixes and model, the sections it is made of (training, evaluation,
ablations, services) and the checks across them."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ablate.recipe.ablations import Ablations
from ablate.recipe.evaluation import Eval
from ablate.recipe.ladder import Ladder
from ablate.recipe.section import Section
from ablate.recipe.services import Loggers, Slurm
from ablate.recipe.training import Tokens, Training

STUDY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a study names its folder, results/<name>/: one plain folder name


class Subset(Section):
    """One data subset: MDS shards at `location`, built from `source` by `ablate data build`."""

    location: str = Field(description="MDS folder: a local path or a remote URI (s3://, gs://, ...)")
    source: str | None = Field(None, description="raw JSONL or text file(s), path or glob, for `data build`")
    text_field: str = Field("text", description="JSONL field that holds the document text")
    tokens: Annotated[Tokens, Field(gt=0)] | None = Field(
        None, description="tokens in the subset; read from a local folder's shards when omitted"
    )
    token_encoding_type: Literal["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"] = Field(
        "int64", description="what a `tokens: bytes` column holds (llm-foundry's name and default)"
    )
    groups: list[str] = Field(default_factory=list, description="groups this subset belongs to")
    max_passes: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="repetition cap: at most this many passes over the subset in the phase; swarm and perturb "
        "designs keep every mixture under it (leave-one-out variants above it get a warning)",
    )


class ModelSpec(Section):
    """The architecture, as a Hugging Face config (used by `ablate pretrain` and for FLOPs). With a start
    checkpoint plan can read, it may be left out or given in part: the checkpoint brings its own, and a
    field given must agree with it (ablate.plan.model)."""

    config: dict[str, Any] = Field(default_factory=dict, description="Hugging Face config fields")
    params: Annotated[int, Field(gt=0)] | None = Field(
        None, description="parameter count N for 6·N·D; omitted: the start checkpoint's, else counted from `config`"
    )


class Mixes(Section):
    base: dict[str, float] = Field(description="the pretraining mix, subset → weight")
    upsample: dict[str, float] = Field(description="the end-of-training mix: the study's baseline")


class Recipe(Section):
    name: str = Field(pattern=STUDY_NAME, description="study name: results/<name>/")
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
    ladder: Ladder | None = Field(None, description="start checkpoints of several sizes: every variant from each")
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
        if self.ladder is not None and self.ablations.phases:
            raise _FieldError("ladder", "and ablations.phases: a study crosses its variants with one of them; drop one")
        if self.ladder is not None and self.model.params is not None:
            raise _FieldError(
                "model.params", "is one size, and a ladder's rungs differ; give a rung's params in ladder.rungs instead"
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
