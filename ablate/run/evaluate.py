"""Evaluation: lm-eval on the exported model, outputs written by lm-eval's own tracker.

    from ablate.run.evaluate import evaluate
    scores = evaluate(model, tokenizer, recipe.eval, Path("results/demo/baseline/eval"), name="demo/baseline",
                      folder=Path("results/demo/baseline/model"))

`simple_evaluate` runs with the recipe's tasks, local task folders and `log_samples=True` on the
recipe's backend: `hf`, an `HFLM` wrapped around the model loaded from the exported folder and its
tokenizer (passing the tokenizer keeps HFLM off the Hub), moved to rank 0's GPU where there is one; or `vllm`, lm-eval's
vLLM model serving the folder itself, as many GPUs as `eval.model_args` asks for
(tensor_parallel_size, data_parallel_size). vLLM is never required: the `vllm` extra installs it.
lm-eval's `EvaluationTracker` writes `results_<stamp>.json` and `samples_<task>_<stamp>.jsonl`
under <out>/<name>/ on every backend, exactly as the lm_eval CLI would, so lm-eval's tooling and
`ablate report` read them the same way. Files are written into a temporary sibling
folder first and swapped in whole, so <out> never holds half an evaluation.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ablate.choices import headline_metric, metric_name
from ablate.errors import AblateError, StudyError
from ablate.recipe import Eval
from ablate.run.dist import local_device
from ablate.study.job import result_files
from ablate.study.store import replacing_folder


def headline_scores(results: dict[str, Any]) -> dict[str, float]:
    """Task → its score by its headline metric (ablate.choices.headline_metric), as lm-eval reports it."""
    scores: dict[str, float] = {}
    for task, metrics in results.get("results", {}).items():
        keys = {
            metric_name(key): key
            for key, value in metrics.items()
            if "," in key and "_stderr," not in key and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if keys:
            scores[task] = float(metrics[keys[headline_metric(list(keys))]])
    return scores


def require_backend(spec: Eval) -> None:
    """One line before any work when the recipe's backend is not installed here."""
    if spec.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise AblateError(
            "eval.backend: vllm is not installed here; on a GPU machine pip install 'ablate[vllm]', "
            "or set eval.backend: hf"
        )


def evaluate(
    model: Any, tokenizer: Any, spec: Eval, out: Path, *, name: str, folder: Path | None = None
) -> dict[str, float]:
    """Evaluate `model` on the recipe's tasks; write lm-eval's outputs under `out`; return headline scores.

    `folder`: the same model as a Hugging Face folder, which the vllm backend serves (hf evaluates
    the model in memory: llm-foundry's MPT, for one, opens only through its own class).
    """
    require_backend(spec)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    missing = [folder for folder in spec.include if not Path(folder).is_dir()]
    if missing:
        raise AblateError(f"eval.include: {missing} not found; create the task folders or fix the paths")
    include = [str(Path(folder).resolve()) for folder in spec.include]
    # Indexing lm-eval's thousands of built-in tasks takes ~10 s: skip it when the local folders suffice.
    manager = TaskManager(include_path=include, include_defaults=False) if include else None
    if manager is None or not set(spec.tasks) <= set(manager.all_tasks):
        manager = TaskManager(include_path=include or None)
    unknown = [task for task in spec.tasks if task not in manager.all_tasks]
    if unknown:
        raise AblateError(f"eval.tasks: lm-eval knows no task {unknown}; check the names or eval.include")
    tasks = manager.load(spec.tasks)["tasks"]
    for task_name, task in tasks.items():
        task.set_config(key="num_fewshot", value=spec.fewshot(task_name))

    with replacing_folder(out) as staging:
        tracker = EvaluationTracker(output_path=str(staging))
        lm = _language_model(model, tokenizer, spec, folder)
        results = simple_evaluate(
            model=lm,
            model_args={"pretrained": name},  # names lm-eval's output folder; the model itself is `lm`
            tasks=list(tasks.values()),
            limit=spec.limit,
            log_samples=True,
            evaluation_tracker=tracker,
            task_manager=manager,
        )
        if results is None:
            raise RuntimeError("lm-eval returned no results on rank 0")
        samples = results.pop("samples")
        tracker.save_results_aggregated(results=results, samples=samples)
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
        _check_written(staging, out, {task: len(samples[task]) for task in results["configs"]})
    return headline_scores(results)


def recorded_scores(out: Path) -> dict[str, float]:
    """Headline scores read back from lm-eval's results files under `out` (the newest file per task wins):
    what a kept evaluation reports, never a copy in status.json that nothing checks."""
    merged: dict[str, Any] = {}
    for path in result_files(out):
        merged.update(json.loads(path.read_text()).get("results", {}))
    return headline_scores({"results": merged})


def _check_written(staging: Path, out: Path, items: dict[str, int]) -> None:
    """Every file lm-eval's tracker was to write is whole: it logs a failed write ("Could not save sample
    results") and goes on, so a full disk would leave an empty or cut file to be swapped in as results."""
    written = result_files(staging)
    problem = None if written else "lm-eval could not write its results file"
    for path in written:
        try:
            json.loads(path.read_text())
        except ValueError:
            problem = "lm-eval's results file was written cut short"
    for task, count in items.items():
        found = list(staging.glob(f"**/samples_{task}_*.jsonl"))
        lines = found[0].read_bytes().count(b"\n") if found else 0
        if lines != count:
            problem = f"lm-eval wrote {lines} of the {count} per-item results of {task}"
    if problem:
        free = shutil.disk_usage(staging if staging.exists() else out.parent).free
        full = free < 1 << 20
        why = f"the disk is full ({free:,} bytes free): make room" if full else "check that the folder is writable"
        raise StudyError(f"{out}: {problem}; {why}, then rerun")


def _language_model(model: Any, tokenizer: Any, spec: Eval, folder: Path | None) -> Any:
    """lm-eval's model for the recipe's backend, with the recipe's extra model_args."""
    if spec.backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        if folder is None:
            raise RuntimeError("the vllm backend needs the model as a Hugging Face folder")
        args = {"max_model_len": _max_length(model), **spec.model_args}
        return VLLM(pretrained=str(folder), tokenizer=str(folder), batch_size=spec.batch_size, **args)
    from lm_eval.models.huggingface import HFLM

    model.to(local_device()).eval()  # HFLM evaluates a model in memory where it lies
    args = {"max_length": _max_length(model), **spec.model_args}
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=spec.batch_size, **args)


def _max_length(model: Any) -> int | None:
    """The context the model was built for; HFLM otherwise guesses 2048 and never truncates a tiny model's input."""
    return getattr(model.config, "max_position_embeddings", None)
