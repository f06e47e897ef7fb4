"""A newcomer's own study (#26): `ablate init` from raw text, then every stage on what it wrote; and
the report's heatmap saying what its marks mean, with the held-out loss beside the tasks."""

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from fixtures.report_study import heldout_domain

FIXTURES = REPO / "tests" / "fixtures"


# ---- the heatmap -----------------------------------------------------------------------------


def _fixed_with_heldout(root: Path) -> None:
    """The fixed report study under root/results, each done variant measured on two held-out domains:
    no-math's loss on `web` 0.3 nats higher than the baseline's, `code` alike for all."""
    shutil.copytree(FIXTURES / "results", root / "results")
    study = root / "results" / "fixed"
    rng = np.random.default_rng(0)
    for folder in sorted(study.iterdir()):
        status = folder / "status.json"
        if status.exists() and json.loads(status.read_text())["state"] == "done" and folder.name != "start":
            shift = 0.3 if folder.name == "no-math" else 0.0
            domains = {"web": rng.normal(2 + shift, 0.02, 40) * 63, "code": rng.normal(2, 0.05, 40) * 63}
            (folder / "heldout.json").write_text(
                json.dumps({"domains": {d: heldout_domain(nll, 63, 126) for d, nll in domains.items()}})
            )


def _panels(fig):
    return [ax for ax in fig.axes if ax.images]  # the heatmaps, not their colour bars


def test_heatmap_legend_says_the_stars_are_adjusted_and_held_out_loss_is_plotted(in_tmp, monkeypatch):
    import matplotlib.pyplot as plt

    from ablate.report import Settings, build_report
    from ablate.report.heatmap import draw_deltas
    from ablate.report.load import load_study

    _fixed_with_heldout(in_tmp)
    monkeypatch.setenv("ABLATE_RESULTS", "results")
    report = build_report(load_study("fixed"), Settings(resamples=2000))
    tasks, losses = _panels(draw_deltas(report))
    assert "* and outline: significant after Benjamini–Hochberg adjustment at 0.05" in tasks.get_title("left")
    starred = {t.get_text() for t in tasks.texts if t.get_text().endswith("*")}
    flagged = report.rows[report.rows.significant_adjusted.eq(True)]
    assert len(starred) == len(flagged) > 0

    assert [t.get_text() for t in losses.get_xticklabels()] == ["web", "code"]
    assert "Δ held-out loss" in losses.get_title("left") and "unadjusted" in losses.get_title("left")
    cells = {(c.ablation, c.domain): c for c in report.heldout if c.delta is not None}
    written = {t.get_text() for t in losses.texts}
    assert {f"{c.delta:+.4f}" for c in cells.values()} <= written
    web = cells["no-math", "web"]
    assert 0.25 < web.delta < 0.35 and web.low > 0  # the planted 0.3 nats, outlined
    outlined = sum(c.low > 0 or c.high < 0 for c in cells.values())
    assert len(losses.patches) == outlined >= 1
    assert "failed" in written  # no-code failed: its state, as in the task panel

    unadjusted = build_report(load_study("fixed"), Settings(resamples=2000, adjust="none"))
    (tasks_only, _) = _panels(draw_deltas(unadjusted))
    assert "* and outline: p < 0.05, unadjusted" in tasks_only.get_title("left")
    plt.close("all")


def test_heatmap_without_held_out_cells_has_one_panel(in_tmp, monkeypatch):
    from ablate.report import Settings, build_report
    from ablate.report.heatmap import draw_deltas
    from ablate.report.load import load_study

    shutil.copytree(FIXTURES / "results", in_tmp / "results")
    monkeypatch.setenv("ABLATE_RESULTS", "results")
    assert len(_panels(draw_deltas(build_report(load_study("fixed"), Settings(resamples=500))))) == 1


# ---- a study from raw text ---------------------------------------------------------------------

WORDS = {"animals": "cat dog cow duck lion owl frog bee", "numbers": "one two three four five six seven nine"}


def _texts(count: int, seed: int) -> dict[str, list[str]]:
    """Documents of each subset's own words: what a subset teaches is read off its vocabulary."""
    rng = random.Random(seed)
    return {s: [" ".join(rng.choice(w.split()) for _ in range(rng.randint(8, 30))) for _ in range(count)]
            for s, w in WORDS.items()}  # fmt: skip


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.mark.slow
def test_a_study_of_ones_own_text_from_init_to_report(tmp_path):
    """Raw text → `ablate init` (a tokenizer trained on it, a task template) → the user's own task
    items and sizes → data build → pretrain → plan → run → report, each through the CLI."""
    from tiny_study import ablate

    from ablate.data.build import load_tokenizer

    raw = tmp_path / "raw"
    raw.mkdir()
    for subset, docs in _texts(300, 0).items():
        _jsonl(raw / f"{subset}.jsonl", [{"text": d} for d in docs])
    for subset, docs in _texts(30, 1).items():
        _jsonl(raw / f"heldout-{subset}.jsonl", [{"text": d} for d in docs])
    study, results = tmp_path / "study", tmp_path / "study" / "results"
    texts = ["--text", str(raw / "animals.jsonl"), "--text", str(raw / "numbers.jsonl")]
    made = ablate("init", str(study), *texts, "--vocab-size", "300", cwd=tmp_path, results=results)
    assert made.returncode == 0, made.stderr
    again = ablate("init", str(study), *texts, cwd=tmp_path, results=results)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "pass --force" in again.stderr

    tokenizer, eos = load_tokenizer(study / "tokenizer")
    assert tokenizer.get_vocab_size() == 300 and tokenizer.id_to_token(eos) == "<eos>"
    sample = "cat dog one two"
    assert tokenizer.decode(tokenizer.encode(sample, add_special_tokens=False).ids) == sample
    assert len(tokenizer.encode(sample).ids) < len(sample)  # merges learnt from the text, not bytes alone

    # The user's own task, in the template's format: which continuation uses the context's words?
    task = yaml.safe_load((study / "tasks" / "study_example.yaml").read_text())
    rng = random.Random(2)
    animals, numbers = WORDS["animals"].split(), WORDS["numbers"].split()
    items = []
    for i in range(24):
        right = " ".join(rng.choice(animals) for _ in range(3))
        wrong = [" ".join(rng.choice(numbers) for _ in range(3)) for _ in range(3)]
        answer = i % 4
        context = " ".join(rng.choice(animals) for _ in range(6))
        choices = [*wrong[:answer], right, *wrong[answer:]]
        items.append({"context": context, "choices": choices, "answer": answer, "cluster": f"c{i % 8}"})
    _jsonl(Path(task["dataset_kwargs"]["data_files"]["test"]), items)

    recipe = yaml.safe_load((study / "recipe.yaml").read_text())
    assert recipe["tokenizer"] == "tokenizer" and recipe["eval"]["include"] == ["tasks"]
    recipe["model"]["config"].update(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=2)
    recipe["training"].update(total_tokens=40_960, phase=0.5, batch_size=8, warmup_tokens=2_048)
    recipe["eval"]["heldout"] = {s: {"location": f"data/heldout/{s}", "source": str(raw / f"heldout-{s}.jsonl")}
                                 for s in WORDS}  # fmt: skip
    recipe["eval"]["heldout_sequences"] = 12
    (study / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))

    def step(*args):
        done = ablate(*args, cwd=study, results=results)
        assert done.returncode == 0, f"{args}: {done.stderr[-2000:]}"
        return done

    step("data", "build", "--recipe", "recipe.yaml")
    step("pretrain", "--recipe", "recipe.yaml")
    step("plan", "--recipe", "recipe.yaml", "--remove", "numbers", "--baseline-seeds", "1")
    step("run")
    step("report")
    report = json.loads((results / "study" / "report.json").read_text())
    row = next(r for r in report["rows"] if r["variant"] == "no-numbers" and r["task"] == "study_example")
    assert row["delta_pp"] is not None and row["n_items"] == 24
    loss = {c["domain"]: c for c in report["heldout"] if c["ablation"] == "no-numbers"}
    assert loss["numbers"]["delta"] > 0 and loss["numbers"]["low"] > 0  # its own text, no longer trained on
    assert loss["animals"]["delta"] < loss["numbers"]["delta"]
    assert (results / "study" / "deltas.png").stat().st_size > 10_000


def test_init_writes_a_recipe_that_plans_and_refuses_bad_input_in_one_line(tmp_path):
    from tiny_study import ablate

    from ablate.demo.corpus import write_tokenizer

    for subset, docs in _texts(50, 0).items():
        _jsonl(tmp_path / f"{subset}.jsonl", [{"text": d} for d in docs])
    write_tokenizer(tmp_path / "mine")
    results = tmp_path / "s" / "results"
    two = ["--text", "animals.jsonl", "--text", "numbers.jsonl"]
    for args, expected in [
        (["s", "--text", "animals.jsonl"], "--text: give two or more files"),
        (["s", "--text", "nope.jsonl", *two], "--text nope.jsonl: matches no file"),
        (["s", *two, "--vocab-size", "100"], "--vocab-size 100: at least 259"),
        (["s", *two, "--text", "./numbers.jsonl"], "another file also names subset 'numbers'"),
        (["s", *two, "--name", "my study"], "--name 'my study': a study name is"),
        (["s", *two, "--tokenizer", "nowhere"], "tokenizer: nowhere not found"),
    ]:
        refused = ablate("init", *args, cwd=tmp_path, results=results)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, (args, refused.stderr)
        assert expected in refused.stderr and "Traceback" not in refused.stderr, (args, refused.stderr)
        assert not (tmp_path / "s").exists()
    made = ablate("init", "s", *two, "--tokenizer", "mine", cwd=tmp_path, results=results)
    assert made.returncode == 0, made.stderr
    assert not (tmp_path / "s" / "tokenizer").exists()  # the named one is used where it is
    recipe = yaml.safe_load((tmp_path / "s" / "recipe.yaml").read_text())
    assert recipe["tokenizer"] == str(tmp_path / "mine") and recipe["model"]["config"]["vocab_size"] == 99
    assert recipe["subsets"]["animals"]["source"] == str(tmp_path / "animals.jsonl")
    planned = ablate("plan", "--recipe", "recipe.yaml", cwd=tmp_path / "s", results=results)
    assert planned.returncode == 0, planned.stderr
    assert "unchecked" not in planned.stderr  # the template's task is found where the recipe says
    assert [v["name"] for v in json.loads((results / "s" / "plan.json").read_text())["variants"]] == [
        "baseline", "baseline.s1", "no-animals", "no-numbers"]  # fmt: skip
