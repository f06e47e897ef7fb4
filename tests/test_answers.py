"""Correct-answer loss (ablate.report.answers) from a real lm-eval run: a tiny untrained Llama evaluated
once on the tiny study's multiple-choice task, the same items scored with mutual information, with
several golds, and as generation; the loss checked against the log's own fields, the accuracy against
lm-eval's. Plus hand-made lines for the refusals."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from fixtures.report_study import write_lm_eval
from tiny_study import ALPHABETS, _task

from ablate.report.answers import ANSWER_PREFIX, AnswerLoss, answer_table, read_answers, study_answers, task_answers
from ablate.report.load import load_folder

HEAVY = ("torch", "composer", "streaming", "lm_eval", "transformers")


def _variant(root, name: str, data: str, **config) -> None:
    """A task over tiny_alpha's items, changed by `config`."""
    base = yaml.safe_load((root / "tiny_alpha.yaml").read_text())
    base["dataset_kwargs"]["data_files"]["test"] = data
    (root / f"{name}.yaml").write_text(yaml.safe_dump({**base, "task": name, **config}))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """lm-eval's outputs for one untrained tiny model on four tasks over the same 30 items (~5 s)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ablate.demo.corpus import write_tokenizer
    from ablate.recipe import Eval
    from ablate.run.evaluate import evaluate

    root = tmp_path_factory.mktemp("answers")
    tasks = root / "tasks"
    tasks.mkdir()
    _task(tasks, "tiny_alpha", ALPHABETS["alpha"], random.Random(0))
    data = str(tasks / "tiny_alpha.jsonl")
    mutual = [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_mutual_info")]
    _variant(tasks, "tiny_mutual", data, metric_list=mutual)
    _variant(tasks, "tiny_golds", data, doc_to_target="{{[answer, (answer + 1) % 3]}}")
    _variant(
        tasks, "tiny_gen", data, output_type="generate_until", doc_to_choice=None,
        doc_to_target="{{choices[answer]}}", generation_kwargs={"until": ["\n"], "max_gen_toks": 2},
        metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
    )  # fmt: skip
    write_tokenizer(root / "tokenizer")
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        vocab_size=128, max_position_embeddings=64,
    )  # fmt: skip
    spec = Eval(tasks=["tiny_alpha", "tiny_mutual", "tiny_golds", "tiny_gen"], include=[str(tasks)])
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    evaluate(LlamaForCausalLM(config), tokenizer, spec, root / "eval", name="tiny")
    return root / "eval"


def _lines(folder, task: str) -> list[dict]:
    [path] = folder.glob(f"*/samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_answer_loss_is_the_gold_continuations_nats_per_byte(evaluated):
    found = read_answers(evaluated)
    alpha = found["tiny_alpha"]
    assert isinstance(alpha, AnswerLoss) and alpha.items == 30 and alpha.chance == pytest.approx(1 / 3)
    losses, right = [], []
    for line in _lines(evaluated, "tiny_alpha"):  # the same fields, read independently
        gold = int(line["target"])
        lls = [float(pair[0]) for pair in line["filtered_resps"]]
        continuation = line["arguments"][f"gen_args_{gold}"]["arg_1"]
        assert continuation == " " + line["doc"]["choices"][gold]  # lm-eval's delimiter, then the gold choice
        losses.append(-lls[gold] / len(continuation.encode()))
        best = lls.index(max(lls))
        assert float(best == gold) == line["acc"]  # argmax of the logged loglikelihoods is lm-eval's own acc
        right.append(best == gold)
    assert alpha.loss == pytest.approx(sum(losses) / 30, rel=1e-12)
    assert alpha.accuracy == pytest.approx(sum(right) / 30)
    [results] = evaluated.glob("*/results_*.json")
    assert alpha.accuracy == pytest.approx(json.loads(results.read_text())["results"]["tiny_alpha"]["acc,none"])
    assert 1 < alpha.loss < 20  # an untrained model: several nats per byte
    # mutual information doubles the requests with unconditional ones; the conditional half is the same
    mutual = found["tiny_mutual"]
    assert isinstance(mutual, AnswerLoss) and len(_lines(evaluated, "tiny_mutual")[0]["arguments"]) == 6
    assert (mutual.loss, mutual.chance, mutual.accuracy) == pytest.approx((alpha.loss, alpha.chance, alpha.accuracy))
    several = "tiny_golds: item 0 has several correct answers ([2, 0]); one loss per item needs one gold"
    assert found["tiny_golds"] == several
    assert found["tiny_gen"].startswith("tiny_gen: not a loglikelihood task (it generates text)")


@pytest.mark.slow
def test_a_study_folder_gives_answer_loss_targets_per_variant(evaluated, tmp_path):
    for variant in ("base", "other"):
        shutil.copytree(evaluated, tmp_path / "runs" / variant)
    answers = study_answers(load_folder(tmp_path / "runs"))
    loss = read_answers(evaluated)["tiny_alpha"]
    assert isinstance(loss, AnswerLoss) and set(answers) == {"base", "other"}
    table = answer_table(answers, ["base", "missing"])
    assert table == {"base": {f"{ANSWER_PREFIX}tiny_alpha": loss.loss, f"{ANSWER_PREFIX}tiny_mutual": loss.loss}}


# ---- hand-made lines: fast ------------------------------------------------------------------------


def _line(doc_id: int, target: str, lls: list[float], **extra) -> dict:
    choices = [f" c{i}" for i in range(len(lls))]
    return {
        "doc_id": doc_id, "target": target, "filter": "none", "metrics": ["acc"],
        "arguments": {f"gen_args_{i}": {"arg_0": "q", "arg_1": c} for i, c in enumerate(choices)},
        "filtered_resps": [[str(ll), "False"] for ll in lls], **extra,
    }  # fmt: skip


def _write(path, lines: list[dict]):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_targets_as_index_or_choice_text_last_line_per_item_wins(tmp_path):
    lines = [
        _line(0, "1", [-3.0, -1.5], acc=1.0),  # ' c1' is 3 bytes: 0.5 nats per byte
        _line(1, "c0", [-6.0, -1.0, -2.0], acc=0.0),  # the gold named by its text
        _line(1, "c0", [-0.6, -1.0, -2.0], acc=1.0),  # logged again: this one counts
    ]
    found = task_answers(_write(tmp_path / "samples_t_x.jsonl", lines), "t")
    assert found == AnswerLoss("t", (0.5 + 0.2) / 2, (1 / 2 + 1 / 3) / 2, 2, 1.0)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (_line(0, "0", [-1.0, -2.0], acc=0.0), "t: item 0: the gold read off its target disagrees with lm-eval's acc"),
        (_line(0, "5", [-1.0, -2.0]), "t: item 0 has gold index 5 of 2 choices"),
        (_line(0, "c9", [-1.0, -2.0]), "t: item 0 has a target that names no single choice"),
        (_line(0, "0", [-1.0]), "t: it scores one continuation per item, not a choice among answers"),
        (_line(0, "0", [-1.0, -2.0], filtered_resps=["a", "b"]), "t: item 0 logs no [loglikelihood, is_greedy] pair"),
    ],
)
def test_items_that_do_not_link_say_why(tmp_path, line, why):
    assert task_answers(_write(tmp_path / "samples_t_x.jsonl", [line]), "t").startswith(why)


def test_logs_without_requests_or_samples_say_why(tmp_path):
    write_lm_eval(tmp_path / "logged", {"t": {"acc": [1.0, 0.0]}})
    assert read_answers(tmp_path / "logged")["t"].startswith("t: item 0 logs no requests (`arguments`)")
    write_lm_eval(tmp_path / "bare", {"t": {"acc": [1.0, 0.0]}}, log_samples=False)
    assert read_answers(tmp_path / "bare")["t"].startswith("t: no samples_t_*.jsonl beside results_")


def test_reading_answers_imports_no_heavy_stack():
    code = f"import sys, ablate.report.answers; print([m for m in {HEAVY!r} if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert run.stdout.strip() == "[]"
