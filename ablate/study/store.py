"""Study folder: where each stage writes and the next one reads. The only shared state.

    results/                      ($ABLATE_RESULTS overrides the root)
      .current                    name of the study `run`/`report`/`status` use without --study
      <study>/
        plan.json                 written by `plan` (schema: ablate.plan.build.Plan)
        checkpoints.json          name → path, registered by `pretrain`
        pretrain/                 the shared start: Composer checkpoints, train_log.jsonl, status.json
        start/                    evaluation of the start checkpoint: eval/, status.json
        starts/                   start checkpoints converted once to the recipe's form (one file ↔ sharded)
        <variant>/
          variant.json            the variant's entry of plan.json (schema: ablate.plan.build.Variant)
          status.json             its state, hashes and progress (each field: ablate.study.artifacts.Status)
          checkpoints/            Composer checkpoints (resumable): one file each, or a folder each when sharded
          model/                  the final model as a Hugging Face folder (safetensors + tokenizer)
          train_log.jsonl         one {"tokens", "loss", "lr"} per logged step
          eval/                   lm-eval's own outputs: results_*.json, samples_<task>_*.jsonl
          heldout.json            with eval.heldout: per-domain loss, bits per byte, per-sequence nll
          lock                    held while a runner works on the variant
        report.md, report.csv, report.json, deltas.png   written by `report`

Each JSON file's model, name, writer and reader are ablate.study.artifacts'; a job folder's rules
(lock, checkpoints/, what happens next) are ablate.study.job's.
Every JSON write is atomic (temp file in the same folder, then rename), so a reader sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ablate.errors import StudyError


def results_root() -> Path:
    return Path(os.environ.get("ABLATE_RESULTS", "results"))


def study_dir(study: str) -> Path:
    return results_root() / study


def variant_dir(study: str, variant: str) -> Path:
    return study_dir(study) / variant


_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write via a temp file in the same folder and rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def replacing_folder(out: Path) -> Iterator[Path]:
    """A staging path beside `out` to fill (it does not exist yet); when the block ends without an
    error, the staging folder replaces `out` whole, so `out` never holds half of what was written."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # what a failed write (a full disk) took is freed
        raise
    if out.is_dir():
        shutil.rmtree(out)
    else:
        out.unlink(missing_ok=True)
    staging.rename(out)


def write_json(path: Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def read_json(path: Path, fix: str = "delete it and rerun") -> Any:
    """`path`'s JSON; a file that is not UTF-8 JSON is one StudyError line naming it and the `fix`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{path}: missing") from None
    except UnicodeDecodeError as exc:  # ablate writes UTF-8: this is another file, or a damaged one
        raise StudyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise StudyError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from None


def read_shaped(path: Path, shape: Any, fix: str = "delete it and rerun") -> Any:
    """`path`'s JSON as read, checked to have `shape` (what pydantic validates: a model, dict[str, str],
    ...) strictly, as JSON (no text for a number). A file that is valid JSON of the wrong shape (a list
    for an object, a key missing) is one StudyError line naming it and the `fix`, not a later traceback."""
    payload = read_json(path, fix)
    try:
        TypeAdapter(shape).validate_json(json.dumps(payload), strict=True)
    except ValidationError as exc:
        raise shape_error(path, exc, fix) from None
    return payload


def shape_error(path: Path, exc: ValidationError, fix: str) -> StudyError:
    """pydantic's first complaint about a study file's content as one line naming the file and the fix."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "top level"
    message = str(error["msg"]).removeprefix("Value error, ")  # a validator's own words
    return StudyError(f"{path}: not what ablate writes there ({where}: {message}); {fix}")


# ---- the current study ---------------------------------------------------------------------


def set_current(study: str) -> None:
    write_atomic(results_root() / ".current", study + "\n")


def current_study(study: str | None = None) -> str:
    """The study named by --study, else the one `plan` last wrote."""
    if study:
        if not (study_dir(study) / "plan.json").exists():
            raise StudyError(f"--study {study}: no {study_dir(study) / 'plan.json'}; run `ablate plan` first")
        return study
    marker = results_root() / ".current"
    if not marker.exists():
        raise StudyError(f"no current study in {results_root()}/; run `ablate plan` first or pass --study NAME")
    return marker.read_text().strip()
