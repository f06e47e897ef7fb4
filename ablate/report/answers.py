"""Correct-answer loss of multiple-choice tasks, read off lm-eval's per-item logs: the quantity the OLMo
ladder (Bhagia et al., arXiv 2412.04403) predicts across scale, then maps to accuracy (ablate.analyze.accuracy).

    from ablate.report.answers import read_answers, study_answers, answer_table
    read_answers(Path("results/demo/baseline/eval"))   # task → AnswerLoss, or the sentence why not
    answer_table(study_answers(load_study("demo")), variants)  # variant → answer-loss:<task> → loss

A multiple-choice item is logged (samples_<task>_<stamp>.jsonl, lm-eval 0.4's evaluator) with one
request per choice: `arguments.gen_args_<i>` = {arg_0: context, arg_1: continuation}, `filtered_resps[i]`
= [loglikelihood, is_greedy] as strings, and `target` the gold choice's index, as text. An item's
correct-answer loss is −loglikelihood(gold continuation) / its UTF-8 bytes: nats per byte of the
continuation as scored (lm-eval's target delimiter included), so models with different tokenizers
compare. A task's loss is the mean over its items, its chance the mean of 1 / choices.

Not linked (the task gets the one sentence why): tasks that generate text, score one continuation
(`loglikelihood`, no choice), give items several golds, or whose target is neither an index nor one
choice's text (several-context tasks such as winogrande keep the gold in the context). A target that
reads as a whole number is an index, as lm-eval reads an integer; where lm-eval logged `acc`, every
item's argmax must agree with it, or the gold was read wrongly and the task is refused.
Pure JSON reading: no torch, no lm_eval import.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.report.load import DONE, newest_results, samples, samples_file
from ablate.study.job import EVAL

if TYPE_CHECKING:
    from ablate.report.load import StudyResults

ANSWER_PREFIX = "answer-loss:"  # how a task's correct-answer loss is named as a target of `ablate fit`


@dataclass(frozen=True)
class AnswerLoss:
    """One variant's correct-answer loss on one multiple-choice task."""

    task: str
    loss: float  # nats per UTF-8 byte of the gold continuation, mean over items
    chance: float  # mean over items of 1 / its choices: a guesser's accuracy
    items: int
    accuracy: float  # share of items whose gold has the highest loglikelihood (lm-eval's acc)


def task_answers(path: Path, task: str) -> AnswerLoss | str:
    """The answer loss of one samples_<task>_<stamp>.jsonl (the last line of an item wins), or why not."""
    found: dict[int, tuple[float, float, float]] = {}
    for sample in samples(path):
        item = _item(sample)
        if isinstance(item, str):
            return f"{task}: {item}"
        found[int(sample["doc_id"])] = item
    if not found:
        return f"{task}: {path.name} holds no items"
    loss, chance, correct = (math.fsum(column) / len(found) for column in zip(*found.values(), strict=True))
    return AnswerLoss(task, loss, chance, len(found), correct)


def read_answers(folder: Path) -> dict[str, AnswerLoss | str]:
    """Task → its answer loss, or the sentence why it has none, for lm-eval's outputs under `folder` (one
    variant's eval folder): per task the samples file of the newest results file that has it."""
    newest, _ = newest_results(folder)
    found: dict[str, AnswerLoss | str] = {}
    for task, (path, _) in newest.items():
        samples_path = samples_file(path, task)
        found[task] = (
            task_answers(samples_path, task)
            if samples_path is not None
            else f"{task}: no samples_{task}_*.jsonl beside {path.name}: an lm-eval group (its tasks are "
            "linked one by one), or evaluated without log_samples"
        )
    return found


def eval_folder(folder: Path) -> Path:
    """A variant's lm-eval outputs: <folder>/eval in a study, the folder itself in a `--from` folder."""
    return folder / EVAL if (folder / EVAL).is_dir() else folder


def study_answers(results: StudyResults) -> dict[str, dict[str, AnswerLoss | str]]:
    """variant → task → its answer loss or why not, for each done variant of a loaded study (or folder);
    stale and damaged variants are left out, as load.py leaves out their scores."""
    done = results.variants[results.variants.state == DONE]
    return {
        str(variant): read_answers(eval_folder(Path(str(folder))))
        for variant, folder in zip(done.variant, done.folder, strict=True)
    }


def answer_table(answers: dict[str, dict[str, AnswerLoss | str]], variants: list[str]) -> dict[str, dict[str, float]]:
    """variant → answer-loss:<task> → its loss (nats per byte): the targets `ablate fit` reads, as
    heldout.loss_table gives loss:<domain>; tasks without a loss are left out (answers says why)."""
    return {
        v: {ANSWER_PREFIX + task: found.loss for task, found in answers[v].items() if isinstance(found, AnswerLoss)}
        for v in variants
        if v in answers
    }


# ---- one logged item --------------------------------------------------------------------------


def _item(sample: dict[str, Any]) -> tuple[float, float, float] | str:
    """(loss per byte of the gold, 1 / choices, 1 if the gold has the highest loglikelihood) of one
    multiple-choice item, or the reason its task is not linked (a clause of one sentence)."""
    arguments = sample.get("arguments")
    requests = list(arguments.values()) if isinstance(arguments, dict) else []
    pairs = sample.get("filtered_resps")
    if not requests:
        return f"item {sample['doc_id']} logs no requests (`arguments`), as lm-eval's log_samples writes them"
    if not all(isinstance(r, dict) and isinstance(r.get("arg_1"), str) for r in requests):
        return "not a loglikelihood task (it generates text), so it has no answer likelihood to read"
    if not isinstance(pairs, list) or len(pairs) != len(requests) or not all(_is_pair(p) for p in pairs):
        return f"item {sample['doc_id']} logs no [loglikelihood, is_greedy] pair per request"
    if "acc_mutual_info" in sample.get("metrics", []) and all(r["arg_0"] == "" for r in requests[len(requests) // 2 :]):
        requests, pairs = requests[: len(requests) // 2], pairs[: len(pairs) // 2]  # the unconditional half
    if len(requests) < 2:
        return "it scores one continuation per item, not a choice among answers"
    continuations = [str(r["arg_1"]) for r in requests]
    gold = _gold(str(sample.get("target")), continuations)
    if isinstance(gold, str):
        return f"item {sample['doc_id']} {gold}"
    lls = [float(p[0]) for p in pairs]
    size = len(continuations[gold].encode("utf-8"))
    if size == 0:
        return f"item {sample['doc_id']}'s gold continuation is empty"
    correct = float(max(range(len(lls)), key=lls.__getitem__) == gold)  # the first maximum, as np.argmax
    logged = sample.get("acc") if sample.get("filter", "none") == "none" else None
    if isinstance(logged, (int, float)) and float(logged) != correct:
        return f"item {sample['doc_id']}: the gold read off its target disagrees with lm-eval's acc"
    return -lls[gold] / size, 1.0 / len(continuations), correct


def _gold(target: str, continuations: list[str]) -> int | str:
    """The gold choice's index from a logged target (lm-eval writes str(target)), or why there is none."""
    text = target.strip()
    if text.isdigit():
        index = int(text)
        return index if index < len(continuations) else f"has gold index {index} of {len(continuations)} choices"
    if text.startswith("["):
        try:
            golds = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            golds = None
        if isinstance(golds, list) and len(golds) == 1 and isinstance(golds[0], int):
            return _gold(str(golds[0]), continuations)
        return f"has several correct answers ({text}); one loss per item needs one gold"
    matches = [i for i, c in enumerate(continuations) if c == target or c.lstrip() == target]
    if len(matches) == 1:
        return matches[0]
    return "has a target that names no single choice (several-context tasks keep the gold in the context)"


def _is_pair(value: Any) -> bool:
    """A logged [loglikelihood, is_greedy]: lm-eval writes both as text."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return False
    try:
        return math.isfinite(float(value[0]))
    except (TypeError, ValueError):
        return False
