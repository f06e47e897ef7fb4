"""Text shards: a study on `text` shards (llm-foundry's converter without --concat_tokens) against the
same study on pre-tokenized shards of the same documents: step time, and the one-time tokenization.

    .venv/bin/python benchmarks/text_shards.py [--phase-steps 240] [--repeat 2]

The demo's corpus, model and recipe (a 16-step pretraining behind the start, as study_overhead.py),
then the baseline variant trained for `--phase-steps` batches twice per repeat, alternating: once
on ablate's own shards, once on a copy of every subset as a zstd `text: str` MDS folder of the same
documents. `ablate run` tokenizes such a folder once per study into the study's cache
(ablate.data.ready) and every job then reads seq_len-token sequences as it would ablate's own, so
training itself should not slow down: the ratio compares the variants' Trainer.fit() time per step
(status.json's train_seconds), target ≤ 1.05. The tokenization is timed apart (as `ablate run`
does it, before any job) and put against the training time of one variant: a study of N variants
pays it once.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from study_overhead import study_recipe
from workspace import SCRATCH, demo_workspace, machine

TARGET = 1.05


def text_folders(recipe) -> dict[str, str]:
    """Each subset's documents as llm-foundry's converter writes them without --concat_tokens."""
    from streaming import MDSWriter

    from ablate.data.build import documents, source_files

    folders = {}
    for name, subset in recipe.subsets.items():
        out = SCRATCH / "text" / name
        files = source_files(f"subsets.{name}", subset.source or "", Path("."))
        with MDSWriter(out=str(out), columns={"text": "str"}, compression="zstd", progress_bar=False) as writer:
            for text in documents(f"subsets.{name}", subset, files, lambda n: None):
                writer.write({"text": text})
        folders[name] = str(out)
    return folders


def train_baseline(recipe) -> tuple[float, float]:
    """Plan and run the baseline alone; (its Trainer.fit() seconds per step, the run's readying seconds).
    The job's folder, plan and cache are removed afterwards: the next pass starts as this one did."""
    from ablate.data.ready import ready_folders
    from ablate.plan.request import PlanRequest
    from ablate.plan.study import plan_study
    from ablate.run.runner import Launch, data_fields, run_study
    from ablate.study.artifacts import read_status
    from ablate.study.job import CACHE
    from ablate.study.store import study_dir

    plan = plan_study(recipe, PlanRequest(removes=["math"], control=False), force=True)
    baseline = plan.variant("baseline")
    tick = time.perf_counter()
    ready_folders(recipe, data_fields(recipe, [baseline]), cache=study_dir(recipe.name) / CACHE)  # as `ablate run` does
    readying = time.perf_counter() - tick
    outcomes = run_study(recipe.name, variants=["baseline"], how=Launch())
    failed = [f"{o.job}: {o.error}" for o in outcomes if o.state != "done"]
    if failed:
        raise SystemExit(f"text_shards: jobs failed: {failed}")
    status = read_status(study_dir(recipe.name) / "baseline")
    steps = baseline.tokens // (recipe.training.batch_size * recipe.seq_len)
    for entry in ("baseline", "start", "cache"):
        shutil.rmtree(study_dir(recipe.name) / entry, ignore_errors=True)
    return status.train_seconds / steps, readying


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-steps", type=int, default=240, help="batches the baseline trains")
    parser.add_argument("--repeat", type=int, default=2, help="pairs of passes, alternating")
    args = parser.parse_args()

    with demo_workspace(study_recipe(args.phase_steps)) as recipe:
        from ablate.run.pretrain import pretrain

        pretrain(recipe)  # the shared start: not part of what is compared
        folders = text_folders(recipe)
        text = recipe.model_copy(update={"subsets": {
            name: subset.model_copy(update={"location": folders[name], "source": None})
            for name, subset in recipe.subsets.items()
        }})  # fmt: skip
        own: list[float] = []
        texts: list[float] = []
        readying: list[float] = []
        for _ in range(args.repeat):
            own.append(train_baseline(recipe)[0])
            step, ready = train_baseline(text)
            texts.append(step)
            readying.append(ready)

    steps = args.phase_steps
    ratio = statistics.median(t / o for t, o in zip(texts, own, strict=True))
    print(f"baseline × {steps} steps, {args.repeat} pairs; {machine()}")
    own_ms, text_ms = (1000 * statistics.median(times) for times in (own, texts))
    print(f"step time: pre-tokenized {own_ms:.1f} ms, text {text_ms:.1f} ms")
    tokenize = statistics.median(readying)
    print(f"one-time tokenization of every subset: {tokenize:.2f} s = "
          f"{tokenize / (statistics.median(own) * steps):.1%} of one variant's training")
    print(f"text_shards: step time on text shards / on pre-tokenized shards (target ≤ {TARGET}) = {ratio:.3f}")


if __name__ == "__main__":
    main()
