"""The recipe's `eval:` section: lm-eval tasks and their settings, gauntlet-style categories, and
per-domain held-out text."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ablate.recipe.section import Section


class Category(Section):
    """A group of tasks averaged gauntlet-style: (score − random) / (1 − random)."""

    tasks: list[str] = Field(min_length=1)
    random_baseline: dict[str, Annotated[float, Field(ge=0, lt=1)]] = Field(
        default_factory=dict, description="task → chance accuracy; 0 where omitted"
    )

    @property
    def chances(self) -> list[float]:
        """Each task's chance accuracy, in the order of `tasks` (0 where omitted)."""
        return [self.random_baseline.get(t, 0.0) for t in self.tasks]


class HeldOut(Section):
    """One domain's held-out text for per-domain loss: MDS shards as `data build` writes them (from
    `source`, when given), or any folder a subset may be (ablate.data.check), local or remote."""

    location: str = Field(description="MDS folder of held-out text (never trained on): a local path or a URI")
    source: str | None = Field(None, description="raw JSONL or text file(s) that `data build` tokenizes there")
    text_field: str = Field("text", description="JSONL field that holds the document text")

    @model_validator(mode="before")
    @classmethod
    def _folder_alone(cls, value: Any) -> Any:
        """`prose: data/heldout/prose` is short for `prose: {location: data/heldout/prose}`."""
        return {"location": value} if isinstance(value, str) else value


class Eval(Section):
    tasks: list[str] = Field(min_length=1, description="lm-eval task names")
    include: list[str] = Field(default_factory=list, description="local task folders (lm-eval include_path)")
    num_fewshot: int | dict[str, int] = Field(0, description="one count for all tasks, or task → count")
    batch_size: Annotated[int, Field(gt=0)] = 32
    limit: Annotated[int, Field(gt=0)] | None = Field(None, description="items per task; None = all")
    categories: dict[str, Category] = Field(default_factory=dict)
    backend: Literal["hf", "vllm"] = Field(
        "hf",
        description="lm-eval's model backend: hf (transformers, on rank 0's device) or vllm (the exported "
        "folder served by vLLM on the job's GPUs: pip install 'ablate[vllm]', never required)",
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description="more lm-eval model_args for the backend, e.g. {dtype: bfloat16}, or for vllm "
        "{tensor_parallel_size: 8} or {data_parallel_size: 8, gpu_memory_utilization: 0.8}",
    )
    heldout: dict[str, HeldOut] = Field(
        default_factory=dict,
        description="domain → held-out MDS folder: each variant's loss and bits per byte on each domain, "
        "once per variant (what `ablate fit` can fit as loss:<domain>)",
    )
    heldout_sequences: Annotated[int, Field(gt=0)] | None = Field(
        None, description="held-out sequences per domain, the first ones of each folder; None = all"
    )

    @model_validator(mode="after")
    def _categories_name_tasks(self) -> Eval:
        for name, category in self.categories.items():
            unknown = sorted(set(category.tasks) - set(self.tasks))
            if unknown:
                raise ValueError(f"categories.{name} lists {unknown}, which are not in eval.tasks")
            # A chance level for a task the category does not hold would be ignored, and its own stay 0.
            stray = sorted(set(category.random_baseline) - set(category.tasks))
            if stray:
                raise ValueError(f"categories.{name}.random_baseline names {stray}, which are not in its tasks")
        if isinstance(self.num_fewshot, dict) and (stray := sorted(set(self.num_fewshot) - set(self.tasks))):
            raise ValueError(f"num_fewshot names {stray}, which are not in eval.tasks")
        return self

    def fewshot(self, task: str) -> int:
        return self.num_fewshot if isinstance(self.num_fewshot, int) else self.num_fewshot.get(task, 0)
