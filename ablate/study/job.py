"""A job folder's contract: its names, states, exit codes, lock and status, and what happens to it next.

    results/<study>/<job>/        a job is a variant, `start` (the start checkpoint's evaluation) or `pretrain`
      status.json                 its state, hashes and progress (each field: ablate.study.artifacts.Status)
      lock                        flock held while a runner works on the folder
      checkpoints/latest-rank0.pt Composer's link to the newest checkpoint of the folder's own run
      model/                      a trained variant's final model, save_pretrained (what it is evaluated from)
      eval/, heldout.json         its evaluation (ablate.run.evaluate, ablate.run.heldout)

    from ablate.study.artifacts import read_status
    from ablate.study.job import next_action
    next_action(read_status(folder), hash=variant.hash, train_hash=variant.train_hash,
                has_checkpoint=(folder / LATEST).exists())      # → Next(do=Do.RESUME, why="interrupted at ...")

One module answers "what happens to this folder next": the runner (and `ablate run --dry-run`)
asks `next_action` before starting a job, and the job asks it again once it holds the lock, so
the two can never disagree. `next_action` is pure; reading the status, the lock, the latest
checkpoint's timestamp and the outputs (`damaged_outputs`) is the caller's.

A done folder is trusted only as far as its outputs are as they were written: status.json records
each output file's size and sha256 (`record_outputs`), and a file missing, cut short or changed is
recomputed from what is intact (the evaluation from model/, model/ from the final checkpoint).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path

from ablate.errors import StudyError
from ablate.study.artifacts import HELDOUT, STATUS, Output, State, Status

START = "start"  # the folder and job name of the start checkpoint's evaluation
PRETRAIN = "pretrain"  # the folder of the shared pretraining
PRETRAINED = "pretrained"  # the checkpoint name `ablate pretrain` registers
LOCK = "lock"
VARIANT = "variant.json"  # the variant's entry of plan.json, copied when its job starts
LATEST = "checkpoints/latest-rank0.pt"  # Composer's link to a run's newest checkpoint, within its folder
STARTS = "starts"  # in the study folder: start checkpoints converted to the form the recipe trains in
CACHE = "cache"  # in the study folder: copies the study owns of what it reads (shards made ready, fetched checkpoints)
MODEL = "model"  # a trained variant's final model as a Hugging Face folder (ablate.run.export)
EVAL = "eval"  # lm-eval's outputs (ablate.run.evaluate)
HASH_LIMIT = 1 << 30  # larger files (a 7B's weight shards) are checked by size only, not read whole each run


STALE = "stale"  # never written: what readers call a folder whose recorded hash is not the plan's
DAMAGED = "damaged"  # never written: what readers call a done folder whose outputs are not as recorded


class Exit(IntEnum):
    """A job process's exit code, which the runner turns into an outcome."""

    OK = 0
    USER = 2  # the user must fix something; the message is in status.json and on stderr
    BUSY = 3  # another runner holds the folder's lock


class Do(StrEnum):
    """What a runner does with a job folder."""

    TRAIN = "train"
    RESUME = "resume"
    EVALUATE = "evaluate"
    SKIP = "skip"
    BUSY = "busy"
    STALE = "stale"  # trained for another plan: refused, never overwritten


WORK = (Do.TRAIN, Do.RESUME, Do.EVALUATE)  # the actions that start a job process


@dataclass(frozen=True)
class Next:
    do: Do
    why: str  # what --dry-run prints


def next_action(
    status: Status,
    *,
    hash: str,
    train_hash: str | None = None,
    has_checkpoint: bool = False,
    holder: str | None = None,
    tokens: int = 0,
    checkpoint_at: int | None = None,
    damaged: Mapping[str, str] | None = None,
) -> Next:
    """The one rule for a job folder, given its status and the plan's hashes for it.

    `train_hash` is None for an evaluation-only job (the start checkpoint), which is re-evaluated
    whenever its hash changed. A training job is STALE when its folder holds training for another
    train_hash; it is re-evaluated without retraining when only the evaluation changed, and resumed
    from its own checkpoint when interrupted. `holder`: who holds the folder's lock (None: free);
    `tokens`: the planned tokens; `checkpoint_at`: the tokens of them the latest checkpoint holds
    (None: not read), so a run killed after its last step (in the export, say) is exported and
    evaluated, not trained past its end; `damaged`: output (MODEL, EVAL, HELDOUT) → what is wrong
    with it (`damaged_outputs`), which a done folder recomputes instead of being skipped.
    """
    state = status.state
    recorded = status.hash
    damaged = damaged or {}
    done = state == State.DONE and recorded == hash
    lost = "; ".join(damaged.values())
    if holder:
        return Next(Do.BUSY, holder)
    if done and not damaged:
        return Next(Do.SKIP, "done, hash matches, outputs intact")
    if train_hash is None:
        if done:
            return Next(Do.EVALUATE, f"{lost}; evaluate again")
        if state != State.PENDING and recorded not in (None, hash):
            return Next(Do.EVALUATE, f"evaluated for hash {recorded}, the plan now says {hash}")
        return Next(Do.EVALUATE, "evaluate the start checkpoint once per study")
    if state == State.PENDING and not has_checkpoint:
        return Next(Do.TRAIN, f"{tokens:,} tokens")
    trained_for = status.train_hash
    if trained_for is not None and trained_for != train_hash:
        return Next(Do.STALE, f"trained for hash {trained_for}, the plan now says {train_hash}")
    if done and MODEL not in damaged:
        return Next(Do.EVALUATE, f"{lost}; recompute from {MODEL}/")
    if done and has_checkpoint:
        return Next(Do.EVALUATE, f"{lost}; export {MODEL}/ again from the final checkpoint, then evaluate")
    if done:
        return Next(Do.TRAIN, f"{lost}, and no checkpoint to export it from; train again ({tokens:,} tokens)")
    if not has_checkpoint:
        return Next(Do.TRAIN, f"{tokens:,} tokens")
    if checkpoint_at is not None and checkpoint_at >= tokens:
        return Next(Do.EVALUATE, f"trained: its latest checkpoint holds all {tokens:,} tokens; export and evaluate")
    if status.trained:
        return Next(Do.EVALUATE, "trained; evaluation settings changed or unfinished")
    at = status.tokens_done if checkpoint_at is None else checkpoint_at
    return Next(Do.RESUME, f"interrupted at {at or 0:,} of {tokens:,} tokens")


def results_state(status: Status, hash: str, damaged: Mapping[str, str] | None = None) -> str:
    """A folder's state as a reader of its results sees it: STALE when they belong to another hash,
    DAMAGED when done but `damaged` (ablate.study.job.damaged_outputs) names an output not as recorded."""
    if status.state != State.PENDING and status.hash != hash:
        return STALE
    if status.state == State.DONE and damaged:
        return DAMAGED
    return status.state.value


# ---- outputs -------------------------------------------------------------------------------


def result_outputs(heldout: bool) -> tuple[str, ...]:
    """What a variant's results are read from: lm-eval's outputs and, with eval.heldout, its held-out loss.
    `report` and `status` check these; model/ only `run` and `export`, which use it (a model folder
    deleted to save space leaves the results as they were)."""
    return (EVAL, *([HELDOUT] if heldout else []))


def variant_outputs(heldout: bool) -> tuple[str, ...]:
    """A variant's outputs: its model folder, then its results."""
    return (MODEL, *result_outputs(heldout))


def result_files(folder: Path) -> list[Path]:
    """lm-eval's results_<stamp>.json files anywhere under `folder`, oldest first (by the stamp in the name)."""
    return sorted(folder.glob("**/results_*.json"), key=lambda p: (lm_eval_stamp(p), p.stat().st_mtime))


def lm_eval_stamp(path: Path) -> str:
    """lm-eval's file time stamp (ISO, sortable): the part after the last underscore."""
    return path.stem.rsplit("_", 1)[-1]


def _part(path: str) -> str:
    """The output a recorded file belongs to: its first component (model/config.json → model)."""
    return path.split("/", 1)[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path, part: str) -> list[Path]:
    root = folder / part
    if root.is_dir():
        return sorted(path for path in root.rglob("*") if path.is_file())
    return [root] if root.is_file() else []


def record_outputs(folder: Path, status: Status, *parts: str) -> dict[str, Output]:
    """The status's outputs with each of `parts` (a file or folder of the job folder) fingerprinted
    afresh: what a job writes into status.json once it has written them."""
    kept = {path: entry for path, entry in (status.outputs or {}).items() if _part(path) not in parts}
    for part in parts:
        for path in _files(folder, part):
            kept[path.relative_to(folder).as_posix()] = Output(bytes=path.stat().st_size, sha256=_sha256(path))
    return kept


def damaged_outputs(
    folder: Path,
    status: Status,
    parts: tuple[str, ...],
    *,
    hash_limit: int | None = HASH_LIMIT,
    trust_unrecorded: bool = True,
) -> dict[str, str]:
    """Each of `parts` that is missing, cut short or changed since status.json recorded it → why.

    Files over `hash_limit` bytes are checked by size only (None: every file is read and hashed).
    A part with no record (a folder from before records, or one whose status.json was deleted)
    only has to be there, unless not `trust_unrecorded`.
    """
    recorded = status.outputs or {}
    damaged: dict[str, str] = {}
    for part in parts:
        files = {path: entry for path, entry in recorded.items() if _part(path) == part}
        if not files and not _files(folder, part):
            damaged[part] = f"{part}: missing"
        elif not files and not trust_unrecorded:
            damaged[part] = f"{part}: not recorded in {STATUS}"
        for path, entry in files.items():
            problem = _changed(folder / path, entry, hash_limit)
            if problem:
                damaged[part] = f"{path}: {problem}"
                break
    return damaged


def _changed(path: Path, entry: Output, hash_limit: int | None) -> str | None:
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != entry.bytes:
        return f"{size:,} bytes, {entry.bytes:,} when written"
    if (hash_limit is None or size <= hash_limit) and _sha256(path) != entry.sha256:
        return "changed since it was written (sha256 differs)"
    return None


# ---- lock ----------------------------------------------------------------------------------


class Busy(StudyError):
    """Another runner holds the folder's lock."""


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold <folder>/lock (flock: released by the kernel if the holder dies, even by SIGKILL)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise Busy(f"{folder}: locked by {holder}; another runner is working on it") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_holder(folder: Path) -> str | None:
    """Who holds the folder's lock right now, or None (checks without keeping it)."""
    if not (folder / LOCK).exists():
        return None
    try:
        with folder_lock(folder):
            return None
    except Busy as exc:
        return str(exc)
