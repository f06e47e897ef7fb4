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

Every skill is a small lookup or rule that the demo's 2-layer, width-64 model lifts from chance
(25%) to above 45% within 25k-80k tokens of its subset and to 80-99% within 75k-170k, and that the
crawl does not teach. The demo's base mix holds only a taste of prose, code and facts (too little
to learn them) and no arithmetic, so the final phase decides which skills the model ends with.
Test items apply a skill to values training never shows together (held-out names, numbers and
function names), so no item is a copy of a training line. Items that ask the same fact (the bakery's
wares, a creature's food, what `biggest` returns) share a `cluster` label, so `ablate report`
resamples them together: 400 items of web, code and knowledge ask only 38, 18 and 48 facts. Math
items have none: each doubles its own number.
Everything is drawn from `random.Random` seeded with strings: the same seed gives the same bytes.

Longer than the other modules (~400 lines) on purpose: the whole synthetic world, its vocabulary
tables, the documents that teach each skill and the items that test it, reads top to bottom in one
file, so what the model can learn and what a task asks are checked side by side.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from ablate.data.build import save_tokenizer
from ablate.store import write_atomic, write_json

DEMO = Path("data/demo")
STAMP = "corpus.json"  # what a finished write_demo was for: seed, generator, folder
ITEMS_PER_TASK = 400
CHOICES = 4
SPECIAL_TOKENS = ["<pad>", "<eos>", "<unk>"]
SPECIAL = {"pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}  # their roles

# Documents per subset: enough that a demo phase passes over each skill set about once or twice.
SUBSET_DOCS = {"crawl": 3000, "prose": 1000, "arithmetic": 2000, "code": 1200, "facts": 1300}
HELDOUT_DOCS = 300  # per subset, drawn apart (raw/heldout/): the recipe's eval.heldout, never trained on
TASKS = {"prose": "demo_web", "arithmetic": "demo_math", "code": "demo_code", "facts": "demo_knowledge"}


# ---- the worlds ----------------------------------------------------------------------------
# The vocabulary is data: laid out as tables, one line of pairs each, not one item per line.
# fmt: off

SHOPS = {  # place → what one buys there
    "bakery": "bread", "library": "books", "florist": "roses", "pharmacy": "pills", "dairy": "milk",
    "forge": "nails", "tailor": "coats", "fishmonger": "fish", "cobbler": "shoes", "grocer": "eggs",
    "toyshop": "kites", "stationer": "pens", "orchard": "pears", "vineyard": "grapes",
}
SOUNDS = {  # animal → the sound it makes
    "dog": "barked", "cat": "meowed", "cow": "mooed", "duck": "quacked", "lion": "roared", "owl": "hooted",
    "sheep": "bleated", "snake": "hissed", "bee": "buzzed", "horse": "neighed", "crow": "cawed", "frog": "croaked",
}
COLORS = {  # thing → its colour
    "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "blood": "red", "sun": "yellow",
    "plum": "purple", "cloud": "grey", "mud": "brown", "flame": "orange", "rose": "pink", "moon": "silver",
}
FUNCTIONS = {  # Python one-liner name → body, written with the argument `{a}`; three families of
    # equal-length bodies, so an item's choices (all from the answer's family) score alike under acc_norm
    "size": "len({a})", "total": "sum({a})", "biggest": "max({a})", "smallest": "min({a})",
    "magnitude": "abs({a})", "unique": "set({a})", "as_text": "str({a})", "as_int": "int({a})",
    "shout": "{a}.upper()", "whisper": "{a}.lower()", "capital": "{a}.title()", "trim": "{a}.strip()",
    "words": "{a}.split()",
    "double": "{a} * 2", "triple": "{a} * 3", "inc": "{a} + 1", "dec": "{a} - 1", "parity": "{a} % 2",
}
ARGS = ["x", "n", "v", "k", "s", "xs"]
TRAIN_PREFIXES = ["", "my_", "get_", "calc_", "do_", "to_", "make_", "fast_"]
TEST_PREFIXES = [  # never in training: the code task asks known functions under new names
    "new_", "safe_", "py_", "old_", "raw_", "the_", "one_", "sub_", "top_", "any_", "low_", "net_", "own_",
    "big_", "our_", "std_", "tmp_", "lazy_", "pure_", "quick_", "smart_", "basic_", "simple_", "inner_", "outer_",
]
FEARS = ["fire", "frost", "wolves", "noise", "light", "thunder", "hawks", "smoke"]
FOODS = ["moss", "figs", "clams", "seeds", "bark", "kelp", "ants", "plums"]
FURS = ["teal", "amber", "violet", "ochre", "ivory", "crimson", "jade", "tawny"]
# Invented creatures, one per onset: distinct first letters make them easy to tell apart.
# Each gets one fear, food and fur colour, every value used by two creatures.
KIND_ONSETS = ["bl", "cr", "dr", "fl", "gr", "kl", "m", "n", "pl", "qu", "r", "sn", "tr", "v", "wr", "z"]
KINDS = len(KIND_ONSETS)

FILLER = [
    "It was a quiet day.", "{n} smiled.", "The street was busy.", "{n} hummed a song.", "Then {n} went home.",
    "A friend waved at {n}.", "It began to rain.", "{n} was happy.", "The wind was cold.", "{n} sat down.",
]
CRAWL_WORDS = (
    "the a of and to in is was for on with as at by from that this it we you they home news shop contact "
    "about login menu search page post reply share more read click here free best new top sale price cart "
    "blog posted comments view all next prev help terms privacy cookie city town road park day week year "
    "time people good great small big old young little long first last other same right high low early"
).split()
# fmt: on


def _pseudo_words(
    rng: random.Random,
    count: int,
    onsets: list[str],
    vowels: list[str],
    codas: list[str],
    syllables: int,
    avoid: set[str],
) -> list[str]:
    """`count` invented words built from syllables, none in `avoid`, no two sharing their first 3 letters."""
    words: list[str] = []
    prefixes: set[str] = set()
    while len(words) < count:
        word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables)) + rng.choice(codas)
        if word not in avoid and word[:3] not in prefixes:
            prefixes.add(word[:3])
            words.append(word)
    return words


@dataclass(frozen=True)
class World:
    """Everything a seed decides: names, creatures and which combinations are held out for testing."""

    train_names: list[str]
    test_names: list[str]
    creatures: dict[str, dict[str, str]]  # kind → {"fear", "food", "fur"}
    test_numbers: list[int]  # numbers only the math task doubles (1000-4999: answers have 4 digits)
    test_number_set: frozenset[int]
    test_defs: list[tuple[str, str]]  # (prefix, function) names only the code task asks


def make_world(seed: int) -> World:
    rng = random.Random(f"ablate-demo-world-{seed}")
    vocabulary = set(SHOPS) | set(SOUNDS) | set(COLORS) | set(CRAWL_WORDS) | set(FUNCTIONS)
    names = _pseudo_words(rng, 600, list("bdfgklmnprstvz"), list("aeiou"), ["", "n", "r", "l", "s"], 2, vocabulary)
    names = [name.capitalize() for name in names]
    kinds = [
        _pseudo_words(
            rng,
            1,
            [onset],
            ["a", "e", "i", "o", "u", "oo", "ee"],
            ["b", "g", "m", "x", "rk", "nt", "sk"],
            1,
            vocabulary | {n.lower() for n in names},
        )[0]
        for onset in KIND_ONSETS
    ]
    fears, foods, furs = ([values[i % len(values)] for i in range(KINDS)] for values in (FEARS, FOODS, FURS))
    for column in (fears, foods, furs):
        rng.shuffle(column)
    creatures = {
        kind: {"fear": h, "food": f, "fur": c} for kind, h, f, c in zip(kinds, fears, foods, furs, strict=True)
    }
    numbers = rng.sample(range(1000, 5000), ITEMS_PER_TASK)
    defs = rng.sample([(p, f) for p in TEST_PREFIXES for f in FUNCTIONS], ITEMS_PER_TASK)  # shuffled: --limit
    return World(
        train_names=names[:400],
        test_names=names[400:],
        creatures=creatures,
        test_numbers=numbers,
        test_number_set=frozenset(numbers),
        test_defs=defs,
    )


# ---- training documents --------------------------------------------------------------------


def _prose_doc(rng: random.Random, world: World) -> str:
    name = rng.choice(world.train_names)
    sentences = []
    for _ in range(rng.randint(3, 5)):
        sentences.append(rng.choice([*_prose_facts(rng, name), rng.choice(FILLER).format(n=name)]))
    return " ".join(sentences)


def _prose_facts(rng: random.Random, name: str) -> list[str]:
    shop, animal, thing = rng.choice(list(SHOPS)), rng.choice(list(SOUNDS)), rng.choice(list(COLORS))
    return [
        f"{name} went to the {shop} to buy some {SHOPS[shop]}.",
        f"{name} heard a {animal} that {SOUNDS[animal]}.",
        f"{name} saw that the {thing} was {COLORS[thing]}.",
    ]


def _double_line(rng: random.Random, world: World) -> str:
    while True:
        a = rng.randint(1000, 4999)
        if a not in world.test_number_set:
            return f"2 * {a} = {2 * a}"


def _math_doc(rng: random.Random, world: World) -> str:
    return "\n".join(_double_line(rng, world) for _ in range(rng.randint(4, 8)))


def _code_doc(rng: random.Random, world: World) -> str:
    lines = []
    for _ in range(rng.randint(3, 6)):
        prefix, function, arg = rng.choice(TRAIN_PREFIXES), rng.choice(list(FUNCTIONS)), rng.choice(ARGS)
        lines.append(f"def {prefix}{function}({arg}): return {FUNCTIONS[function].format(a=arg)}")
    return "\n".join(lines)


def _facts_doc(rng: random.Random, world: World) -> str:
    kind = rng.choice(list(world.creatures))
    c = world.creatures[kind]
    name = rng.choice(world.train_names)
    sentences = [
        f"The {kind} is a creature of the old lands.",
        f"Every {kind} fears {c['fear']}.",
        f"The {kind} eats {c['food']}.",
        f"The fur of a {kind} is {c['fur']}.",
        f"{name} the {kind} fears {c['fear']}.",
        f"{name} the {kind} eats {c['food']}.",
        f"{name} the {kind} is {c['fur']}.",
    ]
    rng.shuffle(sentences)
    return " ".join(sentences[: rng.randint(3, 7)])


def _crawl_doc(rng: random.Random, world: World) -> str:
    """Web-like noise over the same characters and words as the skill sets, with none of their structure."""
    words = [*CRAWL_WORDS, *SHOPS, *SHOPS.values(), *SOUNDS, *COLORS, *FUNCTIONS, *world.creatures]
    words += [*FEARS, *FOODS, *FURS]
    parts = []
    for _ in range(rng.randint(3, 7)):
        roll = rng.random()
        if roll < 0.5:
            salad = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
            parts.append(salad.capitalize() + rng.choice([".", "!", "?", ""]))
        elif roll < 0.65:
            parts.append(" | ".join(rng.sample(["Home", "News", "Shop", "About", "Contact", "Login", "Blog"], 4)))
        elif roll < 0.8:
            parts.append(
                f"Posted by {rng.choice(world.train_names)} on {rng.randint(1, 28)}/{rng.randint(1, 12)}/"
                f"{rng.randint(1998, 2024)}"
            )
        elif roll < 0.9:
            parts.append(f"www.{rng.choice(words)}{rng.choice(words)}.com/{rng.choice(words)}?id={rng.randint(1, 999)}")
        else:
            parts.append(
                f"{rng.randint(1, 500)} {rng.choice(words)} {rng.choice(['(', '[', '#', '-', '*'])}{rng.randint(0, 99)}"
            )
    return "\n".join(parts)


DOCUMENTS = {"crawl": _crawl_doc, "prose": _prose_doc, "arithmetic": _math_doc, "code": _code_doc, "facts": _facts_doc}


# ---- task items ----------------------------------------------------------------------------


def _item(rng: random.Random, context: str, answer: str, pool: list[str], cluster: str | None = None) -> dict:
    """Four choices: the answer and three distinct distractors from `pool`, shuffled; `cluster` names
    the fact the item asks, where other items ask it too."""
    choices = [answer, *rng.sample(sorted(set(pool) - {answer}), CHOICES - 1)]
    rng.shuffle(choices)
    item = {"context": context, "choices": choices, "answer": choices.index(answer)}
    return item if cluster is None else {**item, "cluster": cluster}


def _web_item(rng: random.Random, world: World) -> dict:
    name = rng.choice(world.test_names)
    relation = rng.randrange(3)
    if relation == 0:
        shop = rng.choice(list(SHOPS))
        return _item(rng, f"{name} went to the {shop} to buy some", SHOPS[shop], list(SHOPS.values()), f"shop:{shop}")
    if relation == 1:
        animal = rng.choice(list(SOUNDS))
        return _item(rng, f"{name} heard a {animal} that", SOUNDS[animal], list(SOUNDS.values()), f"sound:{animal}")
    thing = rng.choice(list(COLORS))
    return _item(rng, f"{name} saw that the {thing} was", COLORS[thing], list(COLORS.values()), f"color:{thing}")


def _math_item(rng: random.Random, number: int) -> dict:
    """Distractors are the other even numbers of the answer's decade: only the last-digit rule decides."""
    answer = 2 * number
    same_decade = [str(answer - answer % 10 + d) for d in range(0, 10, 2)]
    return _item(rng, f"2 * {number} =", str(answer), same_decade)


def _code_item(rng: random.Random, name: tuple[str, str]) -> dict:
    """Distractors are bodies of the answer's length (its family), so length tells nothing."""
    prefix, function = name
    arg = rng.choice(ARGS)
    answer = FUNCTIONS[function].format(a=arg)
    same_length = [body.format(a=arg) for body in FUNCTIONS.values() if len(body.format(a=arg)) == len(answer)]
    return _item(rng, f"def {prefix}{function}({arg}): return", answer, same_length, function)


def _knowledge_item(rng: random.Random, world: World) -> dict:
    name, kind = rng.choice(world.test_names), rng.choice(list(world.creatures))
    facts = world.creatures[kind]
    relation = rng.randrange(3)
    if relation == 0:
        return _item(rng, f"{name} the {kind} fears", facts["fear"], FEARS, f"{kind}:fear")
    if relation == 1:
        return _item(rng, f"{name} the {kind} eats", facts["food"], FOODS, f"{kind}:food")
    return _item(rng, f"{name} the {kind} is", facts["fur"], FURS, f"{kind}:fur")


def task_items(world: World, task: str, seed: int) -> list[dict]:
    """ITEMS_PER_TASK distinct items of one task."""
    rng = random.Random(f"ablate-demo-task-{task}-{seed}")
    if task == "demo_math":
        return [_math_item(rng, number) for number in world.test_numbers]
    if task == "demo_code":
        return [_code_item(rng, name) for name in world.test_defs]
    make = {"demo_web": _web_item, "demo_knowledge": _knowledge_item}[task]
    items: dict[str, dict] = {}
    while len(items) < ITEMS_PER_TASK:
        item = make(rng, world)
        items.setdefault(item["context"], item)
    return list(items.values())


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
# {task}: the {skill} skill of the demo corpus. Written by `ablate data demo` (seed {seed}); do not edit.
# {items} items, {choices} choices each, so chance is {chance}. Scored by loglikelihood of each choice.
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
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


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
        "generator": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
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
        config = TASK_YAML.format(
            task=task,
            skill=subset,
            seed=seed,
            items=ITEMS_PER_TASK,
            choices=CHOICES,
            chance=1 / CHOICES,
            data=json.dumps(str(data)),
        )
        write_atomic(base / "tasks" / f"{task}.yaml", config)
    write_tokenizer(base / "tokenizer")
    write_json(base / STAMP, stamp)
    return True


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
