"""The plan's arithmetic on small hand-computed cases: renormalization, groups, epochs, cost, hashes."""

import numpy as np
import pytest

from ablate.errors import AblateError, RecipeError
from ablate.plan.build import (
    Plan,
    build_plan,
    count_params,
    normalize,
    pretrain_points,
    renormalize,
    replan,
    resolve_target,
    swarm,
)
from ablate.plan.designs import capped
from ablate.plan.request import PlanRequest
from ablate.recipe import Design, parse_recipe


def make_recipe(**overrides):
    raw = {
        "name": "toy",
        "seq_len": 8,
        "tokenizer": "tok",
        "model": {"params": 1000},
        "subsets": {
            "web": {"location": "mds/web", "tokens": 10_000, "groups": ["general"]},
            "gsm": {"location": "mds/gsm", "tokens": 100, "groups": ["math", "reasoning"]},
            "proofs": {"location": "mds/proofs", "tokens": 400, "groups": ["math"]},
            "py": {"location": "mds/py", "groups": ["code", "reasoning"]},
        },
        "mixes": {"base": {"web": 9, "py": 1}, "upsample": {"web": 4, "gsm": 2, "proofs": 2, "py": 2}},
        "training": {"total_tokens": 10_000, "phase": 0.1, "batch_size": 4},
        "eval": {"tasks": ["t"]},
        # One run per variant, so the tests below can count variants; test_baseline_replicates_* plan them.
        "ablations": {"control": False, "baseline_seeds": 1},
    }
    raw.update(overrides)
    return parse_recipe(raw)


def test_proportional_renormalization_scales_the_rest_up():
    mix = normalize({"a": 4, "b": 2, "c": 2, "d": 2})
    out = renormalize(mix, {"b", "c"}, "proportional")
    # a: 0.4 / 0.6, d: 0.2 / 0.6
    assert out == pytest.approx({"a": 2 / 3, "d": 1 / 3})


def test_into_renormalization_gives_all_freed_mass_to_one_subset():
    mix = normalize({"a": 4, "b": 2, "c": 2, "d": 2})
    out = renormalize(mix, {"b", "c"}, "into:d")
    assert out == pytest.approx({"a": 0.4, "d": 0.6})
    assert sum(out.values()) == pytest.approx(1.0)


def test_into_a_removed_subset_is_an_error():
    with pytest.raises(AblateError, match="itself removed"):
        renormalize(normalize({"a": 1, "b": 1}), {"b"}, "into:b")


def test_removing_everything_is_an_error():
    with pytest.raises(AblateError, match="removes every subset"):
        renormalize(normalize({"a": 1, "b": 1}), {"a", "b"}, "proportional")


def test_overlapping_groups_resolve_to_their_union():
    recipe = make_recipe()
    assert resolve_target(recipe, "math") == ["gsm", "proofs"]
    assert resolve_target(recipe, "reasoning") == ["gsm", "py"]
    assert resolve_target(recipe, "math+reasoning") == ["gsm", "proofs", "py"]
    assert resolve_target(recipe, "py+general") == ["py", "web"]


def test_unknown_target_lists_valid_names():
    with pytest.raises(
        AblateError, match=r"unknown target 'maths'.*groups: \['code', 'general', 'math', 'reasoning'\]"
    ):
        resolve_target(make_recipe(), "maths")


def test_default_variants_are_one_per_group_plus_baseline():
    plan = build_plan(make_recipe())
    assert [v.name for v in plan.variants] == ["baseline", "no-general", "no-math", "no-reasoning", "no-code"]
    assert all(sum(v.mixture.values()) == pytest.approx(1.0) for v in plan.variants)


def test_baseline_replicates_come_by_default_and_leave_every_other_variant_as_it_was():
    one = build_plan(make_recipe(), PlanRequest(removes=["math"]))
    two = build_plan(make_recipe(ablations={"control": False}), PlanRequest(removes=["math"]))  # the default: 2
    assert [v.name for v in two.variants] == ["baseline", "baseline.s1", "no-math"]
    replicate = two.variant("baseline.s1")
    assert replicate.ablation == "baseline" and replicate.seed == 1 and replicate.mixture == one.variants[0].mixture
    assert [(v.name, v.hash) for v in two.variants if v.name != "baseline.s1"] == [
        (v.name, v.hash) for v in one.variants
    ]
    assert two.options.baseline_seeds == 2 and two.study_tokens == 3 * one.variants[0].tokens
    # Seeds the study already runs count: --seeds 3,7 gives the baseline two; --baseline-seeds 3 one more, after 7.
    assert [v.name for v in build_plan(make_recipe(), PlanRequest(removes=["math"], seeds=[3, 7], baseline_seeds=2)).variants] == [
        "baseline.s3", "baseline.s7", "no-math.s3", "no-math.s7"]  # fmt: skip
    three = build_plan(make_recipe(), PlanRequest(removes=["math"], seeds=[3, 7], baseline_seeds=3))
    assert [v.name for v in three.variants][:3] == ["baseline.s3", "baseline.s7", "baseline.s8"]
    # A phase study replicates each phase's baseline; 0 plans none.
    phased = build_plan(make_recipe(ablations={"control": False, "phases": [0.1, 0.2]}), PlanRequest(removes=["math"]))
    assert [v.name for v in phased.variants if v.ablation.startswith("baseline")] == [
        "baseline@p10", "baseline@p10.s1", "baseline@p20", "baseline@p20.s1"]  # fmt: skip
    assert [v.name for v in build_plan(make_recipe(), PlanRequest(removes=["math"], baseline_seeds=0)).variants] == [
        "baseline", "no-math"]  # fmt: skip
    # Re-planning keeps what was asked; a plan written before replicates existed re-plans without one.
    assert [v.name for v in replan(two, make_recipe()).variants] == [v.name for v in two.variants]
    old = two.model_copy(update={"options": two.options.model_copy(update={"baseline_seeds": 1})})
    payload = two.model_dump(mode="json")
    del payload["options"]["baseline_seeds"]
    assert Plan.model_validate(payload).options.baseline_seeds == 1
    assert [v.name for v in replan(old, make_recipe()).variants] == ["baseline", "no-math"]


def test_each_subset_and_control():
    plan = build_plan(make_recipe(), PlanRequest(each="subset", control=True))
    assert [v.name for v in plan.variants] == ["baseline", "no-web", "no-gsm", "no-proofs", "no-py", "control"]
    assert plan.variant("control").mixture == pytest.approx({"web": 0.9, "py": 0.1})


def test_epochs_tokens_and_cost_by_hand():
    plan = build_plan(make_recipe(), PlanRequest(removes=["math"]))
    baseline, no_math = plan.variants
    # phase = 10% of 10,000 tokens = 1,000; baseline mix 0.4/0.2/0.2/0.2
    assert baseline.tokens == 1000 and baseline.start_tokens == 9000
    assert baseline.subset_tokens == {"web": 400, "gsm": 200, "proofs": 200, "py": 200}
    assert baseline.epochs == {"web": 0.04, "gsm": 2.0, "proofs": 0.5, "py": None}
    # math removed: web 0.4/0.6, py 0.2/0.6
    assert no_math.mixture == pytest.approx({"web": 2 / 3, "py": 1 / 3})
    assert no_math.removed == ["math"] and no_math.removed_subsets == ["gsm", "proofs"]
    # 6·N·D with N = 1,000 params
    assert baseline.flops == 6 * 1000 * 1000
    assert plan.study_flops == 2 * 6e6
    assert plan.study_fraction == pytest.approx(2 * 1000 / 10_000)
    assert any("sizes unknown for ['py']" in w for w in plan.warnings)


def test_manifest_sizes_fill_gaps_and_warn_on_repeats():
    plan = build_plan(make_recipe(), PlanRequest(removes=["math"]), subset_tokens={"py": 40, "web": 1})
    baseline = plan.variants[0]
    assert baseline.epochs["py"] == 5.0  # 200 / 40, above the warning line
    assert baseline.epochs["web"] == 0.04  # the recipe's own size wins over the manifest's
    assert any("'py' repeats 5.0× (> 4)" in w for w in plan.warnings)
    plan = build_plan(make_recipe(), PlanRequest(removes=["math"]), subset_tokens={"py": 10})
    assert any("'py' repeats 20.0× (> 16); lower its weight" in w for w in plan.warnings)


def test_seeds_replicate_every_variant():
    plan = build_plan(make_recipe(), PlanRequest(removes=["code"], seeds=[1, 2]))
    assert [v.name for v in plan.variants] == ["baseline.s1", "baseline.s2", "no-code.s1", "no-code.s2"]
    assert [v.ablation for v in plan.variants] == ["baseline", "baseline", "no-code", "no-code"]
    assert len({v.hash for v in plan.variants}) == 4


def test_hash_is_stable_and_tracks_everything_that_changes_a_result():
    base = build_plan(make_recipe(), PlanRequest(removes=["math"])).variants[1].hash
    assert build_plan(make_recipe(), PlanRequest(removes=["math"])).variants[1].hash == base
    changed = [
        make_recipe(training={"total_tokens": 10_000, "phase": 0.2, "batch_size": 4}),
        make_recipe(training={"total_tokens": 10_000, "phase": 0.1, "batch_size": 8}),
        make_recipe(seq_len=16),
        make_recipe(tokenizer="other"),
        make_recipe(eval={"tasks": ["t", "u"]}),
        make_recipe(mixes={"base": {"web": 1}, "upsample": {"web": 5, "gsm": 2, "proofs": 2, "py": 2}}),
    ]
    for recipe in changed:
        assert build_plan(recipe, PlanRequest(removes=["math"])).variants[1].hash != base
    assert build_plan(make_recipe(), PlanRequest(removes=["math"], seeds=[3])).variants[1].hash != base
    assert build_plan(make_recipe(), PlanRequest(removes=["math"], checkpoint="ckpt/b.pt")).variants[1].hash != base


def test_hash_ignores_what_cannot_change_a_result():
    base = build_plan(make_recipe(), PlanRequest(removes=["math"])).variants[1]
    # a subset the variant does not train on moves: its result cannot change
    subsets = make_recipe().model_dump()["subsets"]
    subsets["gsm"]["location"] = "elsewhere/gsm"
    moved = build_plan(make_recipe(subsets=subsets), PlanRequest(removes=["math"])).variants[1]
    assert moved.hash == base.hash
    # eval settings change the result's hash but not the trained weights'
    other_eval = build_plan(make_recipe(eval={"tasks": ["u"]}), PlanRequest(removes=["math"])).variants[1]
    assert other_eval.train_hash == base.train_hash and other_eval.hash != base.hash


def test_sharding_and_the_eval_backend_change_the_hashes_only_when_set():
    plain = build_plan(make_recipe(), PlanRequest(removes=["math"])).variants[1]
    assert (plain.train_hash, plain.hash) == ("0320f4c07c2f62bd", "f04de572b3eab834")  # as before fsdp existed

    def sharded(**fsdp):
        training = {"total_tokens": 10_000, "phase": 0.1, "batch_size": 4, "fsdp": fsdp}
        return build_plan(make_recipe(training=training), PlanRequest(removes=["math"])).variants[1].train_hash

    layout = sharded(state_dict_type="full", activation_checkpointing=True, reshard_after_forward=False)
    assert layout == sharded() != plain.train_hash  # the block's presence records its mixed precision
    assert sharded(mixed_precision="PURE") != sharded()
    for evaluation in ({"tasks": ["t"], "backend": "vllm"}, {"tasks": ["t"], "model_args": {"dtype": "bfloat16"}}):
        other = build_plan(make_recipe(eval=evaluation), PlanRequest(removes=["math"])).variants[1]
        assert other.train_hash == plain.train_hash and other.hash != plain.hash  # evaluated again, not retrained


def test_a_phase_warm_up_must_end_inside_the_phase():
    from ablate.errors import RecipeError

    training = {"total_tokens": 10_000, "phase": 0.1, "batch_size": 4, "schedule": {"warmup_tokens": 1_000}}
    with pytest.raises(RecipeError, match=r"training\.schedule\.warmup_tokens: 1,000 is not shorter than the phase"):
        make_recipe(training=training)
    training["schedule"] = {"warmup_tokens": 100, "peak": "checkpoint"}
    assert build_plan(make_recipe(training=training), PlanRequest(removes=["math"])).variants[1].train_hash != "0320f4c07c2f62bd"


def test_fsdp_block_is_validated():
    from ablate.errors import RecipeError

    training = {"total_tokens": 10_000, "phase": 0.1, "batch_size": 4}
    with pytest.raises(RecipeError, match=r"training\.fsdp\.state_dict_type: Input should be 'sharded' or 'full'"):
        make_recipe(training={**training, "fsdp": {"state_dict_type": "local"}})
    with pytest.raises(RecipeError, match=r"training\.fsdp\.shard_grad_op: unknown field"):
        make_recipe(training={**training, "fsdp": {"shard_grad_op": True}})


def test_replan_moves_the_start_or_adds_a_mixture():
    recipe = make_recipe()
    plan = build_plan(recipe, PlanRequest(removes=["math", "code"], seeds=[4], control=True, renormalize="into:web"))
    moved = replan(plan, recipe, checkpoint="ckpt/other.pt")
    assert [v.name for v in moved.variants] == [v.name for v in plan.variants]
    assert all(v.checkpoint == "ckpt/other.pt" for v in moved.variants)
    assert [v.mixture for v in moved.variants] == [v.mixture for v in plan.variants]
    assert not {v.hash for v in moved.variants} & {v.hash for v in plan.variants}
    added = replan(plan, recipe, mixtures={"suggested": {"web": 0.5, "gsm": 0.5}})
    assert [v.hash for v in added.variants][:-1] == [v.hash for v in plan.variants]  # nothing turns stale
    assert added.variants[-1].name == "suggested" and added.variants[-1].mixture == {"web": 0.5, "gsm": 0.5}
    assert replan(added, recipe).variants == added.variants  # the added mixture is part of the plan
    with pytest.raises(AblateError, match="mixture bad: "):
        replan(plan, recipe, mixtures={"bad": {"web": 0.5, "nope": 0.5}})


def test_duplicate_targets_are_an_error():
    with pytest.raises(AblateError, match="given twice"):
        build_plan(make_recipe(), PlanRequest(removes=["math", "math"]))


def test_llama_parameter_count_by_hand():
    config = {
        "hidden_size": 8,
        "num_hidden_layers": 2,
        "vocab_size": 10,
        "intermediate_size": 16,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "tie_word_embeddings": False,
    }
    # per layer: q,o 2·64 + k,v 2·8·4 + mlp 3·8·16 + norms 2·8 = 128 + 64 + 384 + 16 = 592
    assert count_params(config) == 2 * 592 + 2 * 10 * 8 + 8


def test_power_per_task_from_sizes():
    plan = build_plan(make_recipe(), PlanRequest(removes=["math"]), task_sizes={"t": 1000})
    # (1.96 + 0.84) · sqrt(2 · 0.25 / 1000) ≈ 6.26 points
    assert plan.power["t"].mde_pp == pytest.approx(6.26, abs=0.01)


def test_power_counts_only_the_items_eval_limit_scores():
    limited = make_recipe(eval={"tasks": ["t", "u"], "limit": 250})
    plan = build_plan(limited, PlanRequest(removes=["math"]), task_sizes={"t": 1000, "u": 100})
    assert (plan.power["t"].items, plan.power["u"].items) == (250, 100)
    # (1.96 + 0.84) · sqrt(2 · 0.25 / 250) ≈ 12.53 points: a quarter of the items, twice the detectable Δ
    assert plan.power["t"].mde_pp == pytest.approx(12.53, abs=0.01)


def test_phases_plan_every_variant_at_every_phase_from_its_own_start():
    plan = build_plan(make_recipe(), PlanRequest(removes=["code"], phases=[0.2, 0.05], checkpoint="ckpt"))
    assert [v.name for v in plan.variants] == ["baseline@p5", "no-code@p5", "baseline@p20", "no-code@p20"]
    by_name = {v.name: v for v in plan.variants}
    short, long = by_name["no-code@p5"], by_name["no-code@p20"]
    assert (short.phase, short.tokens, short.start_tokens, short.checkpoint) == (0.05, 500, 9_500, "ckpt@p5")
    assert (long.phase, long.tokens, long.start_tokens, long.checkpoint) == (0.2, 2_000, 8_000, "ckpt@p20")
    assert short.ablation == "no-code@p5" and short.mixture == long.mixture
    assert len({v.train_hash for v in plan.variants}) == 4
    assert plan.options.phases == [0.05, 0.2]
    assert plan.study_tokens == 2 * 500 + 2 * 2_000
    seeded = build_plan(make_recipe(), PlanRequest(removes=["code"], phases=[0.1], seeds=[1, 2], checkpoint="ckpt"))
    assert [v.name for v in seeded.variants][:2] == ["baseline@p10.s1", "baseline@p10.s2"]
    # The recipe's own phase as a one-phase study trains the same weights, under a phase name.
    plain = build_plan(make_recipe(), PlanRequest(removes=["code"], checkpoint="ckpt")).variants[1]
    assert seeded.variants[2].tokens == plain.tokens
    replanned = replan(plan, make_recipe(), checkpoint="other")
    assert [v.checkpoint for v in replanned.variants] == ["other@p5", "other@p5", "other@p20", "other@p20"]
    # A mixture added at one phase (as `ablate suggest` adds the one fitted there) is planned there alone.
    mix = {"web": 0.5, "gsm": 0.1, "proofs": 0.1, "py": 0.3}
    added = replan(plan, make_recipe(), mixtures={"suggested@p20": mix, "other@p5": mix, "everywhere": mix})
    assert [v.name for v in added.variants] == [
        "baseline@p5",
        "no-code@p5",
        "other@p5",
        "everywhere@p5",
        "baseline@p20",
        "no-code@p20",
        "suggested@p20",
        "everywhere@p20",
    ]
    kept = {v.name: v.hash for v in added.variants}
    assert all(kept[v.name] == v.hash for v in plan.variants)  # nothing planned before changes
    twice = replan(added, make_recipe(), mixtures={"suggested@p5": mix})  # the same name, fitted at both phases
    assert {"suggested@p5", "suggested@p20"} <= {v.name for v in twice.variants}


def test_bad_phases_are_refused():
    for phases in ([0.1, 0.1], [0.0], [1.0]):
        with pytest.raises(AblateError, match="--phases"):
            build_plan(make_recipe(), PlanRequest(phases=phases))
    with pytest.raises(AblateError, match="ablations.phases.0: Input should be less than 1"):
        make_recipe(ablations={"control": False, "phases": [1.5]})


def test_pretraining_stops_at_the_latest_phase_start_and_keeps_the_others():
    assert pretrain_points(make_recipe()) == (9_000, [], {})
    phased = make_recipe(ablations={"control": False, "phases": [0.05, 0.2]})
    assert pretrain_points(phased) == (9_500, [8_000, 9_000], {0.05: 9_500, 0.2: 8_000})


def test_a_swarm_draws_seeded_mixtures_around_the_baseline_mix():
    plan = build_plan(make_recipe(), PlanRequest(design=Design(kind="swarm", n=5, concentration=50, seed=3)))
    names = [v.name for v in plan.variants]
    assert names == ["baseline", "swarm-1", "swarm-2", "swarm-3", "swarm-4", "swarm-5"]
    for variant in plan.variants:
        assert sum(variant.mixture.values()) == pytest.approx(1.0) and set(variant.mixture) == {
            "web",
            "gsm",
            "proofs",
            "py",
        }
    again = build_plan(make_recipe(), PlanRequest(design=Design(kind="swarm", n=5, concentration=50, seed=3)))
    assert [v.mixture for v in again.variants] == [v.mixture for v in plan.variants]
    other = build_plan(make_recipe(), PlanRequest(design=Design(kind="swarm", n=5, concentration=50, seed=4)))
    assert [v.hash for v in other.variants][1:] != [v.hash for v in plan.variants][1:]
    center = normalize({"web": 4, "gsm": 2, "proofs": 2, "py": 2})
    many = swarm(center, Design(kind="swarm", n=4_000, concentration=20, seed=0), {})
    for subset, share in center.items():  # the Dirichlet's mean is the baseline mix, its variance p(1−p)/(α+1)
        draws = np.array([m[subset] for m in many])
        assert draws.mean() == pytest.approx(share, abs=0.01)
        assert draws.var() == pytest.approx(share * (1 - share) / 21, rel=0.1)
    with pytest.raises(AblateError, match="--remove and --design swarm"):
        build_plan(make_recipe(), PlanRequest(removes=["math"], design=Design(kind="swarm")))


def test_perturbed_mixtures_weight_each_subset_up_and_down():
    plan = build_plan(make_recipe(), PlanRequest(design=Design(kind="perturb", factor=2)))
    by_name = {v.name: v.mixture for v in plan.variants}
    assert list(by_name) == ["baseline", *[f"{d}-{s}" for s in ("web", "gsm", "proofs", "py") for d in ("up", "down")]]
    up, down = by_name["up-gsm"], by_name["down-gsm"]
    assert up["gsm"] / up["proofs"] == pytest.approx(2 * 2 / 2) and down["gsm"] / down["proofs"] == pytest.approx(0.5)
    assert up["web"] / up["py"] == pytest.approx(4 / 2)  # the others keep their ratios


def test_repetition_caps_hold_in_every_design_and_warn_in_leave_one_out():
    # gsm has 100 tokens and the phase 1,000: max_passes 1 caps its share at 10% (it is 20% in the mix).
    capped_recipe = make_recipe(
        subsets={
            "web": {"location": "mds/web", "tokens": 10_000, "groups": ["general"]},
            "gsm": {"location": "mds/gsm", "tokens": 100, "groups": ["math"], "max_passes": 1},
            "proofs": {"location": "mds/proofs", "tokens": 400, "groups": ["math"]},
            "py": {"location": "mds/py", "tokens": 1_000, "groups": ["code"]},
        }
    )
    swarmed = build_plan(capped_recipe, PlanRequest(design=Design(kind="swarm", n=20, seed=1)))
    assert all(v.epochs["gsm"] <= 1 + 1e-9 for v in swarmed.variants if v.name != "baseline")
    perturbed_plan = build_plan(capped_recipe, PlanRequest(design=Design(kind="perturb")))
    up = {v.name: v for v in perturbed_plan.variants}["up-gsm"]
    assert up.mixture["gsm"] == pytest.approx(0.1) and sum(up.mixture.values()) == pytest.approx(1.0)
    loo = build_plan(capped_recipe, PlanRequest(removes=["code"]))
    assert any("'gsm' repeats 2.0×, above its max_passes 1" in w for w in loo.warnings)
    assert capped({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 0.2}, "x") == pytest.approx({"a": 0.2, "b": 0.48, "c": 0.32})
    with pytest.raises(AblateError, match="max_passes caps hold the mixture below 100%"):
        capped({"a": 0.5, "b": 0.5}, {"a": 0.2, "b": 0.3}, "x")


def test_the_suggest_demo_plans_a_swarm_around_the_demo_mix():
    from ablate.demo.study import demo_recipe

    recipe = demo_recipe(suggest=True)
    plan = build_plan(recipe, subset_tokens={s: 10**6 for s in recipe.subsets})
    assert plan.study == "demo-suggest" and [v.name for v in plan.variants][:3] == ["baseline", "baseline.s1", "swarm-01"]
    assert len(plan.variants) == 14 and "control" not in {v.name for v in plan.variants}


def test_a_phase_shorter_than_one_batch_is_refused_by_hand():
    recipe = make_recipe()  # a batch: 4 sequences × 8 tokens = 32 tokens; the phase: 10% of 10,000
    assert recipe.phase_too_short(0.1) is None and recipe.phase_too_short(0.0032) is None  # 32 tokens: one step
    assert "is more than the 0.003 phase's 30 tokens" in recipe.phase_too_short(0.003)
    with pytest.raises(AblateError, match=r"--phases 0\.003: one batch \(training\.batch_size × seq_len = 32 tokens\)"):
        build_plan(recipe, PlanRequest(phases=[0.1, 0.003]))
    with pytest.raises(RecipeError, match=r"training\.phase: one batch .* is more than the 0\.1 phase's 1,000 tokens"):
        make_recipe(training={"total_tokens": 10_000, "phase": 0.1, "batch_size": 200})


def test_every_variant_name_is_checked_to_stay_inside_the_study_folder():
    subsets = {
        "web": {"location": "mds/web", "tokens": 10_000},
        "a/b": {"location": "mds/ab", "tokens": 100},
    }
    mixes = {"base": {"web": 1}, "upsample": {"web": 1, "a/b": 1}}
    with pytest.raises(AblateError, match=r"variant 'no-a/b': holds a path separator; rename the recipe's subset"):
        build_plan(make_recipe(subsets=subsets, mixes=mixes), PlanRequest(each="subset"))
    with pytest.raises(AblateError, match=r"variant 'up-a/b': holds a path separator"):
        build_plan(make_recipe(subsets=subsets, mixes=mixes), PlanRequest(design=Design(kind="perturb")))
    with pytest.raises(AblateError, match=r"variant 'start': is one of the study folder's own entries"):
        build_plan(make_recipe(), PlanRequest(mixtures={"start": {"web": 1.0}}))
    plan = build_plan(make_recipe(), PlanRequest(mixtures={"suggested@p10": {"web": 1.0}}, phases=[0.1]))
    assert "suggested@p10" in [v.name for v in plan.variants]  # the plan's own phase mark is not the user's


def test_every_plan_the_planner_writes_reads_back():
    """plan.json is validated on read (names, mixtures, tokens, seeds): whatever the planner itself writes
    passes, phase marks, seed suffixes, removals of several targets and every design's names included."""
    from ablate.plan.build import Plan

    mix = {"web": 0.5, "gsm": 0.1, "proofs": 0.1, "py": 0.3}
    requests = [
        PlanRequest(removes=["math+code", "py"], seeds=[0, 4_294_967_294], baseline_seeds=3, control=True),
        PlanRequest(each="subset", phases=[0.05, 0.125], seeds=[1, 2], mixtures={"suggested@p5": mix, "mix.v2": mix}),
        PlanRequest(design=Design(kind="swarm", n=12, seed=4_294_967_295)),
        PlanRequest(design=Design(kind="perturb"), renormalize="into:web"),
    ]
    for request in requests:
        plan = build_plan(make_recipe(), request, subset_tokens={"py": 1_000})
        assert Plan.model_validate(plan.model_dump(mode="json")) == plan
    assert {"no-math+code.s0", "baseline.s4294967295", "suggested@p5.s1", "mix.v2@p12.5.s2"} <= {
        v.name for request in requests[:2] for v in build_plan(make_recipe(), request).variants
    }


def test_the_plan_table_gives_the_start_as_the_recipes_figure_not_the_checkpoints():
    """Planning does not open the checkpoint, so the table does not claim what it has seen."""
    from io import StringIO

    from rich.console import Console

    from ablate.plan.view import render_plan

    for request, expected in [
        (PlanRequest(checkpoint="ck"), "from ck (at 9k tokens per the recipe)"),
        (PlanRequest(checkpoint="ck", phases=[0.2]), "@p20: 2k tokens from ck@p20 (at 8k tokens per the recipe)"),
    ]:
        out = StringIO()
        render_plan(build_plan(make_recipe(), request), Console(file=out, width=400), Console(file=StringIO()))
        assert expected in out.getvalue() and "seen" not in out.getvalue()
