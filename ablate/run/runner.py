"""Run: continue every variant of a study from its shared checkpoint, evaluate it, summarise.

    ablate run                                   # the current study: every variant not done yet
    ablate run --variant baseline --variant no-math
    ablate run --checkpoint step-90k             # another start: re-plans (new hashes) first
    ablate run --launcher torchrun --gpus 8      # each variant data-parallel on 8 processes
    ablate run --launcher slurm --gpus 8         # one job-array task per variant, via sbatch
    ablate run --launcher slurm --nodes 4        # each variant data-parallel over 4 nodes
    ablate run --parallel 2                      # two variants at once, each on half the cores (or its own GPU)
    ablate run --dry-run                         # what would run, and why; nothing is trained

    from ablate.run.runner import Launch, run_study
    outcomes = run_study("demo", how=Launch(parallel=2))  # the same from Python; one Outcome per job

This module decides and watches; it imports no torch, unless a folder's latest checkpoint must
be read to tell a finished training from an interrupted one (ablate.run.folder), or a start
checkpoint at a URI fetched (Composer's object stores: once per study, before any job; removed once
every job that starts from it is done, ablate.run.fetch). Every job
(the start checkpoint's evaluation, then each variant) runs in its own process (ablate.run.launch)
and reports only through its folder: status.json for state and progress, logs/run.log for its
output. Checks that need no model run here, before anything starts: the checkpoint exists, every
data folder holds token ids or text (and those a job cannot read in place are copied once, into the
study's cache: ablate.data.ready), no folder holds results for another hash, a done folder's outputs are intact,
an interrupted folder's latest checkpoint can be read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from rich.filesize import decimal

from ablate.choices import LAUNCHERS
from ablate.data.check import check_heldout_folder, check_shards, field_spec
from ablate.data.manifest import is_remote
from ablate.errors import AblateError, StudyError
from ablate.plan.build import Plan, Variant, replan
from ablate.plan.study import load_study_plan, refuse_stale, save_plan, start_checkpoint
from ablate.recipe import Recipe
from ablate.run import fetch, launch, slurm
from ablate.run.folder import start_next, variant_next
from ablate.run.heldout import heldout_fields
from ablate.study.artifacts import State, Status, read_status, resolve_checkpoint, write_status
from ablate.study.job import CACHE, START, WORK, Do, Exit, lock_holder
from ablate.study.store import current_study, study_dir, variant_dir

POLL_SECONDS = 0.5


@dataclass
class Action:
    """What `run` will do with one job, and why (what --dry-run prints)."""

    job: str  # "start" or a variant name
    folder: Path
    do: Do  # ablate.study.job.next_action's answer for the folder
    why: str
    tokens: int = 0  # the phase's tokens, the progress bar's total (0: evaluation only)


@dataclass
class Outcome:
    job: str
    state: str  # done, failed, busy (another runner holds it) or submitted (slurm)
    seconds: float = 0.0  # wall time of the job's process(es), start-up and evaluation included
    status: Status = field(default_factory=Status)
    submission: dict[str, Any] = field(default_factory=dict)  # slurm: array, tasks, script, job_id

    @property
    def error(self) -> str | None:
        return self.status.error


# ---- how jobs are launched ----------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """How the runner gives jobs their processes: the launcher, processes (GPUs) per node, nodes per
    variant, jobs at once, and for Slurm the `--slurm FIELD=VALUE` overrides of the recipe's block."""

    launcher: str = "local"
    gpus: int = 1  # processes per node and job; 0: CPUs only, one process, no GPU request
    nodes: int = 1
    parallel: int = 1
    strict: bool = False
    slurm: tuple[str, ...] = ()
    keep_fetched: bool = False  # keep the study's copy of a start fetched from a URI once its jobs are done

    @property
    def processes(self) -> int:
        return max(self.gpus, 1)

    @property
    def node_rank(self) -> int:
        """This host's rank among a torchrun job's nodes (NODE_RANK); 0 runs the study, the others follow."""
        return int(os.environ.get("NODE_RANK", "0")) if self.nodes > 1 else 0

    def check(self) -> None:
        """One line naming the flag for every combination that cannot work."""
        if self.launcher not in LAUNCHERS:
            raise AblateError(f"--launcher {self.launcher}: use one of {', '.join(LAUNCHERS)}")
        if self.gpus < 0:
            raise AblateError(f"--gpus {self.gpus}: use 0 (CPUs only) or more")
        if self.gpus > 1 and self.launcher == "local":
            raise AblateError(
                f"--gpus {self.gpus}: the local launcher runs one process per variant; add --launcher torchrun"
            )
        if self.parallel < 1:
            raise AblateError(f"--parallel {self.parallel}: use 1 or more")
        if self.parallel > 1 and self.launcher == "slurm":
            raise AblateError(
                f"--parallel {self.parallel}: Slurm schedules the array tasks itself; leave --parallel out"
            )
        if self.nodes < 1:
            raise AblateError(f"--nodes {self.nodes}: use 1 or more")
        if self.nodes > 1 and self.launcher == "local":
            raise AblateError(f"--nodes {self.nodes}: the local launcher runs on one machine; use torchrun or slurm")
        if self.nodes > 1 and self.launcher == "torchrun":
            missing = [key for key in ("NODE_RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(key)]
            if missing:
                raise AblateError(
                    f"--nodes {self.nodes}: set {', '.join(missing)} on every node (NODE_RANK 0 to "
                    f"{self.nodes - 1}, the address and a free port of node 0), then run the same command on each"
                )
            if self.parallel > 1:
                raise AblateError(f"--parallel {self.parallel} with --nodes {self.nodes}: one variant at a time")
        if self.slurm and self.launcher != "slurm":
            raise AblateError("--slurm: only with --launcher slurm")


# ---- deciding ------------------------------------------------------------------------------


def data_fields(recipe: Recipe, variants: list[Variant]) -> list[str]:
    """The folder fields the variants' jobs read: each subset of their mixtures, each held-out domain."""
    subsets = sorted({s for v in variants for s in v.mixture})
    return [*(f"subsets.{s}.location" for s in subsets), *heldout_fields(recipe)]


def _check_data(study: str, recipe: Recipe, fields: list[str]) -> None:
    """Every folder the jobs read holds what ablate can train on: local ones from their shards, remote
    ones from their index.json (one request each), before any job starts."""
    from ablate.data.ready import remote_index

    scratch = study_dir(study) / CACHE
    for where in fields:
        location, encoding = field_spec(recipe, where)
        index = remote_index(where, location, scratch) if is_remote(location) else None
        check = check_heldout_folder if where.startswith("eval.") else check_shards
        check(where, location, recipe.seq_len, encoding, index)


def prepare(
    study: str | None = None,
    *,
    checkpoint: str | None = None,
    variants: list[str] | None = None,
    dry_run: bool = False,
    how: Launch | None = None,
    observer: Observer | None = None,
) -> tuple[str, Plan, list[Action]]:
    """Load (and if --checkpoint differs, re-plan) the study, check it, and decide each job's action.

    `dry_run` re-plans in memory only, and fetches nothing. With Slurm, a job whose array task is still
    queued or running is busy, not submitted again. A torchrun node other than node 0 ignores the locks
    node 0 holds. A start checkpoint at a URI that a job to run needs is fetched here (`observer` follows).
    """
    how = how or Launch()
    study = current_study(study)
    plan, recipe = load_study_plan(study)
    replanned = checkpoint is not None and checkpoint != plan.options.checkpoint
    if replanned:
        plan = replan(plan, recipe, checkpoint=str(checkpoint))
    selected = [plan.variant(name) for name in dict.fromkeys(variants)] if variants else plan.variants
    for ref in dict.fromkeys([plan.options.checkpoint, *(v.checkpoint for v in selected)]):
        # a phase study's variants start from their phase's checkpoint; one at a URI is fetched below, if needed
        start_checkpoint(study, recipe, ref)
    _check_data(study, recipe, data_fields(recipe, selected))
    if replanned:
        refuse_stale(
            plan, f"--checkpoint {checkpoint}", fix=f"`ablate plan --checkpoint {checkpoint} --force` replaces them"
        )
    # the queue is read before the jobs' states: a task that leaves it in between has already written its
    # state, so it reads as done rather than as a job to submit again
    waiting = slurm.queued(study) if how.launcher == "slurm" else {}
    start_folder = study_dir(study) / START
    follower = how.node_rank > 0
    start = start_next(plan.start_hash, start_folder, lock_holder(start_folder))
    actions = [Action(START, start_folder, start.do, start.why)]
    for variant in selected:
        folder = variant_dir(study, variant.name)
        starts_at = partial(fetch.local_start, study, recipe, variant.checkpoint)  # only to place a checkpoint
        then = variant_next(recipe, variant, folder, starts_at, None if follower else lock_holder(folder))
        tokens = variant.tokens if then.do in (Do.TRAIN, Do.RESUME) else 0
        actions.append(Action(variant.name, folder, then.do, then.why, tokens))
    stale = [f"{a.job} ({a.why})" for a in actions if a.do == Do.STALE]
    if stale:
        raise StudyError(
            f"results for another plan in {study_dir(study)}: {'; '.join(stale)}; "
            "delete those variant folders to rerun them (results are never reused across hashes)"
        )
    actions = [replace(a, do=Do.BUSY, why=waiting[a.job]) if a.job in waiting else a for a in actions]
    if not dry_run:
        _fetch_starts(study, recipe, plan, [a for a in actions if not (follower and a.job == START)], observer)
    if replanned and not dry_run:  # only a plan that passed every check replaces the old one
        save_plan(plan)
    return study, plan, actions


def _fetch_starts(study: str, recipe: Recipe, plan: Plan, actions: list[Action], observer: Observer | None) -> None:
    """Fetch once, into the study's cache, each start checkpoint at a URI that a job to run starts from
    (ablate.run.fetch), and check it as a local one: a wrong URI or missing credentials is one line here,
    before any job starts, and every job reads the copy."""
    needed = [
        plan.options.checkpoint if a.job == START else plan.variant(a.job).checkpoint
        for a in actions
        if a.do in (Do.TRAIN, Do.RESUME) or (a.job == START and a.do in WORK)
    ]
    for ref in dict.fromkeys(needed):
        uri = resolve_checkpoint(study, recipe.checkpoints, ref) if ref else None
        if uri is None or not is_remote(uri):
            continue
        fresh = not fetch.copy_path(study, uri).exists()
        on_bytes = partial(observer.fetching, uri) if observer and fresh else None
        path = Path(fetch.local_start(study, recipe, ref, on_bytes=on_bytes))
        if observer and fresh:
            size = decimal(fetch.disk_size(path))
            observer.note(f"fetched {uri} ({size}) into {path}; kept until every job that starts from it is done")


def _make_ready(study: str, variants: list[Variant], observer: Observer | None) -> None:
    """Copy, once per study and before any job, every folder the jobs read that they cannot read in place
    (ablate.data.ready); `observer` follows each copy's samples."""
    from ablate.data.ready import ready_folders

    recipe = load_study_plan(study)[1]

    def progress(label: str, samples: int) -> Callable[[int], None]:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if observer:
                observer.copying(label, done, samples)

        return advance

    ready_folders(recipe, data_fields(recipe, variants), cache=study_dir(study) / CACHE, progress=progress)


# ---- running -------------------------------------------------------------------------------


class Observer(Protocol):
    """What a display implements to follow a run (ablate.run.view.RunDisplay is the CLI's)."""

    def planned(self, actions: list[Action]) -> None: ...  # every job's action, before the first starts

    def running(self, action: Action, status: Status) -> None: ...  # twice a second while it runs

    def finished(self, outcome: Outcome) -> None: ...

    def fetching(self, uri: str, done: int, total: int) -> None: ...  # bytes of a start checkpoint fetched so far

    def copying(self, label: str, done: int, total: int) -> None: ...  # samples of a data folder made ready so far

    def note(self, line: str) -> None: ...  # the study's cache: a start checkpoint fetched or removed, its size


@dataclass
class _Job:
    """A job whose process is running, and the slot (share of cores and GPUs) it holds."""

    action: Action
    process: launch.Running
    slot: int
    tick: float


def _start(study: str, action: Action, slot: int, how: Launch) -> _Job:
    action.folder.mkdir(parents=True, exist_ok=True)
    environment = launch.slot_environment(slot, how.parallel, how.gpus, os.environ)
    tick = time.perf_counter()  # process start-up counts: the first local job also starts the fork server
    if how.launcher == "torchrun" and action.job != START:
        process = launch.start_torchrun(
            study, action.job, action.folder, gpus=how.processes, nodes=how.nodes, slot=environment, strict=how.strict
        )
    else:
        process = launch.start_local(study, action.job, action.folder, slot=environment, strict=how.strict)
    return _Job(action, process, slot, tick)


def _outcome(job: _Job, code: int) -> Outcome:
    """What a job's exit means; a process that died without saying why is marked failed here."""
    seconds, action = time.perf_counter() - job.tick, job.action
    status = read_status(action.folder)
    if code == Exit.BUSY:
        return Outcome(action.job, "busy", seconds, status)
    if code != Exit.OK and status.state != State.FAILED:  # died before it could say why (a signal, the OOM killer)
        error = f"exited with code {code}; see {launch.log_path(action.folder)}"
        try:
            status = write_status(action.folder, State.FAILED, error=error)
        except OSError as exc:  # a full disk took the job, and takes its status.json too
            error = (
                f"{action.folder}: {exc.strerror}, so the job (exit code {code}) could not write its status.json; "
                "make room there, then rerun to resume"
            )
            status = status.model_copy(update={"state": State.FAILED, "error": error})
    if code == Exit.USER and action.job == START:
        log = launch.log_path(action.folder)
        raise AblateError(status.error or f"start checkpoint: cannot evaluate it; see {log}")
    return Outcome(action.job, status.state.value, seconds, status)


def _run_jobs(study: str, actions: list[Action], how: Launch, observer: Observer | None) -> list[Outcome]:
    """Run the actions' jobs, up to `parallel` at once, in order; poll their status until all exit."""
    waiting, running, outcomes = list(actions), list[_Job](), list[Outcome]()
    try:
        while waiting or running:
            free = sorted(set(range(how.parallel)) - {job.slot for job in running})
            while waiting and free:
                running.append(_start(study, waiting.pop(0), free.pop(0), how))
            for job in list(running):
                code = job.process.poll()
                if code is None:
                    if observer:
                        observer.running(job.action, read_status(job.action.folder))
                    continue
                running.remove(job)
                outcomes.append(_outcome(job, code))
                if observer:
                    observer.finished(outcomes[-1])
            if running:
                time.sleep(POLL_SECONDS)
    except BaseException:
        for job in running:  # Ctrl-C, or a start checkpoint every variant would fail on
            job.process.kill()
        raise
    return outcomes


def slurm_script(study: str, plan: Plan, jobs: list[str], how: Launch) -> str:
    """The array script for `jobs`: the recipe's slurm block with the --slurm overrides applied."""
    settings = slurm.settings(Recipe.model_validate(plan.recipe).slurm, how.slurm)
    request = slurm.gpu_request(settings, how.gpus)
    return slurm.script(study, jobs, gpus=how.gpus, nodes=how.nodes, slurm=settings, request=request, strict=how.strict)


def run_study(
    study: str | None = None,
    *,
    checkpoint: str | None = None,
    variants: list[str] | None = None,
    how: Launch | None = None,
    observer: Observer | None = None,
) -> list[Outcome]:
    """Run every job that needs work, `how.parallel` at a time; a failed variant does not stop the rest.

    Returns one Outcome per job that ran, was submitted, or found its folder locked (or queued), in
    the order they finished. Raises AblateError for bad input, and when the start checkpoint cannot
    be loaded (every variant would fail the same way: the running jobs are stopped, and resume on the
    next run). With torchrun over several nodes, node 0 runs the study and the others follow it.
    """
    how = how or Launch()
    how.check()
    study, plan, actions = prepare(study, checkpoint=checkpoint, variants=variants, how=how, observer=observer)
    todo = [a for a in actions if a.do in WORK and not (how.node_rank > 0 and a.job == START)]
    if todo and how.node_rank == 0:
        _make_ready(study, [plan.variant(a.job) for a in todo if a.job != START], observer)
    if how.launcher == "slurm" and todo:
        jobs = [a.job for a in todo]
        for action in todo:  # so that `ablate status` lists every submitted job from the start
            action.folder.mkdir(parents=True, exist_ok=True)
        path = slurm.write_script(study, slurm_script(study, plan, jobs, how))
        array = slurm.submit(study, jobs, path)
        details = {"array": array, "tasks": len(jobs), "script": str(path)}
        return [
            Outcome(a.job, "submitted", submission={**details, "job_id": f"{array}_{i}"}) for i, a in enumerate(todo)
        ]
    if observer:
        observer.planned(actions)
    outcomes = []
    for action in actions:
        if action.do == Do.BUSY:
            outcomes.append(Outcome(action.job, "busy", status=Status(error=action.why)))
            if observer:
                observer.finished(outcomes[-1])
    outcomes += _run_jobs(study, todo, how, observer)
    for uri, freed in [] if how.keep_fetched else fetch.release_done(study, plan):
        if observer:
            observer.note(f"removed the study's copy of {uri} ({decimal(freed)}): every job starting from it is done")
    return outcomes
