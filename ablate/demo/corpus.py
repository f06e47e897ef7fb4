"""The embedded demo corpus: planted skills a tiny model learns on a CPU, and an lm-eval task per skill.

    ablate data demo                          # write data/demo/ here and build its shards
    ablate data demo --out /tmp/d --seed 3    # elsewhere, another draw of the same worlds

    from ablate.demo.corpus import write_demo
    write_demo(Path("."), seed=0)             # raw JSONL, task files and tokenizer, no shards

Layout under the root (the paths recipes/demo.yaml names):

    data/demo/raw/<subset>.jsonl      one {"text": ...} document a line
    data/demo/tasks/<task>.yaml       lm-eval task (dataset_path: json, absolute data_files)
    data/demo/tasks/<task>.jsonl      {"context", "choices", "answer", "cluster"} items, 4 choices each
    data/demo/tokenizer/              character-level Hugging Face tokenizer

Subsets and the skill each plants (group in brackets):

    crawl       [web]        noisy web text: word salad, menus, dates. Spelling, no skill. Base mix.
    prose       [web]        short stories with everyday facts: the bakery sells bread, dogs bark
    arithmetic  [math]       doubling four-digit numbers: 2 * 1234 = 2468
    code        [code]       Python one-liners whose name says what they return: biggest(x) is max(x)
    facts       [knowledge]  an encyclopedia of invented creatures: the grob eats moss

Every skill is a small lookup or rule that the demo's model learns from its subset within the final
phase (docs/demo.md gives the token counts measured), and that the crawl does not teach. The demo's
base mix holds only a taste of prose, code and facts (too little to learn them) and no arithmetic,
so the final phase decides which skills the model ends with.
Test items apply a skill to values training never shows together (held-out names, numbers and
function names), so no item is a copy of a training line. Items that ask the same fact (the bakery's
wares, a creature's food, what `biggest` returns) share a `cluster` label, so `ablate report`
resamples them together. Math items have none: each doubles its own number.
Everything is drawn from `random.Random` seeded with strings: the same seed gives the same bytes.

This module writes the files. The world they come from (vocabulary tables, names, creatures) is
ablate.demo.world; the documents that teach each skill, beside the items that test it, are
ablate.demo.skills, so what the model can learn and what a task asks are checked side by side.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import ablate.demo.skills
import ablate.demo.world
from ablate.data.build import save_tokenizer
from ablate.demo.skills import CHOICES, DOCUMENTS, task_items
from ablate.demo.world import ITEMS_PER_TASK, make_world
from ablate.study.store import write_atomic, write_json

DEMO = Path("data/demo")
STAMP = "corpus.json"  # what a finished write_demo was for: seed, generator, folder
# The modules that write the data: the stamp hashes them all, so an edit to any one writes it again.
GENERATOR = (ablate.demo.world.__file__, ablate.demo.skills.__file__, __file__)
SPECIAL_TOKENS = ["<pad>", "<eos>", "<unk>"]
SPECIAL = {"pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}  # their roles

# Documents per subset: enough that a demo phase passes over each skill set about once or twice.
SUBSET_DOCS = {"crawl": 3000, "prose": 1000, "arithmetic": 2000, "code": 1200, "facts": 1300}
HELDOUT_DOCS = 300  # per subset, drawn apart (raw/heldout/): the recipe's eval.heldout, never trained on
TASKS = {"prose": "demo_web", "arithmetic": "demo_math", "code": "demo_code", "facts": "demo_knowledge"}


# ---- files ---------------------------------------------------------------------------------


def write_tokenizer(path: Path) -> None:
    """A character-level tokenizer: printable ASCII and newline, plus <pad>, <eos>, <unk> (99 ids).

    A BPE model with no merges maps each character to its own id; `Fuse` decodes without spaces.
    Written with `tokenizers` alone (no transformers import, which costs seconds); the two config
    files make it load with `AutoTokenizer` and `PreTrainedTokenizerFast`.
    """
    from tokenizers import Tokenizer, decoders, models

    chars = ["\n", *(chr(c) for c in range(32, 127))]
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *chars])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    core.add_special_tokens(SPECIAL_TOKENS)
    save_tokenizer(core, path, SPECIAL)


TASK_YAML = """\
{comment}
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc{acc_note}
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm{acc_norm_note}
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
METRIC_NOTES = {
    "acc_note": "          # share of items whose right choice is the likeliest",
    "acc_norm_note": "     # the same with each choice's loglikelihood per byte: fairer to long choices",
}
DEMO_COMMENT = """\
# {task}: the {skill} skill of the demo corpus. Written by `ablate data demo` (seed {seed}); do not edit.
# {items} items, {choices} choices each, so chance is {chance}. Scored by loglikelihood of each choice."""


def task_yaml(task: str, data: Path, comment: str, *, explain_metrics: bool = False) -> str:
    """An lm-eval multiple-choice task over the JSONL of {"context", "choices", "answer"} items at
    `data`, below `comment` (its lines start with #): the demo's tasks and `ablate init`'s template.
    `data` must be absolute, as lm-eval resolves data_files against the working directory;
    `explain_metrics` says what acc and acc_norm measure, for a file its reader edits."""
    notes = METRIC_NOTES if explain_metrics else dict.fromkeys(METRIC_NOTES, "")
    return TASK_YAML.format(comment=comment, task=task, data=json.dumps(str(data)), **notes)


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def write_demo(root: Path, seed: int = 0) -> bool:
    """Write the demo's raw subsets, lm-eval tasks and tokenizer under root/data/demo/; False when
    they are already there for this seed, this generator and this folder (nothing is written then).

    Task YAML names its JSONL by absolute path (lm-eval resolves data_files against the working
    directory), so a moved folder is written again. The stamp (data/demo/corpus.json) is written
    last: an interrupted write leaves none, and the next call writes everything again.
    """
    base = root / DEMO
    stamp = {
        "seed": seed,
        "generator": hashlib.sha256(b"".join(Path(module).read_bytes() for module in GENERATOR)).hexdigest()[:16],
        "folder": str(base.resolve()),
    }
    if _read_stamp(base / STAMP) == stamp:
        return False
    (base / STAMP).unlink(missing_ok=True)  # from here on, until the end, the folder is being rewritten
    world = make_world(seed)
    for subset, count in SUBSET_DOCS.items():
        rng = random.Random(f"ablate-demo-{subset}-{seed}")
        docs = [{"text": DOCUMENTS[subset](rng, world)} for _ in range(count)]
        write_atomic(base / "raw" / f"{subset}.jsonl", _jsonl(docs))
        apart = random.Random(f"ablate-demo-heldout-{subset}-{seed}")  # the training draws stay as they were
        held = [{"text": DOCUMENTS[subset](apart, world)} for _ in range(HELDOUT_DOCS)]
        write_atomic(base / "raw" / "heldout" / f"{subset}.jsonl", _jsonl(held))
    for subset, task in TASKS.items():
        data = (base / "tasks" / f"{task}.jsonl").resolve()
        write_atomic(data, _jsonl(task_items(world, task, seed)))
        comment = DEMO_COMMENT.format(
            task=task, skill=subset, seed=seed, items=ITEMS_PER_TASK, choices=CHOICES, chance=1 / CHOICES
        )
        config = task_yaml(task, data, comment)
        write_atomic(base / "tasks" / f"{task}.yaml", config)
    write_tokenizer(base / "tokenizer")
    write_json(base / STAMP, stamp)
    return True


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
