"""The study's own JSON files, typed: each one's name, its pydantic model, its one writer and a reader
that refuses a corrupt or wrong-shaped file in one line naming it and the fix (ablate.study.store.read_shaped).

    plan.json          ablate.plan.build.Plan; written by ablate.plan.study.save_plan alone
    checkpoints.json   name → path of the checkpoints `pretrain` made    register_checkpoint
    suggested.json     name → Suggested, what `ablate suggest` proposed  add_suggestion (RUNS.suggested.json too)
    <job>/status.json  Status: a job folder's state, hashes, progress    write_status (ablate.study.job's rules)
    <job>/heldout.json HeldOut: per-domain held-out loss                 write_heldout

Writers validate what they write against the model, so a field misspelt in code fails where it is
written, not when a later reader meets it. Readers return the model: a HeldOut, each Suggested, a Status.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter

from ablate.errors import StudyError
from ablate.study.store import read_shaped, study_dir, write_json

PLAN = "plan.json"
CHECKPOINTS = "checkpoints.json"
SUGGESTED = "suggested.json"
STATUS = "status.json"
HELDOUT = "heldout.json"


# ---- status.json ---------------------------------------------------------------------------


class State(StrEnum):
    """What status.json says. A folder without one is PENDING."""

    PENDING = "pending"
    TRAINING = "training"
    EVALUATING = "evaluating"
    DONE = "done"
    FAILED = "failed"


class Output(BaseModel):
    """One output file as it was written: what a later run checks before trusting it."""

    bytes: int
    sha256: str


def _whole(value: Any) -> Any:
    """An integral float as the int it is: an older ablate wrote tokens_done as 512000.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class Status(BaseModel):
    """A job folder's status.json, each field described here alone; a field is absent until the job
    knows it. Fields another version wrote and this one does not know are ignored on reading (and
    dropped on the next write)."""

    model_config = ConfigDict(extra="ignore")

    state: State = State.PENDING
    hash: str | None = None  # the plan's hash of the job (training and evaluation) it ran for
    train_hash: str | None = None  # the hash of its training alone
    tokens: int | None = None  # planned tokens
    tokens_done: Annotated[int | None, BeforeValidator(_whole)] = None  # progress: tokens trained so far in this job
    start_tokens: int | None = None  # where the start checkpoint was, should this file be lost mid-phase
    trained: bool | None = None  # its training finished: only evaluation is left
    resumed_at: int | None = None  # tokens into the phase an interrupted run resumed at (0: it did not)
    world_size: int | None = None  # processes that trained it
    error: str | None = None  # a failed job's one line
    warning: str | None = None  # the start checkpoint's tokens off where the recipe's phase starts
    checkpoint: str | None = None  # the start job: the checkpoint it evaluated
    checkpoint_tokens: int | None = None  # the start job: tokens that checkpoint had seen
    train_seconds: float | None = None  # wall time of the training loop
    setup_seconds: float | None = None  # from the job's start to its first step (data, model, checkpoint loading)
    tokens_per_s: float | None = None  # training throughput
    final_loss: float | None = None  # the last logged training loss
    samples_per_subset: dict[str, int] | None = None  # samples trained on, per subset of the mixture
    scores: dict[str, float] | None = None  # task → headline score (ablate.run.evaluate)
    eval_seconds: float | None = None  # wall time of the evaluation
    outputs: dict[str, Output] | None = None  # path in the folder → the file as written (job.record_outputs)
    updated: float | None = None  # Unix time of the last write


STATUS_FIX = "delete it and rerun"


def read_status(folder: Path) -> Status:
    """A folder's status; `pending` when nothing has run there yet. One of the wrong shape is one line."""
    path = folder / STATUS
    return Status.model_validate(read_shaped(path, Status, STATUS_FIX)) if path.exists() else Status()


def write_status(folder: Path, state: State, **fields: Any) -> Status:
    """Merge `fields` (Status's own names only) into the folder's status atomically, set its state."""
    unknown = sorted(set(fields) - set(Status.model_fields))
    if unknown:
        raise TypeError(f"status.json has no field {', '.join(unknown)}")
    merged = read_status(folder).model_dump(mode="json", exclude_unset=True) | fields
    status = Status.model_validate({**merged, "state": state, "updated": time.time()})
    write_json(folder / STATUS, status.model_dump(mode="json", exclude_unset=True))  # what was said, nulls too
    return status


# ---- heldout.json --------------------------------------------------------------------------


class HeldOutDomain(BaseModel):
    """One domain's held-out measurement (ablate.run.heldout): the per-sequence nll the report pairs,
    and the fingerprint of the sequences, so variants measured on other text are never compared."""

    location: str | None = None
    sequences: int
    tokens: int
    bytes: int | None = None
    loss: float
    bits_per_byte: float | None = None
    fingerprint: str
    nll: list[float]  # nats per sequence
    sequence_bytes: list[int] | None = None


class HeldOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    seq_len: int | None = None
    domains: dict[str, HeldOutDomain]


HELDOUT_FIX = "delete it (the report then leaves the variant's held-out loss out) or rerun the variant"


def write_heldout(folder: Path, found: dict[str, Any]) -> None:
    HeldOut.model_validate(found, strict=True)
    write_json(folder / HELDOUT, found)


def read_heldout(folder: Path) -> HeldOut | None:
    """A variant's heldout.json, checked; None where it has none."""
    path = folder / HELDOUT
    return HeldOut.model_validate(read_shaped(path, HeldOut, HELDOUT_FIX)) if path.exists() else None


# ---- suggested.json ------------------------------------------------------------------------


class Suggested(BaseModel):
    """One proposal of `ablate suggest` (ablate.analyze.suggest.Suggestion), its fields in that order,
    so report.json writes it as suggested.json has it."""

    name: str
    ablation: str
    target: str
    objective: dict[str, float]
    models: dict[str, str]
    loo_rmse: dict[str, float]
    variants: int
    baseline: str
    mixture: dict[str, float]
    baseline_mixture: dict[str, float]
    kl: float
    radius: float
    predicted: dict[str, float]
    baseline_predicted: float
    gain: dict[str, float]
    candidates: dict[str, Any] | None = None


class SuggestedBefore(Suggested):
    """One written before weighted objectives: one target and one model."""

    objective: None = None  # type: ignore[assignment]
    models: None = None  # type: ignore[assignment]
    model: str
    loo_rmse: float  # type: ignore[assignment]

    def weighted(self) -> Suggested:
        """The same proposal as one written now: the objective {target: 1}, fitted by its one model."""
        kept = self.model_dump(exclude={"objective", "models", "loo_rmse", "model"})
        one = {"objective": {self.target: 1.0}, "models": {self.target: self.model}}
        return Suggested.model_validate({**kept, **one, "loo_rmse": {self.target: self.loo_rmse}})


SUGGESTED_FIX = "delete it and rerun `ablate suggest`"
_PROPOSALS = dict[str, Suggested | SuggestedBefore]


def read_suggested(path: Path) -> dict[str, Suggested]:
    """Name → proposal, one written before weighted objectives read as one now; {} where nothing was
    suggested yet."""
    found = TypeAdapter(_PROPOSALS).validate_python(_written_suggestions(path))
    return {name: p.weighted() if isinstance(p, SuggestedBefore) else p for name, p in found.items()}


def add_suggestion(path: Path, key: str, proposal: dict[str, Any]) -> None:
    """Add (or replace) one proposal in a suggested.json, keeping the others as written."""
    Suggested.model_validate(proposal)
    write_json(path, {**_written_suggestions(path), key: proposal})


def _written_suggestions(path: Path) -> dict[str, Any]:
    return read_shaped(path, _PROPOSALS, SUGGESTED_FIX) if path.exists() else {}


# ---- checkpoints.json ----------------------------------------------------------------------

CHECKPOINTS_FIX = "delete it and rerun `ablate pretrain`"


def registered_checkpoints(study: str) -> dict[str, str]:
    registry = study_dir(study) / CHECKPOINTS
    return read_shaped(registry, dict[str, str], CHECKPOINTS_FIX) if registry.exists() else {}


def register_checkpoint(study: str, name: str, path: str) -> None:
    write_json(study_dir(study) / CHECKPOINTS, {**registered_checkpoints(study), name: path})


def resolve_checkpoint(study: str, recipe_checkpoints: dict[str, str], ref: str) -> str:
    """A checkpoint name (recipe first, then the study's registry) or a path/URI, as given."""
    known = {**registered_checkpoints(study), **recipe_checkpoints}
    if ref in known:
        return known[ref]
    if "/" in ref or "://" in ref or Path(ref).exists():
        return ref
    raise StudyError(f"--checkpoint {ref}: not a known name {sorted(known)} nor a path; pass a path or a name")
