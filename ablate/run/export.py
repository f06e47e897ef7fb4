"""Export: a trained model as a Hugging Face folder (config, safetensors, tokenizer).

    results/<study>/<variant>/model/    written when the variant's training ends; evaluated from
    ablate export no-math out/no-math   a copy on demand, for lm-eval, vLLM or transformers

    from ablate.run.export import export_variant
    export_variant("demo", "no-math", Path("out/no-math"))

Training leaves weights in Composer's checkpoint form, which only Composer (and, when sharded,
only the same sharding) reads back. The folder written here is what every other tool opens:
`AutoModelForCausalLM.from_pretrained`, `lm_eval --model hf --model_args pretrained=<folder>`,
vLLM. Under FSDP every process holds a shard; `gather_weights` collects the whole model on
rank 0 (in CPU memory, so a 7B never needs one device to hold it). Weights keep the dtype they
were trained in (fp32 master weights under amp), so evaluating the folder gives exactly the
scores of the trained model. A folder is written beside its place and swapped in whole.
A variant's model/ is checked against the sizes and hashes its status.json recorded, and exported
again from the final checkpoint when it is missing, cut short or changed.

`ablate export` writes only where it may. Its folder holds a MARKER (ExportRecord: the study, the
variant, its hashes, and each file with its size and sha256), and `--force` replaces only a folder
whose MARKER is such a record and whose recorded files are all still there as written; anything else
is refused, nothing deleted. A folder inside the results (or any study folder), or one that holds the
results or the variant's folder, is never a target, symlinks resolved. A variant's own model/ carries
no MARKER: status.json records its files, and it is no export's place.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers
from pydantic import BaseModel, ValidationError

from ablate.errors import AblateError, StudyError
from ablate.run.dist import rank
from ablate.study.artifacts import PLAN, Output, Status, read_status, write_status
from ablate.study.job import (
    HASH_LIMIT,
    LATEST,
    MODEL,
    damaged_outputs,
    folder_lock,
    record_outputs,
)
from ablate.study.store import replacing_folder, results_root, write_json

MARKER = ".ablate-export"  # in every folder `ablate export` writes: its ExportRecord, what --force checks
LEAVE_IT = "so --force leaves it alone; name another folder, or remove it yourself"

if TYPE_CHECKING:
    from ablate.run.start import Start


def gather_weights(model: torch.nn.Module, sharded: bool) -> dict[str, torch.Tensor] | None:
    """The whole model's weights on rank 0, None elsewhere. Under FSDP every rank must call it: it gathers."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # only rank 0 receives the tensors
        weights = get_model_state_dict(model, options=options)
        return weights if rank() == 0 else None
    return model.state_dict() if rank() == 0 else None


def write_model(
    model_class: type[transformers.PreTrainedModel],
    config: transformers.PretrainedConfig,
    weights: dict[str, torch.Tensor],
    tokenizer: Any,
    out: Path,
) -> None:
    """`save_pretrained` of `model_class(config)` holding `weights`, with the tokenizer, into `out`.

    The model is built on the meta device and takes the tensors as they are (no second copy, no
    random initialisation of a 7B), so the class must be the plain one, not FSDP's wrapper.
    """
    with torch.device("meta"):
        model = model_class(config)
    model.load_state_dict(weights, assign=True)
    model.tie_weights()
    with replacing_folder(out) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)


class ExportRecord(BaseModel):
    """An export's MARKER: what wrote the folder, and each of its files (path in it → size, sha256)
    as written, so `--force` can tell an untouched export from a folder someone filled or changed."""

    study: str
    variant: str
    hash: str
    train_hash: str
    files: dict[str, Output]


def write_start(start: Start, out: Path) -> None:
    """A model already whole in this process (a start loaded from a checkpoint) as a folder."""
    write_model(type(start.model), start.model.config, start.model.state_dict(), start.tokenizer, out)


def ensure_exported(folder: Path, *, hash_limit: int | None = HASH_LIMIT) -> Path:
    """The job folder's model folder as it was written; exported (again) from its latest checkpoint
    when it is missing (killed mid-export), cut short or changed since, or unrecorded while a
    checkpoint is there to export from (status.json lost). Files over `hash_limit` are checked by size."""
    from ablate.run.start import load_start

    status = read_status(folder)
    latest = folder / LATEST
    damaged = damaged_outputs(folder, status, (MODEL,), hash_limit=hash_limit, trust_unrecorded=not latest.exists())
    if damaged:
        if not latest.exists():
            raise StudyError(
                f"{folder}: {damaged[MODEL]}, and no checkpoint to export it from; delete the folder to train again"
            )
        write_start(load_start(str(latest)), folder / MODEL)
        write_status(folder, status.state, outputs=record_outputs(folder, read_status(folder), MODEL))
    return folder / MODEL


def export_variant(study: str, name: str, out: Path, *, force: bool = False) -> Path:
    """Copy a trained variant's model folder to `out` (exporting it first if needed). The model
    folder is read whole and checked against its recorded hashes first: a cut one is exported
    again from the final checkpoint, never handed on. `out` is checked first (check_target), and
    `force` replaces only an untouched earlier export (check_replaceable); a symlink is followed,
    its target replaced and the link kept. A failed copy is one line; the old folder stays, no copy beside it."""
    from ablate.plan.study import load_study_plan
    from ablate.study.store import variant_dir

    plan, _ = load_study_plan(study)
    variant = plan.variant(name)
    folder = variant_dir(study, name)
    real = check_target(out, folder)
    status = read_status(folder)
    trained_for = status.train_hash
    if trained_for not in (None, variant.train_hash):
        raise StudyError(
            f"{folder}: trained for hash {trained_for}, the plan now says {variant.train_hash}; "
            "rerun the variant before exporting it"
        )
    if not status.trained:
        raise StudyError(f"variant {name}: not trained yet; run `ablate run --variant {name}` first")
    if real.exists() and (not real.is_dir() or any(real.iterdir())):
        if not force:
            raise AblateError(f"{out}: exists and is not empty; pass --force to replace it, or name another folder")
        check_replaceable(out, real)
    staging: Path | None = None
    try:
        with folder_lock(folder), replacing_folder(real) as staging:  # no runner writes the folder meanwhile
            shutil.copytree(ensure_exported(folder, hash_limit=None), staging)
            (staging / MARKER).unlink(missing_ok=True)  # a model/ from before records carried a plain one
            files = record_outputs(staging, Status(), *sorted(path.name for path in staging.iterdir()))
            record = ExportRecord(
                study=study, variant=name, hash=variant.hash, train_hash=variant.train_hash, files=files
            )
            write_json(staging / MARKER, record.model_dump(mode="json"))
    except BaseException as exc:
        if staging is not None:  # replacing_folder frees it on errors in the block, not in the swap itself
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            raise AblateError(
                f"{out}: cannot write the export: {exc.strerror or exc}{where}; make room, fix permissions, "
                "or name another folder"
            ) from None
        raise
    return out


def check_target(out: Path, variant_folder: Path) -> Path:
    """`out` with symlinks resolved, refused in one line when it is inside the results or any study
    folder (a variant's model/ included), or holds the results or `variant_folder`: export never
    writes where `ablate run` keeps its outputs, and never deletes them by replacing a folder above."""
    real = out.resolve()
    shown = str(out) if real == out.absolute() else f"{out} (→ {real})"
    root = results_root().resolve()
    if real == root or root in real.parents:
        raise AblateError(f"{shown}: in the results folder {root}, which `ablate run` writes; export outside it")
    for above in (real, *real.parents):  # a study under another results folder (ABLATE_RESULTS set elsewhere)
        if _is_study_folder(above):
            raise AblateError(f"{shown}: in the study folder {above}, which `ablate run` writes; export outside it")
    for inside, what in ((root, "the results folder"), (variant_folder.resolve(), "the variant's folder")):
        if real in inside.parents:
            raise AblateError(f"{shown}: holds {what} {inside}; export to a folder that does not contain it")
    return real


def _is_study_folder(folder: Path) -> bool:
    """Whether `folder` holds a study's plan.json (one under another results folder than this one's too)."""
    path = folder / PLAN
    if not path.is_file():
        return False
    try:
        plan = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(plan, dict) and {"study", "variants", "start_hash"} <= plan.keys()


def check_replaceable(out: Path, real: Path) -> ExportRecord:
    """The record of the export at `real` (`out` as the user named it), refused in one line unless its
    MARKER is an ExportRecord whose files are all there as written (sha256 up to HASH_LIMIT, size above)."""
    marker = real / MARKER
    if not marker.is_file():
        raise AblateError(f"{out}: not a folder ablate exported (no {MARKER} in it), {LEAVE_IT}")
    try:
        record = ExportRecord.model_validate_json(marker.read_bytes(), strict=True)
    except (OSError, ValidationError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not the record an export writes"
        raise AblateError(f"{out}: not a folder ablate exported ({MARKER}: {why}), {LEAVE_IT}") from None
    unsafe = [path for path in record.files if Path(path).is_absolute() or ".." in Path(path).parts]
    if not record.files or unsafe:
        raise AblateError(f"{out}: not a folder ablate exported ({MARKER} records no files of it), {LEAVE_IT}")
    parts = tuple(sorted({path.split("/", 1)[0] for path in record.files}))
    damaged = damaged_outputs(real, Status(outputs=record.files), parts, trust_unrecorded=False)
    if damaged:
        raise AblateError(
            f"{out}: an export changed since ablate wrote it ({next(iter(damaged.values()))}), {LEAVE_IT}"
        )
    return record
