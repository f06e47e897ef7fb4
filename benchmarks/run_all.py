"""`make bench`: every benchmark in this folder, one after another, then the final ratio lines together.

Each script measures its comparison side by side in one run (machines here are shared and noisy) and
ends with one line `<name>: ... ratio ... = X`. Figures of the latest run go into benchmarks/README.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["cli_latency.py", "report_scale.py", "eval_overhead.py", "train_overhead.py", "study_overhead.py"]


def main() -> int:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    finals: list[str] = []
    failed = 0
    for script in ORDER:
        print(f"\n=== {script}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / script)], cwd=HERE.parent, env=env,
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
