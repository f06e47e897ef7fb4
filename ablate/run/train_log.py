"""TrainLog: each step's tokens, loss and LR in a variant's train_log.jsonl, and its progress."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from composer import Callback, Logger, State

from ablate.run.dist import rank

LOG = "train_log.jsonl"
FLUSH_SECONDS = 2.0  # how often the loss log and the progress figure reach the disk


class TrainLog(Callback):
    """Appends {"tokens", "loss", "lr"} per step to train_log.jsonl, buffered, and reports progress.

    `lr` is the schedule's value at `tokens`: the LR of the next step. The loss is the float
    Composer already computed for the step, so logging adds no device sync. Lines reach the disk
    every FLUSH_SECONDS, before every checkpoint (so a checkpoint never covers steps the log lacks)
    and at the end. On resume, lines past the restored timestamp (steps to be replayed) are dropped.
    """

    def __init__(self, path: Path, checkpoint_every: int, on_progress: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.checkpoint_every = checkpoint_every
        self.on_progress = on_progress
        self.buffer: list[str] = []
        self.last_flush = time.monotonic()
        self.last_loss: float | None = None

    def fit_start(self, state: State, logger: Logger) -> None:
        if rank() != 0:
            return
        done = int(state.timestamp.token)
        kept = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["tokens"] <= done:
                        kept.append(line + "\n")
                except (json.JSONDecodeError, KeyError):
                    break  # a line cut by a crash: nothing after it is trustworthy
        from ablate.study.store import write_atomic

        write_atomic(self.path, "".join(kept))

    def batch_end(self, state: State, logger: Logger) -> None:
        if rank() != 0:
            return
        losses = state.total_loss_dict
        self.last_loss = float(sum(losses.values())) if losses else None
        lr = state.optimizers[0].param_groups[0]["lr"]
        tokens, before = int(state.timestamp.token), int(state.previous_timestamp.token)
        self.buffer.append(json.dumps({"tokens": tokens, "loss": self.last_loss, "lr": lr}) + "\n")
        checkpoint_next = tokens // self.checkpoint_every != before // self.checkpoint_every
        if checkpoint_next or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush(tokens)

    def fit_end(self, state: State, logger: Logger) -> None:
        if rank() == 0:
            self.flush(int(state.timestamp.token))

    def flush(self, tokens: int) -> None:
        with self.path.open("a") as handle:
            handle.writelines(self.buffer)
        self.buffer.clear()
        self.last_flush = time.monotonic()
        if self.on_progress:
            self.on_progress(tokens)
