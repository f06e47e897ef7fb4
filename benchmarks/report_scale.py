"""`ablate report` at scale: 50 variants × 20 tasks × 5,000 items, 10,000 paired resamples. Target: < 5 s.

    .venv/bin/python benchmarks/report_scale.py [--variants 50] [--tasks 20] [--items 5000] [--resamples 10000]
    .venv/bin/python benchmarks/report_scale.py --cluster-size 10   # items in clusters of 10 (cluster bootstrap)

Builds the per-item table in memory (0/1 scores, the shape lm-eval's acc gives; one seed, 4 tasks per
category) and times what `ablate report` does after loading: pairing items, the bootstrap, categories,
power, and rendering markdown, CSV and JSON; the heatmap is timed on its own. With --cluster-size, items
come in clusters that share a difficulty, and every task is resampled by cluster. Parsing lm-eval's JSONL is
I/O-bound and not part of this figure. The machine may be shared: run it twice and read the lower figure.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ablate.report import Settings, build_report, to_csv, to_json, to_markdown  # noqa: E402
from ablate.report.load import DONE, ITEM_COLUMNS, SCORE_COLUMNS, VARIANT_COLUMNS, StudyResults  # noqa: E402

TARGET_S = 5.0


def synthetic(variants: int, tasks: int, items: int, seed: int = 0, cluster_size: int = 0) -> StudyResults:
    """A finished study: every variant done, per-item 0/1 values, small planted effects; with
    `cluster_size`, item i is in cluster i // cluster_size and shares that cluster's difficulty."""
    rng = np.random.default_rng(seed)
    names = ["baseline"] + [f"no-subset{i:02d}" for i in range(1, variants)]
    task_names = [f"task{j:02d}" for j in range(tasks)]
    cluster = np.arange(items) // cluster_size if cluster_size else np.arange(items)
    difficulty = {t: rng.beta(2, 2, size=cluster.max() + 1)[cluster] for t in task_names}
    frames, score_rows = [], []
    for v, name in enumerate(names):
        for t, task in enumerate(task_names):
            shift = 0.0 if v == 0 else rng.normal(0, 0.03)
            values = (rng.random(items) < np.clip(difficulty[task] + shift, 0, 1)).astype(float)
            frames.append(pd.DataFrame({
                "variant": name, "task": task, "metric": "acc", "doc_id": np.arange(items),
                "doc_hash": pd.Categorical.from_codes(np.arange(items), [f"{task}-{i}" for i in range(items)]),
                "value": values,
            }))
            score_rows.append({"variant": name, "task": task, "metric": "acc", "score": values.mean(),
                               "stderr": values.std(ddof=1) / np.sqrt(items), "n_items": items})
    items_frame = pd.concat(frames, ignore_index=True)
    labels = [f"c{c}" for c in range(cluster.max() + 1)] if cluster_size else []
    codes = np.tile(cluster if cluster_size else np.full(items, -1), variants * tasks)  # −1: no cluster (NA)
    items_frame["cluster"] = pd.Categorical.from_codes(codes, pd.Index(labels, dtype=object))
    items_frame = items_frame[ITEM_COLUMNS]
    for column in ("variant", "task", "metric", "doc_hash"):
        items_frame[column] = items_frame[column].astype("category")
    variant_rows = [{"variant": n, "ablation": n, "seed": 0, "state": DONE, "hash_ok": True, "tokens_done": 1,
                     "tokens": 1, "error": None, "folder": "."} for n in names]
    categories = {
        f"cat{k}": {"tasks": task_names[k:k + 4], "random_baseline": {t: 0.25 for t in task_names[k:k + 4]}}
        for k in range(0, tasks - tasks % 4, 4)
    }
    return StudyResults(
        name="scale", source=Path("."), variants=pd.DataFrame(variant_rows, columns=VARIANT_COLUMNS),
        scores=pd.DataFrame(score_rows, columns=SCORE_COLUMNS), items=items_frame, tasks=task_names,
        categories=categories,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--cluster-size", type=int, default=0, help="items per cluster (0: no clusters)")
    args = parser.parse_args()

    results = synthetic(args.variants, args.tasks, args.items, cluster_size=args.cluster_size)
    print(f"{args.variants} variants × {args.tasks} tasks × {args.items:,} items = {len(results.items):,} item rows; "
          f"{args.resamples:,} resamples")
    cpu = os.times()
    start = time.perf_counter()
    report = build_report(results, Settings(resamples=args.resamples))
    built = time.perf_counter()
    to_markdown(report), to_csv(report), to_json(report)
    rendered = time.perf_counter()
    cpu_after = os.times()
    cpu_s = (cpu_after.user - cpu.user) + (cpu_after.system - cpu.system)
    from ablate.report.heatmap import plot_deltas

    plot_deltas(report, io.BytesIO())
    plotted = time.perf_counter()
    total = rendered - start
    significant = sum(flag is True for flag in report.rows.significant)  # an object column: True, False or NaN
    print(f"build (pairing, bootstrap, categories, power): {built - start:.2f} s")
    print(f"render markdown + CSV + JSON:                  {rendered - built:.2f} s")
    print(f"heatmap PNG (not in the target):              {plotted - rendered:.2f} s")
    print(f"{significant} of {len(report.rows)} rows significant")
    print(f"CPU time of the report (all threads): {cpu_s:.2f} s; load average now {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (a loaded machine stretches the wall time)")
    print(f"report_scale: {total:.2f} s; ratio to the {TARGET_S:g} s target = {total / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
