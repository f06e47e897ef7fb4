"""A ladder in one plan (recipe `ladder:`): every variant crossed with every rung's start, the rungs labelled
smallest first, each variant's cost at its rung's N, and the refusals; a recipe without a ladder plans the
same variants and hashes as before."""

from __future__ import annotations

import pytest
from fixtures.report_study import fixed_recipe

from ablate.errors import AblateError, RecipeError
from ablate.names import VariantName, label_value
from ablate.plan.build import build_plan
from ablate.recipe import parse_recipe

RUNGS = {"ckpt-big": 4_000_000, "ckpt-small": 250_000, "ckpt-mid": 1_000_000}


def ladder_recipe(**ladder) -> dict:
    raw = fixed_recipe()
    raw.pop("model")
    raw["ladder"] = {"rungs": list(RUNGS), **ladder}
    return raw


def test_every_variant_runs_from_every_rung_smallest_first():
    plan = build_plan(parse_recipe(ladder_recipe(target={"params": 7e9, "tokens": 1.4e11})), rungs=RUNGS)
    assert [(r.label, r.checkpoint, r.params) for r in plan.rungs] == [
        ("r1", "ckpt-small", 250_000), ("r2", "ckpt-mid", 1_000_000), ("r3", "ckpt-big", 4_000_000),
    ]  # fmt: skip
    arms = ["baseline", "no-web", "no-math", "no-code", "no-knowledge", "control"]
    names = [[f"{a}@r{k}", *([f"{a}@r{k}.s1"] if a == "baseline" else [])] for k in (1, 2, 3) for a in arms]
    assert [v.name for v in plan.variants] == [n for pair in names for n in pair]  # each rung's seed replicate
    for variant in plan.variants:
        label = VariantName.parse_ablation(variant.ablation).label
        rung = plan.rungs[int(label_value(label)) - 1]
        assert variant.checkpoint == rung.checkpoint and variant.params == rung.params
        assert variant.flops == 6.0 * rung.params * variant.tokens
    assert plan.params == 4_000_000 and plan.options.checkpoint == "ckpt-big"  # the largest rung leads
    assert len({v.hash for v in plan.variants}) == len(plan.variants)
    assert any("every rung continues at training.optimizer.lr" in w for w in plan.warnings)
    assert plan.study_flops == sum(6.0 * n * plan.variants[0].tokens * (len(arms) + 1) for n in RUNGS.values())


def test_a_recipe_without_a_ladder_plans_as_before():
    """No rung, no `params` on any variant, and the hashes the same with and without rung counts given."""
    recipe = parse_recipe(fixed_recipe())
    plan = build_plan(recipe)
    assert plan.rungs == [] and all(v.params is None for v in plan.variants)
    assert [v.hash for v in plan.variants] == [v.hash for v in build_plan(recipe, rungs=RUNGS).variants]
    assert "params" not in plan.model_dump(mode="json", exclude_defaults=True)["variants"][0]


def test_a_rung_s_params_in_the_recipe_wins_and_a_remote_one_needs_them():
    raw = ladder_recipe()
    raw["ladder"]["rungs"] = ["ckpt-small", {"checkpoint": "s3://b/big", "params": 9_000_000}]
    plan = build_plan(parse_recipe(raw), rungs={"ckpt-small": 250_000})
    assert [(r.checkpoint, r.params) for r in plan.rungs] == [("ckpt-small", 250_000), ("s3://b/big", 9_000_000)]
    raw["ladder"]["rungs"][1] = "s3://b/big"
    with pytest.raises(AblateError, match=r"^ladder.rungs\[1\]: s3://b/big cannot be counted here .*give its params"):
        build_plan(parse_recipe(raw), rungs={"ckpt-small": 250_000})


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda r: r["ladder"].update(rungs=["ckpt-small"]), "ladder.rungs"),
        (lambda r: r["ladder"].update(rungs=["a", "a"]), "checkpoint a is a rung twice"),
        (lambda r: r["ablations"].update(phases=[0.1, 0.2]), "ladder: and ablations.phases"),
        (lambda r: r.update(model={"params": 5}), "model.params: is one size"),
    ],
)
def test_a_ladder_the_plan_cannot_cross_is_refused_at_load(edit, says):
    raw = ladder_recipe()
    edit(raw)
    with pytest.raises(RecipeError) as error:
        parse_recipe(raw)
    assert says in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_two_rungs_of_one_size_or_another_start_are_refused_when_planned():
    recipe = parse_recipe(ladder_recipe())
    with pytest.raises(AblateError, match="two starts of 1,000,000 parameters"):
        build_plan(recipe, rungs={**RUNGS, "ckpt-big": 1_000_000})
    from ablate.plan.request import PlanRequest

    with pytest.raises(AblateError, match="--checkpoint other: a ladder starts from its rungs"):
        build_plan(recipe, PlanRequest(checkpoint="other"), rungs=RUNGS)
