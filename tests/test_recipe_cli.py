"""Recipes validate; `ablate plan` works from a fresh checkout and fails cleanly on bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from ablate.recipe import load_recipe

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
    assert [v["name"] for v in plan["variants"]] == ["baseline", "baseline.s1", "no-math", "control"]
    assert "Seed noise: baseline.s1 repeats the baseline" in result.stdout  # the default replicate, in the cost
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
    "bad-seeds": (["--seeds", "1,x"], "--seeds 1,x: use integers, e.g. 1,2,3"),
    "bad-each": (["--each", "task"], "--each task: use one of group, subset"),
    "bad-phase": (["--phases", "ten"], "--phases ten: write a phase as a fraction of the run (0.1), 10% or p10"),
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


def test_lists_and_phases_are_written_one_way_in_every_flag(tmp_path):
    """Repeating a flag and listing its values with commas plan the same study; a phase is the same
    phase written as a fraction, a percentage or the variants' label."""
    from ablate.cli.app import phase_fraction

    spark = str(REPO / "recipes" / "spark-joy-7b.yaml")
    written = []
    for args in (
        ["--seeds", "1,2", "--remove", "math,code"],
        ["--seeds", "1", "--seeds", "2", "--remove", "math", "--remove", "code"],
    ):
        result = ablate("plan", "--recipe", spark, "--json", *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        written.append(json.loads(result.stdout))
    assert written[0] == written[1]
    assert written[0]["options"]["seeds"] == [1, 2] and written[0]["options"]["removes"] == ["math", "code"]
    assert phase_fraction("0.1", "--phase") == phase_fraction("10%", "--phase") == phase_fraction("p10", "--phase")


def test_recipe_from_environment(tmp_path):
    result = ablate("plan", cwd=tmp_path, env={"ABLATE_RECIPE": str(REPO / "recipes" / "spark-joy-7b.yaml")})
    assert result.returncode == 0, result.stderr
    assert Path(tmp_path / "results" / "spark-joy-7b" / "plan.json").exists()


def test_debug_variable_shows_the_traceback(tmp_path):
    result = ablate("plan", "--recipe", "nope.yaml", cwd=tmp_path, env={"ABLATE_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr and "RecipeError" in result.stderr


# ---- re-planning never orphans finished results --------------------------------------------


def _planned_study(tmp_path):
    """The demo recipe planned under tmp_path, with `baseline` done and the start evaluated (status files
    as a run writes them), so a re-plan has finished results it could turn stale."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "demo.yaml").write_text((REPO / "recipes" / "demo.yaml").read_text())
    first = tmp_path / "first.pt"
    first.write_bytes(b"a checkpoint")
    assert ablate("plan", "--remove", "math", "--checkpoint", str(first), cwd=tmp_path).returncode == 0
    study = tmp_path / "results" / "demo"
    plan = json.loads((study / "plan.json").read_text())
    baseline = plan["variants"][0]
    for job, status in {
        "baseline": {"state": "done", "hash": baseline["hash"], "train_hash": baseline["train_hash"], "trained": True},
        "start": {"state": "done", "hash": plan["start_hash"]},
    }.items():
        _done(study / job, status)
    return study


def _done(folder: Path, status: dict) -> None:
    """A job folder marked done, its results (unrecorded in the status, so they only have to be there)
    stand-ins for lm-eval's results and the held-out loss: these tests are about what a plan stales."""
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "results_2026-01-01T00-00-00.json").write_text("{}")
    (folder / "heldout.json").write_text("{}")
    (folder / "status.json").write_text(json.dumps(status))


def test_plan_with_a_missing_checkpoint_is_one_line_and_writes_nothing(tmp_path):
    study = _planned_study(tmp_path)
    before = (study / "plan.json").read_text()
    result = ablate("plan", "--remove", "math", "--checkpoint", "/nonexistent.pt", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "--checkpoint /nonexistent.pt: /nonexistent.pt does not exist" in result.stderr
    assert (study / "plan.json").read_text() == before


def test_a_plan_that_would_stale_finished_results_names_them_and_needs_force(tmp_path):
    from ablate.report.load import variant_states

    study = _planned_study(tmp_path)
    before = (study / "plan.json").read_text()
    other = tmp_path / "other.pt"
    other.write_bytes(b"another checkpoint")
    refused = ablate("plan", "--remove", "math", "--checkpoint", str(other), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "stale: start (evaluated), baseline (done, training changed)" in refused.stderr
    assert "--force" in refused.stderr
    assert (study / "plan.json").read_text() == before
    same = ablate("plan", "--remove", "math", "--checkpoint", str(tmp_path / "first.pt"), cwd=tmp_path)
    assert same.returncode == 0, same.stderr  # the same plan again stales nothing

    os.environ["ABLATE_RESULTS"] = str(tmp_path / "results")
    try:
        assert set(variant_states("demo").query("state == 'done'").variant) == {"start", "baseline"}
        forced = ablate("plan", "--remove", "math", "--checkpoint", str(other), "--force", cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
        states = variant_states("demo").set_index("variant").state
    finally:
        del os.environ["ABLATE_RESULTS"]
    assert states["start"] == "stale" and states["baseline"] == "stale"  # refused, never reported


def test_only_an_evaluation_change_is_named_as_such(tmp_path):
    study = _planned_study(tmp_path)
    raw = yaml.safe_load((tmp_path / "recipes" / "demo.yaml").read_text())
    raw["eval"]["limit"] = 10
    (tmp_path / "recipes" / "demo.yaml").write_text(yaml.safe_dump(raw))
    refused = ablate("plan", "--remove", "math", "--checkpoint", str(tmp_path / "first.pt"), cwd=tmp_path)
    assert refused.returncode == 2 and "baseline (done, evaluation changed)" in refused.stderr, refused.stderr
    assert json.loads((study / "plan.json").read_text())["recipe"]["eval"]["limit"] is None


def test_reevaluate_allows_only_evaluation_changes_and_heldout_leaves_the_start_alone(tmp_path, monkeypatch):
    """Adding eval.heldout changes what a variant's evaluation produces, not the start's (it is measured
    on variants only); plan_study(reevaluate=True), as the demo re-plans, lets that through and still
    refuses a change of training."""
    from ablate.errors import StudyError
    from ablate.plan.request import PlanRequest
    from ablate.plan.study import plan_study
    from ablate.recipe import load_recipe

    study = _planned_study(tmp_path)
    raw = yaml.safe_load((tmp_path / "recipes" / "demo.yaml").read_text())
    raw["eval"]["heldout"] = {"prose": "data/demo/mds/heldout/prose"}
    (tmp_path / "recipes" / "demo.yaml").write_text(yaml.safe_dump(raw))
    refused = ablate("plan", "--remove", "math", "--checkpoint", str(tmp_path / "first.pt"), cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "stale: baseline (done, evaluation changed);" in refused.stderr  # the start is not named
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABLATE_RESULTS", str(tmp_path / "results"))
    recipe = load_recipe(tmp_path / "recipes" / "demo.yaml")
    first = str(tmp_path / "first.pt")
    plan = plan_study(recipe, PlanRequest(removes=["math"], checkpoint=first), reevaluate=True)
    assert json.loads((study / "plan.json").read_text())["variants"][0]["hash"] == plan.variants[0].hash
    (study / "baseline" / "status.json").write_text(json.dumps(
        {"state": "done", "hash": "old", "train_hash": "another training", "trained": True}))  # fmt: skip
    with pytest.raises(StudyError, match=r"baseline \(done, training changed\)"):
        plan_study(recipe, PlanRequest(removes=["math"], checkpoint=first), reevaluate=True)


# ---- what a newcomer's study runs into (#26) -------------------------------------------------


DEMO_TASKS = ["demo_web", "demo_math", "demo_code", "demo_knowledge"]


def _demo_tasks(tmp_path, tasks):
    """The demo recipe under tmp_path with a task folder registering `tasks` (only their names matter)."""
    (tmp_path / "recipes").mkdir(parents=True)
    (tmp_path / "recipes" / "demo.yaml").write_text((REPO / "recipes" / "demo.yaml").read_text())
    folder = tmp_path / "data" / "demo" / "tasks"
    folder.mkdir(parents=True)
    for task in tasks:
        (folder / f"{task}.yaml").write_text(f"task: {task}\ndataset_path: json\noutput_type: multiple_choice\n")
    return yaml.safe_load((tmp_path / "recipes" / "demo.yaml").read_text())


def test_a_misspelled_task_is_one_line_at_plan_with_the_name_it_meant(tmp_path):
    raw = _demo_tasks(tmp_path, DEMO_TASKS)
    good = ablate("plan", cwd=tmp_path)
    assert good.returncode == 0 and "unchecked" not in good.stderr, good.stderr
    raw["eval"]["tasks"][1] = "demo_maths"
    raw["eval"]["categories"] = {}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    shutil.rmtree(tmp_path / "results")
    result = ablate("plan", "--recipe", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (
        "eval.tasks: demo_maths (did you mean demo_math?) is neither in eval.include (data/demo/tasks) nor in "
        "lm-eval " in result.stderr
    ), result.stderr
    assert not (tmp_path / "results").exists()

    spark = yaml.safe_load((REPO / "recipes" / "spark-joy-7b.yaml").read_text())
    spark["eval"]["tasks"] = ["mmlu", "hellaswg", "ai2_arc"]  # a group, a typo, a tag
    spark["eval"].update(num_fewshot=0, categories={})
    (tmp_path / "spark.yaml").write_text(yaml.safe_dump(spark))
    builtin = ablate("plan", "--recipe", "spark.yaml", cwd=tmp_path)
    assert builtin.returncode == 2 and builtin.stderr.count("\n") == 1, builtin.stderr
    assert "eval.tasks: hellaswg (did you mean hellaswag?) is not in lm-eval " in builtin.stderr


def test_tasks_in_an_include_folder_not_written_yet_are_a_warning(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "demo.yaml").write_text((REPO / "recipes" / "demo.yaml").read_text())
    result = ablate("plan", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "eval.include ['data/demo/tasks'] not found yet, so eval.tasks ['demo_web'," in result.stderr


def test_a_chance_level_or_fewshot_for_a_task_not_listed_is_refused(tmp_path):
    raw = _demo_raw()
    raw["eval"]["categories"]["skills"]["random_baseline"]["demo_maths"] = 0.25
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(raw))
    result = ablate("plan", "--recipe", "a.yaml", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "categories.skills.random_baseline names ['demo_maths'], which are not in its tasks" in result.stderr
    raw = _demo_raw()
    raw["eval"]["num_fewshot"] = {"demo_maths": 5}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(raw))
    result = ablate("plan", "--recipe", "b.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "eval: num_fewshot names ['demo_maths'], which are not in eval.tasks" in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_replan_that_drops_a_finished_variant_is_refused_and_forced_keeps_it_reusable(tmp_path):
    from ablate.report.load import variant_states

    study = _planned_study(tmp_path)
    first = str(tmp_path / "first.pt")
    no_math = next(v for v in json.loads((study / "plan.json").read_text())["variants"] if v["name"] == "no-math")
    _done(study / "no-math", {"state": "done", "hash": no_math["hash"], "train_hash": no_math["train_hash"],
                              "trained": True})  # fmt: skip
    before = (study / "plan.json").read_text()
    swarm = ("plan", "--design", "swarm", "--n", "4", "--checkpoint", first)
    refused = ablate(*swarm, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "stale: no-math (done, not in the new plan); pass --force" in refused.stderr  # the baseline is reused
    assert "variants left out keep their folders" in refused.stderr
    assert (study / "plan.json").read_text() == before

    forced = ablate(*swarm, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "swarm-4" in {v["name"] for v in json.loads((study / "plan.json").read_text())["variants"]}
    again = ablate(*swarm[:-2], "--seeds", "0", "--checkpoint", first, cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # dropped once, on purpose: not refused on every later plan
    back = ablate("plan", "--remove", "math", "--checkpoint", first, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    os.environ["ABLATE_RESULTS"] = str(tmp_path / "results")
    try:
        states = variant_states("demo").set_index("variant").state
    finally:
        del os.environ["ABLATE_RESULTS"]
    assert states["no-math"] == "done" and states["baseline"] == "done"  # its results, reused


def test_plan_without_recipe_outside_a_study_says_it_planned_the_packaged_demo(tmp_path):
    result = ablate("plan", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "from the packaged demo recipe (" in result.stderr and "`ablate init DIR` writes one" in result.stderr
    _demo_tasks(tmp_path / "own", DEMO_TASKS)
    assert "from recipes/demo.yaml (the working folder's)" in ablate("plan", cwd=tmp_path / "own").stderr
    named = ablate("plan", "--recipe", str(REPO / "recipes" / "demo.yaml"), cwd=tmp_path)
    assert named.returncode == 0 and " from " not in named.stderr.splitlines()[-1]


@pytest.mark.slow
def test_task_names_read_from_files_are_lm_evals_own_index():
    """The names plan reads off lm-eval's task files, without importing it, are those its TaskManager
    indexes; and looking up a sample of them finds each (templates' tags included)."""
    import random

    from lm_eval.tasks import TaskManager

    from ablate.plan.tasks import folder_tasks, lm_eval_tasks

    folder = lm_eval_tasks()
    indexed = set(TaskManager().all_tasks)
    assert folder_tasks(folder) == indexed
    sample = set(random.Random(0).sample(sorted(indexed), 300)) | {"afrimmlu_tasks_prompt_2", "scrolls_qasper"}
    assert folder_tasks(folder, sample) == sample
    assert folder_tasks(folder, {"hellaswg", "mmlu"}) == {"mmlu"}


def _commands(group, prefix=()):
    """(path, click command) for every command of the CLI, sub-apps' commands included."""
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_commands_help_shows_the_defaults_it_declares():
    # A hand-written "[default: …]" in help text is read as rich markup and vanishes ("to fit . Repeatable.");
    # defaults are declared as show_default instead, and each must come out in the rendered help.
    import typer.main
    from typer.testing import CliRunner

    from ablate.cli import app

    root = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(root):
        shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=400, env={"COLUMNS": "400"})
        assert shown.exit_code == 0, (path, shown.output)
        text = " ".join(shown.output.split())
        assert "[default: ]" not in text, path
        for param in command.params:
            assert "[default" not in (getattr(param, "help", None) or ""), (path, param.name)  # use show_default
            if isinstance(param.show_default, str):
                assert f"[default: ({param.show_default})]" in text, (path, param.name, param.show_default)
                checked += 1
    assert checked >= 15  # the options whose default depends on the study or recipe
