"""A tiny study for the training tests: three subsets with disjoint alphabets, two local lm-eval tasks.

Each subset's documents use only its own characters, so the subset a training sample came from can
be read off the sample itself. Tokenizer and shards come from the package (ablate.demo.corpus,
ablate.data), exactly as a user's would.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

ALPHABETS = {"alpha": "abcdefgh", "beta": "ijklmnop", "gamma": "0123456789"}
GROUPS = {"alpha": "a", "beta": "b", "gamma": "g"}
SEQ_LEN = 64
BATCH = 8  # sequences per step: 512 tokens
TOTAL_TOKENS = 40_960  # 40 steps of pretraining, 40 steps in the phase
CHECKPOINT_EVERY = 2_048  # every 4 steps: an interrupted run has checkpoints to resume from
LR, FINAL_RATIO = 3e-3, 0.1
STUDY = "tiny"
HELDOUT, HELDOUT_SEQUENCES = ("alpha", "gamma"), 12  # held-out domains, and sequences read of each
PHASE = TOTAL_TOKENS // 2


def _documents(chars: str, count: int, rng: random.Random) -> list[str]:
    return [
        " ".join("".join(rng.choice(chars) for _ in range(rng.randint(2, 6))) for _ in range(rng.randint(4, 20)))
        for _ in range(count)
    ]


def _task(folder: Path, name: str, right: str, rng: random.Random) -> None:
    """Multiple choice: which continuation is written in the context's alphabet?"""
    items = []
    for _ in range(30):
        pool = [right, *(a for a in ALPHABETS.values() if a != right)]
        choices = ["".join(rng.choice(chars) for _ in range(5)) for chars in pool]
        order = rng.sample(range(len(choices)), len(choices))
        items.append(
            {"context": "".join(rng.choice(right) for _ in range(12)) + " ",
             "choices": [choices[i] for i in order], "answer": order.index(0)}
        )  # fmt: skip
    write_task(folder, name, items)


def write_task(folder: Path, name: str, items: list[dict]) -> None:
    """A local lm-eval multiple-choice task: items (context, choices, answer) as JSON lines and its YAML."""
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(folder / f"{name}.jsonl")}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{context}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "answer",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))


def recipe_dict(root: Path) -> dict:
    return {
        "name": "tiny",
        "seq_len": SEQ_LEN,
        "tokenizer": str(root / "tokenizer"),
        "model": {
            "config": {
                "model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 128,
                "max_position_embeddings": SEQ_LEN, "tie_word_embeddings": True,
            }  # fmt: skip
        },
        "subsets": {
            name: {"location": str(root / "mds" / name), "source": str(root / "raw" / f"{name}.jsonl"), "groups": [g]}
            for name, g in GROUPS.items()
        },
        "mixes": {"base": {"alpha": 1, "beta": 1}, "upsample": {"alpha": 1, "beta": 1, "gamma": 1}},
        "training": {
            "total_tokens": TOTAL_TOKENS, "phase": 0.5, "batch_size": BATCH,
            "optimizer": {"name": "decoupled_adamw", "lr": LR}, "warmup_tokens": 2_048,
            "schedule": {"name": "linear", "final_ratio": FINAL_RATIO}, "grad_clip_norm": 1.0, "seed": 17,
            "checkpoint_every_tokens": CHECKPOINT_EVERY,
        },  # fmt: skip
        # Absolute, so a copy of the study under another results root starts from the same checkpoint.
        "checkpoints": {"pretrained": str(root / "results" / "tiny" / "pretrain" / "checkpoints" / "latest-rank0.pt")},
        "start": "pretrained",
        "eval": {
            "tasks": ["tiny_alpha", "tiny_gamma"], "include": [str(root / "tasks")], "batch_size": 32,
            # Documents drawn apart from the training ones: text no variant trained on.
            "heldout": {n: {"location": str(root / "heldout" / n), "source": str(root / "raw" / f"heldout-{n}.jsonl")}
                        for n in HELDOUT},
            "heldout_sequences": HELDOUT_SEQUENCES,
        },  # fmt: skip
        # One run per variant: the tests sharing this study count its jobs; test_seed_noise plans replicates.
        "ablations": {"control": False, "baseline_seeds": 1},
    }


def write_tiny_study(root: Path) -> Path:
    """Sources, tokenizer, shards and tasks under `root`; returns the recipe's path."""
    from ablate.data.build import build_subsets
    from ablate.demo.corpus import write_tokenizer
    from ablate.recipe import load_recipe

    rng = random.Random(0)
    (root / "raw").mkdir(parents=True)
    for name, chars in ALPHABETS.items():
        docs = _documents(chars + "  ", 300, rng)
        (root / "raw" / f"{name}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (root / "tasks").mkdir()
    _task(root / "tasks", "tiny_alpha", ALPHABETS["alpha"], rng)
    _task(root / "tasks", "tiny_gamma", ALPHABETS["gamma"], rng)
    apart = random.Random(1)  # its own draws: the training data stays what it was
    for name in HELDOUT:
        docs = _documents(ALPHABETS[name] + "  ", 40, apart)
        (root / "raw" / f"heldout-{name}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    write_tokenizer(root / "tokenizer")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(root), sort_keys=False))
    build_subsets(load_recipe(path))
    return path


def subset_of(text: str) -> str:
    """The one subset whose alphabet a decoded sample uses (spaces and <eos> aside)."""
    letters = set(text.replace("<eos>", "").replace(" ", ""))
    owners = [name for name, chars in ALPHABETS.items() if letters and letters <= set(chars)]
    assert len(owners) == 1, f"sample mixes alphabets: {text!r}"
    return owners[0]


# ---- running it ----------------------------------------------------------------------------


def ablate(*args, cwd, results, env=None, timeout=300):
    """The CLI as a user runs it: a subprocess, so exit codes and stderr are real."""
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "ABLATE_RESULTS": str(results), **(env or {})},
    )  # fmt: skip


def status(results: Path, job: str) -> dict:
    return json.loads((results / STUDY / job / "status.json").read_text())


def clone(tiny, name: str, *, variants: bool = False) -> Path:
    """The study's plan (and with `variants`, its variant folders) under a fresh results root."""
    results = tiny.root / name
    if variants:
        shutil.copytree(tiny.results, results, symlinks=True)
    else:
        (results / STUDY).mkdir(parents=True)
        shutil.copy(tiny.results / STUDY / "plan.json", results / STUDY / "plan.json")
        (results / ".current").write_text(STUDY + "\n")
    return results


def kill_when(tiny, results: Path, reached: Callable[[Path], bool], what: str) -> None:
    """`ablate run --variant baseline` under `results`, SIGKILLed (with its jobs) as soon as `reached`
    holds for the variant's folder; fails if the run ends first."""
    folder = results / STUDY / "baseline"
    runner = subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "run", "--variant", "baseline"],
        cwd=tiny.root, env={**os.environ, "ABLATE_RESULTS": str(results)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while not reached(folder):
            assert runner.poll() is None, f"the run ended before {what}"
            assert time.monotonic() < deadline, f"no {what} within 240 s"
            time.sleep(0.0005)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    # The jobs die with the runner but a moment after it (a large process takes a while to tear down): until
    # then one still holds the variant's lock, and the next run would find the variant busy.
    from ablate.study.job import lock_holder

    freed = time.monotonic() + 60
    while (holder := lock_holder(folder)) and time.monotonic() < freed:
        time.sleep(0.05)
    assert holder is None, f"killed, yet after 60 s {holder}"


@contextmanager
def under(tiny, results: Path) -> Iterator[None]:
    """Run ablate in this process on the study under `results` (the CLI's own subprocess costs ~8 s)."""
    tiny.patch.setenv("ABLATE_RESULTS", str(results))
    try:
        yield
    finally:
        tiny.patch.setenv("ABLATE_RESULTS", str(tiny.results))
