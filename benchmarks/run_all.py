"""`make bench`: every benchmark in this folder, one after another, then the final ratio lines together.

    python benchmarks/run_all.py            # the figures benchmarks/README.md reports (~6 min on 2 cores)
    python benchmarks/run_all.py --quick    # each script at a few steps, rerun_agreement too (CI, ~3 min)

Each script measures its comparison side by side in one run (machines here are shared and noisy) and
ends with one line `<name>: ... ratio ... = X`. Figures of the latest run go into benchmarks/README.md.
Quick ratios are printed, never asserted: at a few steps they measure start-up more than throughput.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["cli_latency.py", "report_scale.py", "scale_fit.py", "eval_overhead.py", "train_overhead.py",
         "study_overhead.py", "text_shards.py"]
# Measurements too long for `make bench` (rerun_agreement: ~16 min on 2 cores), run alone; --quick runs them
# too, at a few steps, so none rots unseen.
ALONE = ["rerun_agreement.py"]
QUICK = {  # the smallest sizes at which each script still runs every path it compares
    "cli_latency.py": ["--repeat", "1"],
    "report_scale.py": ["--variants", "5", "--tasks", "3", "--items", "200", "--resamples", "500"],
    "scale_fit.py": ["--mixtures", "8", "--sizes", "4", "--tokens", "4", "--resamples", "10"],
    "eval_overhead.py": ["--repeat", "1", "--limit", "20"],
    "train_overhead.py": ["--steps", "8", "--repeat", "1"],
    "study_overhead.py": ["--remove", "math", "--phase-steps", "8"],
    "text_shards.py": ["--phase-steps", "8", "--repeat", "1"],
    "rerun_agreement.py": ["--kernels", "avx2", "--seeds", "0,10", "--remove", "math", "--pretrain-steps", "16",
                           "--phase-steps", "8", "--limit", "20"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each script at a few steps: checks it runs")
    quick = parser.parse_args().quick
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    finals: list[str] = []
    failed = 0
    for script in (ORDER + ALONE) if quick else ORDER:
        print(f"\n=== {script}", flush=True)
        start = time.perf_counter()
        options = QUICK[script] if quick else []
        proc = subprocess.run([sys.executable, str(HERE / script), *options], cwd=HERE.parent, env=env,
                              text=True, stdout=subprocess.PIPE, stderr=sys.stderr)
        print(proc.stdout, end="", flush=True)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            failed += 1
            finals.append(f"{script}: FAILED (exit {proc.returncode})")
        else:
            finals.append(f"{lines[-1]}   [{time.perf_counter() - start:.0f} s]")
    print(f"\n=== summary ({os.cpu_count()} cores)")
    print("\n".join(finals))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
