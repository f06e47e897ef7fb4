"""Experiment trackers (MLflow, W&B) from a recipe's `loggers:`, as Composer loggers."""

from __future__ import annotations

from typing import Any

from composer.loggers import WandBLogger

from ablate.recipe import Recipe


def trackers(recipe: Recipe) -> list[Any]:
    """The recipe's experiment trackers as Composer loggers (rank 0 logs). MLflow resumes the run of
    the same name, so an interrupted job stays one run; its system metrics (a monitor process
    sampling the machine) are left off."""
    loggers: list[Any] = []
    if recipe.loggers.mlflow is not None:
        from composer.loggers import MLFlowLogger

        mlflow = recipe.loggers.mlflow
        loggers.append(
            MLFlowLogger(
                experiment_name=mlflow.experiment or recipe.name,
                tracking_uri=mlflow.tracking_uri,
                resume=True,
                log_system_metrics=False,
            )
        )
    if recipe.loggers.wandb is not None:
        wandb = recipe.loggers.wandb
        loggers.append(_WandB(project=wandb.project or recipe.name, entity=wandb.entity, group=recipe.name))
    return loggers


class _WandB(WandBLogger):
    """W&B for metrics only. Composer's autoresume asks every logger for a remote copy of the latest
    checkpoint before the loggers start, and WandBLogger then raises RuntimeError instead of "not
    here"; ablate's checkpoints are in the variant's folder, never in W&B, so the answer is no."""

    def download_file(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("ablate keeps checkpoints in the variant folder")
