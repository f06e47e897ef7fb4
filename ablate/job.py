"""A job folder's contract: its names, states, exit codes, lock and status, and what happens to it next.

    results/<study>/<job>/        a job is a variant, `start` (the start checkpoint's evaluation) or `pretrain`
      status.json                 {"state", "hash", "train_hash", "trained", "tokens_done", "error", ...}
      lock                        flock held while a runner works on the folder
      checkpoints/latest-rank0.pt Composer's link to the newest checkpoint of the folder's own run
      model/                      a trained variant's final model, save_pretrained (what it is evaluated from)

    from ablate.job import next_action, read_status
    next_action(read_status(folder), hash=variant.hash, train_hash=variant.train_hash,
                has_checkpoint=(folder / LATEST).exists())      # → Next(do=Do.RESUME, why="interrupted at ...")

One module answers "what happens to this folder next": the runner (and `ablate run --dry-run`)
asks `next_action` before starting a job, and the job asks it again once it holds the lock, so
the two can never disagree. `next_action` is pure; reading the status and the lock is the caller's.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

from ablate.errors import StudyError
from ablate.store import read_json, write_json

START = "start"  # the folder and job name of the start checkpoint's evaluation
PRETRAIN = "pretrain"  # the folder of the shared pretraining
PRETRAINED = "pretrained"  # the checkpoint name `ablate pretrain` registers
LOCK = "lock"
STATUS = "status.json"
VARIANT = "variant.json"  # the variant's entry of plan.json, copied when its job starts
LATEST = "checkpoints/latest-rank0.pt"  # Composer's link to a run's newest checkpoint, within its folder
STARTS = "starts"  # in the study folder: start checkpoints converted to the form the recipe trains in
MODEL = "model"  # a trained variant's final model as a Hugging Face folder (ablate.run.export)


class State(StrEnum):
    """What status.json says. A folder without one is PENDING."""

    PENDING = "pending"
    TRAINING = "training"
    EVALUATING = "evaluating"
    DONE = "done"
    FAILED = "failed"


STALE = "stale"  # never written: what readers call a folder whose recorded hash is not the plan's


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
    status: Mapping[str, Any],
    *,
    hash: str,
    train_hash: str | None = None,
    has_checkpoint: bool = False,
    holder: str | None = None,
    tokens: int = 0,
) -> Next:
    """The one rule for a job folder, given its status and the plan's hashes for it.

    `train_hash` is None for an evaluation-only job (the start checkpoint), which is re-evaluated
    whenever its hash changed. A training job is STALE when its folder holds training for another
    train_hash; it is re-evaluated without retraining when only the evaluation changed, and resumed
    from its own checkpoint when interrupted. `holder`: who holds the folder's lock (None: free);
    `tokens`: the planned tokens, for the message.
    """
    state = status.get("state", State.PENDING)
    recorded = status.get("hash")
    if holder:
        return Next(Do.BUSY, holder)
    if state == State.DONE and recorded == hash:
        return Next(Do.SKIP, "done, hash matches")
    if train_hash is None:
        if state != State.PENDING and recorded not in (None, hash):
            return Next(Do.EVALUATE, f"evaluated for hash {recorded}, the plan now says {hash}")
        return Next(Do.EVALUATE, "evaluate the start checkpoint once per study")
    if state == State.PENDING:
        return Next(Do.TRAIN, f"{tokens:,} tokens")
    trained_for = status.get("train_hash")
    if trained_for is not None and trained_for != train_hash:
        return Next(Do.STALE, f"trained for hash {trained_for}, the plan now says {train_hash}")
    if status.get("trained") and has_checkpoint:
        return Next(Do.EVALUATE, "trained; evaluation settings changed or unfinished")
    if state in (State.TRAINING, State.FAILED, State.EVALUATING) and has_checkpoint:
        return Next(Do.RESUME, f"interrupted at {int(status.get('tokens_done') or 0):,} of {tokens:,} tokens")
    return Next(Do.TRAIN, f"{tokens:,} tokens")


def results_state(status: Mapping[str, Any], hash: str) -> str:
    """A folder's state as a reader of its results sees it: STALE when they belong to another hash."""
    state = str(status.get("state", State.PENDING))
    if state != State.PENDING and status.get("hash") != hash:
        return STALE
    return state


# ---- status --------------------------------------------------------------------------------


def read_status(folder: Path) -> dict[str, Any]:
    """A folder's status; `pending` when nothing has run there yet."""
    path = folder / STATUS
    return read_json(path) if path.exists() else {"state": State.PENDING.value}


def write_status(folder: Path, state: State, **fields: Any) -> None:
    """Merge `fields` into the folder's status (atomically) and set its state."""
    previous = read_status(folder)
    write_json(folder / STATUS, {**previous, **fields, "state": state.value, "updated": time.time()})


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
