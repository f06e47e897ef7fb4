"""Jobs: what one process does for one folder of a study. Every launcher ends up here.

    python -m ablate.run.worker demo baseline          # train the variant's phase, then evaluate it
    python -m ablate.run.worker demo start             # evaluate the start checkpoint (once per study)
    python -m ablate.run.worker demo no-math --strict  # a checkpoint token count off the recipe's is an error

A job takes its folder's lock, moves status.json through training → evaluating → done (or failed,
with the error), and never reuses a folder trained for another hash. An interrupted variant
resumes from its own latest checkpoint (Composer autoresume); one whose latest checkpoint already
holds all its tokens (killed in the export, or its status.json deleted) is exported and evaluated
from it; a variant already trained under the same training hash but evaluated under another only
re-evaluates; a done one whose outputs are missing or changed recomputes only those. Only global
rank 0 writes.

What to do with a folder is ablate.study.job.next_action's answer on what ablate.run.folder reads, the
same one the runner got; the exit codes are ablate.study.job.Exit (anything else is a bug, with its
traceback in logs/run.log).
"""

from __future__ import annotations

import argparse
import atexit
import errno
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from functools import cache, partial
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, StudyError
from ablate.plan.build import phase_recipe
from ablate.plan.study import load_study_plan
from ablate.recipe import Recipe
from ablate.run.dist import rank, world_size
from ablate.run.fetch import local_start
from ablate.run.folder import look, start_next, variant_next
from ablate.study.artifacts import (
    HELDOUT,
    State,
    Status,
    read_status,
    resolve_checkpoint,
    write_heldout,
    write_status,
)
from ablate.study.job import (
    CACHE,
    EVAL,
    LATEST,
    MODEL,
    START,
    VARIANT,
    Busy,
    Do,
    Exit,
    folder_lock,
    record_outputs,
)
from ablate.study.store import study_dir, variant_dir, write_json


def token_mismatch(tokens: int, recipe: Recipe) -> str | None:
    """A warning when the checkpoint is not where the recipe's phase starts (within one batch)."""
    expected, slack = recipe.training.start_tokens, recipe.training.batch_size * recipe.seq_len
    if abs(tokens - expected) < slack:
        return None
    return (
        f"checkpoint has seen {tokens:,} tokens but the recipe's phase starts at {expected:,} "
        f"(total_tokens × (1 − phase)); each variant still trains the phase's {recipe.training.phase_tokens:,}"
    )


def _error_line(exc: BaseException, folder: Path) -> str:
    """The one line status.json and the run's summary give for a job's failure; `folder`: the job's,
    named when a write failed without saying where (torch's checkpoint writer does not)."""
    if isinstance(exc, AblateError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        # A full disk, a read-only mount, a permission: the path and the fix, never a traceback.
        fix = "free space there" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
        code = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{exc.filename or folder}: {exc.strerror or exc} ({code}); {fix}, then rerun to resume"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; rerun to resume"
    if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code > 128:
        # Composer turns SIGTERM (scancel, preemption, a time limit) into SystemExit(128 + signal).
        name = signal.Signals(exc.code - 128).name if exc.code - 128 in signal.valid_signals() else exc.code
        return f"stopped by {name} (cancelled, preempted or out of time); rerun to resume from the latest checkpoint"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first} (traceback in logs/run.log)"


@contextmanager
def recording_failure(folder: Path, leader: bool) -> Iterator[None]:
    """Any exception leaves status `failed` with a one-line error, then propagates. Where status.json
    cannot be written either (the disk that failed the job is full), it keeps its state, which the
    next run resumes from, and the line goes to stderr alone."""
    try:
        yield
    except BaseException as exc:
        if leader:
            line = _error_line(exc, folder)
            try:
                write_status(folder, State.FAILED, error=line)
            except OSError:
                with suppress(OSError):  # the log may be on the same full disk
                    print(f"Error: {line}", file=sys.stderr, flush=True)
        raise


def run_name(study: str, job: str, train_hash: str) -> str:
    """Composer's run name, which experiment trackers show and MLflow resumes by: the training's hash
    in it, so a job trained again after a changed recipe is a new run, not the old one continued."""
    return f"{study}-{job}-{train_hash[:8]}"


def tracker_params(
    study: str, job: str, *, seed: int, train_hash: str, mixture: dict[str, float], **more: str
) -> dict[str, Any]:
    """What an experiment tracker records about a run: which study and job, seed, hashes and mixture."""
    fields: dict[str, Any] = {"study": study, "job": job, "seed": seed, "train_hash": train_hash, **more}
    return fields | {f"mixture/{subset}": share for subset, share in mixture.items()}


def progress_into(folder: Path, offset: int, then: Callable[[int], None] | None = None) -> Callable[[int], None]:
    """Training progress into status.json (what `ablate run` draws), then to `then` if given."""

    def report(tokens: int) -> None:
        write_status(folder, State.TRAINING, tokens_done=tokens - offset)
        if then:
            then(tokens)

    return report


def train_summary(result: Any) -> dict[str, Any]:
    return {
        "train_seconds": round(result.seconds, 3),
        "tokens_per_s": round(result.tokens / result.seconds, 1) if result.seconds > 0 else None,
        "final_loss": result.final_loss,
        "samples_per_subset": result.samples_per_subset,
    }


# ---- the start checkpoint's evaluation -----------------------------------------------------


def run_start(study: str, *, strict: bool = False) -> None:
    """Evaluate the study's start checkpoint into results/<study>/start/ (skipped when done)."""
    from ablate.run.evaluate import evaluate, require_backend
    from ablate.run.export import write_start
    from ablate.run.start import load_start

    if rank() != 0:
        return
    plan, recipe = load_study_plan(study)
    folder = study_dir(study) / START
    with folder_lock(folder):
        if start_next(plan.start_hash, folder).do == Do.SKIP:
            return
        with recording_failure(folder, leader=True):
            path = local_start(study, recipe, plan.options.checkpoint)
            named = resolve_checkpoint(study, recipe.checkpoints, str(plan.options.checkpoint))  # a URI stays one
            write_status(folder, State.EVALUATING, hash=plan.start_hash, checkpoint=named, error=None)
            start = load_start(path)
            warning = token_mismatch(start.tokens, recipe) if start.load_path else None
            if warning and strict:
                raise AblateError(f"--strict: {warning}; fix training.total_tokens/phase or pass another --checkpoint")
            tick = time.perf_counter()
            exported = None
            if recipe.eval.backend == "vllm":  # it serves a Hugging Face folder, not a model in memory
                require_backend(recipe.eval)
                exported = folder / MODEL
                write_start(start, exported)
            scores = evaluate(
                start.model, start.tokenizer, recipe.eval, folder / EVAL, name=f"{study}/{START}", folder=exported
            )
            write_status(
                folder,
                State.DONE,
                checkpoint_tokens=start.tokens if start.load_path else None,
                warning=warning,
                scores=scores,
                eval_seconds=round(time.perf_counter() - tick, 3),
                outputs=record_outputs(folder, Status(), EVAL),
            )


# ---- a variant -----------------------------------------------------------------------------


def run_variant(study: str, name: str, *, strict: bool = False) -> None:
    """Continue the start checkpoint on the variant's mixture for the phase, export it, then evaluate it.

    Every rank trains (and, under FSDP, helps gather the model for the export); rank 0 evaluates
    the exported Hugging Face folder, not the model in memory, so the study's scores are those of
    the folder `lm_eval --model hf` and `ablate export` hand on. With `eval.heldout`, rank 0 then
    measures the same model's loss on each held-out domain into heldout.json. Each output's size
    and hash go into status.json as it is written; a done variant keeps the outputs still intact."""
    from ablate.run import train
    from ablate.run.evaluate import evaluate, recorded_scores
    from ablate.run.export import ensure_exported
    from ablate.run.heldout import heldout_folders, heldout_loss
    from ablate.run.kept import drop_superseded
    from ablate.run.start import load_start

    began = time.perf_counter()
    plan, recipe = load_study_plan(study)
    variant = plan.variant(name)
    recipe = phase_recipe(recipe, variant.phase)  # a phase study's variant trains its own phase length
    folder = variant_dir(study, name)
    leader = rank() == 0
    start_path = cache(partial(local_start, study, recipe, variant.checkpoint))  # resolved once, where needed
    with folder_lock(folder) if leader else nullcontext():
        seen = look(recipe, variant, folder, start_path)
        then = variant_next(recipe, variant, folder, start_path, seen=seen)
        if then.do == Do.STALE:
            raise StudyError(f"{folder}: {then.why}; delete the folder to run the variant again")
        if then.do == Do.SKIP:
            return
        trained = then.do == Do.EVALUATE
        done = seen.status.state == State.DONE and seen.status.hash == variant.hash
        keep = {part for part in (EVAL, HELDOUT) if trained and done and part not in seen.damaged}
        if leader:
            write_json(folder / VARIANT, variant.model_dump(mode="json"))
            fields: dict[str, Any] = {
                "hash": variant.hash, "train_hash": variant.train_hash, "tokens": variant.tokens, "error": None,
            }  # fmt: skip
            if trained and seen.checkpoint_at is not None:  # trained, but its status.json never said so
                fields |= {"trained": True, "tokens_done": seen.checkpoint_at}
            if not trained:
                fields["outputs"] = {}  # whatever an earlier training wrote is replaced
            write_status(folder, State.EVALUATING if trained else State.TRAINING, **fields)
        with recording_failure(folder, leader):
            if not trained:
                start = load_start(start_path(), weights=False)
                warning = token_mismatch(start.tokens, recipe) if start.load_path else None
                if warning and strict:
                    raise AblateError(f"--strict: {warning}; fix training.total_tokens/phase or the --checkpoint")
                if leader:  # where the phase began, should status.json be lost before it ends
                    write_status(folder, State.TRAINING, start_tokens=start.tokens)
                setup = time.perf_counter() - began
                result = train.fit(
                    start,
                    recipe,
                    mixture=variant.mixture,
                    seed=variant.seed,
                    folder=folder,
                    run_name=run_name(study, name, variant.train_hash),
                    schedule=train.phase_schedule(recipe, start),
                    end_tokens=start.tokens + variant.tokens,
                    on_progress=progress_into(folder, start.tokens) if leader else None,
                    params=tracker_params(
                        study,
                        name,
                        seed=variant.seed,
                        train_hash=variant.train_hash,
                        mixture=variant.mixture,
                        hash=variant.hash,
                        removed="+".join(variant.removed) or "none",
                    ),
                    export=folder / MODEL,
                )
                if leader:
                    write_status(
                        folder,
                        State.EVALUATING,
                        trained=True,
                        resumed_at=result.began - start.tokens,  # 0 unless an interrupted run resumed
                        world_size=world_size(),
                        warning=warning,
                        setup_seconds=round(setup + result.setup_seconds, 3),
                        outputs=record_outputs(folder, read_status(folder), MODEL),
                        **train_summary(result),
                    )
            if not leader:
                return
            tick = time.perf_counter()
            exported = ensure_exported(folder)  # again from the final checkpoint if missing or damaged
            drop_superseded(folder / LATEST)  # where a kill came between the end of training and fit's own drop
            final = load_start(str(exported))  # evaluated as any other tool would open it
            if HELDOUT not in keep:
                (folder / HELDOUT).unlink(missing_ok=True)  # never one from an earlier evaluation
            if recipe.eval.heldout and HELDOUT not in keep:  # first: vLLM's engine, if used, holds the GPU until exit
                folders = heldout_folders(recipe, folder.parent / CACHE)
                write_heldout(folder, heldout_loss(final.model, final.tokenizer, recipe.eval, recipe.seq_len, folders))
                write_status(folder, State.EVALUATING, outputs=record_outputs(folder, read_status(folder), HELDOUT))
            if EVAL in keep:  # checked intact: its scores are read back from lm-eval's own files
                scores = recorded_scores(folder / EVAL)
            else:
                scores = evaluate(
                    final.model, final.tokenizer, recipe.eval, folder / EVAL, name=f"{study}/{name}", folder=exported
                )
            outputs = record_outputs(folder, read_status(folder), EVAL)
            write_status(
                folder, State.DONE, scores=scores, eval_seconds=round(time.perf_counter() - tick, 3), outputs=outputs
            )


# ---- entry points --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m ablate.run.worker STUDY JOB [--strict]`: run one job; return its exit code (job.Exit)."""
    parser = argparse.ArgumentParser(prog="python -m ablate.run.worker", description="Run one job of a study.")
    parser.add_argument("study")
    parser.add_argument("job", help=f"a variant name, or '{START}' for the start checkpoint's evaluation")
    parser.add_argument("--strict", action="store_true", help="a checkpoint token count off the recipe's is an error")
    args = parser.parse_args(argv)
    try:
        if args.job == START:
            run_start(args.study, strict=args.strict)
        else:
            run_variant(args.study, args.job, strict=args.strict)
    except Busy as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return Exit.BUSY
    except AblateError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return Exit.USER
    return Exit.OK


def child_main(argv: list[str], cwd: str, env: dict[str, str], log: str) -> None:
    """Entry of a job forked by the local launcher: its own folder, environment and log file."""
    os.chdir(cwd)
    os.environ.update(env)
    import torch  # already imported by the fork server, which read OMP_NUM_THREADS before this job's

    torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        code = main(argv)
    finally:
        # multiprocessing ends a child with os._exit, which skips atexit: run the hooks that free
        # streaming's shared memory, or the runner's resource tracker reports them as leaked.
        atexit._run_exitfuncs()
    sys.exit(code)


if __name__ == "__main__":
    sys.exit(main())
