"""Checkpoints kept for good at given token counts (the pretraining's phase starts), beside the
run's own latest one, and finding them again."""

from __future__ import annotations

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
