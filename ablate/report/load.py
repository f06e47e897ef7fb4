"""Load evaluation results as pandas DataFrames: what `ablate report` reads, one import from a notebook.

    from ablate.report.load import load_study, load_folder
    res = load_study("demo")        # results/demo/: the plan, each variant's status and lm-eval outputs
    res = load_folder("runs/")      # plain `lm_eval ... --output_path runs/<variant> --log_samples` folders
    res.variants                    # one row per variant: state, seed, hash check, tokens, error
    res.scores                      # one row per variant × task × metric: lm-eval's aggregate and stderr
    res.items                       # one row per variant × task × metric × item (doc_id, doc_hash, value,
                                    # cluster: the doc's `cluster` field, NA where it has none)
    res.heldout                     # variant → its held-out loss per domain (heldout.json), with eval.heldout

Only variants whose state is `done` and whose recorded hash matches the plan contribute numbers; a
variant trained or evaluated under another plan is marked `stale`, and one whose outputs are not as
its status.json recorded them (an edited score, a cut samples file) `damaged`: both are refused,
never reported.
lm-eval writes `results_<stamp>.json` and `samples_<task>_<stamp>.jsonl` (per-item logs) anywhere
under the output folder; for each task the newest results file that has it wins, with the samples
file of the same stamp (else the newest one for that task).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ablate.choices import metric_name
from ablate.errors import StudyError
from ablate.names import VariantName, phase_label
from ablate.plan.study import load_plan
from ablate.recipe import Category
from ablate.study.artifacts import (
    SUGGESTED,
    HeldOut,
    State,
    Status,
    Suggested,
    read_heldout,
    read_status,
    read_suggested,
    resolve_checkpoint,
)
from ablate.study.job import (
    DAMAGED,
    EVAL,
    STALE,
    START,
    damaged_outputs,
    lm_eval_stamp,
    result_files,
    result_outputs,
    results_state,
)
from ablate.study.store import current_study, read_shaped, study_dir, variant_dir

if TYPE_CHECKING:
    from ablate.plan.build import Plan

DONE = State.DONE.value  # only done variants whose hash matches the plan contribute numbers
REFUSED = (STALE, DAMAGED)  # states whose results are left out of every table, each with a note saying why
NO_RESULTS = "no results"  # marked done, but no lm-eval results file found
VARIANT_COLUMNS = ["variant", "ablation", "seed", "state", "hash_ok", "tokens_done", "tokens", "error", "folder"]
SCORE_COLUMNS = ["variant", "task", "metric", "score", "stderr", "n_items"]
ITEM_COLUMNS = ["variant", "task", "metric", "doc_id", "doc_hash", "value", "cluster"]


@dataclass(frozen=True)
class Cost:
    """What a study costs, from its plan: the report's header says it against one full run."""

    variant_tokens: int  # the first variant's tokens: every variant's, outside a phase study
    tokens_by_phase: dict[str, int]  # a phase study's phase label → its variants' tokens; empty otherwise
    total_tokens: int | None  # the full run's (training.total_tokens)
    variants: int
    replicates: int  # the baseline's replicate runs, for seed noise
    study_tokens: int
    study_fraction: float  # study compute / one full run's (6·N·D)


@dataclass
class StudyResults:
    """Everything a report needs, as plain tables. Scores and values are fractions, as lm-eval writes them."""

    name: str
    source: Path
    variants: pd.DataFrame
    scores: pd.DataFrame
    items: pd.DataFrame
    tasks: list[str]  # report order: the recipe's eval tasks, else the order found
    categories: dict[str, Category] = field(default_factory=dict)  # the recipe's eval.categories
    cost: Cost | None = None  # from the plan; None for plain lm-eval folders
    notes: list[str] = field(default_factory=list)
    suggestions: dict[str, Suggested] = field(default_factory=dict)  # `ablate suggest`'s, by name
    heldout: dict[str, HeldOut] = field(default_factory=dict)  # variant → its heldout.json (eval.heldout)
    start: str | None = None  # the start checkpoint the study continues from, where a plan says (path or URI)


# ---- a study folder ------------------------------------------------------------------------


def variant_states(study: str, plan: Plan | None = None) -> pd.DataFrame:
    """One row per planned variant (plus `start` when evaluated): state, hash check, tokens, error.

    Cheap (reads only status files), so `ablate status` uses it directly. `plan`: the study's, if loaded.
    The start checkpoint's evaluation is checked against the plan's start_hash like every variant.
    """
    plan = plan or load_plan(study)
    rows = []
    start_folder = study_dir(study) / START
    if start_folder.exists():
        status = read_status(start_folder)
        if status.state == State.PENDING and result_files(start_folder / EVAL):
            # evaluated without a status file (e.g. by hand): its results are what they are
            status = status.model_copy(update={"state": State.DONE, "hash": plan.start_hash})
        rows.append(_checked(START, START, None, status, plan.start_hash, start_folder, (EVAL,)))
    outputs = result_outputs(bool((plan.recipe.get("eval") or {}).get("heldout")))
    for variant in plan.variants:
        folder = variant_dir(study, variant.name)
        status = read_status(folder)
        if status.tokens is None:  # the planned count where no status says it yet
            status = status.model_copy(update={"tokens": variant.tokens})
        rows.append(_checked(variant.name, variant.ablation, variant.seed, status, variant.hash, folder, outputs))
    return pd.DataFrame(rows, columns=VARIANT_COLUMNS)


def _checked(
    name: str, ablation: str, seed: int | None, status: Status, expected: str, folder: Path, outputs: tuple[str, ...]
) -> dict[str, Any]:
    """A job's row, marked stale when its results are for another hash, or damaged when a done job's
    outputs are not as its status.json recorded them (sizes, and hashes up to ablate.study.job.HASH_LIMIT);
    the reason is its error."""
    done = status.state == State.DONE and status.hash == expected
    damaged = damaged_outputs(folder, status, outputs) if done else {}
    state = results_state(status, expected, damaged)
    hash_ok = None if status.hash is None else status.hash == expected
    if state == STALE:
        error = f"hash {status.hash or 'none'} ≠ plan {expected}: results belong to another plan; "
        status, hash_ok = status.model_copy(update={"error": error + "rerun `ablate run` to refresh them"}), False
    elif state == DAMAGED:
        error = f"{'; '.join(damaged.values())}; rerun `ablate run` to recompute it from what is intact"
        status = status.model_copy(update={"error": error})
    return _row(name, ablation, seed, state, hash_ok, status, folder)


def _row(
    name: str, ablation: str, seed: int | None, state: str, hash_ok: bool | None, status: Status, folder: Path
) -> dict[str, Any]:
    return {
        "variant": name,
        "ablation": ablation,
        "seed": seed,
        "state": state,
        "hash_ok": hash_ok,
        "tokens_done": status.tokens_done,
        "tokens": status.tokens,
        "error": status.error,
        "folder": str(folder),
    }


def load_study(study: str | None = None) -> StudyResults:
    """A study's plan, statuses and the lm-eval outputs of every done variant (and the start checkpoint)."""
    name = current_study(study)
    plan = load_plan(name)
    variants = variant_states(name, plan)
    recipe_eval = plan.recipe.get("eval", {})
    result = _load_evals(name, study_dir(name), variants)
    result.tasks = list(recipe_eval.get("tasks") or result.tasks)
    result.categories = {cat: Category(**spec) for cat, spec in (recipe_eval.get("categories") or {}).items()}
    done = result.variants[result.variants.state == DONE]
    heldout = {str(v): read_heldout(Path(str(f))) for v, f in zip(done.variant, done.folder, strict=True)}
    result.heldout = {variant: found for variant, found in heldout.items() if found is not None}
    result.suggestions = read_suggested(study_dir(name) / SUGGESTED)
    training = plan.recipe.get("training", {})
    if plan.options.checkpoint is not None:
        try:
            result.start = resolve_checkpoint(name, plan.recipe.get("checkpoints") or {}, plan.options.checkpoint)
        except StudyError:  # not pretrained yet: the name is all there is to compare
            result.start = plan.options.checkpoint
    result.cost = Cost(
        variant_tokens=plan.variants[0].tokens if plan.variants else 0,
        tokens_by_phase={phase_label(v.phase): v.tokens for v in plan.variants if v.phase is not None},
        total_tokens=training.get("total_tokens"),
        variants=len(plan.variants),
        replicates=len(plan.replicates()),
        study_tokens=plan.study_tokens,
        study_fraction=plan.study_fraction,
    )
    for row in variants.itertuples():
        if row.state in REFUSED:
            result.notes.append(f"{row.variant}: refused, {row.error}")
    return result


# ---- the shape of lm-eval's outputs the report reads --------------------------------------


class _Results(BaseModel):
    """What is read of an lm-eval results_*.json: per task its metrics, items and a group's subtasks."""

    model_config = ConfigDict(populate_by_name=True)

    results: dict[str, dict[str, Any]] | None = None
    n_samples: dict[str, dict[str, Any] | None] | None = Field(None, alias="n-samples")
    group_subtasks: dict[str, list[str]] | None = None


# ---- a folder of plain lm-eval outputs ------------------------------------------------------


def load_folder(path: str | Path) -> StudyResults:
    """`--from DIR`: each subfolder of DIR holds one variant's lm-eval outputs, named after the folder.

    A folder named `start` is the start checkpoint; `name.s<N>` is seed N of ablation `name`.
    """
    root = Path(path)
    if not root.is_dir():
        raise StudyError(f"--from {root}: not a folder; pass the folder given to lm_eval as --output_path's parent")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not result_files(folder):
            continue
        name = VariantName.parse(folder.name)
        rows.append(_row(folder.name, str(name.without_seed()), name.seed, DONE, None, Status(), folder))
    if not rows:
        raise StudyError(f"--from {root}: no subfolder holds lm-eval results_*.json; expected {root}/<variant>/...")
    variants = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    return _load_evals(root.name, root, variants, eval_subfolder="")


# ---- lm-eval outputs -----------------------------------------------------------------------


def _load_evals(name: str, source: Path, variants: pd.DataFrame, eval_subfolder: str = "eval") -> StudyResults:
    scores, items, notes, tasks, subtasks = [], [], [], [], set()
    for index, row in variants.iterrows():
        if row.state != DONE:
            continue
        folder = Path(row.folder) / eval_subfolder if eval_subfolder else Path(row.folder)
        found = read_eval(folder, row.variant)
        if found is None:
            variants.loc[index, "state"] = NO_RESULTS
            notes.append(f"{row.variant}: marked done but no results_*.json under {folder}")
            continue
        variant_scores, variant_items, variant_subtasks = found
        scores.append(variant_scores)
        items.append(variant_items)
        subtasks |= variant_subtasks
        tasks += [t for t in variant_scores.task.unique() if t not in tasks]
    return StudyResults(
        name=name,
        source=source,
        variants=variants,
        scores=_concat(scores, SCORE_COLUMNS),
        items=_categorical(_concat(items, ITEM_COLUMNS)),
        tasks=[t for t in tasks if t not in subtasks],  # a group's subtasks stay in the tables, not the report
        notes=notes,
    )


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The frames stacked; empty ones (a variant without per-item logs) left out, so they do not
    decide the columns' dtypes; no frames at all: an empty table with the columns."""
    filled = [frame for frame in frames if not frame.empty]
    return pd.concat(filled, ignore_index=True) if filled else pd.DataFrame(columns=columns)


def _categorical(items: pd.DataFrame) -> pd.DataFrame:
    """Repeated strings as categories: millions of items fit in memory."""
    for column in ("variant", "task", "metric", "doc_hash", "cluster"):
        items[column] = items[column].astype("category")
    return items.astype({"doc_id": "int64", "value": "float64"})


def read_eval(folder: Path, variant: str) -> tuple[pd.DataFrame, pd.DataFrame, set[str]] | None:
    """One variant's scores and per-item values from lm-eval's files under `folder`; None if there are none.

    Returns (scores, items, the subtasks of lm-eval groups found).
    """
    if not result_files(folder):
        return None
    newest, subtasks = newest_results(folder)
    score_rows, item_frames = [], []
    for task, (path, entry) in newest.items():
        for key, value in entry.items():
            if "," not in key or "_stderr," in key or not _is_number(value):
                continue
            stderr = entry.get(key.replace(",", "_stderr,", 1))
            score_rows.append(
                {
                    "variant": variant,
                    "task": task,
                    "metric": metric_name(key),
                    "score": float(value),
                    "stderr": float(stderr) if _is_number(stderr) else float("nan"),
                    "n_items": entry["_n"] if entry["_n"] is not None else entry.get("sample_len"),
                }
            )
        samples = samples_file(path, task)
        if samples is not None:
            item_frames.append(_read_samples(samples, variant, task))
    scores = pd.DataFrame(score_rows, columns=SCORE_COLUMNS)
    return scores, _concat(item_frames, ITEM_COLUMNS), subtasks


def newest_results(folder: Path) -> tuple[dict[str, tuple[Path, dict[str, Any]]], set[str]]:
    """Each task's entry in the newest results file under `folder` that has it, with that file (and its
    effective item count as `_n`), and the subtasks of the lm-eval groups found."""
    newest: dict[str, tuple[Path, dict[str, Any]]] = {}
    subtasks: set[str] = set()
    for path in result_files(folder):  # oldest first: a newer file overwrites what it also has
        payload = read_shaped(path, _Results, fix="delete it and re-evaluate")
        n_samples = payload.get("n-samples") or {}
        for members in (payload.get("group_subtasks") or {}).values():
            subtasks |= set(members)
        for task, entry in (payload.get("results") or {}).items():
            newest[task] = (path, {**entry, "_n": (n_samples.get(task) or {}).get("effective")})
    return newest, subtasks


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def samples_file(results: Path, task: str) -> Path | None:
    """The per-item log written with `results`, else the newest one for the task."""
    same = results.parent / f"samples_{task}_{lm_eval_stamp(results)}.jsonl"
    if same.exists():
        return same
    others = sorted(results.parent.glob(f"samples_{task}_*.jsonl"), key=lm_eval_stamp)
    others = [p for p in others if p.name == f"samples_{task}_{lm_eval_stamp(p)}.jsonl"]  # not task_other's
    return others[-1] if others else None


def _read_samples(path: Path, variant: str, task: str) -> pd.DataFrame:
    """Per-item numeric metric values of one samples_<task>_<stamp>.jsonl (last line per item wins),
    with the doc's `cluster` label as a string (items sharing one are resampled together; see stats)."""
    values: dict[tuple[str, int], tuple[str, float, str | None]] = {}
    for sample in samples(path):
        suffix = "" if sample.get("filter", "none") == "none" else f",{sample['filter']}"
        cluster = _cluster(sample.get("doc"))
        for metric in sample.get("metrics", []):
            value = sample.get(metric)
            if _is_number(value) or isinstance(value, bool):
                logged = (sample.get("doc_hash", ""), float(value), cluster)
                values[(metric + suffix, int(sample["doc_id"]))] = logged
    return pd.DataFrame(
        [(variant, task, metric, doc_id, *logged) for (metric, doc_id), logged in values.items()],
        columns=ITEM_COLUMNS,
    )


def samples(path: Path) -> Iterator[dict[str, Any]]:
    """The samples of one samples_<task>_<stamp>.jsonl in file order (blank lines skipped); a line that
    is not an lm-eval sample stops it with one line naming the file."""
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield _sample(line, path, number)


def _sample(line: str, path: Path, number: int) -> dict[str, Any]:
    """One line of a samples file: an object with an integer doc_id, or one line naming the file."""
    try:
        sample = json.loads(line)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON ({exc.msg})"
    else:
        if isinstance(sample, dict) and isinstance(sample.get("doc_id"), int):
            return sample
        problem = "not an lm-eval sample (an object with an integer doc_id)"
    raise StudyError(f"{path}: line {number} is {problem}; delete the file and re-evaluate")


def _cluster(doc: Any) -> str | None:
    """A doc's `cluster` field (a JSON scalar) as text; None where the doc has none."""
    value = doc.get("cluster") if isinstance(doc, dict) else None
    return str(value) if isinstance(value, (str, int, float)) else None
