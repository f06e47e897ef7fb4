"""CLI latency: `ablate --help`, `plan` and `report` against `python -c pass`, side by side.

    .venv/bin/python benchmarks/cli_latency.py [--repeat 5]

Each command runs `--repeat` times, interleaved with the baseline so machine noise hits both; the
median wall time is reported. Also checks `python -X importtime` for heavy modules (torch, composer,
streaming, lm_eval, transformers), which must never load for these commands. Target: each < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "composer", "streaming", "lm_eval", "transformers")
TARGET_S = 1.0


def _time(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def heavy_imports(cmd_args: list[str], cwd: Path) -> list[str]:
    """Top-level heavy packages that `python -X importtime -m ablate.cli ARGS` loads."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ablate.cli", *cmd_args],
        cwd=cwd, capture_output=True, text=True,
    )
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    return sorted(loaded & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ablate-cli-bench-"))
    try:
        shutil.copytree(REPO / "recipes", work / "recipes")
        ablate = [sys.executable, "-m", "ablate.cli"]
        subprocess.run([*ablate, "plan"], cwd=work, check=True, capture_output=True)  # a study for `report`
        commands = {"ablate --help": ["--help"], "ablate plan": ["plan"], "ablate report": ["report", "--no-plot"]}
        baseline: list[float] = []
        timings: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, cmd_args in commands.items():
                baseline.append(_time([sys.executable, "-c", "pass"], work))
                timings[name].append(_time([*ablate, *cmd_args], work))
        base = statistics.median(baseline)
        print(f"{'command':<16}{'median s':>10}{'vs python':>11}{'heavy imports':>16}")
        print(f"{'python -c pass':<16}{base:>10.3f}{1.0:>10.1f}×{'':>16}")
        worst = 0.0
        for name, cmd_args in commands.items():
            median = statistics.median(timings[name])
            worst = max(worst, median)
            heavy = heavy_imports(cmd_args, work)
            print(f"{name:<16}{median:>10.3f}{median / base:>10.1f}×{', '.join(heavy) or 'none':>16}")
            if heavy:
                print(f"FAIL: {name} imports {heavy}")
        print(f"cli_latency: slowest command {worst:.3f} s; ratio to the {TARGET_S:g} s target = {worst / TARGET_S:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
