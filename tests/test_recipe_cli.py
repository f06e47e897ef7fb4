"""Recipes validate; `ablate plan` works from a fresh checkout and fails cleanly on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ablate.recipe import load_recipe
from conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
HEAVY = ("torch", "composer", "streaming", "lm_eval", "transformers")


def ablate(*args, cwd, env=None):
    """The CLI as a user runs it: a subprocess, so exit codes and stderr are real."""
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},  # wide enough that no table cell wraps
    )


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name and sum(recipe.mixes.upsample.values()) > 0
    assert path.read_text().startswith("#"), "each shipped recipe opens with a comment header"


def test_plan_in_a_fresh_checkout_writes_plan_json(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "demo.yaml").write_text((REPO / "recipes" / "demo.yaml").read_text())
    result = ablate("plan", "--remove", "math", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no-math" in result.stdout and "baseline" in result.stdout and "of the full run" in result.stdout
    plan = json.loads((tmp_path / "results" / "demo" / "plan.json").read_text())
    assert [v["name"] for v in plan["variants"]] == ["baseline", "no-math", "control"]
    for variant in plan["variants"]:
        assert sum(variant["mixture"].values()) == pytest.approx(1.0)
        assert {"name", "removed", "mixture", "tokens", "seed", "checkpoint", "hash"} <= set(variant)
    assert (tmp_path / "results" / ".current").read_text().strip() == "demo"


def test_plan_json_flag_prints_the_file(tmp_path):
    result = ablate("plan", "--recipe", str(REPO / "recipes" / "spark-joy-7b.yaml"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads((tmp_path / "results" / "spark-joy-7b" / "plan.json").read_text())
    assert printed["study_fraction"] == pytest.approx(len(printed["variants"]) * 0.2)


def test_help_and_plan_import_no_heavy_library(tmp_path):
    probe = (
        "import sys, runpy; sys.argv = ['ablate'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('ablate.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    for args in (["--help"], ["plan", "--recipe", str(REPO / "recipes" / "demo.yaml")]):
        result = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True)
        assert "HEAVY []" in result.stderr, result.stderr[-500:]


def _demo_raw():
    return yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text())


def _broken(edit):
    raw = _demo_raw()
    edit(raw)
    return yaml.safe_dump(raw)


BAD_RECIPES = {
    "unknown-field": (_broken(lambda r: r["training"].update(phse=0.2)), "training.phse: unknown field"),
    "missing-mix": (_broken(lambda r: r["mixes"].pop("upsample")), "missing field mixes.upsample; add it"),
    "negative-weight": (_broken(lambda r: r["mixes"]["upsample"].update(prose=-1)), "mixes.upsample: has negative"),
    "all-zero": (
        _broken(lambda r: r["mixes"].update(base={k: 0 for k in r["mixes"]["base"]})),
        "mixes.base: has no positive weight",
    ),
    "unknown-subset": (_broken(lambda r: r["mixes"]["base"].update(mathh=1)), "mixes.base: names unknown subsets"),
    "phase-high": (_broken(lambda r: r["training"].update(phase=1.5)), "training.phase: Input should be less than 1"),
    "phase-zero": (_broken(lambda r: r["training"].update(phase=0)), "training.phase: Input should be greater than 0"),
    "malformed": ("name: demo\nmixes: [a, b\n", "malformed YAML at line"),
    "not-a-mapping": ("- just\n- a list\n", "expected a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    text, expected = BAD_RECIPES[case]
    (tmp_path / "bad.yaml").write_text(text)
    result = ablate("plan", "--recipe", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: recipe bad.yaml:")
    assert not (tmp_path / "results").exists()


BAD_ARGS = {
    "unreadable": (["--recipe", "nope.yaml"], "recipe nope.yaml: cannot read it"),
    "unknown-target": (["--remove", "maths"], "--remove maths: unknown target 'maths'; groups: ['code', "),
    "remove-all": (["--remove", "web+math+code+knowledge"], "removes every subset of the upsample mix"),
    "bad-seeds": (["--seeds", "1,x"], "--seeds 1,x: use comma-separated integers"),
    "bad-each": (["--each", "task"], "--each task: use 'group' or 'subset'"),
    "bad-renormalize": (["--renormalize", "evenly"], "--renormalize evenly: use 'proportional' or 'into:<subset>'"),
    "into-unknown": (["--remove", "math", "--renormalize", "into:wiki"], "'wiki' is not in the upsample mix"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_argument_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    args, expected = BAD_ARGS[case]
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "demo.yaml").write_text((REPO / "recipes" / "demo.yaml").read_text())
    result = ablate("plan", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_recipe_from_environment(tmp_path):
    result = ablate("plan", cwd=tmp_path, env={"ABLATE_RECIPE": str(REPO / "recipes" / "spark-joy-7b.yaml")})
    assert result.returncode == 0, result.stderr
    assert Path(tmp_path / "results" / "spark-joy-7b" / "plan.json").exists()


def test_debug_variable_shows_the_traceback(tmp_path):
    result = ablate("plan", "--recipe", "nope.yaml", cwd=tmp_path, env={"ABLATE_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr and "RecipeError" in result.stderr
