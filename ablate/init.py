"""A study of your own text: the recipe, a task template and a tokenizer, written into one folder.

    ablate init mystudy --text web.jsonl --text code.jsonl     # tokenizer trained on that text
    ablate init mystudy --text 'papers/*.txt' --tokenizer /models/my-tokenizer

    from ablate.init import init_study
    written = init_study(Path("mystudy"), ["web.jsonl", "code.jsonl"])

Each --text is one subset, named after its file (a glob: after the pattern's stem), and its own group;
JSONL files hold one document a line under `text`, any other file is one document (as `ablate data
build` reads them). The tokenizer is byte-level BPE trained on those documents with the `tokenizers`
library (special tokens <pad>, <eos>, <unk>), or the local Hugging Face folder --tokenizer names.
The task is a multiple-choice template with four example items, for you to replace with your own.
The recipe's paths are relative to the folder (run every command from it); the sources and the
task's data file are absolute, as lm-eval resolves data files against the working directory.
The recipe is written last, so an interrupted init leaves no recipe and runs again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ablate.data.build import documents, load_tokenizer, save_tokenizer, source_files
from ablate.demo.corpus import SPECIAL, SPECIAL_TOKENS, task_yaml
from ablate.errors import AblateError
from ablate.plan.identity import check_name
from ablate.recipe import Subset, load_recipe
from ablate.recipe.schema import STUDY_NAME
from ablate.study.store import write_atomic

RECIPE = "recipe.yaml"
TOKENIZER, TASKS = "tokenizer", "tasks"
MIN_VOCAB = 256 + len(SPECIAL_TOKENS)  # every byte, and the special tokens

EXAMPLE_ITEMS = [  # four choices each; `answer` is the index of the right one
    {"context": "The sun rises in the", "choices": ["east", "west", "north", "south"], "answer": 0, "cluster": "sun"},
    {"context": "At dawn the sun comes up in the", "choices": ["west", "east", "south", "north"], "answer": 1,
     "cluster": "sun"},
    {"context": "Water freezes at zero degrees", "choices": ["Kelvin", "Fahrenheit", "Celsius", "Rankine"],
     "answer": 2},
    {"context": "def add(a, b): return a", "choices": ["- b", "* b", "/ b", "+ b"], "answer": 3},
]  # fmt: skip

TASK_COMMENT = """\
# {task}: a multiple-choice task of your own, scored by the loglikelihood of each choice.
# Written by `ablate init` with four example items: replace {data_name} with yours, one JSON object a line:
#   {{"context": "The sun rises in the", "choices": ["east", "west", "north", "south"], "answer": 0,
#    "cluster": "sun"}}
# context: the prompt; choices: the continuations (lm-eval puts one space between the two); answer: the
# index of the right choice. cluster (optional): items that ask the same fact share one label, and
# `ablate report` resamples them together, so ten rephrasings of one fact count as one piece of
# evidence, not ten. Copy this file to add a task: give it its own `task` name and data file, and add
# the name to eval.tasks in the recipe. The data file's path is absolute (lm-eval reads it relative to
# the working folder otherwise)."""  # above `task_yaml`'s template

RECIPE_YAML = """\
# {name}: a data-ablation study of your own text, written by `ablate init`. Edit freely.
# Run every command from this folder (the paths below are relative to it):
#   ablate data build --recipe {recipe}    # tokenize each subset's source into MDS shards
#   ablate pretrain --recipe {recipe}      # a small model on the base mix: the study's start checkpoint
#   ablate plan --recipe {recipe}          # the baseline and one variant per group removed
#   ablate run                             # continue each variant from the start, evaluate it
#   ablate report                          # Δ per task against the baseline, with intervals
# Override, e.g.: ablate plan --recipe {recipe} --remove {first} --baseline-seeds 1
# The sizes below train on a laptop CPU in minutes: a tiny model learns little from real text, so
# expect small effects; grow model, seq_len and total_tokens (and use a GPU) for a real study.
name: {name}
seq_len: 64                     # tokens per training sample (and the most lm-eval feeds the model)
tokenizer: {tokenizer}        # a local Hugging Face tokenizer folder
model:
  config:                       # a Hugging Face config: `ablate pretrain` builds the model from it
    model_type: llama
    hidden_size: 64             # width: the cost grows with its square
    intermediate_size: 128
    num_hidden_layers: 2
    num_attention_heads: 4
    num_key_value_heads: 4
    vocab_size: {vocab}              # the tokenizer's size
    max_position_embeddings: 64 # at least seq_len
    tie_word_embeddings: true
subsets:                        # one per --text; `ablate data build` writes the shards at `location`
{subsets}
mixes:
  base: {mix}        # the pretraining mix (weights, any scale): set it to your run's
  upsample: {mix}    # the final phase's mix: the study's baseline, which variants remove from
training:
  total_tokens: 1_024_000       # the whole run: pretraining, then the final phase
  phase: 0.25                   # the final phase: the last 25% of tokens (the paper found 10-20% best)
  batch_size: 32                # global, in sequences
  optimizer: {{name: decoupled_adamw, lr: 3.0e-3}}
  warmup_tokens: 20_000         # pretraining warm-up
  schedule: {{name: linear, final_ratio: 0.1}}   # the phase's LR falls linearly to 10%
start: pretrained               # the checkpoint `ablate pretrain` registers; or name yours in `checkpoints`
eval:
  tasks: [{task}]               # lm-eval task names: yours in `include`, or lm-eval's own (hellaswag, ...)
  include: [{tasks}]            # local task folders (lm-eval's include_path)
  batch_size: 32
  # categories:                 # averages of several tasks above chance, one column each in the report
  #   mine: {{tasks: [{task}], random_baseline: {{{task}: 0.25}}}}
  # heldout:                    # per-domain loss on text no variant trains on: often the clearest signal
  #   {first}: {{location: data/heldout/{first}, source: /path/to/held-out-{first}.jsonl}}
ablations:
  control: false                # true: also continue on mixes.base (once it differs from upsample)
  baseline_seeds: 2             # the baseline's replicate puts training-seed noise into every interval
"""

SUBSET_YAML = """\
  {name}:
    location: data/mds/{name}
    source: {source}   # raw text: JSONL (`text_field`) or plain files, a path or a glob
    text_field: text
    groups: [{name}]            # what --remove names; a subset may be in several groups"""


def init_study(
    folder: Path,
    texts: list[str],
    *,
    tokenizer: Path | None = None,
    vocab_size: int = 512,
    name: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write the recipe, the task template and (unless `tokenizer` names one) a tokenizer trained on
    `texts` into `folder`; returns what was written. Refuses an existing recipe unless `force`."""
    name = name or folder.resolve().name
    if not re.match(STUDY_NAME, name):
        raise AblateError(f"--name {name!r}: a study name is letters, digits, '_', '.', '-'; pass --name NAME")
    recipe = folder / RECIPE
    if recipe.exists() and not force:
        raise AblateError(f"{recipe} exists; pass --force to write over it, or init another folder")
    if len(texts) < 2:
        raise AblateError("--text: give two or more files of raw text, one subset each, so one can be left out")
    subsets: dict[str, list[Path]] = {}
    for text in texts:
        path = Path(text)
        stem = (path.parent.resolve().name if "*" in path.name else path.name).split(".")[0]  # web/*.txt: web
        check_name(stem, f"--text {text}: subset", fix="rename the file (its name names the subset)")
        if stem in subsets:
            raise AblateError(f"--text {text}: another file also names subset '{stem}'; rename one of them")
        try:
            subsets[stem] = source_files("--text", str(path.resolve()), Path("."))
        except AblateError:
            raise AblateError(f"--text {text}: matches no file; fix the path") from None
    if tokenizer is not None:
        vocab = load_tokenizer(tokenizer)[0].get_vocab_size()
        written = []
    else:
        vocab = train_tokenizer(subsets, folder / TOKENIZER, vocab_size)
        written = [folder / TOKENIZER]
    task = f"{name}_example"
    data = (folder / TASKS / f"{task}.jsonl").resolve()
    write_atomic(data, "".join(json.dumps(item) + "\n" for item in EXAMPLE_ITEMS))
    config = task_yaml(task, data, TASK_COMMENT.format(task=task, data_name=data.name), explain_metrics=True)
    write_atomic(folder / TASKS / f"{task}.yaml", config)
    written += [folder / TASKS]
    blocks = [
        SUBSET_YAML.format(name=s, source=json.dumps(str(Path(t).resolve())))
        for s, t in zip(subsets, texts, strict=True)
    ]
    text = RECIPE_YAML.format(
        name=name, recipe=RECIPE, first=next(iter(subsets)), vocab=vocab, task=task, tasks=TASKS,
        tokenizer=json.dumps(TOKENIZER if tokenizer is None else str(tokenizer.resolve())),
        subsets="\n".join(blocks), mix=json.dumps(dict.fromkeys(subsets, 1)),
    )  # fmt: skip
    write_atomic(recipe, text)
    load_recipe(recipe)  # what init writes must validate; a failure here is a bug, said in one line
    return [*written, recipe]


def train_tokenizer(subsets: dict[str, list[Path]], out: Path, vocab_size: int) -> int:
    """Byte-level BPE trained on the subsets' documents (every byte is a token, so nothing is ever
    unknown), saved as a Hugging Face folder; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB:
        raise AblateError(f"--vocab-size {vocab_size}: at least {MIN_VOCAB} (every byte and the special tokens)")
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def texts():
        for subset, files in subsets.items():
            yield from documents(f"--text {subset}", Subset(location="", source=""), files, lambda _: None)

    core.train_from_iterator(texts(), trainer=trainer)
    save_tokenizer(core, out, SPECIAL)
    return int(core.get_vocab_size())
