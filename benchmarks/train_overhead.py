"""Training overhead: one variant's continuation through ablate (Composer + StreamingDataset over MDS)
against a plain PyTorch loop on the same model, token stream, batch, optimizer and thread count.

    .venv/bin/python benchmarks/train_overhead.py [--steps 48] [--repeat 5] [--threads 1] [--width 64]

Set-up (in a scratch folder): the demo corpus and its shards, and a start checkpoint written by
`ablate.run.train.fit` after a few steps on the base mix. Three paths then train `--steps` batches of the
demo's upsampled mix from that checkpoint, interleaved (A, B, C, A, B, C, ...; medians reported):

    plain       a hand-written loop over the token stream held in memory as tensors: the baseline
    plain+mds   the same loop reading the StreamingDataset loader ablate builds (the data's cost alone)
    ablate      `ablate.run.train.fit`, exactly what `ablate run` calls for a variant: Composer's Trainer,
                the StreamingDataset, the LR and loss-log callbacks, and checkpoints every
                training.checkpoint_every_tokens plus one at the end (48 steps: one save; a demo
                variant saves every 61 steps on average)

All three load the checkpoint's weights and optimizer state, see the same batches in the same order
and set the same LR before each step, so they end at the same loss (printed: the check that the
comparison is like for like). Timed: the training loop only (`Trainer.fit()` for ablate; loading and
Trainer construction belong to the study benchmark), after one untimed warm-up run of each path.
The figure is the ratio of median wall times; beside it, the ratio of CPU time (all threads of the
process), which time-sharing with other work on the machine disturbs less. Target: ablate / plain
≤ 1.10 in wall time per token. The overheads are per step and per sample, so their share falls as
the model grows: `--width 256` (16× the demo's compute per token) shows it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterable

import torch  # noqa: E402  (after workspace: it sets the thread count torch reads at import)
from composer import Trainer  # noqa: E402
from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict  # noqa: E402
from workspace import SCRATCH, demo_workspace, machine, start_checkpoint

from ablate.plan.build import normalize  # noqa: E402
from ablate.recipe import Recipe  # noqa: E402
from ablate.run import start as starts  # noqa: E402
from ablate.run import train  # noqa: E402
from ablate.run.stream import build_dataloader  # noqa: E402

TARGET = 1.10
Timing = tuple[float, float, float]  # wall seconds, CPU seconds (all threads), last loss


class _CpuTimed(Trainer):
    """Composer's Trainer, noting the process CPU time its fit() takes; nothing else changes."""

    cpu_seconds = 0.0

    def fit(self, *args, **kwargs) -> None:
        before = time.process_time()
        super().fit(*args, **kwargs)
        _CpuTimed.cpu_seconds = time.process_time() - before


class _Named(torch.nn.Module):
    """Gives the plain model the parameter names Composer saved the optimizer state under (model.*)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model


def plain_loop(recipe: Recipe, checkpoint: str, batches: Iterable, steps: int, schedule: train.Schedule) -> Timing:
    """The hand-written loop, from the checkpoint's weights and optimizer state."""
    start = starts.load_start(checkpoint)
    model = start.model
    optimizer = train._optimizer(model, recipe.training.optimizer)  # the recipe's optimizer, built as fit() builds it
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = saved["state"]["optimizers"][type(optimizer).__qualname__]
    set_optimizer_state_dict(_Named(model), optimizer, optim_state_dict=state)
    model.train()
    tokens, per_step = start.tokens, recipe.training.batch_size * recipe.seq_len
    loss = torch.tensor(float("nan"))
    tick, cpu = time.perf_counter(), time.process_time()
    for step, batch in enumerate(batches):
        if step == steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = schedule(tokens)
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        loss.backward()
        if recipe.training.grad_clip_norm:  # what Composer's GradientClipping does before each step
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.training.grad_clip_norm)
        optimizer.step()
        tokens += per_step
    return time.perf_counter() - tick, time.process_time() - cpu, float(loss)


def demo_model(width: int) -> Recipe:
    """The demo recipe, its model `width` wide (16-wide attention heads)."""
    from ablate.demo.study import demo_recipe

    recipe = demo_recipe()
    heads = max(1, width // 16)
    config = {**recipe.model.config, "hidden_size": width, "intermediate_size": 4 * width,
              "num_attention_heads": heads, "num_key_value_heads": heads}  # fmt: skip
    return recipe.model_copy(update={"model": recipe.model.model_copy(update={"config": config})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=96, help="batches per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each path, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for every path")
    parser.add_argument("--width", type=int, default=64, help="hidden size (the demo's: 64); MLP 4× as wide")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train.Trainer = _CpuTimed  # fit() builds its Trainer from this name

    with demo_workspace(demo_model(args.width)) as recipe:
        checkpoint = start_checkpoint(recipe, SCRATCH / "start")
        start = starts.load_start(checkpoint, weights=False)
        begin = start.tokens
        mixture, seed, batch = normalize(recipe.mixes.upsample), 0, recipe.training.batch_size
        schedule = train.phase_schedule(recipe, start)
        tokens = args.steps * batch * recipe.seq_len

        def loader(tag: str) -> Iterable:
            samples = args.steps * batch
            return build_dataloader(recipe, mixture, seed=seed, samples=samples, cache=SCRATCH / tag)[0]

        stream = [dict(b) for b in loader("stream")]  # the batches fit() will draw, held in memory
        runs = 0

        def ablate_fit() -> Timing:
            nonlocal runs
            runs += 1
            result = train.fit(
                starts.load_start(checkpoint, weights=False), recipe, mixture=mixture, seed=seed,
                folder=SCRATCH / f"fit{runs}", run_name=f"bench-{runs}", schedule=schedule, end_tokens=begin + tokens,
            )  # fmt: skip
            assert result.tokens == tokens, result
            return result.seconds, _CpuTimed.cpu_seconds, result.final_loss

        paths = {
            "plain": lambda: plain_loop(recipe, checkpoint, stream, args.steps, schedule),
            "plain+mds": lambda: plain_loop(recipe, checkpoint, loader("mds"), args.steps, schedule),
            "ablate": ablate_fit,
        }
        for run in paths.values():  # warm-up: first calls into torch, Composer, streaming
            run()
        wall: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        losses: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, run in paths.items():
                seconds, cpu_seconds, losses[name] = run()
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)

    print(f"width {args.width}; {args.steps} steps × {batch} × {recipe.seq_len} tokens = {tokens:,} tokens per run; "
          f"{args.repeat} runs each; {torch.get_num_threads()} torch thread(s); {machine()}")
    print(f"{'path':<11}{'median s':>9}{'tokens/s':>10}{'ms/step':>9}{'vs plain':>10}{'CPU s':>8}{'vs plain':>10}"
          f"{'final loss':>12}   runs (s)")
    base, base_cpu = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
    for name in paths:
        median, cpu_median = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"{name:<11}{median:>9.2f}{tokens / median:>10,.0f}{1000 * median / args.steps:>9.1f}"
              f"{median / base:>9.2f}×{cpu_median:>8.2f}{cpu_median / base_cpu:>9.2f}×{losses[name]:>12.5f}   "
              + ", ".join(f"{t:.2f}" for t in wall[name]))
    if len(set(losses.values())) > 1:
        print(f"WARNING: the paths end at different losses {losses}: they did not train alike")
    ratio = statistics.median(wall["ablate"]) / base
    print(f"train_overhead: ablate {tokens / statistics.median(wall['ablate']):,.0f} tok/s vs plain "
          f"{tokens / base:,.0f} tok/s; ratio (target ≤ {TARGET:.2f}) = {ratio:.2f}")


if __name__ == "__main__":
    main()
