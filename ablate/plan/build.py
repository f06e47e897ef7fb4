"""Plan: expand a recipe's upsampling mix into leave-one-out variants. Pure: no I/O, no clock.

    ablate plan                         # one variant per group of the upsample mix, plus baseline/control
    ablate plan --remove math           # baseline and the math-removed variant
    ablate plan --remove math+code      # one variant without both
    ablate plan --each subset --seeds 1,2,3 --renormalize into:web
    ablate plan --phases 0.05,0.1,0.2   # every variant at every phase length: no-math@p5, no-math@p10, ...

Every figure here is arithmetic over the recipe and the subset sizes the caller passes in
(read from the shard folders at the CLI edge, as is the start checkpoint's parameter count), so the
same inputs always give the same plan.
This module holds the plan's schema (plan.json: `Plan`, `Variant`), the
cost, and `build_plan`, which puts them together; the mixtures themselves come from `mixtures`
(leave-one-out) and `designs` (swarm, perturb), their names' grammar from `ablate.names`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from ablate.errors import AblateError
from ablate.names import VariantName, phase_label
from ablate.plan.designs import perturbed, share_caps, swarm
from ablate.plan.identity import check_name, result_hash, start_hash, train_hash
from ablate.plan.mixtures import normalize, renormalize, resolve_target
from ablate.plan.model import count_params
from ablate.plan.request import PlanRequest
from ablate.plan.rungs import PlanRung, ladder_rungs
from ablate.recipe import Design, Recipe
from ablate.recipe.schema import STUDY_NAME
from ablate.recipe.training import Seed, Tokens
from ablate.stats import minimum_detectable_effect

EPOCH_WARN = 4.0  # above this many passes over a subset, returns diminish (Muennighoff et al., 2023)
EPOCH_STRONG = 16.0  # above this, repeated data mostly stops helping and risks memorisation
PLAN_VERSION = 2  # 2: start_hash, the start checkpoint evaluation's identity
BASELINE = "baseline"  # the unablated upsample mix every Δ is taken against (with its replicate seeds)


def mixture_problem(mixture: dict[str, float]) -> str | None:
    """Why `mixture` is not one (a share not between 0 and 1, NaN included, or shares not summing to 1)."""
    if bad := sorted(s for s, p in mixture.items() if not 0 <= p <= 1):
        return f"shares of {bad} are not numbers from 0 to 1"
    total = sum(mixture.values())
    return None if abs(total - 1) <= 1e-6 else f"shares sum to {total:g}, not 1"  # 1e-6: float rounding


class Variant(BaseModel):
    """One continuation of the study; `hash` names its results, `train_hash` its checkpoints."""

    name: str
    ablation: str  # the variant without its seed suffix: seeds of one ablation share it
    phase: float | None = None  # the phase length (fraction of the run) of a phase study; None: training.phase
    removed: list[str]  # targets as given (groups or subsets)
    removed_subsets: list[str]
    mixture: dict[str, float]  # subset → proportion of the phase, sums to 1
    tokens: Annotated[Tokens, Field(gt=0)]  # tokens trained in the phase
    start_tokens: Annotated[Tokens, Field(ge=0)]  # the phase's start in the run, per the recipe (not the checkpoint)
    seed: Seed  # data-order seed of the phase; equal across variants of one replicate
    checkpoint: str | None
    subset_tokens: dict[str, int]  # tokens drawn from each subset in the phase
    epochs: dict[str, float | None]  # passes over each subset in the phase; None where its size is unknown
    flops: float
    train_hash: str
    hash: str
    params: int | None = None  # a ladder's: its rung's parameter count (Plan.params is the largest rung's)

    @model_validator(mode="after")
    def _readable(self) -> Variant:
        """What a hand edit could break: the folder inside the study (the planner's own check_name), the name."""
        ablation = VariantName.parse_ablation(self.ablation)
        try:
            check_name(ablation.base, "ablation", fix="name a folder inside the study")
        except AblateError as exc:
            raise ValueError(str(exc)) from None
        if self.name not in (self.ablation, str(replace(ablation, seed=self.seed))):  # as build_plan names it
            raise ValueError(f"name {self.name!r} is not its ablation {self.ablation!r}, bare or with its seed suffix")
        if problem := mixture_problem(self.mixture):
            raise ValueError(f"mixture: {problem}")
        return self


class TaskPower(BaseModel):
    items: int
    mde_pp: float  # smallest Δ detected with 80% power at p = 0.5, the worst case


class Plan(BaseModel):
    version: int = PLAN_VERSION
    study: str = Field(pattern=STUDY_NAME)
    recipe: dict[str, Any]
    options: PlanRequest  # as asked, with the recipe's defaults applied: enough to re-plan exactly
    subset_sizes: dict[str, int]  # tokens per subset, where known
    task_sizes: dict[str, int]  # items per eval task, where known
    params: int
    start_hash: str  # identity of the start checkpoint's evaluation (results/<study>/start/)
    variants: list[Variant]
    study_tokens: int
    study_flops: float
    full_run_flops: float
    study_fraction: float  # study compute / full pretraining run compute
    power: dict[str, TaskPower]
    warnings: list[str]
    rungs: list[PlanRung] = []  # a ladder's, smallest first; empty: one start

    @model_validator(mode="before")
    @classmethod
    def _before_replicates(cls, data: Any) -> Any:
        """A plan.json written before baseline replicates existed ran its baseline once: it re-plans so."""
        options = data.get("options") if isinstance(data, dict) else None
        if isinstance(options, dict) and "baseline_seeds" not in options:
            return {**data, "options": {**options, "baseline_seeds": 1}}
        return data

    @model_validator(mode="after")
    def _distinct(self) -> Plan:
        """One folder per variant: two variants of one name would share it, and the report's tables."""
        names = [v.name for v in self.variants]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"variants {twice} are named twice; each variant names its own folder")
        return self

    def replicates(self) -> list[str]:
        """The baseline's replicate runs (baseline_seeds beyond the study's seeds): what measures seed noise."""
        seeds = self.options.seeds or []
        baselines = [v for v in self.variants if VariantName.parse_ablation(v.ablation).base == BASELINE]
        return [v.name for v in baselines if v.seed not in seeds]

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise AblateError(f"--variant {name}: not in the plan; choose from {[v.name for v in self.variants]}")


# ---- phases --------------------------------------------------------------------------------


def phase_recipe(recipe: Recipe, phase: float | None) -> Recipe:
    """The recipe as one phase of a phase study trains it: training.phase set to that phase."""
    if phase is None:
        return recipe
    return recipe.model_copy(update={"training": recipe.training.model_copy(update={"phase": phase})})


def pretrain_points(recipe: Recipe) -> tuple[int, list[int], dict[float, int]]:
    """Where `ablate pretrain` stops and what it keeps: (end tokens, token counts to keep a checkpoint
    at before the end, phase → its start). Without ablations.phases: the recipe's start, nothing
    kept, no phases; with them, the latest start, and a checkpoint at every earlier one."""
    starts = {p: phase_recipe(recipe, p).training.start_tokens for p in recipe.ablations.phases}
    points = [recipe.training.start_tokens, *starts.values()]
    end = max(points)
    return end, sorted({t for t in points if t < end}), starts


# ---- the plan ------------------------------------------------------------------------------


def build_plan(
    recipe: Recipe,
    request: PlanRequest | None = None,
    *,
    subset_tokens: dict[str, int] | None = None,
    task_sizes: dict[str, int] | None = None,
    params: int | None = None,
    rungs: dict[str, int] | None = None,
) -> Plan:
    """The study's variants with mixtures, epochs, cost and hashes; the request overrides the recipe.

    `subset_tokens` fills sizes the recipe omits; `task_sizes` (items per eval task) gives the
    minimum detectable effect per task, at the items lm-eval scores (at most `eval.limit` of them);
    `params`, the start checkpoint's parameter count (ablate.plan.model), is the cost's N unless the
    recipe sets model.params; without either, model.config is counted. With a `ladder:` in the recipe,
    every variant runs from every rung's start: `rungs` gives each start's count where ladder.rungs
    does not (plan reads it off the checkpoint).
    """
    asked = (request or PlanRequest()).applied(recipe)
    seeds, baseline_seeds, phases = asked.seeds or [], asked.baseline_seeds or 0, asked.phases or []
    design, rule = asked.design or Design(), asked.renormalize or "proportional"
    # The baseline's replicates: the next seeds after the study's, so every other variant keeps its hash.
    replicate_seeds = [*seeds, *(max(seeds) + 1 + i for i in range(baseline_seeds - len(seeds)))]
    ladder = ladder_rungs(recipe, rungs or {})
    if ladder and request is not None and request.checkpoint not in (None, ladder[-1].checkpoint):
        raise AblateError(
            f"--checkpoint {request.checkpoint}: a ladder starts from its rungs; change ladder.rungs instead"
        )
    checkpoint = ladder[-1].checkpoint if ladder else asked.checkpoint

    sizes = {name: s.tokens for name, s in recipe.subsets.items() if s.tokens is not None}
    sizes = {**(subset_tokens or {}), **sizes}  # the recipe's own figure wins
    params = ladder[-1].params if ladder else recipe.model.params or params or count_params(recipe.model.config)
    upsample = normalize(recipe.mixes.upsample)

    arms: list[tuple[str, list[str], list[str], dict[str, float]]] = [(BASELINE, [], [], upsample)]
    # A share's passes grow with the phase's length: caps hold in the longest phase a mixture runs in.
    longest = max(phases) if phases else recipe.training.phase
    caps = share_caps(recipe, sizes, phase_recipe(recipe, longest).training.phase_tokens)
    if design.kind == "swarm":
        width = len(str(design.n))
        arms += [(f"swarm-{i + 1:0{width}d}", [], [], m) for i, m in enumerate(swarm(upsample, design, caps))]
    elif design.kind == "perturb":
        arms += [(name, [], [], mixture) for name, mixture in perturbed(upsample, design, caps)]
    for target in asked.removes or []:
        removed = resolve_target(recipe, target)
        if set(upsample) <= set(removed):
            raise AblateError(f"--remove {target}: removes every subset of the upsample mix; keep at least one")
        arms.append((f"no-{target}", target.split("+"), removed, renormalize(upsample, set(removed), rule)))
    if asked.control:
        arms.append(("control", [], [], normalize(recipe.mixes.base)))
    mixtures = asked.mixtures or {}  # last: adding one leaves every other variant where it was
    only: dict[int, str] = {}  # arm → its phase: an added mixture named `name@p25` is planned there alone
    for name, mixture in mixtures.items():
        unknown = sorted(set(mixture) - set(recipe.subsets))
        if unknown or mixture_problem(mixture):
            raise AblateError(f"mixture {name}: {unknown or mixture} is not a mixture of the recipe's subsets")
        named = VariantName.parse_ablation(name)
        if named.label is not None:
            only[len(arms)] = named.label
        arms.append((named.base, [], [], {s: p for s, p in mixture.items() if p > 0}))
    for arm, *_ in arms:  # each names a folder of the study: from the recipe's subsets and groups, or --name
        check_name(arm, "variant", fix="rename the recipe's subset or group it comes from, or pass another --name")
    names = [(arm[0], only.get(i)) for i, arm in enumerate(arms)]
    duplicates = sorted({n for n, label in names if names.count((n, label)) > 1})
    if duplicates:
        raise AblateError(f"--remove: {duplicates} given twice; name each target once")

    variants: list[Variant] = []
    warnings: list[str] = []
    lengths: list[float | None] = [*phases] or [None]  # None: the recipe's training.phase, unsuffixed names
    # (label, start, N): every rung of a ladder (a recipe with one has no phases), else the one start
    starts: list[tuple[str | None, str | None, int]] = [(r.label, r.checkpoint, r.params) for r in ladder]
    starts = starts or [(None, checkpoint, params)]
    for phase, (rung, rung_start, size) in ((p, s) for p in lengths for s in starts):
        at = phase_recipe(recipe, phase)
        label = rung if phase is None else phase_label(phase)  # a phase's start: the start's name at it (ckpt@p10)
        start = rung_start if phase is None or rung_start is None else str(VariantName(rung_start, label))
        phase_tokens = at.training.phase_tokens
        for index, (arm, removed, removed_subsets, mixture) in enumerate(arms):
            if index in only and label != only[index]:
                continue
            ablation = str(VariantName(arm, label))
            drawn = {s: round(p * phase_tokens) for s, p in mixture.items()}
            epochs = {s: (drawn[s] / sizes[s] if s in sizes else None) for s in mixture}
            for seed in replicate_seeds if index == 0 else seeds:  # arm 0 is the baseline
                trained = train_hash(at, mixture, seed=seed, start=start)
                variants.append(
                    Variant(
                        name=str(VariantName(arm, label, None if len(seeds) == 1 and seed == seeds[0] else seed)),
                        ablation=ablation,
                        phase=phase,
                        removed=removed,
                        removed_subsets=removed_subsets,
                        mixture=mixture,
                        tokens=phase_tokens,
                        start_tokens=at.training.start_tokens,
                        seed=seed,
                        checkpoint=start,
                        subset_tokens=drawn,
                        epochs=epochs,
                        flops=6.0 * size * phase_tokens,
                        train_hash=trained,
                        hash=result_hash(trained, recipe.eval),
                        params=size if rung else None,
                    )
                )
            for subset, passes in epochs.items():
                cap = recipe.subsets[subset].max_passes
                if passes is not None and cap is not None and passes > cap + 1e-9:
                    warnings.append(f"{ablation}: '{subset}' repeats {passes:.1f}×, above its max_passes {cap:g}")
                elif passes is not None and passes > EPOCH_STRONG:
                    fix = "lower its weight or add data"
                    warnings.append(f"{ablation}: '{subset}' repeats {passes:.1f}× (> {EPOCH_STRONG:g}); {fix}")
                elif passes is not None and passes > EPOCH_WARN:
                    warnings.append(
                        f"{ablation}: '{subset}' repeats {passes:.1f}× (> {EPOCH_WARN:g}); returns diminish"
                    )
    if ladder and recipe.training.schedule.peak == "recipe":
        warnings.append(
            "ladder: every rung continues at training.optimizer.lr; a ladder's sizes usually train at their own "
            "LR: training.schedule.peak: checkpoint continues each at its start's"
        )
    unknown = sorted({s for v in variants for s, e in v.epochs.items() if e is None})
    if unknown:
        warnings.append(f"sizes unknown for {unknown}: set subsets.<name>.tokens or build shards to see epochs")

    study_flops = sum(v.flops for v in variants)
    full_run_flops = 6.0 * params * recipe.training.total_tokens
    scored = {task: min(n, recipe.eval.limit or n) for task, n in (task_sizes or {}).items()}  # what lm-eval scores
    return Plan(
        study=recipe.name,
        recipe=recipe.model_dump(mode="json"),
        options=asked.model_copy(update={"checkpoint": checkpoint}),
        subset_sizes=sizes,
        task_sizes=dict(sorted((task_sizes or {}).items())),
        params=params,
        start_hash=start_hash(checkpoint, recipe.eval),
        variants=variants,
        study_tokens=sum(v.tokens for v in variants),
        study_flops=study_flops,
        full_run_flops=full_run_flops,
        study_fraction=study_flops / full_run_flops,
        power={
            task: TaskPower(items=n, mde_pp=100 * minimum_detectable_effect(n, 0.5))
            for task, n in sorted(scored.items())
        },
        warnings=warnings,
        rungs=ladder,
    )


def replan(
    plan: Plan, recipe: Recipe, *, checkpoint: str | None = None, mixtures: dict[str, dict[str, float]] | None = None
) -> Plan:
    """The same study with another start checkpoint (every hash changes, no result is reused) or
    with `mixtures` added (the other variants keep their hashes and results). Its cost keeps the plan's
    parameter count: `ablate plan --checkpoint` counts another start's."""
    options = plan.options
    request = options.model_copy(
        update={
            "mixtures": {**(options.mixtures or {}), **(mixtures or {})},
            "checkpoint": options.checkpoint if checkpoint is None else checkpoint,
        }
    )
    return build_plan(
        recipe,
        request,
        subset_tokens=plan.subset_sizes,
        task_sizes=plan.task_sizes,
        params=plan.params,
        rungs={r.checkpoint: r.params for r in plan.rungs},
    )
