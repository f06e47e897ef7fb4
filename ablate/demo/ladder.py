"""The demo's scale ladder: one removal study (the baseline and one removal per subset) at several model
sizes, each pretrained and run for real, then the largest size predicted from the smaller ones.

    ablate demo --ladder --out /tmp/dl          # five sizes, the largest held out (~2.5 minutes on 2 cores)
    ablate demo --ladder --fast --out /tmp/dl   # the four smallest (the test suite's ladder, ~1 minute)

    from ablate.demo.ladder import build_ladder, compare_largest
    built = build_ladder(Path("/tmp/dl"), fast=True)      # data, then pretrain + plan + run per rung
    found = compare_largest(built.studies)                # smaller rungs pooled and fitted, largest predicted

Data: its own corpus, not the demo's skills. Each subset's documents mix words of a shared lexicon with
words of its own (one alphabet, Zipf-distributed), so a held-out domain's loss falls as a model spells more
of its words: a wider model learns more of them in the same tokens, and the loss falls with size, while
removing a subset costs its own words, not the alphabet. The demo's corpus is built the other way: each
skill is a small lookup its width-64 model learns within 80k-170k tokens, so larger models have little
left to gain there, and its 1.5M-token pretraining at five sizes would not fit the demo's minutes. The
tokenizer, task format and the stages (pretrain, plan, run) are the demo's own code.
The rungs share one depth, vocabulary, data, token count and schedule; the learning rate falls as
width^-1/2, as a ladder's does. The studies differ only in the model and its start. Every stage skips
what is done (shard manifests, pretrain status, variant hashes), so a rerun resumes, then fits again.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from ablate.demo.study import working_directory

LETTERS = "abcdefghijklmnop"  # one alphabet: domains differ in their words, as real ones do
SUBSETS = ("alpha", "beta", "gamma")
WIDTHS = (16, 32, 64, 128, 256)  # hidden sizes of the rungs: 7k, 25k, 90k, 345k, 1.3M parameters
FAST_RUNGS = 4  # --fast stops below 256: the test suite's ladder, its largest predicted from three
STUDIES = tuple(f"ladder-s{k}" for k in range(1, len(WIDTHS) + 1))
SEQ_LEN, BATCH = 64, 8  # 512 tokens a step
TOTAL_TOKENS = 327_680  # 480 steps of pretraining, 160 in the phase
WORDS, DOCUMENTS, HELDOUT_DOCUMENTS = 120, 800, 120  # lexicon size, documents per subset and per held-out domain
HELDOUT_SEQUENCES = 64  # 4k tokens a domain: sizes apart by more than the measurement noise
LR = 2e-3  # at width 64; ∝ width^-1/2, as ladders lower the rate with size (width 128 stalls at 3e-3)
TASK = "ladder_alpha"
COMMON, SHARED = "common", 0.5  # half of every text is words all domains share, as real domains do
DATA = Path("data/ladder")  # under --out, beside the demo's data/demo
RESAMPLES = 200  # bootstrap refits for the predictions' intervals


def studies(fast: bool = False) -> tuple[str, ...]:
    """The rungs' study names, smallest first: the four smallest with `fast`, else all."""
    return STUDIES[:FAST_RUNGS] if fast else STUDIES


# ---- data ----------------------------------------------------------------------------------


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


def _task_items(lexicons: dict[str, list[str]], rng: random.Random) -> list[dict]:
    """One small multiple-choice task (which word continues an alpha text?): the recipe needs a task."""
    items = []
    for _ in range(12):
        choices = [rng.choice(lexicons[name]) for name in SUBSETS]
        order = rng.sample(range(len(choices)), len(choices))
        context = " ".join(rng.choices(lexicons["alpha"], k=4)) + " "
        items.append({"context": context, "choices": [choices[i] for i in order], "answer": order.index(0)})
    return items


def _jsonl(records: list[dict]) -> str:
    import json

    return "".join(json.dumps(record) + "\n" for record in records)


def write_ladder_data(root: Path) -> None:
    """Sources, held-out text, the task and the tokenizer under root/data/ladder/ (rewritten each call: the
    same seed gives the same bytes, so the shards built from them stay up to date)."""
    from ablate.demo.corpus import task_yaml, write_tokenizer
    from ablate.study.store import write_atomic

    base = root / DATA
    rng = random.Random(0)
    lexicons = _lexicons(rng)
    apart = random.Random(1)  # held-out documents: the same lexicons, text no variant trained on
    for name in SUBSETS:
        for prefix, count, draw in (("", DOCUMENTS, rng), ("heldout-", HELDOUT_DOCUMENTS, apart)):
            docs = _documents(lexicons[name], lexicons[COMMON], count, draw)
            write_atomic(base / "raw" / f"{prefix}{name}.jsonl", _jsonl([{"text": d} for d in docs]))
    data = (base / "tasks" / f"{TASK}.jsonl").resolve()
    write_atomic(data, _jsonl(_task_items(lexicons, rng)))
    comment = f"# {TASK}: which word continues an alpha text. Written by `ablate demo --ladder`; do not edit."
    write_atomic(base / "tasks" / f"{TASK}.yaml", task_yaml(TASK, data, comment))
    if not (base / "tokenizer").is_dir():
        write_tokenizer(base / "tokenizer")


def recipe_dict(study: str, width: int) -> dict:
    """The study's recipe, paths relative to the demo's folder: the same data, mixes, schedule and evaluation
    at every rung; the width (and the learning rate with it) differs."""
    from ablate.study.store import study_dir

    return {
        "name": study,
        "seq_len": SEQ_LEN,
        "tokenizer": str(DATA / "tokenizer"),
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
                "location": str(DATA / "mds" / name),
                "source": str(DATA / "raw" / f"{name}.jsonl"),
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
        "checkpoints": {"pretrained": str(study_dir(study) / "pretrain" / "checkpoints" / "latest-rank0.pt")},
        "start": "pretrained",
        "eval": {
            "tasks": [TASK],
            "include": [str(DATA / "tasks")],
            "batch_size": 32,
            "heldout": {
                n: {"location": str(DATA / "heldout" / n), "source": str(DATA / "raw" / f"heldout-{n}.jsonl")}
                for n in SUBSETS
            },
            "heldout_sequences": HELDOUT_SEQUENCES,
        },
        "ablations": {"control": False, "baseline_seeds": 1},
    }


# ---- build ---------------------------------------------------------------------------------


@dataclass
class BuiltLadder:
    """The built ladder: its folder, results root, studies (smallest first), recipes and the seconds it took."""

    root: Path
    results: Path
    studies: tuple[str, ...]
    recipes: list[Path]
    seconds: dict[str, float]  # data, pretrain, run: wall time of each stage, all rungs together
    failed: list[Any] = field(default_factory=list)  # ablate.run.Outcome of each job that did not finish


class Shown(Protocol):
    """What the build shows as it goes (the CLI's rich bars; nothing by default): one display at a time."""

    def stage(self, name: str) -> None: ...

    def pretraining(self, tokens: int) -> AbstractContextManager[Callable[[int], None] | None]:
        """A rung's pretraining: yields the callback of the tokens done, up to `tokens`."""
        ...

    def running(self) -> AbstractContextManager[Any]:
        """A rung's variants: yields the runner's observer (ablate.run.view.RunDisplay) or None."""
        ...


class _Quiet:
    def stage(self, name: str) -> None:
        pass

    def pretraining(self, tokens: int) -> AbstractContextManager[Callable[[int], None] | None]:
        return contextlib.nullcontext(None)

    def running(self) -> AbstractContextManager[Any]:
        return contextlib.nullcontext(None)


def build_ladder(
    out: Path, *, fast: bool = False, parallel: int | None = None, shown: Shown | None = None
) -> BuiltLadder:
    """Data under `out`, then per rung what `ablate pretrain`, `ablate plan --each subset` and `ablate run`
    do, through their library calls; results under $ABLATE_RESULTS, else out/results. A rung with failed
    jobs stops the build (they are in `failed`; a rerun retries them). `parallel` variants run at once (by
    default one per core, each single-threaded, as the demo runs them)."""
    from ablate.data.build import build_subsets
    from ablate.plan.build import pretrain_points
    from ablate.plan.request import PlanRequest
    from ablate.plan.study import plan_study
    from ablate.recipe import load_recipe
    from ablate.run.launch import available_cores
    from ablate.run.pretrain import pretrain
    from ablate.run.runner import Launch, run_study
    from ablate.study.store import results_root, write_atomic

    out = out.resolve()  # before the working folder moves into it
    names = studies(fast)
    shown = shown or _Quiet()
    seconds = {"data": 0.0, "pretrain": 0.0, "run": 0.0}
    failed: list[Any] = []
    recipes: list[Path] = []
    with working_directory(out):
        shown.stage("data")
        tick = time.perf_counter()
        write_ladder_data(Path("."))
        for study, width in zip(names, WIDTHS, strict=False):
            recipes.append((out / DATA / f"{study}.yaml").resolve())
            write_atomic(recipes[-1], yaml.safe_dump(recipe_dict(study, width), sort_keys=False))
        build_subsets(load_recipe(recipes[0]))
        seconds["data"] = time.perf_counter() - tick
        how = Launch(parallel=parallel or available_cores())
        for study, path, width in zip(names, recipes, WIDTHS, strict=False):
            recipe = load_recipe(path)
            shown.stage(f"{study}: width {width}, pretrain, then {1 + len(SUBSETS)} variants")
            tick = time.perf_counter()
            with shown.pretraining(pretrain_points(recipe)[0]) as on_progress:
                pretrain(recipe, on_progress=on_progress)
            seconds["pretrain"] += time.perf_counter() - tick
            plan_study(recipe, PlanRequest(each="subset"))
            tick = time.perf_counter()
            with shown.running() as observer:
                outcomes = run_study(study, how=how, observer=observer)
            seconds["run"] += time.perf_counter() - tick
            failed = [o for o in outcomes if o.state != "done"]
            if failed:
                break
        results = results_root().resolve()
    return BuiltLadder(out, results, names, recipes, seconds, failed)


# ---- the largest size, predicted -------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One mixture at the largest size: the model's point prediction, its 95% interval (None where the fit
    refuses to stand behind the number: `note` says why) and the measurement."""

    mixture: str
    point: float
    low: float | None
    high: float | None
    measured: float
    note: str = ""

    @property
    def error(self) -> float:
        """(predicted − measured) / measured."""
        return (self.point - self.measured) / self.measured


@dataclass(frozen=True)
class Compared:
    """One held-out loss: the model whose predictions these are, whether the fit chose it, and the rows."""

    target: str
    model: str
    chosen: bool
    why: str  # why these are not a chosen model's predictions ("" when they are)
    rows: list[Row]

    @property
    def mean_error(self) -> float:
        """The mean of |predicted − measured| / measured over the mixtures."""
        return sum(abs(r.error) for r in self.rows) / len(self.rows)

    def delta(self, row: Row) -> tuple[float, float]:
        """(predicted, measured) Δ of `row` against the baseline: variant − baseline."""
        base = next(r for r in self.rows if r.mixture == "baseline")
        return row.point - base.point, row.measured - base.measured


def compare_largest(names: tuple[str, ...] | list[str], resamples: int = RESAMPLES) -> tuple[int, list[Compared]]:
    """The largest study held out: the smaller ones pooled and fitted across scale (ablate.analyze.across),
    each mixture predicted at the largest's N and D, beside what the largest measured. Returns its N and a
    comparison per held-out loss. The chosen model's predictions, or the joint law's where no scale model
    was chosen (three sizes leave no held-out scale to choose on). A prediction the fit refuses (its
    interval too wide, or too far out) keeps its point value, so it can still be compared, and the reason."""
    from ablate.analyze.across import fit_across
    from ablate.analyze.scale import fit
    from ablate.analyze.studies import pooled_points
    from ablate.choices import SCALE_MODELS

    whole = pooled_points(list(names))
    size, tokens = whole.sizes[-1], whole.tokens[-1]
    smaller = pooled_points(list(names[:-1]))
    losses = {t: p for t, p in smaller.points.items() if t.startswith("loss:")}
    found = fit_across(losses, models=None, resamples=resamples, seed=0, at=(float(size), float(tokens)))
    out = []
    for target in found:
        model = target.chosen if target.chosen in SCALE_MODELS else "joint"
        if target.chosen is None:
            why = target.unchecked or "no model was checked on a held-out scale"
        else:
            why = "" if model == target.chosen else f"{target.chosen}, blind to N, was chosen; the joint law predicts"
        points = whole.points[target.target]
        largest = [i for i, n in enumerate(points.size) if n == size]
        point = fit(losses[target.target], model, seed=0).predict(points.shares[largest], size, tokens)
        given = {p.run: p for p in target.predictions if p.model == model}
        rows = []
        for i, value in zip(largest, point, strict=True):
            name = points.names[i]
            p = given.get(name)
            low, high, note = (p.low, p.high, p.note) if p else (None, None, "not among the fitted mixtures")
            rows.append(Row(name, float(value), low, high, float(points.target[i]), note))
        out.append(Compared(target.target, model, model == target.chosen, why, rows))
    return size, out
