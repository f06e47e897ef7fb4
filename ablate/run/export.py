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
scores of the trained model. A folder is written beside its place and swapped in whole, with a
MARKER file in it, so `ablate export --force` replaces only a folder ablate exported, never another.
A variant's model/ is checked against the sizes and hashes its status.json recorded, and exported
again from the final checkpoint when it is missing, cut short or changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers

from ablate.artifacts import read_status, write_status
from ablate.errors import AblateError, StudyError
from ablate.job import (
    HASH_LIMIT,
    LATEST,
    MODEL,
    damaged_outputs,
    folder_lock,
    record_outputs,
)
from ablate.run.dist import rank
from ablate.store import replacing_folder, write_atomic

MARKER = ".ablate-export"  # in every folder ablate exports: what `ablate export --force` may replace

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
        _mark(staging)


def _mark(folder: Path) -> None:
    write_atomic(folder / MARKER, "written by ablate's export; `ablate export --force` may replace this folder\n")


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
    again from the final checkpoint, never handed on. `force` replaces only an earlier export."""
    from ablate.plan.study import load_study_plan
    from ablate.store import variant_dir

    plan, _ = load_study_plan(study)
    variant = plan.variant(name)
    folder = variant_dir(study, name)
    status = read_status(folder)
    trained_for = status.train_hash
    if trained_for not in (None, variant.train_hash):
        raise StudyError(
            f"{folder}: trained for hash {trained_for}, the plan now says {variant.train_hash}; "
            "rerun the variant before exporting it"
        )
    if not status.trained:
        raise StudyError(f"variant {name}: not trained yet; run `ablate run --variant {name}` first")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise AblateError(f"{out}: exists and is not empty; pass --force to replace it, or name another folder")
        if not (out / MARKER).is_file():
            raise AblateError(
                f"{out}: not a folder ablate exported (no {MARKER} in it), so --force leaves it alone; "
                "name another folder, or remove it yourself"
            )
    with folder_lock(folder), replacing_folder(out) as staging:  # no runner writes the folder meanwhile
        shutil.copytree(ensure_exported(folder, hash_limit=None), staging)
        _mark(staging)
    return out
