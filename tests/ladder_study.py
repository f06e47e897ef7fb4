"""A scale ladder for the scale tests: one removal study (the baseline and one removal per subset) continued
from start checkpoints of four model sizes, each pretrained by `ablate pretrain` and run by `ablate run`
(real Composer training, held-out losses measured by the recipe's eval.heldout), one study per size.

    from ladder_study import build_ladder
    built = build_ladder(root)     # ~1 minute on 2 cores; built.studies: ladder-s1 … ladder-s4, smallest first

Each subset's documents mix words of a shared lexicon with words of its own (one alphabet, Zipf-distributed),
so a held-out domain's loss falls as a model spells more of its words: a wider model learns more of them in
the same tokens, and the loss falls with size, while removing a subset costs its own words, not the alphabet.
Four widths, about 3.5× the parameters apart, share one depth, vocabulary, data, token count and schedule; the
learning rate falls as width^−½, as a ladder's does. The studies differ only in the model and its start.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from tiny_study import write_task

LETTERS = "abcdefghijklmnop"  # one alphabet: domains differ in their words, as real ones do
SUBSETS = ("alpha", "beta", "gamma")
WIDTHS = (16, 32, 64, 128)  # hidden sizes of the rungs: 7k, 25k, 90k, 345k parameters
STUDIES = tuple(f"ladder-s{k}" for k in range(1, len(WIDTHS) + 1))
SEQ_LEN, BATCH = 64, 8  # 512 tokens a step
TOTAL_TOKENS = 327_680  # 480 steps of pretraining, 160 in the phase
WORDS, DOCUMENTS, HELDOUT_DOCUMENTS = 120, 800, 120  # lexicon size, documents per subset and per held-out domain
HELDOUT_SEQUENCES = 64  # 4k tokens a domain: sizes apart by more than the measurement noise
LR = 2e-3  # at width 64; ∝ width^−½, as ladders lower the rate with size (width 128 stalls at 3e-3)
TASK = "ladder_alpha"
COMMON, SHARED = "common", 0.5  # half of every text is words all domains share, as real domains do


def _lexicons(rng: random.Random) -> dict[str, list[str]]:
    """WORDS words of 3 to 7 letters per subset and in the shared lexicon (COMMON), no word in two."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for name in (COMMON, *SUBSETS):
        words: list[str] = []
        while len(words) < WORDS:
            word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 7)))
            if word not in seen:
                seen.add(word)
                words.append(word)
        out[name] = words
    return out


def _documents(own: list[str], common: list[str], count: int, rng: random.Random) -> list[str]:
    """Documents of 8 to 30 words, each from the shared lexicon with chance SHARED, else from the subset's own,
    drawn with Zipf weights (rank r: 1/r): some words frequent, most rare."""
    weights = [1 / (rank + 1) for rank in range(WORDS)]

    def word() -> str:
        return rng.choices(common if rng.random() < SHARED else own, weights)[0]

    return [" ".join(word() for _ in range(rng.randint(8, 30))) for _ in range(count)]


def _task(folder: Path, lexicons: dict[str, list[str]], rng: random.Random) -> None:
    """One small multiple-choice task (which word continues an alpha text?): the recipe needs a task."""
    items = []
    for _ in range(12):
        choices = [rng.choice(lexicons[name]) for name in SUBSETS]
        order = rng.sample(range(len(choices)), len(choices))
        context = " ".join(rng.choices(lexicons["alpha"], k=4)) + " "
        items.append({"context": context, "choices": [choices[i] for i in order], "answer": order.index(0)})
    write_task(folder, TASK, items)


def recipe_dict(root: Path, study: str, width: int) -> dict:
    """The study's recipe: the same data, mixes, schedule and evaluation at every rung; the width differs."""
    return {
        "name": study,
        "seq_len": SEQ_LEN,
        "tokenizer": str(root / "tokenizer"),
        "model": {
            "config": {
                "model_type": "llama",
                "hidden_size": width,
                "intermediate_size": 2 * width,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "vocab_size": 128,
                "max_position_embeddings": SEQ_LEN,
                "tie_word_embeddings": True,
            }
        },
        "subsets": {
            name: {
                "location": str(root / "mds" / name),
                "source": str(root / "raw" / f"{name}.jsonl"),
                "groups": [name],
            }
            for name in SUBSETS
        },
        "mixes": {"base": {"alpha": 1, "beta": 1}, "upsample": {"alpha": 1, "beta": 1, "gamma": 1}},
        "training": {
            "total_tokens": TOTAL_TOKENS,
            "phase": 0.25,
            "batch_size": BATCH,
            "optimizer": {"name": "decoupled_adamw", "lr": LR * (64 / width) ** 0.5},
            "warmup_tokens": 2_048,
            "schedule": {"name": "linear", "final_ratio": 0.1},
            "grad_clip_norm": 1.0,
            "seed": 17,
            "checkpoint_every_tokens": TOTAL_TOKENS,
        },
        "checkpoints": {"pretrained": str(root / "results" / study / "pretrain" / "checkpoints" / "latest-rank0.pt")},
        "start": "pretrained",
        "eval": {
            "tasks": [TASK],
            "include": [str(root / "tasks")],
            "batch_size": 32,
            "heldout": {
                n: {"location": str(root / "heldout" / n), "source": str(root / "raw" / f"heldout-{n}.jsonl")}
                for n in SUBSETS
            },
            "heldout_sequences": HELDOUT_SEQUENCES,
        },
        "ablations": {"control": False, "baseline_seeds": 1},
    }


def write_ladder_data(root: Path) -> list[Path]:
    """Sources, tokenizer, shards, held-out text and the task under `root`, and one recipe per rung (their paths,
    smallest first)."""
    from ablate.data.build import build_subsets
    from ablate.demo.corpus import write_tokenizer
    from ablate.recipe import load_recipe

    rng = random.Random(0)
    lexicons = _lexicons(rng)
    (root / "raw").mkdir(parents=True)
    apart = random.Random(1)  # held-out documents: the same lexicons, text no variant trained on
    for name in SUBSETS:
        lexicon = lexicons[name]
        for prefix, count, draw in (("", DOCUMENTS, rng), ("heldout-", HELDOUT_DOCUMENTS, apart)):
            docs = _documents(lexicon, lexicons[COMMON], count, draw)
            (root / "raw" / f"{prefix}{name}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (root / "tasks").mkdir()
    _task(root / "tasks", lexicons, rng)
    write_tokenizer(root / "tokenizer")
    paths = []
    for study, width in zip(STUDIES, WIDTHS, strict=True):
        paths.append(root / f"{study}.yaml")
        paths[-1].write_text(yaml.safe_dump(recipe_dict(root, study, width), sort_keys=False))
    build_subsets(load_recipe(paths[0]))
    return paths


@dataclass
class BuiltLadder:
    """The built ladder: its folder, results root, studies (smallest first), recipes and the seconds it took."""

    root: Path
    results: Path
    studies: tuple[str, ...]
    recipes: list[Path]
    seconds: dict[str, float]  # data, pretrain, run: wall time of each stage, all rungs together


def build_ladder(root: Path) -> BuiltLadder:
    """Data, then per rung what `ablate pretrain`, `ablate plan --each subset` and `ablate run --parallel 2` do,
    through their library calls. ABLATE_RESULTS must point at root/results (the fixture sets it)."""
    from ablate.plan.build import PlanRequest
    from ablate.plan.study import plan_study
    from ablate.recipe import load_recipe
    from ablate.run.pretrain import pretrain
    from ablate.run.runner import Launch, run_study

    seconds = {"data": 0.0, "pretrain": 0.0, "run": 0.0}
    tick = time.perf_counter()
    recipes = write_ladder_data(root)
    seconds["data"] = time.perf_counter() - tick
    for study, path in zip(STUDIES, recipes, strict=True):
        recipe = load_recipe(path)
        tick = time.perf_counter()
        pretrain(recipe)
        seconds["pretrain"] += time.perf_counter() - tick
        plan_study(recipe, PlanRequest(each="subset"))
        tick = time.perf_counter()
        outcomes = run_study(study, how=Launch(parallel=2))
        seconds["run"] += time.perf_counter() - tick
        failed = [f"{o.job}: {o.error}" for o in outcomes if o.state != "done"]
        assert not failed, f"{study}: {failed}"
    return BuiltLadder(root, root / "results", STUDIES, recipes, seconds)
