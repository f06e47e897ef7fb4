"""The learning rate as a function of the absolute tokens seen, and the callback that sets it.

Because the LR depends only on `state.timestamp.token`, a run resumed by Composer's autoresume
continues the same curve exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from composer import Callback, Logger, State

from ablate.errors import AblateError
from ablate.recipe import Recipe
from ablate.run.start import Start


@dataclass(frozen=True)
class Schedule:
    """LR as a function of absolute tokens: `shape` over [start, start + length], flat outside.

    'warmup' rises linearly from 0 to the peak (pretraining, then stable at the peak);
    'constant', 'linear' and 'cosine' go from the peak to peak × final_ratio (the phase), after
    a linear rise over the first `warmup` tokens when there is one.
    """

    peak: float
    start: int
    length: int
    shape: str
    final_ratio: float = 0.0
    warmup: int = 0  # phase shapes: rise from 0 to the peak over the first tokens, then the shape

    def __call__(self, tokens: int) -> float:
        if self.warmup > 0 and self.shape != "warmup" and tokens < self.start + self.warmup:
            return self.peak * max(tokens - self.start, 0) / self.warmup
        begin, length = self.start + self.warmup, self.length - self.warmup
        x = min(max((tokens - begin) / length, 0.0), 1.0) if length > 0 else 1.0
        r = self.final_ratio
        if self.shape == "warmup":
            return self.peak * x
        if self.shape == "constant":
            return self.peak
        if self.shape == "linear":
            return self.peak * (1.0 - (1.0 - r) * x)
        if self.shape == "cosine":
            return self.peak * (r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * x)))
        raise ValueError(f"unknown schedule shape {self.shape}")


def pretrain_schedule(recipe: Recipe) -> Schedule:
    return Schedule(recipe.training.optimizer.lr, 0, recipe.training.warmup_tokens, "warmup")


def phase_schedule(recipe: Recipe, start: Start) -> Schedule:
    """The phase's LR from where `start` stands: its peak is optimizer.lr or, with `peak:
    checkpoint`, the LR the start checkpoint's optimizer was at (ablate.recipe.Schedule says when),
    which a fresh optimizer state does not take over."""
    training = recipe.training
    spec = training.schedule
    peak = training.optimizer.lr
    if spec.peak == "checkpoint":
        if training.optimizer.state == "fresh":
            # An LR suits the optimizer that ran at it (Lion's is 3-10x smaller than AdamW's), and
            # `fresh` is there to switch optimizer: the new one's peak is the recipe's to say.
            raise AblateError(
                "training.schedule.peak: checkpoint takes the LR of the optimizer state that "
                "training.optimizer.state: fresh drops; set peak: recipe and the new optimizer's lr"
            )
        if start.lr is None:
            raise AblateError(
                f"training.schedule.peak: checkpoint, but the start {start.load_path or '(a model folder)'} holds no "
                "optimizer LR; start from a Composer checkpoint or set peak: recipe"
            )
        peak = start.lr
    return Schedule(peak, start.tokens, training.phase_tokens, spec.name, spec.final_ratio, spec.warmup_tokens)


class TokenLR(Callback):
    """Sets the LR from the tokens seen before each batch, and leaves the final value in place.

    Composer's own schedulers step before the timestamp advances, so they lag one batch; setting
    the LR here at FIT_START and after each BATCH_END makes batch k use schedule(tokens before k).
    """

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def _apply(self, state: State) -> None:
        lr = self.schedule(int(state.timestamp.token))
        for optimizer in state.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def fit_start(self, state: State, logger: Logger) -> None:
        self._apply(state)

    def batch_end(self, state: State, logger: Logger) -> None:
        self._apply(state)
