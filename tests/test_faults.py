"""Faults that lose work (#27): kills at every stage of a job, damaged outputs, a cut checkpoint, a
full disk, and `ablate export --force` onto a folder it did not write, on the tiny study.

Every kill is a real SIGKILL of the runner's process group, sent the moment the job's folder shows
the stage (a checkpoint file not yet linked, the export's staging folder, ...). Each case ends with
the variant's results compared to the study's uninterrupted run: same weights, scores, held-out loss.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tiny_study import STUDY, ablate, clone, kill_when, status, under

pytestmark = pytest.mark.slow

WEIGHTS = "model/model.safetensors"



def dry_run(tiny, results: Path) -> str:
    """What `ablate run --dry-run` prints: each job's action and why, one per line."""
    from ablate.run.runner import prepare

    with under(tiny, results):
        return "\n".join(f"{a.do:>8}  {a.job}  {a.why}" for a in prepare(dry_run=True)[2])


def run(tiny, results: Path, variants: list[str] | None = None, observer=None) -> dict[str, str]:
    """`ablate run` in this process: job → its outcome."""
    from ablate.run.runner import run_study

    with under(tiny, results):
        return {outcome.job: outcome.state for outcome in run_study(variants=variants, observer=observer)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same_results(tiny, results: Path, variant: str = "baseline") -> None:
    """The variant's outputs under `results` are those of the study's uninterrupted run."""
    mine, theirs = results / STUDY / variant, tiny.results / STUDY / variant
    assert status(results, variant)["state"] == "done"
    assert status(results, variant)["scores"] == status(tiny.results, variant)["scores"]
    assert sha256(mine / WEIGHTS) == sha256(theirs / WEIGHTS)
    held = [json.loads((folder / "heldout.json").read_text())["domains"] for folder in (mine, theirs)]
    assert held[0] == held[1]
    [one], [two] = (list(folder.glob("eval/**/samples_tiny_alpha_*.jsonl")) for folder in (mine, theirs))
    assert [json.loads(line)["resps"] for line in one.open()] == [json.loads(line)["resps"] for line in two.open()]


def unlinked_checkpoint(folder: Path) -> bool:
    """A checkpoint file is there, newer than the one Composer's latest link points to: one being written."""
    latest = folder / "checkpoints" / "latest-rank0.pt"
    if not latest.is_symlink():
        return False
    linked = _batch(os.readlink(latest))
    return any(_batch(path.name) > linked for path in (folder / "checkpoints").glob("ep*-ba*-rank0.pt"))


def _batch(name: str) -> int:
    return int(re.search(r"-ba(\d+)-", name).group(1))  # Composer's ep{epoch}-ba{batch}-rank{rank}.pt


def test_a_kill_at_every_stage_resumes_to_the_results_of_an_uninterrupted_run(tiny):
    """Checkpoint write → export → held-out loss → lm-eval: killed at each, rerun each time."""
    results = clone(tiny, "killed-everywhere")
    folder = results / STUDY / "baseline"
    kill_when(tiny, results, unlinked_checkpoint, "checkpoint write")
    latest = folder / "checkpoints" / "latest-rank0.pt"
    cut = [p for p in latest.parent.glob("ep*-rank0.pt") if p.stat().st_size < latest.stat().st_size]
    assert cut and _batch(cut[0].name) > _batch(os.readlink(latest))  # killed mid-write: a cut file, not linked
    assert status(results, "baseline")["state"] == "training"
    assert "resume  baseline" in dry_run(tiny, results)

    kill_when(tiny, results, lambda f: (f / "model.partial").exists(), "export")
    killed = status(results, "baseline")
    assert killed["state"] == "training" and not killed.get("trained") and not (folder / "model").exists()
    dry = dry_run(tiny, results)  # before #27: resume, and Composer refused to train past the end on every rerun
    assert "evaluate  baseline  trained: its latest checkpoint holds all 20,480 tokens" in dry, dry

    def measuring(f: Path) -> bool:
        return status(results, "baseline")["state"] == "evaluating" and (f / "model" / "config.json").exists()

    kill_when(tiny, results, measuring, "held-out loss")
    assert not (folder / "heldout.json").exists() and not (folder / "eval").exists()
    kill_when(tiny, results, lambda f: (f / "heldout.json").exists(), "evaluation")
    assert not (folder / "eval").exists() and status(results, "baseline")["state"] == "evaluating"

    assert run(tiny, results, ["baseline"]) == {"baseline": "done"}
    same_results(tiny, results)
    logs = [folder / "train_log.jsonl", tiny.results / STUDY / "baseline" / "train_log.jsonl"]
    assert logs[0].read_text() == logs[1].read_text()  # no step lost, none twice
    kept = sorted(path.name for path in latest.parent.iterdir())  # not the one the resumed run started from
    assert kept == sorted(["latest-rank0.pt", Path(os.readlink(latest)).name]), kept


def test_a_lost_status_and_damaged_outputs_are_recomputed_from_what_is_intact(tiny):
    """status.json deleted after training (a variant's, the pretraining's); a cut model.safetensors,
    cut lm-eval results, a deleted heldout.json: each is recomputed (the model from the final
    checkpoint), the rest is kept."""
    from rich.console import Console

    from ablate.recipe import load_recipe
    from ablate.run.pretrain import pretrain
    from ablate.run.view import RunDisplay

    results = clone(tiny, "damaged", variants=True)
    baseline, no_g = results / STUDY / "baseline", results / STUDY / "no-g"
    pretrained = results / STUDY / "pretrain" / "checkpoints" / "latest-rank0.pt"
    trained_at = pretrained.resolve().stat().st_mtime_ns
    (pretrained.parent.parent / "status.json").unlink()
    with under(tiny, results):
        pretrain(load_recipe(tiny.recipe))  # found done in its checkpoint, not trained past its end
    assert status(results, "pretrain")["state"] == "done" and pretrained.resolve().stat().st_mtime_ns == trained_at
    (baseline / "status.json").unlink()
    weights = no_g / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    (no_g / "heldout.json").unlink()
    [start_results] = (results / STUDY / "start").glob("eval/**/results_*.json")
    start_results.write_text(start_results.read_text()[:50])
    dry = dry_run(tiny, results)
    assert "evaluate  baseline  trained: its latest checkpoint holds all 20,480 tokens" in dry, dry
    assert f"evaluate  no-g  {WEIGHTS}: 1,000 bytes" in dry and "export model/ again from the final checkpoint" in dry
    assert "evaluate  start  eval/" in dry and "; evaluate again" in dry, dry

    # `ablate export` never hands on the cut weights: it exports them again from the final checkpoint.
    from ablate.run.export import export_variant

    out = tiny.root / "exported-no-g"
    with under(tiny, results):
        export_variant(STUDY, "no-g", out)
    assert sha256(out / WEIGHTS.removeprefix("model/")) == sha256(tiny.results / STUDY / "no-g" / WEIGHTS)
    [evaluated] = no_g.glob("eval/**/results_*.json")
    kept = evaluated.stat().st_mtime_ns
    assert "evaluate  no-g  heldout.json: missing; recompute from model/" in dry_run(tiny, results)

    display = RunDisplay(Console(file=io.StringIO(), width=300))
    assert run(tiny, results, observer=display) == {"start": "done", "baseline": "done", "no-g": "done"}
    assert "no-g: evaluate, heldout.json: missing; recompute from model/" in display.console.file.getvalue()
    same_results(tiny, results, "baseline")
    same_results(tiny, results, "no-g")
    assert evaluated.stat().st_mtime_ns == kept  # only the held-out loss was measured again
    assert status(results, "start")["scores"] == status(tiny.results, "start")["scores"]
    assert dry_run(tiny, results).split().count("skip") == 3


def test_a_cut_latest_checkpoint_is_one_line_naming_it_and_the_fix_which_works(tiny):
    results = clone(tiny, "cut-checkpoint", variants=True)
    folder = results / STUDY / "baseline"
    interrupted = {**status(results, "baseline"), "state": "training", "trained": None}
    (folder / "status.json").write_text(json.dumps(interrupted))
    latest = folder / "checkpoints" / "latest-rank0.pt"
    target = latest.resolve()
    target.write_bytes(target.read_bytes()[:100_000])
    refused = ablate("run", cwd=tiny.root, results=results, timeout=120)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"checkpoint {target}: cannot load it" in refused.stderr and "Traceback" not in refused.stderr
    assert f"cut short or corrupt: delete it and the link {latest}, then rerun" in refused.stderr

    target.unlink()
    latest.unlink()
    assert run(tiny, results, ["baseline"]) == {"baseline": "done"}
    assert status(results, "baseline")["resumed_at"] == 0  # trained again from its start
    same_results(tiny, results)


def test_export_force_replaces_only_an_earlier_export(tiny):
    from ablate.errors import AblateError
    from ablate.run.export import export_variant

    out = tiny.root / "export-force"
    shutil.rmtree(out, ignore_errors=True)
    export_variant(STUDY, "baseline", out)
    record = json.loads((out / ".ablate-export").read_text())  # what wrote it, and every file as written
    [planned] = [
        v for v in json.loads((tiny.results / STUDY / "plan.json").read_text())["variants"] if v["name"] == "baseline"
    ]
    assert (record["study"], record["variant"]) == (STUDY, "baseline")
    assert (record["hash"], record["train_hash"]) == (planned["hash"], planned["train_hash"])
    written = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != ".ablate-export"
    )
    assert sorted(record["files"]) == written and "model.safetensors" in written
    weights = out / "model.safetensors"
    assert record["files"]["model.safetensors"] == {"bytes": weights.stat().st_size, "sha256": sha256(weights)}
    (out / "stray.txt").write_text("beside an untouched export: replaced with it")
    export_variant(STUDY, "baseline", out, force=True)
    assert not (out / "stray.txt").exists() and sha256(out / "model.safetensors") == sha256(
        tiny.results / STUDY / "baseline" / WEIGHTS
    )

    # Nothing under the results is a target, --force or not: another variant's model/ (no-math's weights
    # becoming baseline's), a variant's own folder, the results themselves, or a folder holding them.
    other = next(p.parent for p in sorted((tiny.results / STUDY).glob("*/model")) if p.parent.name != "baseline")
    kept = sha256(other / WEIGHTS)
    before = sorted(str(p) for p in tiny.results.rglob("*"))
    root = tiny.results.resolve()
    for target in (other / "model", tiny.results / STUDY / "baseline", tiny.results / STUDY / "new"):
        with pytest.raises(AblateError, match=f"in the results folder {re.escape(str(root))}"):
            export_variant(STUDY, "baseline", target, force=True)
    for target, line in (
        (other / "model", f"{other / 'model'}: in the results folder {root}, which `ablate run` writes"),
        (tiny.results, f"{tiny.results}: in the results folder {root}, which `ablate run` writes"),
        (tiny.root, f"{tiny.root}: holds the results folder {root}; export to a folder that does not contain it"),
    ):
        refused = ablate("export", "baseline", str(target), "--force", cwd=tiny.root, results=tiny.results)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert line in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert sorted(str(p) for p in tiny.results.rglob("*")) == before  # nothing deleted, nothing added
    assert sha256(other / WEIGHTS) == kept
    assert "done" in ablate("status", cwd=tiny.root, results=tiny.results).stdout

    # Another results root's study folder is refused too (its plan.json says it is one).
    elsewhere = clone(tiny, "export-other-results") / STUDY
    with pytest.raises(AblateError, match=f"in the study folder {re.escape(str(elsewhere.resolve()))}"):
        export_variant(STUDY, "baseline", elsewhere / "baseline" / "model")
    assert not (elsewhere / "baseline").exists()


def test_export_force_refuses_a_folder_whose_marker_is_not_an_untouched_export(tiny):
    from ablate.errors import AblateError
    from ablate.run.export import export_variant

    hand = tiny.root / "export-hand-marker"
    shutil.rmtree(hand, ignore_errors=True)
    hand.mkdir()
    (hand / "notes.txt").write_text("mine")
    for marker, why in (
        ("", "not the record an export writes"),  # an empty, hand-made marker
        ("written by ablate's export\n", "not the record an export writes"),  # a model/ folder's from before
        (json.dumps({"study": STUDY, "variant": "baseline"}), "not the record an export writes"),
        (
            json.dumps({"study": STUDY, "variant": "baseline", "hash": "h", "train_hash": "t", "files": {}}),
            "records no files of it",
        ),
    ):
        (hand / ".ablate-export").write_text(marker)
        with pytest.raises(AblateError, match=f"^{re.escape(str(hand))}: not a folder ablate exported .*{why}"):
            export_variant(STUDY, "baseline", hand, force=True)
        assert (hand / "notes.txt").read_text() == "mine" and (hand / ".ablate-export").read_text() == marker

    edited = tiny.root / "export-edited"
    shutil.rmtree(edited, ignore_errors=True)
    export_variant(STUDY, "baseline", edited)

    def refused(problem: str) -> None:
        contents = {p: p.read_bytes() for p in edited.rglob("*") if p.is_file()}
        with pytest.raises(AblateError, match=rf"an export changed since ablate wrote it \(.*{problem}"):
            export_variant(STUDY, "baseline", edited, force=True)
        assert {p: p.read_bytes() for p in edited.rglob("*") if p.is_file()} == contents  # nothing deleted

    config, weights = edited / "config.json", edited / "model.safetensors"
    original = config.read_text()
    config.write_text(original + " ")  # one byte longer
    refused(r"config\.json: [0-9,]+ bytes, [0-9,]+ when written")
    config.write_text(original)
    changed = bytearray(weights.read_bytes())
    changed[-1] ^= 1  # same size, another sha256
    weights.write_bytes(bytes(changed))
    refused(r"model\.safetensors: changed since it was written \(sha256 differs\)")
    cli = ablate("export", "baseline", str(edited), "--force", cwd=tiny.root, results=tiny.results)
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1, cli.stderr
    assert f"{edited}: an export changed since ablate wrote it (model.safetensors: changed since" in cli.stderr
    assert "so --force leaves it alone; name another folder, or remove it yourself" in cli.stderr
    assert "Traceback" not in cli.stderr
    weights.unlink()
    with pytest.raises(AblateError, match=r"model\.safetensors: missing"):
        export_variant(STUDY, "baseline", edited, force=True)
    assert not list(tiny.root.glob("*.partial"))


def test_export_to_a_symlink_replaces_the_export_it_points_to_and_refuses_one_into_the_results(tiny):
    """Decided: a link is followed. Its target is checked like any folder; an earlier export there is
    replaced (the link kept), one into the results is one line; never a traceback or a *.partial."""
    from ablate.errors import AblateError
    from ablate.run.export import export_variant

    linked, link = tiny.root / "export-linked", tiny.root / "export-link"
    shutil.rmtree(linked, ignore_errors=True)
    link.unlink(missing_ok=True)
    export_variant(STUDY, "baseline", linked)
    (linked / "stray.txt").write_text("beside an untouched export")
    link.symlink_to(linked, target_is_directory=True)
    assert export_variant(STUDY, "baseline", link, force=True) == link
    assert link.is_symlink() and not (linked / "stray.txt").exists()
    assert sha256(link / "model.safetensors") == sha256(tiny.results / STUDY / "baseline" / WEIGHTS)

    plain = tiny.root / "export-plain"
    shutil.rmtree(plain, ignore_errors=True)
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    link.unlink()
    link.symlink_to(plain, target_is_directory=True)
    with pytest.raises(AblateError, match=r"no \.ablate-export in it"):
        export_variant(STUDY, "baseline", link, force=True)
    assert (plain / "notes.txt").read_text() == "mine"

    model = tiny.results / STUDY / "baseline" / "model"
    kept = sha256(model / "model.safetensors")
    link.unlink()
    link.symlink_to(model, target_is_directory=True)
    refused = ablate("export", "baseline", str(link), "--force", cwd=tiny.root, results=tiny.results)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"{link} (→ {model.resolve()}): in the results folder" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert sha256(model / "model.safetensors") == kept
    assert not list(tiny.root.glob("*.partial")) and not list(tiny.results.rglob("*.partial"))
    link.unlink()


@contextmanager
def small_disk(tiny, tmp_path: Path, size: str) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A tmpfs of `size` holding the study's plan as its results folder, and how to give it room
    (64 MB); unmounted afterwards. Skips where a tmpfs cannot be mounted (it needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        results = disk / "results"
        (results / STUDY).mkdir(parents=True)
        shutil.copy(tiny.results / STUDY / "plan.json", results / STUDY / "plan.json")
        (results / ".current").write_text(STUDY + "\n")
        yield results, lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_naming_the_folder_and_the_run_resumes_once_there_is_room(tiny, tmp_path):
    # Room for the study's plan, the start's evaluation and one checkpoint (~350 kB), not for two.
    with small_disk(tiny, tmp_path, "600k") as (results, make_room):
        full = ablate("run", "--variant", "baseline", cwd=tiny.root, results=results, timeout=300)
        assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
        [line] = [line for line in full.stderr.splitlines() if line.startswith("baseline: failed")]
        assert "No space left on device" in line and str(results / STUDY / "baseline") in line, line
        assert status(results, "baseline")["state"] in ("training", "failed")  # never done, never lost

        make_room()
        assert "resume  baseline" in dry_run(tiny, results)
        assert run(tiny, results, ["baseline"]) == {"baseline": "done"}
        assert status(results, "baseline")["resumed_at"] > 0
        same_results(tiny, results)


def test_a_full_disk_during_an_evaluation_fails_before_its_results_are_swapped_in(tiny, tmp_path):
    # lm-eval's tracker logs "Could not save sample results" and goes on: before #34 the start job then
    # swapped in an eval/ holding cut per-item logs, and the report read them as results.
    # Room for the plan and lm-eval's results file (~10 kB), not for its per-item logs (~25 kB a task).
    with small_disk(tiny, tmp_path, "40k") as (results, make_room):
        full = ablate("run", "--variant", "baseline", cwd=tiny.root, results=results, timeout=300)
        start = results / STUDY / "start"
        assert full.returncode == 2 and full.stderr.count("\n") == 1 and "Traceback" not in full.stderr, full.stderr
        assert f"Error: {start / 'eval'}: lm-eval " in full.stderr and "the disk is full" in full.stderr, full.stderr
        assert not (start / "eval").exists() and not (start / "eval.partial").exists()

        make_room()
        assert run(tiny, results, ["baseline"]) == {"start": "done", "baseline": "done"}
        same_results(tiny, results)


def test_edited_results_are_shown_damaged_left_out_of_the_report_and_recomputed(tiny):
    """An edited score in lm-eval's results file, edited per-item logs, an edited heldout.json and an
    edited `scores` copy in status.json: before #34, report printed each as current."""
    results = clone(tiny, "edited", variants=True)
    study = results / STUDY
    [aggregate] = (study / "baseline").glob("eval/**/results_*.json")
    payload = json.loads(aggregate.read_text())
    payload["results"]["tiny_alpha"]["acc,none"] = 0.99
    aggregate.write_text(json.dumps(payload))
    [samples] = (study / "start").glob("eval/**/samples_tiny_alpha_*.jsonl")
    flipped = samples.read_text().replace('"acc": 1.0}', '"acc": 2.0}').replace('"acc": 0.0}', '"acc": 1.0}')
    samples.write_text(flipped.replace('"acc": 2.0}', '"acc": 0.0}'))
    heldout = study / "no-g" / "heldout.json"
    heldout.write_text(heldout.read_text().replace('"loss": ', '"loss": 1', 1))
    edited = {**status(results, "no-g"), "scores": {"tiny_alpha": 0.77, "tiny_gamma": 0.77}}
    (study / "no-g" / "status.json").write_text(json.dumps(edited))

    shown = ablate("status", cwd=tiny.root, results=results)
    assert shown.returncode == 0 and shown.stdout.count("damaged") >= 3, shown.stdout
    strict = ablate("report", "--strict", "--no-plot", cwd=tiny.root, results=results)
    assert strict.returncode == 2 and strict.stderr.count("\n") == 1, strict.stderr
    assert "--strict: start is damaged (and 2 more" in strict.stderr and "sha256 differs" in strict.stderr
    report = ablate("report", "--no-plot", cwd=tiny.root, results=results)
    assert report.returncode == 0, report.stderr
    said = [line for line in report.stderr.splitlines() if "damaged, left out of the report" in line]
    assert [line.split(":")[0] for line in said] == ["start", "baseline", "no-g"], report.stderr
    assert "99.0" not in report.stdout and "| baseline | damaged | — | — |" in report.stdout, report.stdout
    assert "no-g: damaged, left out of the report: heldout.json: 1," in report.stderr  # a digit more: its size

    dry = dry_run(tiny, results)
    assert all(f"evaluate  {job}  " in dry for job in ("start", "baseline", "no-g")), dry
    assert run(tiny, results) == {"start": "done", "baseline": "done", "no-g": "done"}
    same_results(tiny, results, "baseline")
    same_results(tiny, results, "no-g")  # its scores read back from lm-eval's files, not the edited copy
    assert status(results, "start")["scores"] == status(tiny.results, "start")["scores"]
    assert "damaged" not in ablate("status", cwd=tiny.root, results=results).stdout
