"""The demo's skills: the training documents that teach each one, and beside them the task items
that test it, so what the model can learn and what a task asks are checked side by side.

    DOCUMENTS["arithmetic"](rng, world)      # "2 * 1234 = 2468\n..."
    task_items(world, "demo_math", seed=0)   # ITEMS_PER_TASK items of four choices each

Test items apply a skill to values training never shows together (held-out names, numbers and
function names), so no item is a copy of a training line.
"""

from __future__ import annotations

import random

from ablate.demo.world import (
    ARGS,
    COLORS,
    CRAWL_WORDS,
    FEARS,
    FILLER,
    FOODS,
    FUNCTIONS,
    FURS,
    ITEMS_PER_TASK,
    SHOPS,
    SOUNDS,
    TRAIN_PREFIXES,
    World,
)

CHOICES = 4


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
