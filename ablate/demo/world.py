"""The demo's synthetic world: vocabulary tables, invented names and creatures, and which
combinations a seed holds out for the tasks alone. Everything is drawn from `random.Random` seeded
with strings: the same seed gives the same world.

    world = make_world(0)
    world.creatures["grob"]   # {"fear": "fire", "food": "moss", "fur": "teal"}
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ITEMS_PER_TASK = 400

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
