"""`ablate pretrain` → `plan` → `run` on a tiny study, with the real Composer, streaming and lm-eval.

One study (the `tiny` fixture in conftest.py) is pretrained, planned (baseline + no-g) and run once;
the tests read it, or copy its plan into another results root to run a variant again under other
conditions.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from tiny_study import (
    BATCH,
    FINAL_RATIO,
    HELDOUT,
    HELDOUT_SEQUENCES,
    LR,
    PHASE,
    SEQ_LEN,
    STUDY,
    TOTAL_TOKENS,
    ablate,
    clone,
    kill_when,
    status,
    subset_of,
    under,
)

pytestmark = pytest.mark.slow


def test_pretrain_registers_a_checkpoint_at_the_phase_start(tiny):
    registry = json.loads((tiny.results / STUDY / "checkpoints.json").read_text())
    assert registry == {"pretrained": tiny.checkpoint}
    done = status(tiny.results, "pretrain")
    assert done["state"] == "done" and done["tokens_done"] == PHASE
    log = [json.loads(line) for line in (tiny.results / STUDY / "pretrain" / "train_log.jsonl").open()]
    assert [entry["tokens"] for entry in log] == list(range(BATCH * SEQ_LEN, PHASE + 1, BATCH * SEQ_LEN))
    assert log[-1]["lr"] == pytest.approx(LR)  # warm-up done: the phase starts at the peak


def test_run_trains_and_evaluates_every_variant(tiny):
    assert [(o.job, o.state) for o in tiny.outcomes] == [("start", "done"), ("baseline", "done"), ("no-g", "done")]
    plan = json.loads((tiny.results / STUDY / "plan.json").read_text())
    for variant in plan["variants"]:
        folder = tiny.results / STUDY / variant["name"]
        assert json.loads((folder / "variant.json").read_text()) == variant
        done = status(tiny.results, variant["name"])
        assert done["state"] == "done" and done["hash"] == variant["hash"] and done["error"] is None
        assert done["tokens_done"] == variant["tokens"] == PHASE and done["resumed_at"] == 0
        assert done["tokens_per_s"] > 0 and set(done["scores"]) == {"tiny_alpha", "tiny_gamma"}
        assert (folder / "checkpoints" / "latest-rank0.pt").exists()
        log = [json.loads(line) for line in (folder / "train_log.jsonl").open()]
        assert len(log) == PHASE // (BATCH * SEQ_LEN) and all(entry["loss"] > 0 for entry in log)
        results = list(folder.glob("eval/**/results_*.json"))
        assert len(results) == 1
        assert set(json.loads(results[0].read_text())["results"]) == {"tiny_alpha", "tiny_gamma"}
        samples = list(folder.glob("eval/**/samples_tiny_alpha_*.jsonl"))
        assert len(samples) == 1 and len(samples[0].read_text().splitlines()) == 30
    start = status(tiny.results, "start")
    assert start["state"] == "done" and start["checkpoint_tokens"] == PHASE and start["warning"] is None
    # What `ablate report` reads (ablate.report.load) finds every job's scores.
    from ablate.report.load import load_study

    scores = load_study(STUDY).scores
    assert set(scores.variant) == {"start", "baseline", "no-g"} and set(scores.task) == {"tiny_alpha", "tiny_gamma"}


def test_lr_ends_the_phase_at_the_schedules_final_value(tiny):
    import torch

    folder = tiny.results / STUDY / "baseline"
    for entry in map(json.loads, (folder / "train_log.jsonl").open()):
        progress = (entry["tokens"] - PHASE) / PHASE
        assert entry["lr"] == pytest.approx(LR * (1 - (1 - FINAL_RATIO) * progress))
    assert entry["tokens"] == TOTAL_TOKENS and entry["lr"] == pytest.approx(LR * FINAL_RATIO)
    saved = torch.load(folder / "checkpoints" / "latest-rank0.pt", weights_only=False, map_location="cpu")
    groups = next(iter(saved["state"]["optimizers"].values()))["param_groups"]
    assert groups[0]["lr"] == pytest.approx(LR * FINAL_RATIO)


def test_removed_subset_contributes_no_samples(tiny):
    from ablate.plan.study import load_study_plan
    from ablate.run.stream import build_dataloader

    plan, recipe = load_study_plan(STUDY)
    samples = PHASE // SEQ_LEN
    tokenizer = __import__("transformers").AutoTokenizer.from_pretrained(recipe.tokenizer)
    for variant in plan.variants:
        loader, drawn = build_dataloader(
            recipe, variant.mixture, seed=variant.seed, samples=samples, cache=tiny.root / "cache"
        )
        seen = Counter(
            subset_of(tokenizer.decode(row, skip_special_tokens=True)) for batch in loader for row in batch["input_ids"]
        )
        assert sum(seen.values()) == samples
        assert seen == Counter(drawn) == Counter(status(tiny.results, variant.name)["samples_per_subset"])
        for subset, proportion in variant.mixture.items():
            assert abs(seen[subset] - proportion * samples) <= 1
        for subset in variant.removed_subsets:
            assert seen[subset] == 0
    assert plan.variant("no-g").removed_subsets == ["gamma"]


def test_done_variants_are_skipped(tiny):
    before = {job: status(tiny.results, job)["updated"] for job in ("start", "baseline", "no-g")}
    from ablate.run.runner import run_study

    assert run_study() == []
    rerun = ablate("run", cwd=tiny.root, results=tiny.results, timeout=60)
    assert rerun.returncode == 0 and "nothing to do" in rerun.stderr, rerun.stderr
    dry = ablate("run", "--dry-run", cwd=tiny.root, results=tiny.results, timeout=60)
    assert dry.returncode == 0 and dry.stdout.split().count("skip") == 3, dry.stdout
    assert {job: status(tiny.results, job)["updated"] for job in before} == before


def test_killed_run_resumes_to_the_same_weights(tiny):
    import torch

    results = clone(tiny, "killed")
    folder = results / STUDY / "baseline"
    def linked(job: Path) -> bool:  # the phase's first complete checkpoint
        return (job / "checkpoints" / "latest-rank0.pt").exists()

    kill_when(tiny, results, linked, "the phase's first complete checkpoint")
    interrupted = status(results, "baseline")
    assert interrupted["state"] == "training" and not (folder / "eval").exists()

    dry = ablate("run", "--dry-run", cwd=tiny.root, results=results, timeout=60)
    assert "resume  baseline" in dry.stdout, dry.stdout
    with under(tiny, results):
        from ablate.run.runner import run_study

        [outcome] = [o for o in run_study(variants=["baseline"]) if o.job == "baseline"]
    assert outcome.state == "done"
    assert 0 < outcome.status.resumed_at < PHASE  # it resumed, it did not start over
    log = [json.loads(line)["tokens"] for line in (folder / "train_log.jsonl").open()]
    assert log == list(range(PHASE + BATCH * SEQ_LEN, TOTAL_TOKENS + 1, BATCH * SEQ_LEN))  # no step twice
    weights = {}
    for name, where in (("resumed", results), ("uninterrupted", tiny.results)):
        path = where / STUDY / "baseline" / "checkpoints" / "latest-rank0.pt"
        weights[name] = torch.load(path, weights_only=False, map_location="cpu")["state"]["model"]
    assert weights["resumed"].keys() == weights["uninterrupted"].keys()
    for key, value in weights["resumed"].items():
        assert torch.equal(value, weights["uninterrupted"][key]), key


class Overlap:
    """An observer that records the most jobs it saw running at one poll."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}  # job → when it was last seen running
        self.most = 0

    def planned(self, actions) -> None:
        pass

    def running(self, action, status) -> None:
        now = time.monotonic()
        self.seen[action.job] = now
        self.most = max(self.most, sum(now - last < 1.5 for last in self.seen.values()))

    def finished(self, outcome) -> None:
        self.seen.pop(outcome.job, None)


def test_parallel_run_overlaps_jobs_and_trains_the_same_weights(tiny):
    import torch

    results = clone(tiny, "parallel")
    overlap = Overlap()
    with under(tiny, results):
        from ablate.run.runner import Launch, run_study

        outcomes = run_study(how=Launch(parallel=2), observer=overlap)
    assert sorted((o.job, o.state) for o in outcomes) == [("baseline", "done"), ("no-g", "done"), ("start", "done")]
    assert overlap.most == 2
    for variant in ("baseline", "no-g"):
        assert status(results, variant)["scores"] == status(tiny.results, variant)["scores"]
        paths = [r / STUDY / variant / "checkpoints" / "latest-rank0.pt" for r in (tiny.results, results)]
        one, two = (torch.load(p, weights_only=False, map_location="cpu")["state"]["model"] for p in paths)
        for key, value in one.items():
            assert torch.equal(value, two[key]), (variant, key)


def _build_datasets(barrier, repeats: int) -> None:
    """A forked job: build the tiny study's training loader `repeats` times, in step with the others."""
    import atexit

    from ablate.plan.study import load_study_plan
    from ablate.run.stream import build_dataloader

    plan, recipe = load_study_plan(STUDY)
    variant = plan.variant("baseline")
    try:
        for attempt in range(repeats):
            barrier.wait(timeout=60)
            build_dataloader(recipe, variant.mixture, seed=attempt, samples=64, cache=Path("cache"))
    finally:
        atexit._run_exitfuncs()  # free streaming's shared memory (a forked child skips atexit)


def test_concurrent_jobs_build_their_datasets_without_colliding(tiny):
    import multiprocessing

    import ablate.run.train  # noqa: F401 (imported before forking, as the fork server does)

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(3)
    jobs = [context.Process(target=_build_datasets, args=(barrier, 8)) for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=240)
    assert [job.exitcode for job in jobs] == [0, 0, 0]


def test_changed_recipe_changes_the_hash_and_is_not_reused(tiny):
    results = clone(tiny, "changed", variants=True)
    raw = yaml.safe_load(tiny.recipe.read_text())
    old = json.loads((results / STUDY / "plan.json").read_text())

    raw["training"]["optimizer"]["lr"] = LR / 2  # changes what training produces
    changed = tiny.root / "changed.yaml"
    changed.write_text(yaml.safe_dump(raw))
    plan = ("plan", "--recipe", str(changed), "--remove", "g")
    kept = ablate(*plan, cwd=tiny.root, results=results)  # re-planning alone would orphan the done variants
    assert kept.returncode == 2 and kept.stderr.count("\n") == 1, kept.stderr
    assert "baseline (done, training changed), no-g (done, training changed)" in kept.stderr
    assert json.loads((results / STUDY / "plan.json").read_text()) == old
    assert ablate(*plan, "--force", cwd=tiny.root, results=results).returncode == 0
    new = json.loads((results / STUDY / "plan.json").read_text())
    for before, after in zip(old["variants"], new["variants"]):
        assert before["hash"] != after["hash"] and before["train_hash"] != after["train_hash"]
    refused = ablate("run", cwd=tiny.root, results=results, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "results for another plan" in refused.stderr and "baseline" in refused.stderr
    assert status(results, "baseline")["hash"] == old["variants"][0]["hash"]  # untouched

    raw["training"]["optimizer"]["lr"] = LR  # back to the trained recipe, but evaluated differently
    raw["eval"]["limit"] = 10
    changed.write_text(yaml.safe_dump(raw))
    assert ablate(*plan, "--force", cwd=tiny.root, results=results).returncode == 0
    new = json.loads((results / STUDY / "plan.json").read_text())
    assert [v["train_hash"] for v in new["variants"]] == [v["train_hash"] for v in old["variants"]]
    checkpoint = results / STUDY / "baseline" / "checkpoints" / "latest-rank0.pt"
    trained_at = checkpoint.resolve().stat().st_mtime
    with under(tiny, results):
        from ablate.run.runner import prepare, run_study

        assert [a.do for a in prepare(variants=["baseline"])[2]] == ["evaluate", "evaluate"]  # start, baseline
        assert [o.state for o in run_study(variants=["baseline"])] == ["done", "done"]
    again = status(results, "baseline")
    assert again["state"] == "done" and again["hash"] == new["variants"][0]["hash"]
    assert checkpoint.resolve().stat().st_mtime == trained_at  # re-evaluated, not retrained
    [samples] = (results / STUDY / "baseline").glob("eval/**/samples_tiny_alpha_*.jsonl")
    assert len(samples.read_text().splitlines()) == 10


def test_two_process_gloo_run_matches_one_process(tiny):
    import torch

    results = clone(tiny, "gloo")
    with under(tiny, results):
        from ablate.run.runner import Launch, run_study

        outcomes = run_study(variants=["no-g"], how=Launch("torchrun", gpus=2))
    assert [(o.job, o.state) for o in outcomes] == [("start", "done"), ("no-g", "done")], outcomes
    folder = results / STUDY / "no-g"
    assert (folder / "logs" / "rank1.stderr").exists()  # a second process took part
    single, double = status(tiny.results, "no-g"), status(results, "no-g")
    assert double["tokens_done"] == single["tokens_done"] == PHASE
    assert double["final_loss"] == pytest.approx(single["final_loss"], rel=1e-4)
    paths = [r / STUDY / "no-g" / "checkpoints" / "latest-rank0.pt" for r in (tiny.results, results)]
    one, two = (torch.load(p, weights_only=False, map_location="cpu")["state"]["model"] for p in paths)
    for key, value in one.items():
        assert torch.allclose(value, two[key], atol=1e-4), key


def test_bad_input_fails_with_one_line_and_exit_2(tiny):
    results = clone(tiny, "errors")
    plan_before = (results / STUDY / "plan.json").read_text()
    cases = {
        ("run", "--variant", "nope"): "--variant nope: not in the plan",
        ("run", "--checkpoint", "/nowhere/x.pt"): "--checkpoint /nowhere/x.pt: /nowhere/x.pt does not exist",
        ("run", "--launcher", "mpi"): "--launcher mpi: use one of local, torchrun, slurm",
        ("run", "--parallel", "0"): "--parallel 0: use 1 or more",
        ("run", "--launcher", "slurm", "--parallel", "2"): "--parallel 2: Slurm schedules the array tasks itself",
    }
    for args, expected in cases.items():
        result = ablate(*args, cwd=tiny.root, results=results, timeout=60)
        assert result.returncode == 2 and expected in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (results / STUDY / "plan.json").read_text() == plan_before  # a bad --checkpoint re-plans nothing

    raw = yaml.safe_load(tiny.recipe.read_text())
    raw["subsets"]["gamma"]["location"] = str(tiny.root / "no-shards-here")
    broken = tiny.root / "broken.yaml"
    broken.write_text(yaml.safe_dump(raw))
    assert ablate("plan", "--recipe", str(broken), "--remove", "g", cwd=tiny.root, results=results).returncode == 0
    missing = ablate("run", cwd=tiny.root, results=results, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "subsets.gamma.location: no MDS shards at" in missing.stderr


def test_unloadable_checkpoint_stops_the_run(tiny):
    from ablate.errors import AblateError
    from ablate.run.runner import run_study

    results = clone(tiny, "garbage")
    garbage = tiny.root / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with under(tiny, results):
        with pytest.raises(AblateError, match="garbage.pt: cannot load it"):
            run_study(checkpoint=str(garbage))
    assert not (results / STUDY / "baseline").exists()  # no variant started


def test_slurm_dry_run_writes_the_job_array_without_submitting(tiny):
    """The script's text for this study (submitting it to a real Slurm: tests/test_slurm.py)."""
    results = clone(tiny, "slurm")
    dry = ablate(
        "run", "--launcher", "slurm", "--gpus", "2", "--slurm", "gpu_request=gpus-per-node", "--dry-run",
        cwd=tiny.root, results=results, timeout=60,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    script = results / STUDY / "slurm" / "run.sbatch"
    text = script.read_text()
    assert "#SBATCH --array=0-2" in text and "JOBS=(start baseline no-g)" in text
    assert "composer.cli.launcher -n 2" in text and "#SBATCH --gpus-per-node=2" in text
    assert f"export ABLATE_RESULTS={results}" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert not (results / STUDY / "slurm" / "jobs.json").exists()  # nothing was submitted


def test_strict_refuses_a_checkpoint_off_the_phase_start(tiny):
    from ablate.errors import AblateError
    from ablate.run.runner import Launch, run_study

    results = clone(tiny, "strict")
    raw = yaml.safe_load(tiny.recipe.read_text())
    raw["training"]["phase"] = 0.4  # the phase would start at 24,576 tokens; the checkpoint has 20,480
    off = tiny.root / "off.yaml"
    off.write_text(yaml.safe_dump(raw))
    assert ablate("plan", "--recipe", str(off), "--remove", "g", cwd=tiny.root, results=results).returncode == 0
    with under(tiny, results):
        with pytest.raises(AblateError, match="--strict: checkpoint has seen 20,480 tokens but the recipe's phase"):
            run_study(how=Launch(strict=True))
    assert status(results, "start")["state"] == "failed" and not (results / STUDY / "baseline").exists()


def test_a_phase_study_pretrains_once_and_continues_each_phase_from_its_own_start(tiny):
    """ablations.phases [0.25] beside the recipe's 0.5: `ablate pretrain` trains on to 75% of the
    run, keeping a checkpoint at 50%; `plan --phases 0.25,0.5` names each phase's start, and a
    variant of the short phase continues from 75% for its 25% (the long phase is left pending)."""
    raw = yaml.safe_load(tiny.recipe.read_text())
    del raw["checkpoints"]  # the starts come from this pretraining's own registry
    raw["ablations"]["phases"] = [0.25]
    recipe = tiny.root / "phases.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    results = tiny.root / "phases"
    pretrained = ablate("pretrain", "--recipe", str(recipe), cwd=tiny.root, results=results)
    assert pretrained.returncode == 0, pretrained.stderr
    registry = json.loads((results / STUDY / "checkpoints.json").read_text())
    assert set(registry) == {"pretrained", "pretrained@p25"}
    assert registry["pretrained"].endswith(f"kept/tok{PHASE}.pt")  # 50% of the run: the recipe's own start
    assert registry["pretrained@p25"].endswith("latest-rank0.pt")
    assert status(results, "pretrain")["tokens_done"] == TOTAL_TOKENS * 3 // 4

    planned = ablate("plan", "--recipe", str(recipe), "--phases", "0.25,0.5", "--remove", "g",
                     cwd=tiny.root, results=results)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads((results / STUDY / "plan.json").read_text())
    assert [v["name"] for v in plan["variants"]] == ["baseline@p25", "no-g@p25", "baseline@p50", "no-g@p50"]
    run = ablate("run", "--variant", "baseline@p25", "--variant", "no-g@p25", cwd=tiny.root, results=results)
    assert run.returncode == 0, run.stderr
    short = status(results, "no-g@p25")
    assert short["state"] == "done" and short["tokens_done"] == TOTAL_TOKENS // 4
    log = [json.loads(line) for line in (results / STUDY / "no-g@p25" / "train_log.jsonl").open()]
    assert log[0]["tokens"] == TOTAL_TOKENS * 3 // 4 + BATCH * SEQ_LEN and log[-1]["tokens"] == TOTAL_TOKENS
    assert log[-1]["lr"] == pytest.approx(LR * FINAL_RATIO)  # the short phase decays over its own length
    report = ablate("report", "--no-plot", cwd=tiny.root, results=results)
    assert report.returncode == 0, report.stderr
    assert "## Δ by phase length" in report.stdout and "| no-g | " in report.stdout


def test_heldout_loss_is_measured_once_per_variant_and_reported_with_intervals(tiny):
    """eval.heldout: every done variant has heldout.json with the loss of the same 12 sequences per
    domain; each sequence's nll is the model's own (transformers' loss), bytes are the non-EOS
    characters (the tokenizer is character-level); removing gamma raises the gamma loss, and the
    report shows that Δ with an interval that excludes 0."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    from ablate.recipe import load_recipe
    from ablate.report import Settings, build_report, load_study, to_markdown
    from ablate.run.heldout import read_sequences

    recipe = load_recipe(tiny.recipe)
    eos = Tokenizer.from_file(str(Path(recipe.tokenizer) / "tokenizer.json")).token_to_id("<eos>")
    found = {}
    for name in ("baseline", "no-g"):
        folder = tiny.results / STUDY / name
        found[name] = json.loads((folder / "heldout.json").read_text())["domains"]
        assert list(found[name]) == list(HELDOUT)
        model = AutoModelForCausalLM.from_pretrained(folder / "model").eval()
        for domain, measured in found[name].items():
            ids = torch.from_numpy(read_sequences(domain, str(tiny.root / "heldout" / domain), SEQ_LEN, None))
            assert len(ids) > HELDOUT_SEQUENCES and measured["sequences"] == HELDOUT_SEQUENCES
            ids = ids[:HELDOUT_SEQUENCES]
            with torch.no_grad():
                own = [model(input_ids=row[None], labels=row[None]).loss.item() * (SEQ_LEN - 1) for row in ids]
            assert measured["nll"] == pytest.approx(own, rel=1e-4)
            assert measured["sequence_bytes"] == [int((row[1:] != eos).sum()) for row in ids]
            assert measured["loss"] == pytest.approx(sum(own) / (HELDOUT_SEQUENCES * (SEQ_LEN - 1)), rel=1e-4)
            assert measured["bits_per_byte"] == pytest.approx(sum(own) / math.log(2) / measured["bytes"], rel=1e-4)
    assert found["baseline"]["gamma"]["fingerprint"] == found["no-g"]["gamma"]["fingerprint"]
    assert found["no-g"]["gamma"]["loss"] > found["baseline"]["gamma"]["loss"] + 0.5  # never saw a digit

    report = build_report(load_study(STUDY), Settings(resamples=2000))
    cells = {(c.ablation, c.domain): c for c in report.heldout}
    assert cells[("baseline", "gamma")].delta is None  # the baseline's row is its level
    gamma = cells[("no-g", "gamma")]
    assert gamma.delta == pytest.approx(found["no-g"]["gamma"]["loss"] - found["baseline"]["gamma"]["loss"])
    assert 0 < gamma.low < gamma.delta < gamma.high
    ratio = gamma.delta_bpb / gamma.delta
    assert gamma.bpb_low == pytest.approx(gamma.low * ratio) and ratio > 0
    markdown = to_markdown(report)
    assert "## Held-out loss by domain (95% CI)" in markdown and "| no-g | " in markdown.split("Held-out")[1]

    raw = yaml.safe_load(tiny.recipe.read_text())
    raw["eval"]["heldout"]["gamma"] = str(tiny.root / "no-heldout-here")
    broken = tiny.root / "broken-heldout.yaml"
    broken.write_text(yaml.safe_dump(raw))
    results = clone(tiny, "heldout-errors")
    assert ablate("plan", "--recipe", str(broken), "--remove", "g", cwd=tiny.root, results=results).returncode == 0
    missing = ablate("run", cwd=tiny.root, results=results, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "eval.heldout.gamma.location: no MDS shards at" in missing.stderr
