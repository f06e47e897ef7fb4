"""The recipe's `slurm:` and `loggers:` sections: how runs are submitted to a cluster and tracked.
Nothing here changes a result, so none of it is in a hash."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator

from ablate.recipe.section import Section


class Slurm(Section):
    """How `ablate run --launcher slurm` asks a cluster for resources. Nothing here changes a result,
    so none of it is in a hash; `ablate run --slurm FIELD=VALUE` overrides any field for one submission."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)  # time: 60, mem: 0

    partition: str | None = Field(None, description="#SBATCH --partition")
    account: str | None = Field(None, description="#SBATCH --account")
    qos: str | None = Field(None, description="#SBATCH --qos")
    time: str | None = Field(None, description="#SBATCH --time, per array task, e.g. 2-00:00:00")
    constraint: str | None = Field(None, description="#SBATCH --constraint, e.g. h100")
    cpus_per_task: Annotated[int, Field(gt=0)] | None = Field(None, description="#SBATCH --cpus-per-task")
    mem: str | None = Field(None, description="#SBATCH --mem: memory per node (one task per node), e.g. 500G")
    gpu_request: Literal["auto", "gpus-per-node", "gres", "none"] = Field(
        "auto",
        description="how GPUs are asked for: --gpus-per-node=N, --gres=gpu:N, or not at all; 'auto' asks "
        "sinfo whether the partition has GPU GRES and leaves the request out where it has none",
    )
    requeue: bool = Field(False, description="#SBATCH --requeue: a preempted task restarts and resumes")
    extra: list[str] = Field(
        default_factory=list, description="more #SBATCH options, one each, e.g. --exclusive or --mail-type=END"
    )

    @field_validator("extra")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        for option in value:
            if not option.startswith("-") or "\n" in option:
                raise ValueError(
                    f"'{option}' is not one sbatch option; write it as it follows '#SBATCH ', e.g. --exclusive"
                )
        return value


class MLflow(Section):
    tracking_uri: str | None = Field(
        None,
        description="a tracking server URL or a local store (file:///path); None = $MLFLOW_TRACKING_URI or ./mlruns",
    )
    experiment: str | None = Field(None, description="experiment name; None = the study's name")


class WandB(Section):
    project: str | None = Field(None, description="W&B project; None = the study's name")
    entity: str | None = Field(None, description="W&B team or user; None = your default")


class Loggers(Section):
    """Experiment trackers, as Composer's loggers. The pretraining and each variant is one run, named
    <study>-<job>-<train hash>, with its mixture, seed and hashes as parameters and its training curve
    as metrics; a resumed job continues its run. Nothing here changes a result, so none of it is hashed."""

    mlflow: MLflow | None = None
    wandb: WandB | None = None
