"""What a runner reads off a job folder before it decides: the status, the latest checkpoint's
tokens, and whether a done folder's outputs are still as they were written.

    from ablate.run.folder import variant_next
    variant_next("demo", recipe, plan.variant("no-math"), folder)   # → Next(do=Do.EVALUATE, why="trained: ...")

ablate.study.job.next_action decides; this module gathers its inputs, which takes I/O: status.json,
sizes and hashes of the outputs (ablate.study.job.damaged_outputs) and, for a folder that has a latest
checkpoint but no status saying it is trained, the checkpoint's timestamp (ablate.run.start,
which imports torch: only then). The runner (and `ablate run --dry-run`) and the job itself both
ask here, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ablate.errors import AblateError, StudyError
from ablate.plan.build import Variant
from ablate.recipe import Recipe
from ablate.study.artifacts import State, Status, read_status
from ablate.study.job import EVAL, LATEST, Next, damaged_outputs, next_action, variant_outputs


def start_next(start_hash: str, folder: Path, holder: str | None = None) -> Next:
    """What happens to the start checkpoint's evaluation next: done once per hash, again if its
    lm-eval outputs are missing or changed."""
    status = read_status(folder)
    done = status.state == State.DONE and status.hash == start_hash
    damaged = damaged_outputs(folder, status, (EVAL,)) if done and not holder else {}
    return next_action(status, hash=start_hash, holder=holder, damaged=damaged)


class Seen(NamedTuple):
    """What a runner reads off a variant's folder to decide (ablate.study.job.next_action's inputs)."""

    status: Status
    checkpoint_at: int | None  # tokens of the phase the latest checkpoint holds, where it was read
    damaged: dict[str, str]  # a done folder's outputs that are missing or changed → why


def checkpoint_at(folder: Path, status: Status, train_hash: str, start_tokens: Callable[[], int]) -> int | None:
    """Tokens past its start that the folder's latest checkpoint holds, read off its timestamp when the
    status cannot say (not trained yet, or status.json lost); None without one or once trained.

    `start_tokens` says where the run started when the status does not. A checkpoint that cannot be
    read (cut short, corrupt) is one line naming the file and the fix: Composer keeps only the latest.
    """
    latest = folder / LATEST
    if status.state == State.DONE or status.trained or status.train_hash not in (None, train_hash):
        return None
    if not latest.exists():
        return None
    from ablate.run.start import checkpoint_tokens

    target = latest.resolve()
    try:
        tokens = checkpoint_tokens(str(target))
    except AblateError as exc:
        raise StudyError(
            f"{exc}; {folder.name}'s latest checkpoint is cut short or corrupt: delete it and the link {latest}, "
            f"then rerun to train {folder.name} again from its start"
        ) from None
    began = status.start_tokens
    return tokens - (start_tokens() if began is None else int(began))


def look(recipe: Recipe, variant: Variant, folder: Path, start: Callable[[], str]) -> Seen:
    """Read the variant's folder: its status, its latest checkpoint's tokens, and its outputs if done.
    `start` gives the start checkpoint's local path (ablate.run.fetch.local_start), asked for only where
    the status cannot say where the latest checkpoint's run started."""
    from ablate.run.start import load_start

    status = read_status(folder)
    done = status.state == State.DONE and status.hash == variant.hash
    damaged = damaged_outputs(folder, status, variant_outputs(bool(recipe.eval.heldout))) if done else {}

    def start_tokens() -> int:
        return load_start(start(), weights=False).tokens

    return Seen(status, checkpoint_at(folder, status, variant.train_hash, start_tokens), damaged)


def variant_next(
    recipe: Recipe,
    variant: Variant,
    folder: Path,
    start: Callable[[], str],
    holder: str | None = None,
    seen: Seen | None = None,
) -> Next:
    """What happens to the variant's folder next (ablate.study.job.next_action on what `look` reads, or `seen`)."""
    if seen is None:
        seen = Seen(read_status(folder), None, {}) if holder else look(recipe, variant, folder, start)
    return next_action(
        seen.status,
        hash=variant.hash,
        train_hash=variant.train_hash,
        has_checkpoint=(folder / LATEST).exists(),
        holder=holder,
        tokens=variant.tokens,
        checkpoint_at=seen.checkpoint_at,
        damaged=seen.damaged,
    )
