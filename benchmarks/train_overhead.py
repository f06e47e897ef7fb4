"""Training overhead: one variant's continuation through ablate (Composer + StreamingDataset over MDS)
against a plain PyTorch loop on the same model, token stream, batch, optimizer and thread count.

    .venv/bin/python benchmarks/train_overhead.py [--steps 96] [--repeat 3] [--threads 1]

Set-up (in a temporary folder): the demo corpus and its shards, and a start checkpoint written by
`ablate.train.fit` after a few steps on the base mix. Three paths then train `--steps` batches of the
demo's upsampled mix from that checkpoint, interleaved (A, B, C, A, B, C, ...; medians reported):

    plain       a hand-written loop over the token stream held in memory as tensors: the baseline
    plain+mds   the same loop reading the same StreamingDataset loader ablate builds (data cost alone)
    ablate      `ablate.train.fit`, exactly what `ablate run` calls for a variant: Composer's Trainer,
                the StreamingDataset, the LR and loss-log callbacks and checkpoints every
                training.checkpoint_every_tokens

All three load the checkpoint's weights and optimizer state, see the same batches in the same order
and set the same LR before each step, so they end at the same loss (printed: a check that the
comparison is like for like). Timed: the training loop only (`Trainer.fit()` for ablate; model
loading and Trainer construction are the study benchmark's business), after one untimed warm-up run
of each path in this process. Target: ablate / plain ≤ 1.10.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models on shared cores; --threads sets torch's count
for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict  # noqa: E402

from ablate import train  # noqa: E402
from ablate.data import build_subsets  # noqa: E402
from ablate.demo import demo_recipe, working_directory  # noqa: E402
from ablate.demo_corpus import write_demo  # noqa: E402
from ablate.plan import normalize  # noqa: E402
from ablate.recipe import Recipe  # noqa: E402

TARGET = 1.10
START_STEPS = 4  # steps of "pretraining" behind the start checkpoint


class _Wrapped(torch.nn.Module):
    """Gives the plain model the parameter names Composer saved its optimizer state under (model.*)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model


def start_checkpoint(recipe: Recipe, folder: Path) -> str:
    """A Composer checkpoint after START_STEPS steps on the base mix, written by ablate itself."""
    end = START_STEPS * recipe.training.batch_size * recipe.seq_len
    train.fit(
        train.new_model(recipe), recipe, mixture=normalize(recipe.mixes.base), seed=recipe.training.seed,
        folder=folder, run_name="bench-start", schedule=train.pretrain_schedule(recipe), end_tokens=end,
    )  # fmt: skip
    return str(folder / "checkpoints" / "latest-rank0.pt")


def plain_loop(recipe: Recipe, checkpoint: str, batches, steps: int, schedule: train.Schedule) -> tuple[float, float]:
    """The hand-written loop: weights and optimizer state from the checkpoint; returns (seconds, last loss)."""
    start = train.load_start(checkpoint)
    model = start.model
    optimizer = train._optimizer(model, recipe)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    optim_state = saved["state"]["optimizers"][type(optimizer).__qualname__]
    set_optimizer_state_dict(_Wrapped(model), optimizer, optim_state_dict=optim_state)
    model.train()
    tokens, per_step = start.tokens, recipe.training.batch_size * recipe.seq_len
    loss = torch.tensor(float("nan"))
    tick = time.perf_counter()
    for step, batch in enumerate(batches):
        if step == steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = schedule(tokens)
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        loss.backward()
        optimizer.step()
        tokens += per_step
    seconds = time.perf_counter() - tick
    return seconds, float(loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=96, help="batches per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each path, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for every path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(tempfile.mkdtemp(prefix="ablate-train-bench-"))
    with working_directory(root):
        recipe = demo_recipe()
        write_demo(Path("."))
        build_subsets(recipe)
        checkpoint = start_checkpoint(recipe, root / "start")
        begin = train.load_start(checkpoint, weights=False).tokens
        mixture = normalize(recipe.mixes.upsample)
        seed = 0
        batch = recipe.training.batch_size
        schedule = train.phase_schedule(recipe, begin)
        end = begin + args.steps * batch * recipe.seq_len

        def loader(tag: str):
            return train.build_dataloader(recipe, mixture, seed=seed, samples=args.steps * batch, cache=root / tag)[0]

        stream = [dict(b) for b in loader("stream")]  # the exact batches fit() will draw, held in memory
        runs = 0

        def ablate_fit() -> tuple[float, float]:
            nonlocal runs
            runs += 1
            result = train.fit(
                train.load_start(checkpoint, weights=False), recipe, mixture=mixture, seed=seed,
                folder=root / f"fit{runs}", run_name=f"bench-{runs}", schedule=schedule, end_tokens=end,
            )  # fmt: skip
            assert result.tokens == args.steps * batch * recipe.seq_len, result
            return result.seconds, result.final_loss

        paths = {
            "plain": lambda: plain_loop(recipe, checkpoint, stream, args.steps, schedule),
            "plain+mds": lambda: plain_loop(recipe, checkpoint, loader("mds"), args.steps, schedule),
            "ablate": ablate_fit,
        }
        for run in paths.values():  # warm-up: first calls into torch, Composer, streaming
            run()
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        losses: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, run in paths.items():
                elapsed, losses[name] = run()
                seconds[name].append(elapsed)

    tokens = args.steps * batch * recipe.seq_len
    base = statistics.median(seconds["plain"])
    print(f"{args.steps} steps × {batch} × {recipe.seq_len} tokens = {tokens:,} tokens per run; {args.repeat} runs each; "
          f"{torch.get_num_threads()} torch thread(s); {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'path':<11}{'median s':>10}{'tokens/s':>11}{'ms/step':>9}{'vs plain':>10}{'final loss':>12}   runs (s)")
    for name, times in seconds.items():
        median = statistics.median(times)
        runs_s = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name:<11}{median:>10.2f}{tokens / median:>11,.0f}{1000 * median / args.steps:>9.1f}"
              f"{median / base:>9.2f}×{losses[name]:>12.5f}   {runs_s}")
    ratio = statistics.median(seconds["ablate"]) / base
    print(f"train_overhead: ablate {tokens / statistics.median(seconds['ablate']):,.0f} tok/s vs plain "
          f"{tokens / base:,.0f} tok/s; ratio (target ≤ {TARGET:.2f}) = {ratio:.2f}")


if __name__ == "__main__":
    main()
