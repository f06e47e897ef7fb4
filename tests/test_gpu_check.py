"""benchmarks/gpu_check.py, the prepared GPU check of sharded training, runs end to end in its tiny
CPU mode: the code a GPU machine will run is not broken. Its figures come only from a GPU."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_the_gpu_check_runs_in_its_tiny_cpu_mode():
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(re.match(r"\(a\) fsdp2 +[\d,]+ tokens/s", line) for line in lines), done.stdout
    assert any(re.match(r"\(a\) plain +[\d,]+ tokens/s", line) for line in lines), done.stdout
    assert any(line.startswith("(b) ") and "FSDP2 + activation checkpointing: ran" in line for line in lines)
    assert any(re.match(r"\(c\) hf +[\d.,]+ items/s", line) for line in lines), done.stdout
    worker = r"\(d\) worker lm-eval on cpu: [\d.,]+ items/s; held-out loss: [\d,]+ tokens/s \(loss \d+\.\d\d\)"
    assert any(re.match(worker, line) for line in lines), done.stdout
    assert re.fullmatch(r"gpu_check: fsdp2 / plain tokens per second ratio = \d+\.\d{3}", lines[-1]), lines[-1]
