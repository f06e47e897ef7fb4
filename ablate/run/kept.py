"""Checkpoints kept for good at given token counts (the pretraining's phase starts), beside the
run's own latest one, and finding them again; checkpoints no longer needed, deleted."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from composer import Callback, Logger, State
from composer.utils import dist as composer_dist
from composer.utils.checkpoint import save_checkpoint

from ablate.run.dist import rank

KEPT = "kept"  # a run's checkpoints kept at given token counts (the pretraining's phase starts)


class KeepAt(Callback):
    """Also writes a checkpoint at the first batch end at or past each of `tokens`, into `folder` as
    tok<tokens>.pt, and keeps them all (the run's own saver keeps only the latest). Written under a
    `partial-` name and renamed when every rank is done, so a kill never leaves a cut file there."""

    def __init__(self, folder: Path, tokens: list[int]) -> None:
        self.folder, self.tokens = folder, tokens

    def batch_checkpoint(self, state: State, logger: Logger) -> None:
        now, before = int(state.timestamp.token), int(state.previous_timestamp.token)
        if not any(before < t <= now for t in self.tokens):
            return
        target = self.folder / f"tok{now}.pt"
        partial = target.with_name("partial-" + target.name)  # Composer reads the format off the suffix
        self.folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(state, str(partial))
        composer_dist.barrier()
        if rank() == 0:
            partial.replace(target)


def kept_checkpoint(folder: Path, tokens: int, batch_tokens: int) -> Path | None:
    """The checkpoint `keep_at` kept for `tokens` under folder/KEPT (within one batch past it), None
    if there is none yet."""
    found = sorted(
        (int(path.stem.removeprefix("tok")), path)
        for path in (folder / KEPT).glob("tok*.pt")
        if path.stem.removeprefix("tok").isdigit()
    )
    return next((path for count, path in found if tokens <= count < tokens + batch_tokens), None)


_COMPOSER_CHECKPOINT = re.compile(r"ep\d+-ba\d+(-rank\d+\.pt)?")  # a file, or a sharded checkpoint's folder


def drop_superseded(latest: Path) -> None:
    """Delete the checkpoints beside Composer's `latest` link other than the one it points to. Composer's
    saver keeps one, but counts only those its own process wrote: the one a resumed run started from
    stayed on disk, a whole model's state each time. Nothing that holds the target, or is held by it
    (a sharded checkpoint's folder), is touched."""
    if not latest.exists():
        return
    keep = latest.resolve()
    for path in latest.parent.iterdir():
        real = path.resolve()
        if path.is_symlink() or not _COMPOSER_CHECKPOINT.fullmatch(path.name):
            continue
        if real == keep or real in keep.parents or keep in real.parents:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
