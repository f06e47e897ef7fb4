"""The embedded demo: the whole study on the built-in corpus, one command, resumable.

    ablate demo                  # data → pretrain → plan → run → report, under the current folder
    ablate demo --out /tmp/d     # the same under /tmp/d (data/demo/, results/demo/)
    ablate demo --fast           # the test suite's demo: same phase, shorter pretraining, no control
    ablate demo --trust          # two seeds × two phase lengths: how far to trust the table
    ablate demo --suggest        # a swarm, a fitted mixing law, its suggested mixture validated

    from ablate.demo.study import run_demo
    report, seconds, failed = run_demo(Path("/tmp/d"))

Every stage skips work that is already done (shard manifests, the pretrain status, variant hashes),
so an interrupted demo, rerun, picks up where it stopped. Wall time per stage is written to
results/demo/demo_timings.json.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.recipe import DEMO_RECIPE, Design, Recipe, load_recipe

# --fast keeps the phase, where the skills are learned, after two thirds of the pretraining (its
# schedule is warm-up then flat, so that is the full demo's model at 1.02M tokens), without control.
FAST_PRETRAIN_TOKENS = 1_024_000
# --trust: two data-order seeds and two phase lengths, the demo's 25% and a 10% one, so the report
# can show seed noise (SNR, seeds needed) and whether the cheaper phase ranks the removals alike.
TRUST_SEEDS = [1, 2]
TRUST_PHASES = [0.1, 0.25]
# --suggest: a swarm of mixtures around the baseline, a fitted law of the skills category, the mixture
# it predicts best within a KL trust region, then that mixture trained and measured like the others.
SUGGEST_DESIGN = Design(kind="swarm", n=12, concentration=20.0, seed=0)
SUGGEST_OBJECTIVE = {"skills": 1.0}  # target → weight (ablate.analyze.fit.objective_weights)
SUGGEST_RADIUS = 0.1


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Recipe paths resolve against the working directory: the demo's root is its --out folder."""
    path.mkdir(parents=True, exist_ok=True)
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def demo_recipe(fast: bool = False, *, trust: bool = False, suggest: bool = False) -> Recipe:
    """The shipped demo recipe; `fast` is the same phase after a shorter pretraining, without control;
    `trust` the same study with TRUST_SEEDS and TRUST_PHASES, as its own study `demo-trust`;
    `suggest` a swarm (SUGGEST_DESIGN) without control, as `demo-suggest`."""
    recipe = load_recipe(DEMO_RECIPE)
    if suggest:
        ablations = recipe.ablations.model_copy(update={"design": SUGGEST_DESIGN, "control": False})
        return recipe.model_copy(update={"name": f"{recipe.name}-suggest", "ablations": ablations})
    if trust:
        ablations = recipe.ablations.model_copy(update={"seeds": TRUST_SEEDS, "phases": TRUST_PHASES})
        return recipe.model_copy(update={"name": f"{recipe.name}-trust", "ablations": ablations})
    if not fast:
        return recipe
    training = recipe.training
    total = FAST_PRETRAIN_TOKENS + training.phase_tokens
    return recipe.model_copy(
        update={
            "name": f"{recipe.name}-fast",
            "training": training.model_copy(update={"total_tokens": total, "phase": training.phase_tokens / total}),
            "ablations": recipe.ablations.model_copy(update={"control": False}),
        }
    )


def rerun_recipe(recipe: Recipe, name: str, seed: int, start: str) -> Recipe:
    """`recipe` as its own study `name`, continued from the checkpoint at `start` with phase seed `seed`
    (and its baseline replicates after it): how far a study's flags survive a rerun is measured so."""
    return recipe.model_copy(
        update={
            "name": name,
            "ablations": recipe.ablations.model_copy(update={"seeds": [seed]}),
            "checkpoints": {"pretrained": start},
        }
    )


def run_demo(
    out: Path,
    *,
    fast: bool = False,
    trust: bool = False,
    suggest: bool = False,
    parallel: int | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_pretrain_progress: Callable[[int], None] | None = None,
    run_observer: Any = None,
) -> tuple[Any, dict[str, float], list[Any]]:
    """Run every stage under `out`; returns the report, wall seconds per stage and the jobs that
    failed (ablate.run.Outcome; the report shows them without numbers, a rerun retries them).

    `parallel` variants run at once; by default one per core, each single-threaded: on 2 cores two
    such jobs trained ~56k tokens/s together against ~45k for one job on two threads, and one
    variant's evaluation overlaps another's training.
    """
    from ablate.data.build import build_subsets
    from ablate.demo.corpus import write_demo
    from ablate.plan.study import plan_study
    from ablate.report import Settings, build_report, write_report
    from ablate.report.load import load_study
    from ablate.run.launch import available_cores
    from ablate.run.pretrain import pretrain
    from ablate.run.runner import Launch, run_study
    from ablate.study.store import study_dir, write_json

    recipe = demo_recipe(fast, trust=trust, suggest=suggest)
    seconds: dict[str, float] = {}

    def stage(name: str) -> contextlib.AbstractContextManager[None]:
        @contextlib.contextmanager
        def timed() -> Iterator[None]:
            if on_stage:
                on_stage(name)
            started = time.perf_counter()
            yield
            seconds[name] = round(time.perf_counter() - started, 2)

        return timed()

    with working_directory(out):
        with stage("data"):
            write_demo(Path("."))
            build_subsets(recipe)
        how = Launch(parallel=parallel or available_cores())
        with stage("pretrain"):
            pretrain(recipe, on_progress=on_pretrain_progress)
        with stage("plan"):
            # A demo folder from an older ablate whose demo recipe evaluates differently (held-out loss
            # was added) is evaluated again; trained weights are never thrown away.
            plan_study(recipe, reevaluate=True)
        with stage("run"):
            outcomes = run_study(recipe.name, how=how, observer=run_observer)
        unsuggested = None  # why no mixture was suggested, when the fits could not choose one
        if suggest and not [o for o in outcomes if o.state != "done"]:
            from ablate.analyze.fit import suggest_study
            from ablate.analyze.suggest import SuggestRequest
            from ablate.plan.study import load_plan

            with stage("suggest"):  # once: a rerun would fit the suggestion's own result too
                if "suggested" not in (load_plan(recipe.name).options.mixtures or {}):
                    try:
                        suggest_study(recipe.name, SuggestRequest(SUGGEST_OBJECTIVE, radius=SUGGEST_RADIUS))
                    except AblateError as exc:  # an honest outcome of a swarm, not a failure of the demo
                        unsuggested = f"no mixture suggested: {str(exc).removeprefix('suggest: ')}"
            if unsuggested is None:
                with stage("validate"):
                    outcomes = run_study(recipe.name, how=how, observer=run_observer)
        with stage("report"):
            report = build_report(load_study(recipe.name), Settings())
            if unsuggested:
                report = replace(report, notes=[*report.notes, unsuggested])
            write_report(report, study_dir(recipe.name))
        write_json(study_dir(recipe.name) / "demo_timings.json", {**seconds, "total": round(sum(seconds.values()), 2)})
    return report, seconds, [outcome for outcome in outcomes if outcome.state != "done"]
