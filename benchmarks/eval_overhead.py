"""Evaluation overhead: lm-eval loglikelihood requests/s through `ablate.run.evaluate.evaluate` against calling
lm-eval's HFLM + simple_evaluate directly, on the same model, tasks, batch size and thread count.

    .venv/bin/python benchmarks/eval_overhead.py [--repeat 3] [--limit N] [--threads 1] [--index]

The model is the demo's tiny Llama from a checkpoint written by `ablate.run.train.fit`; the tasks are the
demo's four multiple-choice tasks (400 items × 4 choices each, written by `ablate data demo` into a
scratch folder). Three paths, interleaved (A, B, C, A, B, C, ...; medians reported), each timed whole:

    lm-eval      TaskManager(include_path=..., include_defaults=False), HFLM(pretrained=model,
                 tokenizer=..., batch_size, max_length), simple_evaluate(log_samples=True); nothing written
    lm-eval+log  the same, and lm-eval's EvaluationTracker writing the results JSON and per-item
                 samples JSONL, as `lm_eval --output_path --log_samples` does: the same outputs as ablate
    ablate       `ablate.run.evaluate.evaluate`, what every job runs: those calls, plus checking the task
                 names, per-task few-shot settings, and writing into a staging folder swapped in whole

The ratio is ablate against lm-eval+log: the same work with the same outputs (the per-item samples
are what `ablate report` pairs across variants, so they are not optional). Every path ends with the
same scores (printed: the check that the work is the same). Not in any figure: indexing lm-eval's
built-in tasks, which a direct call with the default TaskManager pays and ablate skips when the local
folders cover the recipe (12-22 s here); `--index` times it once. Target: ≤ 1.05.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import torch  # noqa: E402  (after workspace: it sets what torch, datasets and lm-eval read at import)
from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.loggers import EvaluationTracker  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402
from workspace import SCRATCH, demo_workspace, machine, start_checkpoint

from ablate.recipe import Eval  # noqa: E402
from ablate.run import start as starts  # noqa: E402
from ablate.run.evaluate import evaluate, headline_scores  # noqa: E402

TARGET = 1.05
Timing = tuple[float, dict[str, float], int]  # wall seconds, headline scores, requests (lm-eval) or items (ablate)
BASELINE = "lm-eval+log"


def direct(model, tokenizer, spec: Eval, include: list[str], out: Path | None = None) -> Timing:
    """lm-eval called by hand, without the built-in task index; with `out`, its outputs written there
    as the lm_eval CLI writes them with --output_path --log_samples."""
    tick = time.perf_counter()
    manager = TaskManager(include_path=include, include_defaults=False)
    tracker = EvaluationTracker(output_path=str(out)) if out else None
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=spec.batch_size,
              max_length=model.config.max_position_embeddings)  # fmt: skip
    results = simple_evaluate(
        model=lm, model_args={"pretrained": "bench"}, tasks=spec.tasks, num_fewshot=0, limit=spec.limit,
        log_samples=True, evaluation_tracker=tracker, task_manager=manager,
    )  # fmt: skip
    samples = results.pop("samples")
    if tracker:
        tracker.save_results_aggregated(results=results, samples=samples)
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    seconds = time.perf_counter() - tick
    return seconds, headline_scores(results), sum(len(s["arguments"]) for task in samples.values() for s in task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each path, interleaved")
    parser.add_argument("--limit", type=int, default=None, help="items per task (default: all 400)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for every path")
    parser.add_argument("--index", action="store_true", help="also time the default TaskManager (built-in tasks)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with demo_workspace() as recipe:
        start = starts.load_start(start_checkpoint(recipe, SCRATCH / "start"))
        spec = recipe.eval.model_copy(update={"limit": args.limit})
        include = [str(Path(folder).resolve()) for folder in spec.include]
        folders = itertools.count()

        def ablate_path() -> Timing:
            out = SCRATCH / f"out{next(folders)}"
            tick = time.perf_counter()
            scores = evaluate(start.model, start.tokenizer, spec, out, name="bench")
            seconds = time.perf_counter() - tick
            items = sum(len(p.read_text().splitlines()) for p in out.glob("**/samples_*.jsonl"))
            return seconds, scores, items

        paths = {
            "lm-eval": lambda: direct(start.model, start.tokenizer, spec, include),
            BASELINE: lambda: direct(start.model, start.tokenizer, spec, include, SCRATCH / f"out{next(folders)}"),
            "ablate": ablate_path,
        }
        for run in paths.values():  # warm-up: first calls into lm-eval, datasets (its cache), torch
            run()
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        scores: dict[str, dict[str, float]] = {}
        counts: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, run in paths.items():
                elapsed, scores[name], counts[name] = run()
                seconds[name].append(elapsed)
        tick = time.perf_counter()
        if args.index:
            TaskManager()  # what the default TaskManager (every built-in task indexed) costs a direct caller
        index_seconds = time.perf_counter() - tick

    requests, items = counts["lm-eval"], counts["ablate"]
    if any(s != scores["ablate"] for s in scores.values()):
        print(f"WARNING: the paths disagree: {scores}")
    base = statistics.median(seconds[BASELINE])
    print(f"{len(spec.tasks)} tasks, {items:,} items, {requests:,} loglikelihood requests per run; "
          f"batch {spec.batch_size}; "
          f"{args.repeat} runs each; {torch.get_num_threads()} torch thread(s); {machine()}")
    print(f"{'path':<13}{'median s':>9}{'requests/s':>12}{'vs ' + BASELINE:>16}   runs (s)")
    for name, times in seconds.items():
        median = statistics.median(times)
        runs_s = ", ".join(f"{t:.2f}" for t in times)
        print(f"{name:<13}{median:>9.2f}{requests / median:>12,.0f}{median / base:>15.2f}×   {runs_s}")
    print(f"scores (every path): {', '.join(f'{t} {s:.3f}' for t, s in sorted(scores['ablate'].items()))}")
    if args.index:
        print(f"not in the figures: indexing lm-eval's built-in tasks (the default TaskManager) took "
              f"{index_seconds:.1f} s, which ablate skips")
    ratio = statistics.median(seconds["ablate"]) / base
    print(f"eval_overhead: ablate {requests / statistics.median(seconds['ablate']):,.0f} requests/s vs lm-eval writing "
          f"the same files {requests / base:,.0f} requests/s; ratio (target ≤ {TARGET:.2f}) = {ratio:.2f}")


if __name__ == "__main__":
    main()
