"""`ablate report` and `ablate status`: a fixed study against its expected markdown, the awkward cases
(partial, failed, stale, no per-item logs, a task in one variant only, changed items, seeds), and a real
lm-eval CLI run reported with --from."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from fixtures.report_study import heldout_domain, write_lm_eval

from ablate.errors import AblateError
from ablate.names import VariantName
from ablate.report import CSV_COLUMNS, Settings, build_report, load_folder, load_study, to_csv, to_json, to_markdown

FIXTURES = REPO / "tests" / "fixtures"
HEAVY = ("torch", "composer", "streaming", "lm_eval", "transformers")


def ablate(*args, cwd, env=None, timeout=120):
    """The CLI as a user runs it: a subprocess, so exit codes, stdout and stderr are real."""
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout,
    )


@pytest.fixture
def fixed(in_tmp, monkeypatch):
    """tests/fixtures/results/fixed copied to ./results (the report writes into the study folder)."""
    shutil.copytree(FIXTURES / "results", in_tmp / "results")
    monkeypatch.setenv("ABLATE_RESULTS", "results")
    return in_tmp / "results" / "fixed"


def rows_by_key(report):
    return {(r["variant"], r["task"]): r for r in to_json(report)["rows"]}


# ---- the fixed study ------------------------------------------------------------------------------


def test_fixed_study_markdown_matches_the_expected_file(fixed):
    result = ablate("report", "--study", "fixed", cwd=fixed.parent.parent)
    assert result.returncode == 0, result.stderr
    expected = (FIXTURES / "report_fixed.md").read_text()
    assert result.stdout == expected  # piped: plain markdown, the same text as the file
    assert (fixed / "report.md").read_text() == expected
    assert {p.name for p in fixed.iterdir() if p.is_file()} >= {"report.md", "report.csv", "report.json", "deltas.png"}
    assert (fixed / "deltas.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fixed_study_figures_by_hand(fixed):
    report = build_report(load_study("fixed"))
    rows = rows_by_key(report)
    # no-math: 17 of the baseline's 39 right t_math items turned wrong, 1 of 41 wrong turned right, n = 80.
    math = rows[("no-math", "t_math")]
    assert math["baseline_score"] == pytest.approx(100 * 39 / 80)
    assert math["delta_pp"] == pytest.approx(100 * (1 - 17) / 80)  # −20 pp
    d = np.r_[-np.ones(17), np.ones(1), np.zeros(62)]
    se = 100 * d.std() / np.sqrt(80)  # bootstrap sd of a mean of d: 4.81 pp
    assert math["ci_low_pp"] == pytest.approx(-20 - 1.96 * se, abs=1.6)  # percentile bounds step by 1.25 pp
    assert math["ci_high_pp"] == pytest.approx(-20 + 1.96 * se, abs=1.6)
    assert math["significant"] is True and math["n_items"] == 80 and math["method"] == "paired bootstrap"
    # The category: (Δ t_math / 0.75 + Δ t_code / 0.75) / 2, with Δ t_code = 0.
    skills = rows[("no-math", "skills")]
    assert skills["metric"] == "gauntlet"
    assert skills["delta_pp"] == pytest.approx((-20 / 0.75 + 0 / 0.75) / 2)
    assert skills["n_items"] == 160 and skills["significant"] is True
    # Power at the baseline's t_math score (39/80) with 80 items.
    from ablate.stats import minimum_detectable_effect

    assert report.power["t_math"].mde == pytest.approx(minimum_detectable_effect(80, 39 / 80))


def test_missing_item_logs_fall_back_to_the_normal_interval_and_say_so(fixed):
    report = build_report(load_study("fixed"))
    web = rows_by_key(report)[("no-web", "t_web")]
    assert web["method"] == "normal (stderr)"
    scores = load_study("fixed").scores.set_index(["variant", "task"])
    se = np.hypot(scores.loc[("no-web", "t_web"), "stderr"], scores.loc[("baseline", "t_web"), "stderr"])
    assert web["ci_high_pp"] - web["delta_pp"] == pytest.approx(100 * 1.959964 * se)
    assert "Unpaired normal interval from lm-eval's stderr" in to_markdown(report)
    assert "no-web × t_web" in to_markdown(report)


def test_a_task_in_one_variant_only_is_a_dash_with_a_note(fixed):
    report = build_report(load_study("fixed"))
    code = rows_by_key(report)[("no-web", "t_code")]
    assert code["delta_pp"] is None and code["state"] == "missing"
    assert rows_by_key(report)[("no-web", "skills")]["delta_pp"] is None  # a category needs all its tasks
    assert any("no-web × t_code: not evaluated for no-web" in note for note in report.notes)


def test_failed_pending_and_stale_variants_have_no_numbers(fixed):
    report = build_report(load_study("fixed"))
    for variant, state in [("no-code", "failed"), ("no-knowledge", "pending"), ("control", "stale")]:
        for task in ["t_web", "t_math", "t_code", "skills"]:
            row = rows_by_key(report)[(variant, task)]
            assert row["state"] == state
            assert all(row[k] is None for k in ("score", "delta_pp", "ci_low_pp", "n_items", "significant"))
        assert report.scores.loc[variant, "state"] == state
        assert report.scores.loc[variant, ["t_web", "t_math", "t_code"]].isna().all()
    # control's files hold numbers, but for another plan: refused, with the reason.
    assert (fixed / "control" / "eval").exists()
    assert any(n.startswith("control: refused, hash 0123456789abcdef") for n in report.notes)


def test_csv_has_exactly_the_documented_columns(fixed):
    report = build_report(load_study("fixed"))
    table = list(csv.reader(io.StringIO(to_csv(report))))
    assert table[0] == CSV_COLUMNS
    record = dict(zip(table[0], next(r for r in table if r[:2] == ["no-math", "t_math"])))
    assert record["delta_pp"] == "-20.0000" and record["significant"] == "true" and record["n_items"] == "80"
    stale = dict(zip(table[0], next(r for r in table if r[:2] == ["control", "t_web"])))
    assert stale["score"] == "" and stale["significant"] == ""
    assert stale["p_value"] == stale["p_adjusted"] == stale["significant_adjusted"] == ""
    assert float(record["p_value"]) < 0.001 and record["significant_adjusted"] == "true"


def test_adjusted_flags_read_the_table_as_one_family(fixed):
    """p_adjusted follows the chosen method over every cell with a p-value; `*` marks adjusted findings."""
    from ablate.stats import adjust_p_values

    for method in ("bh", "holm", "none"):
        report = build_report(load_study("fixed"), Settings(adjust=method))
        tested = report.rows[report.rows.p_value.notna()]
        assert len(tested) == 6  # 2 done ablations × (2 tasks + 1 category) measured
        expected = adjust_p_values(tested.p_value.to_numpy(dtype=float), method)
        assert tested.p_adjusted.to_numpy(dtype=float) == pytest.approx(expected)
        assert (tested.p_adjusted >= tested.p_value - 1e-12).all()
        assert list(tested.significant_adjusted) == [bool(p < 0.05) for p in expected]
        flagged = sum(flag is True for flag in tested.significant_adjusted)
        assert to_markdown(report).count(" *") == flagged
        assert f"{flagged} flagged" in to_markdown(report) or method == "none"
    raw = build_report(load_study("fixed"), Settings(adjust="none")).rows
    measured = raw[raw.p_value.notna()]
    assert list(measured.significant_adjusted) == list(measured.significant)  # unadjusted: the interval's verdict


def test_json_is_strict_and_records_the_settings(fixed):
    report = build_report(load_study("fixed"), Settings(resamples=500, ci=0.9))

    def no_nan(value):
        raise AssertionError(f"report.json holds {value}")

    payload = json.loads(json.dumps(to_json(report), default=str), parse_constant=no_nan)
    assert payload["settings"]["resamples"] == 500 and payload["settings"]["ci"] == 0.9
    assert "seed_method" in payload["settings"]
    assert {r["variant"] for r in payload["rows"]} >= {"start", "baseline", "no-math", "control"}


def test_intervals_do_not_depend_on_which_other_variants_exist(fixed):
    full = rows_by_key(build_report(load_study("fixed")))[("no-math", "t_math")]
    results = load_study("fixed")
    results.variants = results.variants[results.variants.variant.isin(["baseline", "no-math"])]
    alone = rows_by_key(build_report(results))[("no-math", "t_math")]
    assert (alone["ci_low_pp"], alone["ci_high_pp"]) == (full["ci_low_pp"], full["ci_high_pp"])


def test_status_lists_states_tokens_hash_and_where_it_failed(fixed):
    result = ablate("status", "--study", "fixed", cwd=fixed.parent.parent)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "no-code" in out and "failed" in out and "loss is NaN at step 64" in out
    assert "no-code/status.json" in out
    assert "131k / 500k" in out and "mismatch" in out and "stale" in out


# ---- bad input and partial studies ----------------------------------------------------------------


def test_a_freshly_planned_study_reports_every_variant_pending(in_tmp):
    shutil.copytree(REPO / "recipes", in_tmp / "recipes")
    assert ablate("plan", cwd=in_tmp).returncode == 0
    result = ablate("report", "--no-plot", cwd=in_tmp)
    assert result.returncode == 0, result.stderr
    assert "| no-math | pending |" in result.stdout
    assert "baseline `baseline` is pending" in result.stdout
    assert (in_tmp / "results" / "demo" / "report.csv").exists()


def test_seed_noise_is_borrowed_from_a_study_on_the_same_start_however_its_path_names_it(tmp_path):
    # Composer's latest-rank0.pt is a link to the checkpoint file: one study may name the link, the
    # next the file. They continue from one checkpoint, so seed noise may be borrowed between them;
    # from another file it may not (one line, exit 2). Nothing needs to be trained for the check.
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "ep0.pt").write_text("a")
    (tmp_path / "ck" / "latest.pt").symlink_to("ep0.pt")
    (tmp_path / "ck" / "other.pt").write_text("b")
    recipe = (REPO / "ablate" / "demo" / "recipe.yaml").read_text().replace("name: demo\n", "name: again\n")
    (tmp_path / "again.yaml").write_text(recipe)
    assert ablate("plan", "--checkpoint", "ck/latest.pt", cwd=tmp_path).returncode == 0
    assert ablate("plan", "--recipe", "again.yaml", "--checkpoint", "ck/ep0.pt", cwd=tmp_path).returncode == 0
    borrowed = ablate("report", "--study", "again", "--seed-noise-from", "demo", "--no-plot", cwd=tmp_path)
    assert borrowed.returncode == 0, borrowed.stderr
    assert ablate("plan", "--recipe", "again.yaml", "--checkpoint", "ck/other.pt", "--force", cwd=tmp_path).returncode == 0
    refused = ablate("report", "--study", "again", "--seed-noise-from", "demo", "--no-plot", cwd=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "--seed-noise-from demo: it continues from ck/latest.pt, this study from ck/other.pt" in refused.stderr


def test_bad_flags_fail_with_one_line_naming_the_flag(fixed):
    cwd = fixed.parent.parent
    for args, flag in [
        (["--metric", "bleu"], "--metric bleu"),
        (["--baseline", "nope"], "--baseline nope"),
        (["--ci", "95"], "--ci 95"),
        (["--format", "html"], "--format html"),
        (["--adjust", "bonferroni"], "--adjust bonferroni"),
        (["--from", "nowhere"], "--from nowhere"),
    ]:
        result = ablate("report", "--study", "fixed", *args, cwd=cwd) if args[0] != "--from" else ablate(
            "report", *args, cwd=cwd)
        assert result.returncode == 2, (args, result.stderr)
        assert flag in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_changed_items_are_not_paired(tmp_path):
    values = np.r_[np.ones(30), np.zeros(30)]
    write_lm_eval(tmp_path / "baseline", {"t": {"acc": values}})
    write_lm_eval(tmp_path / "other", {"t": {"acc": values[::-1]}}, doc_salt=" (v2 of the data)")
    report = build_report(load_folder(tmp_path))
    row = rows_by_key(report)[("other", "t")]
    assert row["method"] == "normal (stderr)"
    assert any("item texts differ" in note for note in report.notes)


def test_partly_overlapping_items_pair_on_the_shared_ones(tmp_path):
    write_lm_eval(tmp_path / "baseline", {"t": {"acc": np.r_[np.ones(20), np.zeros(20)]}})
    # The variant was evaluated with --limit 30: items 0..29, all right.
    write_lm_eval(tmp_path / "limited", {"t": {"acc": np.ones(30)}}, doc_ids={"t": np.arange(30)})
    report = build_report(load_folder(tmp_path))
    row = rows_by_key(report)[("limited", "t")]
    assert row["n_items"] == 30
    assert row["baseline_score"] == pytest.approx(100 * 20 / 30) and row["delta_pp"] == pytest.approx(100 * 10 / 30)
    assert any("Δ on the 30 items both sides scored (of 40)" in note for note in report.notes)


def test_seeds_average_item_by_item_and_their_spread_widens_every_interval(tmp_path):
    generator = np.random.default_rng(3)
    base = (generator.random(200) < 0.5).astype(float)
    for seed in (1, 2, 3):
        write_lm_eval(tmp_path / str(VariantName("baseline", seed=seed)), {"t": {"acc": base}})
        flipped = np.where(generator.random(200) < 0.1, 1.0, base)
        write_lm_eval(tmp_path / str(VariantName("no-x", seed=seed)), {"t": {"acc": flipped}})
    results = load_folder(tmp_path)
    assert sorted(set(results.variants.ablation)) == ["baseline", "no-x"]
    report = build_report(results)
    markdown = to_markdown(report)
    assert "| no-x |" in markdown and "| no-x.s1 |" in markdown  # Δ per ablation, scores per seed
    assert "Training-seed noise is in every interval and p-value" in markdown
    row = rows_by_key(report)[("no-x", "t")]
    assert row["n_items"] == 200 and row["method"] == "paired bootstrap"
    # The baseline's seeds agree exactly; no-x's three differ: pooled over both, 2 + 2 degrees of freedom.
    no_x = report.scores.loc[["no-x.s1", "no-x.s2", "no-x.s3"], "t"].to_numpy()
    assert row["seed_df"] == 4
    whole_runs = ((no_x - no_x.mean()) ** 2).sum() / 4
    # no-x's items flip independently, so a run's score varies by the items' own variance across
    # seeds, Σ var / n² (the baseline's add 0, pooled over 2 + 2 df): the floor under the whole-run
    # figure, which three runs that happen to agree more closely put lower.
    no_x_items = results.items[results.items.variant.str.startswith("no-x")]
    flips = no_x_items.pivot(index="doc_id", columns="variant", values="value")
    floor = flips.var(axis=1, ddof=1).sum() / 200**2 * 2 / 4
    assert floor > whole_runs
    assert row["seed_sd_pp"] == pytest.approx(100 * np.sqrt(floor))
    again = build_report(load_folder(tmp_path))  # seeded: the seed term draws the same figures every time
    assert rows_by_key(again)[("no-x", "t")]["ci_low_pp"] == row["ci_low_pp"]


def test_seed_noise_from_an_earlier_study_brings_its_replicates_and_their_items_floor(tmp_path):
    # The earlier study ran the baseline three times, and each run flipped 60 items of its own, as
    # many up as down: three equal scores (no spread between whole runs) from runs that disagree on
    # 180 items. The study reported has no replicate: alone, its interval covers items only;
    # borrowing, it adds the earlier study's seed SD, which is those items' floor (2 df), not 0.
    base = np.arange(300) % 2.0
    for seed in (1, 2, 3):
        flips = (np.arange(300) // 60) == seed - 1
        scores = np.where(flips, 1 - base, base)
        write_lm_eval(tmp_path / "earlier" / str(VariantName("baseline", seed=seed)), {"t": {"acc": scores}})
    write_lm_eval(tmp_path / "now" / "baseline", {"t": {"acc": base}})
    variant = np.where(np.random.default_rng(5).random(300) < 0.2, 1.0, base)
    write_lm_eval(tmp_path / "now" / "no-x", {"t": {"acc": variant}})
    earlier, now = load_folder(tmp_path / "earlier"), load_folder(tmp_path / "now")
    alone = rows_by_key(build_report(now))[("no-x", "t")]
    assert alone["seed_sd_pp"] is None and alone["seed_df"] is None
    report = build_report(now, Settings(seed_noise_from="earlier"), noise_from=earlier)
    row = rows_by_key(report)[("no-x", "t")]
    # Each flipped item has one run of three apart: variance 1/3; 180 of them over 300² items.
    assert row["seed_sd_pp"] == pytest.approx(100 * np.sqrt(180 / 3 / 300**2)) and row["seed_df"] == 2
    assert row["ci_high_pp"] - row["ci_low_pp"] > alone["ci_high_pp"] - alone["ci_low_pp"]
    assert "its items' floor" in to_markdown(report)


def test_items_that_share_a_cluster_are_resampled_together(tmp_path):
    # 60 items asking 12 facts, 5 items each; a model knows a fact or not, so a cluster's items agree.
    # The variant knows 3 facts more than the baseline: Δ = 15/60 = +25 pp either way, but only 12
    # independent units exist, so the honest interval is about sqrt(5) times the item bootstrap's.
    base, variant = np.repeat(np.r_[np.ones(3), np.zeros(9)], 5), np.repeat(np.r_[np.ones(6), np.zeros(6)], 5)
    labels = [f"fact{c}" for c in np.repeat(np.arange(12), 5)]
    none, partial = [None] * 60, [*labels[:-1], None]  # partial: one of the variant's docs has no cluster
    for study, base_labels, variant_labels in [("clustered", labels, labels), ("items", none, none),
                                               ("partial", labels, partial)]:
        write_lm_eval(tmp_path / study / "baseline", {"t": {"acc": base}}, clusters={"t": base_labels})
        write_lm_eval(tmp_path / study / "no-x", {"t": {"acc": variant}}, clusters={"t": variant_labels})
    reports = {study: build_report(load_folder(tmp_path / study)) for study in ("clustered", "items", "partial")}
    rows = {study: rows_by_key(report)[("no-x", "t")] for study, report in reports.items()}
    clustered, items = rows["clustered"], rows["items"]
    assert clustered["delta_pp"] == items["delta_pp"] == pytest.approx(25)
    assert clustered["n_clusters"] == 12 and items["n_clusters"] is None and rows["partial"]["n_clusters"] is None
    width = {study: row["ci_high_pp"] - row["ci_low_pp"] for study, row in rows.items()}
    assert 1.7 < width["clustered"] / width["items"] < 3.0  # sqrt(5) = 2.24; percentiles step by 8.3 pp
    assert width["partial"] == pytest.approx(width["items"], rel=0.15)
    # P(a resample draws none of the 3 gained facts) = (9/12)^12 = 3.2% > 2.5%: the interval reaches 0.
    assert items["significant"] is True and clustered["significant"] is False
    markdown = to_markdown(reports["clustered"])
    assert "Clustered: t (12 clusters of 60 items). Items that share a cluster" in markdown
    assert "Clustered:" not in to_markdown(reports["items"]) + to_markdown(reports["partial"])
    record = next(r for r in csv.DictReader(io.StringIO(to_csv(reports["clustered"]))) if r["variant"] == "no-x")
    assert record["n_clusters"] == "12"
    # Power: the baseline's items agree within each fact, so the design effect is the cluster size and
    # the 60 items are worth 12 independent ones.
    from ablate.stats import minimum_detectable_effect

    power = reports["clustered"].power["t"]
    assert power.design_effect == pytest.approx(5) and power.n_clusters == 12
    assert power.mde == pytest.approx(minimum_detectable_effect(12, 0.25))
    assert "effective n=12 of 60 in 12 clusters, design effect 5.0" in markdown
    assert reports["items"].power["t"].design_effect is None
    assert "design_effect" not in to_json(reports["items"])["power"]["t"]


def test_metric_flag_and_default_choice(tmp_path):
    both = {"t": {"acc": np.r_[np.ones(10), np.zeros(10)], "acc_norm": np.ones(20)}}
    write_lm_eval(tmp_path / "baseline", both)
    write_lm_eval(tmp_path / "v", both)
    assert build_report(load_folder(tmp_path)).metrics == {"t": "acc_norm"}
    report = build_report(load_folder(tmp_path), Settings(metric="acc"))
    assert report.metrics == {"t": "acc"} and report.scores.loc["baseline", "t"] == 0.5
    with pytest.raises(AblateError, match="--metric f1"):
        build_report(load_folder(tmp_path), Settings(metric="f1"))


def test_newest_results_file_wins(tmp_path):
    write_lm_eval(tmp_path / "baseline", {"t": {"acc": np.zeros(10)}}, stamp="2025-01-01T00-00-00.000000")
    write_lm_eval(tmp_path / "baseline", {"t": {"acc": np.ones(10)}}, stamp="2025-02-01T00-00-00.000000")
    results = load_folder(tmp_path)
    assert results.scores.score.tolist() == [1.0]
    assert results.items.value.tolist() == [1.0] * 10


def test_report_imports_no_heavy_library(fixed):
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ablate.cli", "report", "--study", "fixed"],
        cwd=fixed.parent.parent, capture_output=True, text=True, env={**os.environ, "ABLATE_RESULTS": "results"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


# ---- a real lm-eval CLI run ---------------------------------------------------------------------


def _tiny_model(folder: Path, tokenizer: Path, seed: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    vocab = len(PreTrainedTokenizerFast.from_pretrained(str(tokenizer)))
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    for path in tokenizer.iterdir():
        shutil.copy(path, folder / path.name)


@pytest.mark.slow
def test_real_lm_eval_cli_outputs_are_reported_with_from(tmp_path):
    from ablate.demo.corpus import write_demo

    write_demo(tmp_path, seed=0)
    demo = tmp_path / "data" / "demo"
    task_files = sorted((demo / "tasks").glob("*.yaml"))
    task = task_files[0].stem
    runs = tmp_path / "runs"
    processes = []
    for name, seed in [("baseline", 0), ("other", 1)]:
        model = tmp_path / "models" / name
        _tiny_model(model, demo / "tokenizer", seed)
        command = [
            sys.executable, "-m", "lm_eval", "--model", "hf",
            "--model_args", f"pretrained={model},tokenizer={model}", "--tasks", task,
            "--include_path", str(demo / "tasks"), "--output_path", str(runs / name), "--log_samples",
            "--device", "cpu", "--limit", "40", "--batch_size", "32",
        ]
        env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf-cache"), "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    for process in processes:  # both at once: most of each run is importing lm-eval
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output[-3000:]

    result = ablate("report", "--from", str(runs), "--format", "csv", "--bootstrap", "2000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(table[0]) == CSV_COLUMNS
    row = next(r for r in table if r["variant"] == "other" and r["task"] == task)
    assert row["n_items"] == "40" and row["significant"] in ("true", "false")
    assert float(row["ci_low_pp"]) <= float(row["delta_pp"]) <= float(row["ci_high_pp"])
    report = json.loads((runs / "report.json").read_text())
    paired = next(r for r in report["rows"] if r["variant"] == "other" and r["task"] == task)
    assert paired["method"] == "paired bootstrap"
    # The aggregate lm-eval printed and the items it logged agree: Δ from items = Δ of the scores.
    results = load_folder(runs)
    scores = results.scores[results.scores.metric == paired["metric"]].set_index("variant").score
    assert paired["delta_pp"] == pytest.approx(100 * (scores["other"] - scores["baseline"]))
    assert (runs / "deltas.png").exists() and (runs / "report.md").read_text().startswith("# Ablation report: runs")


def _heldout(nll):
    """A variant's heldout.json for one domain, `nll` per sequence of 63 predicted tokens."""
    from ablate.study.artifacts import HeldOut

    return HeldOut.model_validate({"domains": {"d": heldout_domain(nll, 63, 126)}})


def test_heldout_loss_intervals_cover_the_true_delta_at_their_level():
    """Simulated: 400 studies of 150 held-out sequences whose difficulty varies (SD 0.5 nats per token),
    the variant 0.01 worse per token plus sequence noise (SD 0.03). The 95% paired interval covers the
    true Δ in 92.5–97.5% of them, and the bits-per-byte Δ is the loss Δ times tokens / (bytes · ln 2)."""
    from ablate.report.heldout import loss_cells

    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        difficulty = rng.normal(2.0, 0.5, 150)
        base = (difficulty + rng.normal(0, 0.03, 150)) * 63
        worse = (difficulty + 0.01 + rng.normal(0, 0.03, 150)) * 63
        cells, notes = loss_cells({"baseline": _heldout(base), "no-x": _heldout(worse)},
                                  {"baseline": ["baseline"]}, {"no-x": ["no-x"]}, {"no-x": ["baseline"]},
                                  ci=0.95, resamples=1000, seed=0)  # fmt: skip
        level, delta = cells
        assert level.delta is None and delta.delta is not None and not notes
        covered += delta.low <= 0.01 <= delta.high
    assert 0.925 <= covered / 400 <= 0.975, covered
    assert delta.delta_bpb == pytest.approx(delta.delta / (2 * np.log(2)))
    other = _heldout(worse)
    other.domains["d"] = other.domains["d"].model_copy(update={"fingerprint": "changed"})
    cells, notes = loss_cells({"baseline": _heldout(base), "no-x": other},
                              {"baseline": ["baseline"]}, {"no-x": ["no-x"]}, {"no-x": ["baseline"]},
                              ci=0.95, resamples=1000, seed=0)  # fmt: skip
    assert len(cells) == 1 and notes == ["no-x × loss:d: held-out text differs from the baseline's, so no Δ"]


def test_headline_metric_prefers_acc_norm_then_acc_then_exact_match_then_the_first():
    from ablate.choices import headline_metric
    from ablate.run.evaluate import headline_scores

    assert headline_metric(["acc", "acc_norm"]) == "acc_norm"
    assert headline_metric(["exact_match,strict-match", "acc"]) == "acc"
    assert headline_metric(["bleu", "exact_match"]) == "exact_match"
    assert headline_metric(["bleu", "chrf"]) == "bleu"
    found = {"results": {"t": {"alias": "t", "bleu,none": 0.5, "bleu_stderr,none": 0.1}, "u": {"alias": "u"}}}
    assert headline_scores(found) == {"t": 0.5}
