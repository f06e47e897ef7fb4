"""The shared start: `ablate pretrain` trains the recipe's model from scratch on the base mix, in the
study's pretrain/ folder, under the same job rules as a variant (ablate.study.job.next_action), and names
the checkpoints it keeps in checkpoints.json (ablate.study.artifacts.register_checkpoint).

    from ablate.run.pretrain import pretrain
    pretrain(recipe)      # → the path of the checkpoint registered as `pretrained`
"""

from __future__ import annotations

from collections.abc import Callable

from ablate.errors import StudyError
from ablate.names import VariantName, phase_label
from ablate.plan.build import normalize, pretrain_points
from ablate.plan.identity import content_hash, train_hash
from ablate.recipe import Recipe
from ablate.run.folder import checkpoint_at
from ablate.run.worker import progress_into, recording_failure, run_name, tracker_params, train_summary
from ablate.study.artifacts import State, read_status, register_checkpoint, write_status
from ablate.study.job import LATEST, PRETRAIN, PRETRAINED, Do, folder_lock, next_action
from ablate.study.store import study_dir


def pretrain(recipe: Recipe, *, on_progress: Callable[[int], None] | None = None) -> str:
    """Train the recipe's model from scratch on the base mix up to the phase; register the checkpoint.

    Writes results/<study>/pretrain/ and names the checkpoint `pretrained` in the study's
    checkpoints.json. With `ablations.phases`, it trains on to the latest phase's start and keeps a
    checkpoint at each phase's start, registered as `pretrained@p<percent>` (pretrained@p10): the
    starts a phase study continues from. A finished pretraining with the same inputs is reused; an
    interrupted one resumes; one trained from another recipe is refused.
    """
    from ablate.run import train
    from ablate.run.start import new_model

    folder = study_dir(recipe.name) / PRETRAIN
    latest = folder / LATEST
    mixture = normalize(recipe.mixes.base)
    end, keep, starts = pretrain_points(recipe)
    # The pretraining's LR is warm-up then flat, so training on past the recipe's start changes
    # nothing before it; the end and the kept points are what a phase study adds to its identity.
    digest = train_hash(recipe, mixture, phase=False)
    if starts:
        digest = content_hash({"pretrain": digest, "end": end, "keep": keep})
    status = read_status(folder)
    then = next_action(
        status,
        hash=digest,
        train_hash=digest,
        has_checkpoint=latest.exists(),
        tokens=end,
        checkpoint_at=checkpoint_at(folder, status, digest, lambda: 0),
    )
    if then.do == Do.STALE:
        raise StudyError(f"{folder}: pretrained from another recipe ({then.why}); delete the folder to pretrain again")
    fields = {"hash": digest, "train_hash": digest, "tokens": end, "error": None}
    if then.do == Do.EVALUATE:  # its checkpoint already holds every token (its status.json was lost)
        write_status(folder, State.DONE, **fields, tokens_done=end)
    elif then.do != Do.SKIP or not latest.exists():  # the checkpoint is what a pretraining is for
        with folder_lock(folder), recording_failure(folder, leader=True):
            write_status(folder, State.TRAINING, **fields)
            result = train.fit(
                new_model(recipe),
                recipe,
                mixture=mixture,
                seed=recipe.training.seed,
                folder=folder,
                run_name=run_name(recipe.name, "pretrain", digest),
                schedule=train.pretrain_schedule(recipe),
                end_tokens=end,
                on_progress=progress_into(folder, 0, on_progress),
                params=tracker_params(
                    recipe.name, "pretrain", seed=recipe.training.seed, train_hash=digest, mixture=mixture
                ),
                keep_at=keep,
            )
            write_status(folder, State.DONE, **train_summary(result))
    batch = recipe.training.batch_size * recipe.seq_len

    def at(tokens: int) -> str:
        if tokens == end:
            return str(latest)
        kept = train.kept_checkpoint(folder, tokens, batch)
        if kept is None:
            raise StudyError(f"{folder}: no checkpoint kept at {tokens:,} tokens; delete the folder to pretrain again")
        return str(kept)

    register_checkpoint(recipe.name, PRETRAINED, at(recipe.training.start_tokens))
    for phase, tokens in starts.items():
        register_checkpoint(recipe.name, str(VariantName(PRETRAINED, phase_label(phase))), at(tokens))
    return at(recipe.training.start_tokens)
