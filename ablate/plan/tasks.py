"""Eval task sizes, for power figures before anything runs: local task files, else published sizes.

Reads lm-eval task YAML as plain data (no lm_eval import): a local task with `dataset_path: json`
names its JSONL files, whose lines are its items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Test-split sizes of common lm-eval benchmarks, from the datasets' own cards.
PUBLISHED_SIZES = {
    "arc_challenge": 1172,
    "arc_easy": 2376,
    "boolq": 3270,
    "gsm8k": 1319,
    "hellaswag": 10042,
    "humaneval": 164,
    "lambada_openai": 5153,
    "mmlu": 14042,
    "openbookqa": 500,
    "piqa": 1838,
    "winogrande": 1267,
}


class _LenientLoader(yaml.SafeLoader):
    """lm-eval YAML uses `!function` tags; for counting items their values do not matter."""


_LenientLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def local_task_files(include: list[str]) -> dict[str, Path]:
    """Task name → the JSONL file of its evaluation split, for local `dataset_path: json` tasks."""
    found: dict[str, Path] = {}
    for folder in include:
        for config_path in sorted(Path(folder).glob("**/*.yaml")):
            config: Any = yaml.load(config_path.read_text(), Loader=_LenientLoader)
            if not isinstance(config, dict) or config.get("dataset_path") != "json" or "task" not in config:
                continue
            files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
            split = config.get("test_split") or config.get("validation_split") or "test"
            data = files.get(split) if isinstance(files, dict) else files
            if isinstance(data, list):
                data = data[0] if len(data) == 1 else None
            if isinstance(data, str):
                path = Path(data)
                found[config["task"]] = path if path.is_absolute() or path.exists() else config_path.parent / path
    return found


def task_sizes(tasks: list[str], include: list[str]) -> dict[str, int]:
    """Items per task where they can be known without lm-eval; tasks of unknown size are left out."""
    local = local_task_files(include)
    sizes: dict[str, int] = {}
    for task in tasks:
        if task in local and local[task].exists():
            with local[task].open() as handle:
                sizes[task] = sum(1 for line in handle if line.strip())
        elif task in PUBLISHED_SIZES:
            sizes[task] = PUBLISHED_SIZES[task]
    return sizes
