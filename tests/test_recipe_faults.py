"""Quietly wrong input is refused in one line: recipes that YAML or pydantic would accept but that
mean something else, names that leave the study folder, and study files of the wrong shape.

Each case runs the real CLI (ablate.cli.main, in this process: no model is built) and checks what
a user sees: exit code 2, one `Error: ...` line on stderr naming the field or file, no traceback,
and nothing written or changed.
"""

import json
import sys
from pathlib import Path

import pytest

from ablate.cli import main
from ablate.errors import AblateError
from ablate.plan.identity import check_name

# A study that plans without a model: two small shard folders (their sizes given), a start that is a
# save_pretrained folder holding only its config.
RECIPE = """\
name: faults
seq_len: 8
tokenizer: tok
model:
  config: {model_type: llama, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2,
           vocab_size: 32, max_position_embeddings: 8}
subsets:
  web: {location: "{data}/web", tokens: 100000, groups: [general]}
  math: {location: "{data}/math", tokens: 10000, groups: [maths]}
mixes:
  base: {web: 9, math: 1}
  upsample: {web: 1, math: 1}
training:
  total_tokens: 10000
  phase: 0.1
  batch_size: 4
  optimizer: {lr: 0.001}
start: {start}
eval:
  tasks: [t]
  include: ["{tasks}"]
ablations: {control: false}
"""
START_CONFIG = {
    "model_type": "llama", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
    "vocab_size": 32, "max_position_embeddings": 8, "architectures": ["LlamaForCausalLM"],
}  # fmt: skip


def ablate(monkeypatch, capsys, *args):
    """(exit code, stderr) of `ablate ARGS` as main() runs it: known errors are one line, exit 2."""
    monkeypatch.setattr(sys, "argv", ["ablate", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main()
    return exit.value.code, capsys.readouterr().err


def assert_one_line(code, stderr, *expected):
    assert code == 2, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    for text in expected:
        assert text in stderr, stderr


def write_shards(folder: Path) -> None:
    """A few 8-token samples, as `ablate data build` lays them out: what `run --dry-run` checks."""
    import numpy as np
    from streaming import MDSWriter

    with MDSWriter(out=str(folder), columns={"tokens": "ndarray:int32"}, progress_bar=False) as writer:
        for i in range(4):
            writer.write({"tokens": np.arange(i, i + 8, dtype=np.int32)})


def write_recipe(folder: Path, **replace: str) -> Path:
    """The recipe, its start folder, and `replace` as (old → new) edits of the text."""
    start = folder / "ck"
    start.mkdir(exist_ok=True)
    (start / "config.json").write_text(json.dumps(START_CONFIG))
    (folder / "tasks").mkdir(exist_ok=True)
    (folder / "tasks" / "t.yaml").write_text("task: t\n")  # plan checks that lm-eval would register it
    for subset in ("web", "math"):
        if not (folder / "data" / subset).exists():
            write_shards(folder / "data" / subset)
    text = RECIPE.replace("{start}", str(start)).replace("{tasks}", str(folder / "tasks")).replace("{data}", str(folder / "data"))
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    (folder / "recipe.yaml").write_text(text)
    return folder / "recipe.yaml"


# ---- recipes ---------------------------------------------------------------------------------

BAD_RECIPES = {
    "repeated top-level key": ({"seq_len: 8\n": "seq_len: 8\nseq_len: 16\n"}, "key 'seq_len' at line 3 repeats"),
    "repeated subset": (
        {"  math: {location": "  web: {location: x}\n  math: {location"},
        "key 'web' at line 9 repeats the one at line 8; YAML would keep only the last",
    ),
    "repeated weight": ({"upsample: {web: 1, math: 1}": "upsample: {web: 1, math: 1, web: 3}"}, "key 'web'"),
    "NaN weight": ({"upsample: {web: 1,": "upsample: {web: .nan,"}, "mixes.upsample.web: nan is not a finite"),
    "infinite lr": ({"lr: 0.001": "lr: .inf"}, "training.optimizer.lr: inf is not a finite number"),
    "lr written nan": ({"lr: 0.001": "lr: nan"}, "training.optimizer.lr: nan is not a finite number"),
    "overflowing total": ({"total_tokens: 10000": "total_tokens: 1.0e+999"}, "training.total_tokens: inf is not"),
    "NaN in model.config": ({"vocab_size: 32,": "vocab_size: 32, rope_theta: .nan,"}, "model.config.rope_theta: nan"),
    "batch above the phase": (
        {"batch_size: 4": "batch_size: 200"},
        "training.phase: one batch (training.batch_size × seq_len = 1,600 tokens) is more than the 0.1 phase's "
        "1,000 tokens; lower training.batch_size",
    ),
    "batch above a phase study's phase": (
        {"{control: false}": "{control: false, phases: [0.1, 0.002]}"},
        "ablations.phases: one batch (training.batch_size × seq_len = 32 tokens) is more than the 0.002 phase's 20",
    ),
    # Composer's seed_all refuses a seed outside 0 … 2**32 - 1 when the job starts: refused while planning.
    "seed past 2**32 - 1": (
        {"batch_size: 4": "batch_size: 4\n  seed: 4294967296"},
        "training.seed: 4294967296 is not a seed; use an integer from 0 to 4294967295",
    ),
    "negative phase seed": ({"{control: false}": "{control: false, seeds: [1, -1]}"}, "ablations.seeds.1: -1 is not"),
    "negative swarm seed": (
        {"{control: false}": "{control: false, design: {kind: swarm, seed: -2}}"},
        "ablations.design.seed: -2 is not",
    ),
    # Token counts past 2**53 plan today and fail (or miscount) later; as a float or an integer alike.
    "total tokens 1e36": (
        {"total_tokens: 10000": "total_tokens: 1.0e+36"},
        "training.total_tokens: 1e+36 tokens is more than ablate counts exactly (2**53, about 9.0e15); lower it",
    ),
    "total tokens 10**36": (
        {"total_tokens: 10000": f"total_tokens: {10**36}"},
        "training.total_tokens: 1e+36 tokens is more than",
    ),
    "a subset of 2**53 tokens": (
        {"tokens: 100000,": f"tokens: {2**53},"},
        "subsets.web.tokens: 9.01e+15 tokens is more than ablate counts",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_a_quietly_wrong_recipe_is_one_line_and_plans_nothing(in_tmp, monkeypatch, capsys, case):
    edits, expected = BAD_RECIPES[case]
    recipe = write_recipe(in_tmp, **edits)
    assert_one_line(*ablate(monkeypatch, capsys, "plan", "--recipe", str(recipe)), expected)
    assert not (in_tmp / "results").exists()


def test_the_recipe_as_written_plans(in_tmp, monkeypatch, capsys):
    """The recipe every case above breaks plans cleanly, so each refusal is the edit's doing."""
    code, stderr = ablate(monkeypatch, capsys, "plan", "--recipe", str(write_recipe(in_tmp)))
    assert code == 0, stderr
    assert (in_tmp / "results" / "faults" / "plan.json").exists()


def test_a_merge_key_may_be_overridden_without_a_repeat(in_tmp, monkeypatch, capsys):
    """`<<: *anchor` then a key of the anchor is YAML's override, not a repeated key."""
    recipe = write_recipe(
        in_tmp, **{"  upsample: {web: 1, math: 1}": "  upsample:\n    <<: &w {web: 1, math: 1}\n    math: 2"}
    )
    code, stderr = ablate(monkeypatch, capsys, "plan", "--recipe", str(recipe))
    assert code == 0, stderr
    plan = json.loads((in_tmp / "results" / "faults" / "plan.json").read_text())
    assert plan["variants"][0]["mixture"] == pytest.approx({"web": 1 / 3, "math": 2 / 3})


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        ("1e23", "--seeds 1e23: use integers"),
        (
            "99999999999999999999999",
            "--seeds: 99999999999999999999999 is not a seed; use an integer from 0 to 4294967295",
        ),
        ("-1", "--seeds: -1 is not a seed"),
        # the baseline's replicate takes the next seed, past the last one Composer takes
        ("4294967295", "--seeds 4294967295: the baseline's replicates reach seed 4294967296, past 4294967295"),
    ],
)
def test_seeds_on_the_command_line_out_of_range_are_refused(in_tmp, monkeypatch, capsys, seeds, expected):
    recipe = write_recipe(in_tmp)
    assert_one_line(*ablate(monkeypatch, capsys, "plan", "--recipe", str(recipe), f"--seeds={seeds}"), expected)
    assert not (in_tmp / "results").exists()


@pytest.mark.parametrize("encoding", ["utf-16", "binary"])
def test_a_recipe_that_is_not_utf8_text_is_one_line(in_tmp, monkeypatch, capsys, encoding):
    recipe = write_recipe(in_tmp)
    text = recipe.read_text()
    recipe.write_bytes(text.encode("utf-16") if encoding == "utf-16" else b"\x93\xff\x00" + text.encode())
    code, stderr = ablate(monkeypatch, capsys, "plan", "--recipe", str(recipe))
    assert_one_line(code, stderr, f"recipe {recipe}: not UTF-8 text (invalid start byte at byte 0); save it as UTF-8")
    assert not (in_tmp / "results").exists()


def test_phases_on_the_command_line_shorter_than_a_batch_are_refused(in_tmp, monkeypatch, capsys):
    recipe = write_recipe(in_tmp)
    code, stderr = ablate(monkeypatch, capsys, "plan", "--recipe", str(recipe), "--phases", "0.1,0.002")
    assert_one_line(code, stderr, "--phases 0.002: one batch (training.batch_size × seq_len = 32 tokens)")
    assert not (in_tmp / "results").exists()


def test_from_foundry_refuses_a_repeated_key_too(in_tmp, monkeypatch, capsys):
    (in_tmp / "train.yaml").write_text("max_seq_len: 64\nmodel:\n  name: mpt_causal_lm\n  d_model: 8\n  d_model: 16\n")
    code, stderr = ablate(monkeypatch, capsys, "recipe", "from-foundry", "train.yaml", "--out", "r.yaml")
    assert_one_line(code, stderr, "train.yaml: key 'd_model' at line 5 repeats the one at line 4")
    assert not (in_tmp / "r.yaml").exists()


# ---- names -----------------------------------------------------------------------------------

BAD_NAMES = {
    "": "is empty",
    "../x": "holds a path separator",
    "a/b": "holds a path separator",
    ".hidden": "starts with '.'",
    "x..y": "holds '..'",
    "start": "one of the study folder's own entries",
    "pretrain": "one of the study folder's own entries",
    "starts": "one of the study folder's own entries",
    "plan.json": "one of the study folder's own entries",
    "mix@p10": "holds '@'",
}


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_suggest_name_must_be_one_plain_folder_and_is_checked_first(in_tmp, monkeypatch, capsys, name):
    code, stderr = ablate(monkeypatch, capsys, "suggest", "--objective", "t", "--name", name)
    assert_one_line(code, stderr, f"--name {name!r}: ", BAD_NAMES[name])
    assert not (in_tmp / "results").exists()  # refused before it looked for a study


@pytest.mark.parametrize("name", ["suggested", "no-math+code", "up-web_2", "mix.v2"])
def test_plain_names_pass(name):
    assert check_name(name, "--name", fix="") == name


def test_a_recipe_group_that_would_name_a_folder_outside_the_study_is_refused(in_tmp, monkeypatch, capsys):
    recipe = write_recipe(in_tmp, **{"groups: [maths]": "groups: [../../etc]"})
    code, stderr = ablate(monkeypatch, capsys, "plan", "--recipe", str(recipe))
    assert_one_line(code, stderr, "variant 'no-../../etc': holds a path separator; rename the recipe's subset or group")
    assert not (in_tmp / "results").exists()


def test_the_name_check_is_the_plans_for_added_mixtures_too(in_tmp):
    from ablate.plan.build import build_plan
    from ablate.plan.request import PlanRequest
    from ablate.recipe import load_recipe

    recipe = load_recipe(write_recipe(in_tmp))
    with pytest.raises(AblateError, match=r"variant 'pretrain': is one of the study folder's own entries"):
        build_plan(recipe, PlanRequest(mixtures={"pretrain": {"web": 0.5, "math": 0.5}}))


# ---- study files of the wrong shape ----------------------------------------------------------

STAMP = "2026-01-01T00-00-00"
RESULTS = {"results": {"t": {"acc,none": 0.5, "acc_stderr,none": 0.1}}, "n-samples": {"t": {"effective": 2}}}
SAMPLES = [{"doc_id": i, "doc_hash": str(i), "metrics": ["acc"], "acc": float(i)} for i in range(2)]
HELDOUT = {"domains": {"web": {"sequences": 1, "tokens": 7, "bytes": 7, "loss": 1.0, "fingerprint": "f", "nll": [7.0]}}}
SUGGESTED = {
    "s": {
        "name": "s", "ablation": "s", "baseline": "baseline", "target": "t", "variants": 3, "kl": 0.01,
        "radius": 0.1, "mixture": {"web": 0.4, "math": 0.6}, "baseline_mixture": {"web": 0.5, "math": 0.5},
        "gain": {"value": 0.1, "low": 0.0, "high": 0.2}, "predicted": {"value": 0.6, "low": 0.5, "high": 0.7},
        "baseline_predicted": 0.5, "objective": {"t": 1.0}, "models": {"t": "linear"}, "loo_rmse": {"t": 0.1},
    }
}  # fmt: skip
BASELINE = "results/faults/baseline"
READERS = ["run --dry-run", "run", "status", "report", "fit", "suggest --objective t", "export baseline out"]
# file → (wrong contents, the commands that read it)
WRONG = {
    "results/faults/plan.json": (["[]", '{"version": 2}', "STRING_FOR_NUMBER"], READERS),
    f"{BASELINE}/status.json": (
        ["[]", '{"state": "finished"}', '{"state": "training", "tokens_done": "many"}'],
        ["plan --recipe recipe.yaml", *READERS],
    ),
    "results/faults/checkpoints.json": (
        ['["ck"]', '{"pretrained": 7}'], ["plan --recipe recipe.yaml", "run", "run --dry-run"]
    ),
    "results/faults/suggested.json": (["[]", '{"s": {"mixture": "all"}}'], ["report", "fit", "suggest --objective t"]),
    f"{BASELINE}/heldout.json": (['{"domains": []}', '{"domains": {"web": {"loss": "low"}}}'], ["report", "fit"]),
    f"{BASELINE}/eval/results_{STAMP}.json": (['[]', '{"results": ["t"]}'], ["report", "fit", "suggest --objective t"]),
    f"{BASELINE}/eval/samples_t_{STAMP}.jsonl": (['[1]\n', '{"doc": 1}\n', "{nope\n"], ["report", "fit"]),
    "results/faults/slurm/jobs.json": (['["x"]', '{"baseline": {"job_id": 3}}'], ["status"]),
}  # fmt: skip


@pytest.fixture
def study(in_tmp, monkeypatch, capsys):
    """The planned study with its baseline done and evaluated (lm-eval's files, held-out loss, a
    suggestion), every file well-formed: what each case below breaks one file of."""
    code, stderr = ablate(monkeypatch, capsys, "plan", "--recipe", str(write_recipe(in_tmp)))
    assert code == 0, stderr
    plan = json.loads((in_tmp / "results/faults/plan.json").read_text())
    baseline = plan["variants"][0]
    folder = in_tmp / BASELINE
    (folder / "eval").mkdir(parents=True)
    status = {"state": "done", "hash": baseline["hash"], "train_hash": baseline["train_hash"], "trained": True}
    (folder / "status.json").write_text(json.dumps(status))
    (folder / "eval" / f"results_{STAMP}.json").write_text(json.dumps(RESULTS))
    (folder / "eval" / f"samples_t_{STAMP}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SAMPLES))
    (folder / "heldout.json").write_text(json.dumps(HELDOUT))
    (in_tmp / "results/faults/suggested.json").write_text(json.dumps(SUGGESTED))
    (in_tmp / "results/faults/checkpoints.json").write_text(json.dumps({"other": str(in_tmp / "ck")}))
    (in_tmp / "results/faults/slurm").mkdir()
    (in_tmp / "results/faults/slurm/jobs.json").write_text("{}")  # `ablate run --launcher slurm` submitted nothing yet
    return in_tmp


def test_the_well_formed_study_reads(study, monkeypatch, capsys):
    """Every command the cases below break gets past the study's files when they are well-formed."""
    for command in ("status", "report", "run --dry-run"):
        code, stderr = ablate(monkeypatch, capsys, *command.split())
        assert code == 0, f"{command}: {stderr}"
    code, stderr = ablate(monkeypatch, capsys, "fit")  # reads every file, then finds nothing to fit
    assert_one_line(code, stderr, "study faults: no done variants to fit yet")


def _cases():
    for path, (contents, commands) in WRONG.items():
        for command in commands:  # the first wrong content for every reader,
            yield pytest.param(path, contents[0], command, id=f"{Path(path).name}-{command.split()[0]}-0")
        for index, content in enumerate(contents[1:], 1):  # every wrong content for the first reader
            yield pytest.param(path, content, commands[0], id=f"{Path(path).name}-{commands[0].split()[0]}-{index}")


@pytest.mark.parametrize(("path", "content", "command"), list(_cases()))
def test_a_study_file_of_the_wrong_shape_is_one_line_naming_it(study, monkeypatch, capsys, path, content, command):
    target = study / path
    if content == "STRING_FOR_NUMBER":
        content = json.dumps({**json.loads(target.read_text()), "study_tokens": "many"})
    target.write_text(content)
    before = sorted(p for p in study.rglob("*") if p.is_file())
    code, stderr = ablate(monkeypatch, capsys, *command.split())
    assert_one_line(code, stderr, Path(path).name)
    if not command.startswith("plan"):  # nothing else written; `plan` may replace what it refuses
        assert sorted(p for p in study.rglob("*") if p.is_file()) == before
        assert target.read_text() == content


# ---- plan.json edited by hand -----------------------------------------------------------------


def _variant(index, **fields):
    """An edit of plan.json: variant `index` with `fields` changed."""

    def edit(plan):
        plan["variants"][index].update(fields)
        return json.dumps(plan).encode()

    return edit


# case → (the edit: plan.json's payload → the file's new bytes, what the one line says)
PLAN_EDITS = {
    "a name out of the study": (
        _variant(1, name="../evil", ablation="../evil"),
        "variants.1: ablation '../evil': holds",
    ),
    "a name that is not its ablation's": (
        _variant(1, name="../evil"),
        "variants.1: name '../evil' is not its ablation",
    ),
    "a duplicate name": (_variant(1, name="no-maths", ablation="no-maths"), "variants ['no-maths'] are named twice"),
    "a NaN share": (_variant(0, mixture={"web": float("nan"), "math": 0.5}), "variants.0: mixture: shares of ['web']"),
    "a negative share": (
        _variant(0, mixture={"web": 1.5, "math": -0.5}),
        "mixture: shares of ['math', 'web'] are not numbers from 0 to 1",
    ),
    "shares not summing to 1": (_variant(0, mixture={"web": 0.7, "math": 0.5}), "mixture: shares sum to 1.2, not 1"),
    "negative tokens": (_variant(0, tokens=-1000), "variants.0.tokens: Input should be greater than 0"),
    "negative start tokens": (_variant(0, start_tokens=-1), "variants.0.start_tokens: Input should be greater than"),
    "a huge seed": (_variant(0, seed=10**23), "variants.0.seed: 100000000000000000000000 is not a seed"),
    "a study out of the results": (
        lambda plan: json.dumps({**plan, "study": "../evil"}).encode(),
        "(study: String should match pattern",
    ),
    "binary": (lambda plan: b"\x93\xff\x00" + json.dumps(plan).encode(), "plan.json: not UTF-8 text (invalid start"),
    "UTF-16": (
        lambda plan: json.dumps(plan).encode("utf-16"),
        "plan.json: not UTF-8 text (invalid start byte at byte 0)",
    ),
}


def _plan_cases():
    for case in sorted(PLAN_EDITS):  # every edit for the dry run,
        yield pytest.param(case, "run --dry-run", id=f"{case}-run")
    for command in ("status", "report"):  # the names out of the study for every reader that does not train
        yield pytest.param("a name out of the study", command, id=f"a name out of the study-{command}")
        yield pytest.param("a duplicate name", command, id=f"a duplicate name-{command}")


@pytest.mark.parametrize(("case", "command"), list(_plan_cases()))
def test_a_hand_edited_plan_is_refused_on_read_in_one_line(study, monkeypatch, capsys, case, command):
    """What the planner would never write, read back from plan.json: refused before anything runs,
    is reported or is written (inside the study or, for a name with '..', outside it)."""
    edit, expected = PLAN_EDITS[case]
    target = study / "results/faults/plan.json"
    target.write_bytes(edit(json.loads(target.read_text())))
    before = sorted(p for p in study.rglob("*") if p.is_file())
    code, stderr = ablate(monkeypatch, capsys, *command.split())
    assert_one_line(code, stderr, f"{target.relative_to(study)}: ", expected, "; rerun `ablate plan`")
    assert sorted(p for p in study.rglob("*") if p.is_file()) == before
    assert not (study / "results" / "evil").exists() and not (study / "evil").exists()


# ---- the recipe's model against the start checkpoint's ----------------------------------------


@pytest.mark.slow
def test_model_fields_that_contradict_the_start_checkpoint_are_refused_before_any_job(tmp_path, monkeypatch, capsys):
    """On a real Composer checkpoint of the tiny model (one step): plan refuses a recipe whose heads or
    sequence length the checkpoint contradicts, reading its config alone (#33); so do the runner's checks,
    before any job starts, and the start checkpoint's evaluation job, for a plan.json that says so. The
    recipe as trained runs."""
    import yaml
    from tiny_study import BATCH, SEQ_LEN, write_tiny_study

    from ablate.plan.build import normalize
    from ablate.plan.model import check_start, read_start
    from ablate.recipe import load_recipe
    from ablate.run.start import new_model
    from ablate.run.train import fit, pretrain_schedule
    from ablate.run.worker import run_start

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABLATE_RESULTS", str(tmp_path / "results"))
    recipe_path = write_tiny_study(tmp_path)
    recipe = load_recipe(recipe_path)
    fit(
        new_model(recipe), recipe, mixture=normalize(recipe.mixes.base), seed=1, folder=tmp_path / "pre",
        run_name="t", schedule=pretrain_schedule(recipe), end_tokens=BATCH * SEQ_LEN,
    )  # fmt: skip
    checkpoint = tmp_path / "pre" / "checkpoints" / "latest-rank0.pt"

    def edited(edit) -> Path:
        raw = yaml.safe_load(recipe_path.read_text())
        raw["checkpoints"], raw["start"] = {"ck": str(checkpoint)}, "ck"
        edit(raw)
        (tmp_path / "edited.yaml").write_text(yaml.safe_dump(raw))
        return tmp_path / "edited.yaml"

    def planned(edit):
        return ablate(monkeypatch, capsys, "plan", "--recipe", str(edited(edit)), "--force")

    code, stderr = planned(lambda raw: None)
    assert code == 0, stderr
    code, stderr = ablate(monkeypatch, capsys, "run", "--dry-run")
    assert code == 0, stderr

    plan_path = tmp_path / "results" / "tiny" / "plan.json"
    before = plan_path.read_bytes()
    said = (
        f"model.config.num_attention_heads: the recipe says 4, start checkpoint `ck` at {checkpoint} has 2; set it to "
        "the checkpoint's value"
    )
    assert_one_line(*planned(lambda raw: raw["model"]["config"].update(num_attention_heads=4)), said)
    assert plan_path.read_bytes() == before  # nothing written
    plan = json.loads(before)  # a plan.json that says 4 all the same (by hand): run checks it again
    plan["recipe"]["model"]["config"]["num_attention_heads"] = 4
    plan_path.write_text(json.dumps(plan))
    code, stderr = ablate(monkeypatch, capsys, "run", "--dry-run")
    assert_one_line(code, stderr, said)
    code, stderr = ablate(monkeypatch, capsys, "run")
    assert_one_line(code, stderr, "model.config.num_attention_heads: the recipe says 4")
    assert (
        not (tmp_path / "results" / "tiny" / "start").exists()
        and not (tmp_path / "results" / "tiny" / "baseline").exists()
    )
    with pytest.raises(AblateError, match=r"model\.config\.num_attention_heads: the recipe says 4"):
        run_start("tiny")

    # A longer seq_len is refused by plan, past the checkpoint's positions (the shards, holding SEQ_LEN-token
    # samples, would refuse it too); the runner checks the positions as plan does, from its config alone.
    longer = edited(lambda raw: raw.update(seq_len=2 * SEQ_LEN))
    code, stderr = ablate(monkeypatch, capsys, "plan", "--recipe", str(longer), "--force")
    assert_one_line(code, stderr, f"seq_len: the recipe says {2 * SEQ_LEN}, start checkpoint `ck` at {checkpoint}")
    with pytest.raises(AblateError) as refused:
        check_start(load_recipe(longer), read_start(str(checkpoint)), "start checkpoint `ck`")
    assert str(refused.value).startswith(
        f"seq_len: the recipe says {2 * SEQ_LEN}, start checkpoint `ck` at {checkpoint} takes at most {SEQ_LEN} positions"
    )
