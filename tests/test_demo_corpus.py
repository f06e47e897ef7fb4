"""The embedded demo corpus: deterministic, tasks load offline in lm-eval with one right answer per item,
no item copies training text, the tokenizer loads, and `ablate data demo` leaves the recipe's data built."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from ablate.data.check import plan_data
from ablate.demo import corpus as dc
from ablate.demo import world as dw
from ablate.plan.tasks import task_sizes
from ablate.recipe import load_recipe

DEMO_RECIPE = load_recipe(REPO / "recipes" / "demo.yaml")  # a link to ablate/demo/recipe.yaml


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    dc.write_demo(root, seed=0)
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under root/data/demo, with root itself written as ROOT."""
    out = {}
    for path in sorted((root / "data" / "demo").rglob("*")):
        if path.is_file():
            data = path.read_bytes().replace(str(root.resolve()).encode(), b"ROOT")
            out[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def read_items(root: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (root / "data/demo/tasks" / f"{task}.jsonl").read_text().splitlines()]


def test_a_second_write_keeps_the_corpus_and_a_change_rewrites_it(tmp_path):
    assert dc.write_demo(tmp_path, seed=0) is True
    raw = tmp_path / "data/demo/raw/code.jsonl"
    written = raw.stat().st_mtime_ns
    assert dc.write_demo(tmp_path, seed=0) is False  # already there: nothing is written
    assert raw.stat().st_mtime_ns == written
    assert dc.write_demo(tmp_path, seed=1) is True  # another seed: another corpus
    (tmp_path / "data/demo" / dc.STAMP).unlink()  # as an interrupted write leaves it
    assert dc.write_demo(tmp_path, seed=1) is True


def test_same_seed_same_bytes_other_seed_other_corpus(demo, tmp_path):
    dc.write_demo(tmp_path / "again", seed=0)
    dc.write_demo(tmp_path / "other", seed=1)
    first, again, other = tree_digest(demo), tree_digest(tmp_path / "again"), tree_digest(tmp_path / "other")
    assert first == again
    raw = [p for p in first if "/raw/" in p or p.endswith(".jsonl")]
    assert raw and all(first[p] != other[p] for p in raw)


def test_layout_matches_the_demo_recipe(demo):
    for name, subset in DEMO_RECIPE.subsets.items():
        assert (demo / subset.source).is_file(), name
    assert (demo / DEMO_RECIPE.tokenizer / "tokenizer.json").is_file()
    assert set(DEMO_RECIPE.eval.tasks) == set(dc.TASKS.values())
    include = [str(demo / folder) for folder in DEMO_RECIPE.eval.include]
    assert task_sizes(DEMO_RECIPE.eval.tasks, include) == {t: dc.ITEMS_PER_TASK for t in dc.TASKS.values()}
    assert dc.ITEMS_PER_TASK >= 300
    for category in DEMO_RECIPE.eval.categories.values():  # chance in the recipe = 1 / choices
        assert all(p == pytest.approx(1 / dc.CHOICES) for p in category.random_baseline.values())


def test_tokenizer_loads_offline_and_covers_the_corpus(demo):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = demo / DEMO_RECIPE.tokenizer
    fast = PreTrainedTokenizerFast.from_pretrained(str(path))
    auto = AutoTokenizer.from_pretrained(str(path))
    assert len(auto) == len(fast) <= DEMO_RECIPE.model.config["vocab_size"]
    assert auto.eos_token == "<eos>" and auto.pad_token == "<pad>" and auto.eos_token_id != auto.pad_token_id
    tasks = demo / "data/demo/tasks"
    text = (demo / "data/demo/raw/code.jsonl").read_text()[:2000] + "\n" + (tasks / "demo_web.jsonl").read_text()[:500]
    ids = auto(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and auto.unk_token_id not in ids
    assert auto.decode(ids) == text


WORLD = dc.make_world(0)


def asked(task: str, context: str) -> tuple[str | None, str]:
    """(the fact the item asks, its answer), recomputed from the context and the world tables."""
    if task == "demo_math":
        a = int(re.fullmatch(r"2 \* (\d+) =", context).group(1))
        return None, str(2 * a)
    if task == "demo_code":
        prefix_name, arg = re.fullmatch(r"def (\w+)\((\w+)\): return", context).groups()
        (function,) = [f for f in dw.FUNCTIONS if prefix_name in [p + f for p in dw.TEST_PREFIXES]]
        return function, dw.FUNCTIONS[function].format(a=arg)
    if task == "demo_web":
        for relation, table in (("shop", dw.SHOPS), ("sound", dw.SOUNDS), ("color", dw.COLORS)):
            for key, value in table.items():
                if re.search(rf"\b(the|a) {key} (to buy some|that|was)$", context):
                    return f"{relation}:{key}", value
    kind, verb = re.fullmatch(r"\w+ the (\w+) (fears|eats|is)", context).groups()
    relation = {"fears": "fear", "eats": "food", "is": "fur"}[verb]
    return f"{kind}:{relation}", WORLD.creatures[kind][relation]


@pytest.mark.parametrize("task", sorted(dc.TASKS.values()))
def test_each_item_has_exactly_one_right_choice(demo, task):
    items = read_items(demo, task)
    assert len(items) == dc.ITEMS_PER_TASK
    assert len({item["context"] for item in items}) == len(items), "no repeated question"
    for item in items:
        assert len(item["choices"]) == dc.CHOICES == len(set(item["choices"]))
        assert item["choices"][item["answer"]] == asked(task, item["context"])[1]
        assert not item["context"].endswith(" ")  # lm-eval puts one space between context and choice
        if task in ("demo_math", "demo_code"):  # equal lengths: acc_norm ranks as acc does
            assert len({len(choice) for choice in item["choices"]}) == 1


FACTS = {"demo_web": len(dw.SHOPS) + len(dw.SOUNDS) + len(dw.COLORS), "demo_code": len(dw.FUNCTIONS),
         "demo_knowledge": 3 * dw.KINDS, "demo_math": 0}


@pytest.mark.parametrize("task", sorted(dc.TASKS.values()))
def test_items_that_ask_one_fact_share_a_cluster(demo, task):
    # The report resamples a cluster's items together; math items each double their own number: none.
    items = read_items(demo, task)
    assert [item.get("cluster") for item in items] == [asked(task, item["context"])[0] for item in items]
    assert len({item["cluster"] for item in items if "cluster" in item}) == FACTS[task]


def test_no_item_copies_training_text(demo):
    corpus = "\n".join((demo / s.source).read_text() for s in DEMO_RECIPE.subsets.values())
    corpus = corpus.encode().decode("unicode_escape")  # JSON escapes back to text
    for task in dc.TASKS.values():
        for item in read_items(demo, task):
            line = f"{item['context']} {item['choices'][item['answer']]}"
            assert line not in corpus, (task, line)


def test_answers_are_balanced_over_positions(demo):
    for task in dc.TASKS.values():
        positions = [item["answer"] for item in read_items(demo, task)]
        assert all(positions.count(p) > len(positions) / dc.CHOICES / 2 for p in range(dc.CHOICES)), task


@pytest.mark.slow
def test_tasks_load_offline_in_lm_eval_from_any_cwd(demo, in_tmp):
    from lm_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=[str(demo / folder) for folder in DEMO_RECIPE.eval.include])
    tasks = get_task_dict(list(DEMO_RECIPE.eval.tasks), manager)
    assert set(tasks) == set(DEMO_RECIPE.eval.tasks)
    for name, task in tasks.items():
        docs = list(task.test_docs())
        assert len(docs) == dc.ITEMS_PER_TASK
        doc = docs[0]
        assert task.doc_to_text(doc) == doc["context"]
        assert task.doc_to_choice(doc) == doc["choices"] and task.doc_to_target(doc) == doc["answer"]
        assert task.OUTPUT_TYPE == "multiple_choice"
        assert {m["metric"] for m in task.config.metric_list} == {"acc", "acc_norm"}


def test_cli_demo_builds_every_subset_and_plan_reads_the_sizes(in_tmp):
    env = {**os.environ, "COLUMNS": "200"}
    recipe = str(REPO / "recipes" / "demo.yaml")
    command = [sys.executable, "-m", "ablate.cli", "data", "demo", "--out", "out", "--recipe", recipe]
    built = subprocess.run(command, cwd=in_tmp, capture_output=True, text=True, env=env, timeout=300)
    assert built.returncode == 0, built.stderr
    for name in DEMO_RECIPE.subsets:
        assert re.search(rf"^ *{name} +[\d,]+ +[\d,]+", built.stdout, re.M), built.stdout

    command = [sys.executable, "-m", "ablate.cli", "plan", "--recipe", recipe, "--json"]
    planned = subprocess.run(command, cwd=in_tmp / "out", capture_output=True, text=True, env=env, timeout=120)
    assert planned.returncode == 0, planned.stderr
    sizes = json.loads(planned.stdout)["subset_sizes"]
    os.chdir(in_tmp / "out")
    assert sizes == plan_data(DEMO_RECIPE)[0] and set(sizes) == set(DEMO_RECIPE.subsets)
    assert all(n > 100_000 for n in sizes.values())
