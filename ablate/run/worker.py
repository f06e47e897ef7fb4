"""Jobs: what one process does for one folder of a study. Every launcher ends up here.

    python -m ablate.run.worker demo baseline          # train the variant's phase, then evaluate it
    python -m ablate.run.worker demo start             # evaluate the start checkpoint (once per study)
    python -m ablate.run.worker demo no-math --strict  # a checkpoint token count off the recipe's is an error

A job takes its folder's lock, moves status.json through training → evaluating → done (or failed,
with the error), and never reuses a folder trained for another hash. An interrupted variant
resumes from its own latest checkpoint (Composer autoresume); a variant already trained under the
same training hash but evaluated under another only re-evaluates. Only global rank 0 writes.

Exit codes: 0 done, 2 the user must fix something (the message is in status.json and on stderr),
3 another runner holds the lock, anything else a bug (traceback in logs/run.log).
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, StudyError
from ablate.plan.build import Plan, Variant, content_hash, normalize
from ablate.recipe import Recipe
from ablate.store import (
    load_plan,
    read_status,
    register_checkpoint,
    resolve_checkpoint,
    study_dir,
    variant_dir,
    write_json,
    write_status,
)

START = "start"  # the folder and job name of the start checkpoint's evaluation
PRETRAINED = "pretrained"  # the name `pretrain` registers its checkpoint under
LOCK = "lock"
LATEST = "checkpoints/latest-rank0.pt"  # Composer's link to a run's newest checkpoint, within its folder
EXIT_USER, EXIT_BUSY = 2, 3


class Busy(StudyError):
    """Another runner holds the folder's lock."""


# ---- locks ---------------------------------------------------------------------------------


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold <folder>/lock (flock: released by the kernel if the holder dies, even by SIGKILL)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise Busy(f"{folder}: locked by {holder}; another runner is working on it") from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_holder(folder: Path) -> str | None:
    """Who holds the folder's lock right now, or None (checks without keeping it)."""
    if not (folder / LOCK).exists():
        return None
    try:
        with folder_lock(folder):
            return None
    except Busy as exc:
        return str(exc)


# ---- shared checks -------------------------------------------------------------------------


def plan_recipe(study: str) -> tuple[Plan, Recipe]:
    plan = load_plan(study)
    return plan, Recipe.model_validate(plan.recipe)


def checkpoint_path(study: str, plan: Plan, recipe: Recipe) -> str:
    """The plan's start checkpoint as a path or URI; the error says how to name one."""
    ref = plan.options.checkpoint
    if ref is None:
        raise AblateError("no start checkpoint: pass --checkpoint NAME|PATH, or set `start` in the recipe and re-plan")
    return resolve_checkpoint(study, recipe.checkpoints, ref)


def start_hash(plan: Plan, recipe: Recipe) -> str:
    return content_hash({"checkpoint": plan.options.checkpoint, "eval": recipe.eval.model_dump(mode="json")})


def token_mismatch(tokens: int, recipe: Recipe) -> str | None:
    """A warning when the checkpoint is not where the recipe's phase starts (within one batch)."""
    expected, slack = recipe.training.start_tokens, recipe.training.batch_size * recipe.seq_len
    if abs(tokens - expected) < slack:
        return None
    return (
        f"checkpoint has seen {tokens:,} tokens but the recipe's phase starts at {expected:,} "
        f"(total_tokens × (1 − phase)); each variant still trains the phase's {recipe.training.phase_tokens:,}"
    )


def stale_reason(status: dict[str, Any], variant: Variant) -> str | None:
    """Why a variant's folder holds training for another plan, or None when it is reusable."""
    if status.get("state", "pending") == "pending":
        return None
    recorded = status.get("train_hash")
    if recorded is not None and recorded != variant.train_hash:
        return f"trained for hash {recorded}, the plan now says {variant.train_hash}"
    return None


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, AblateError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; rerun to resume"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first} (traceback in logs/run.log)"


@contextmanager
def _recording_failure(folder: Path, leader: bool) -> Iterator[None]:
    """Any exception leaves status `failed` with a one-line error, then propagates."""
    try:
        yield
    except BaseException as exc:
        if leader:
            write_status(folder, "failed", error=_error_line(exc))
        raise


def _progress(folder: Path, offset: int, then: Callable[[int], None] | None = None) -> Callable[[int], None]:
    """Training progress into status.json (what `ablate run` draws), then to `then` if given."""

    def report(tokens: int) -> None:
        write_status(folder, "training", tokens_done=tokens - offset)
        if then:
            then(tokens)

    return report


# ---- pretrain ------------------------------------------------------------------------------


def pretrain_hash(recipe: Recipe) -> str:
    """Everything that changes the pretrained weights (the phase's schedule does not)."""
    mixture = normalize(recipe.mixes.base)
    training = recipe.training.model_dump(mode="json", exclude={"schedule", "checkpoint_every_tokens"})
    return content_hash(
        {
            "mixture": mixture,
            "locations": {s: recipe.subsets[s].location for s in sorted(mixture)},
            "seq_len": recipe.seq_len,
            "tokenizer": recipe.tokenizer,
            "model": recipe.model.model_dump(mode="json"),
            "training": training,
        }
    )


def pretrain(recipe: Recipe, *, on_progress: Callable[[int], None] | None = None) -> str:
    """Train the recipe's model from scratch on the base mix up to the phase; register the checkpoint.

    Writes results/<study>/pretrain/ and names the checkpoint `pretrained` in the study's
    checkpoints.json. A finished pretraining with the same inputs is reused; an interrupted one
    resumes; one trained from another recipe is refused.
    """
    from ablate.run import train

    folder = study_dir(recipe.name) / "pretrain"
    latest = folder / LATEST
    digest = pretrain_hash(recipe)
    status = read_status(folder)
    if status.get("hash", digest) != digest:
        raise StudyError(
            f"{folder}: pretrained from another recipe (hash {status['hash']}, now {digest}); "
            "delete the folder to pretrain again"
        )
    if not (status["state"] == "done" and latest.exists()):
        with folder_lock(folder), _recording_failure(folder, leader=True):
            write_status(folder, "training", hash=digest, tokens=recipe.training.start_tokens, error=None)
            result = train.fit(
                train.new_model(recipe),
                recipe,
                mixture=normalize(recipe.mixes.base),
                seed=recipe.training.seed,
                folder=folder,
                run_name=f"{recipe.name}-pretrain",
                schedule=train.pretrain_schedule(recipe),
                end_tokens=recipe.training.start_tokens,
                on_progress=_progress(folder, 0, on_progress),
            )
            write_status(folder, "done", **_train_summary(result))
    register_checkpoint(recipe.name, PRETRAINED, str(latest))
    return str(latest)


def _train_summary(result: Any) -> dict[str, Any]:
    return {
        "train_seconds": round(result.seconds, 3),
        "tokens_per_s": round(result.tokens / result.seconds, 1) if result.seconds > 0 else None,
        "final_loss": result.final_loss,
        "samples_per_subset": result.samples_per_subset,
    }


# ---- the start checkpoint's evaluation -----------------------------------------------------


def run_start(study: str, *, strict: bool = False) -> None:
    """Evaluate the study's start checkpoint into results/<study>/start/ (skipped when done)."""
    from ablate.run import train
    from ablate.run.evaluate import evaluate

    if train.rank() != 0:
        return
    plan, recipe = plan_recipe(study)
    folder = study_dir(study) / START
    digest = start_hash(plan, recipe)
    with folder_lock(folder):
        status = read_status(folder)
        if status["state"] == "done" and status.get("hash") == digest:
            return
        with _recording_failure(folder, leader=True):
            path = checkpoint_path(study, plan, recipe)
            write_status(folder, "evaluating", hash=digest, checkpoint=path, error=None)
            start = train.load_start(path)
            warning = token_mismatch(start.tokens, recipe) if start.load_path else None
            if warning and strict:
                raise AblateError(f"--strict: {warning}; fix training.total_tokens/phase or pass another --checkpoint")
            tick = time.perf_counter()
            scores = evaluate(start.model, start.tokenizer, recipe.eval, folder / "eval", name=f"{study}/{START}")
            write_status(
                folder,
                "done",
                checkpoint_tokens=start.tokens if start.load_path else None,
                warning=warning,
                scores=scores,
                eval_seconds=round(time.perf_counter() - tick, 3),
            )


# ---- a variant -----------------------------------------------------------------------------


def run_variant(study: str, name: str, *, strict: bool = False) -> None:
    """Continue the start checkpoint on the variant's mixture for the phase, then evaluate it."""
    from ablate.run import train
    from ablate.run.evaluate import evaluate

    began = time.perf_counter()
    plan, recipe = plan_recipe(study)
    variant = plan.variant(name)
    folder = variant_dir(study, name)
    leader = train.rank() == 0
    with folder_lock(folder) if leader else nullcontext():
        status = read_status(folder)
        reason = stale_reason(status, variant)
        if reason:
            raise StudyError(f"{folder}: {reason}; delete the folder to run the variant again")
        if status["state"] == "done" and status.get("hash") == variant.hash:
            return
        trained = bool(status.get("trained")) and (folder / LATEST).exists()
        if leader:
            write_json(folder / "variant.json", variant.model_dump(mode="json"))
            fields = {"hash": variant.hash, "train_hash": variant.train_hash, "tokens": variant.tokens, "error": None}
            write_status(folder, "evaluating" if trained else "training", **fields)
        with _recording_failure(folder, leader):
            if trained:
                final = train.load_start(str(folder / LATEST))
            else:
                start = train.load_start(checkpoint_path(study, plan, recipe), weights=False)
                warning = token_mismatch(start.tokens, recipe) if start.load_path else None
                if warning and strict:
                    raise AblateError(f"--strict: {warning}; fix training.total_tokens/phase or the --checkpoint")
                setup = time.perf_counter() - began
                result = train.fit(
                    start,
                    recipe,
                    mixture=variant.mixture,
                    seed=variant.seed,
                    folder=folder,
                    run_name=f"{study}-{name}",
                    schedule=train.phase_schedule(recipe, start.tokens),
                    end_tokens=start.tokens + variant.tokens,
                    on_progress=_progress(folder, start.tokens) if leader else None,
                )
                final = start
                if leader:
                    write_status(
                        folder,
                        "evaluating",
                        trained=True,
                        resumed_at=result.began - start.tokens,  # 0 unless an interrupted run resumed
                        warning=warning,
                        setup_seconds=round(setup + result.setup_seconds, 3),
                        **_train_summary(result),
                    )
            if not leader:
                return
            tick = time.perf_counter()
            scores = evaluate(final.model, final.tokenizer, recipe.eval, folder / "eval", name=f"{study}/{name}")
            write_status(folder, "done", scores=scores, eval_seconds=round(time.perf_counter() - tick, 3))


# ---- entry points --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m ablate.run.worker STUDY JOB [--strict]`: run one job; return the exit code."""
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
        return EXIT_BUSY
    except AblateError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_USER
    return 0


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
