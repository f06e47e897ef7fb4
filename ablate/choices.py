"""The closed sets of names that a recipe field or a flag takes, typed once: the recipe's schema, the
CLI (which shows them as choices and refuses others before any work) and the code that acts on them
all read these, so a name is added in one place. Also the one rule for which metric a task is
reported by (`headline_metric`).
"""

from __future__ import annotations

from typing import Literal, get_args

Each = Literal["group", "subset"]  # leave-one-out granularity
DesignKind = Literal["loo", "swarm", "perturb"]  # which mixtures a plan adds besides the baseline
Launcher = Literal["local", "torchrun", "slurm"]
Adjustment = Literal["bh", "holm", "none"]  # the report's multiple-comparison adjustment
ReportFormat = Literal["md", "csv", "json"]  # what `ablate report` prints (all are written)
Model = Literal["linear", "loglinear", "law", "power", "gbm", "ensemble"]  # mixture models of `fit`/`suggest`
ScaleModel = Literal["joint", "nested", "separate"]  # models of `fit` across model size and tokens (analyze.scale)

LAUNCHERS: tuple[str, ...] = get_args(Launcher)
ADJUSTMENTS: tuple[str, ...] = get_args(Adjustment)
MODELS: tuple[str, ...] = get_args(Model)
SCALE_MODELS: tuple[str, ...] = get_args(ScaleModel)
MIXING_SCALE_MODELS = ("joint", "nested")  # the scale models that predict any mixture, not only those fitted

HEADLINE_METRICS = ("acc_norm", "acc", "exact_match")  # a task's reported metric, in order of preference


def metric_name(key: str) -> str:
    """lm-eval's 'acc,none' → 'acc'; a filtered metric keeps its filter: 'exact_match,strict-match'."""
    return key.removesuffix(",none")


def headline_metric(available: list[str]) -> str:
    """The metric a task is reported by, of the metrics it has (at least one, named as `metric_name`
    gives them, in lm-eval's order): acc_norm where it has it, else acc, else exact_match, else its
    first metric. `ablate run`'s summary and `ablate report` both read scores by this rule."""
    return next((m for m in HEADLINE_METRICS if m in available), available[0])
