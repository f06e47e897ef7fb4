"""Launchers: how one job (`python -m ablate.run.worker STUDY JOB`) gets its process or processes.

    local     a fresh process per job, forked from a server that imported the training stack once
    torchrun  Composer's launcher: `composer -n GPUS -m ablate.run.worker ...`, data-parallel (gloo on CPU)
    slurm     a job-array script, one task per job, submitted with sbatch (ablate.run.slurm)

Why a fork server for `local`: importing torch, Composer, streaming, transformers and lm-eval costs
~10 s per process, as much as a demo variant's training. Python's `forkserver` start method imports
them once (`set_forkserver_preload`) and forks each job from that clean, single-threaded process: a
crash or SIGKILL still takes down only its own job, and no job inherits the runner's state.
Each job writes its stdout and stderr to <folder>/logs/run.log.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from ablate.errors import AblateError
from ablate.study.store import results_root

OFFLINE = {
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"
}  # fmt: skip
PRELOAD = [
    "ablate.run.worker",
    "ablate.run.train",
    "ablate.run.evaluate",
    "lm_eval.evaluator",
    "lm_eval.models.huggingface",
]


class Running(Protocol):
    def poll(self) -> int | None: ...  # exit code, or None while running

    def kill(self) -> None: ...


def job_argv(study: str, job: str, strict: bool) -> list[str]:
    return [study, job, *(["--strict"] if strict else [])]


def log_path(folder: Path) -> Path:
    return folder / "logs" / "run.log"


def job_environment() -> dict[str, str]:
    """What a job needs from the runner's environment: offline always, and the results root."""
    return {**OFFLINE, "ABLATE_RESULTS": str(results_root().resolve())}


def available_cores() -> int:
    """Cores this process may run on (its affinity, which containers and `taskset` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def slot_environment(slot: int, parallel: int, gpus: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The share of the machine for the job in `slot` (0-based) of `parallel` concurrent jobs.

    CPU threads: OMP_NUM_THREADS if the user set it, else the cores split evenly (tiny models on
    oversubscribed cores run many times slower). GPUs: with more than one job at a time, slot s
    sees devices s·gpus … (s+1)·gpus − 1 of CUDA_VISIBLE_DEVICES (or of all, when that is unset).
    """
    env = {"OMP_NUM_THREADS": environ.get("OMP_NUM_THREADS") or str(max(1, available_cores() // parallel))}
    if parallel > 1:
        visible = environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(index) for index in range(parallel * gpus)]
        if len(devices) < parallel * gpus:
            raise AblateError(
                f"--parallel {parallel} with --gpus {gpus} needs {parallel * gpus} GPUs, CUDA_VISIBLE_DEVICES "
                f"lists {len(devices)}; lower --parallel or --gpus"
            )
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices[slot * gpus : (slot + 1) * gpus])
    return env


# ---- local ---------------------------------------------------------------------------------


class _Forked:
    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    def poll(self) -> int | None:
        return None if self.process.is_alive() else self.process.exitcode

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


_context: multiprocessing.context.ForkServerContext | None = None


def _fork_server() -> multiprocessing.context.ForkServerContext:
    global _context
    if _context is None:
        for key, value in OFFLINE.items():
            os.environ.setdefault(key, value)  # the server's environment is fixed when it starts
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def start_local(study: str, job: str, folder: Path, *, slot: dict[str, str], strict: bool = False) -> Running:
    """Fork the job; `slot` is its slot_environment (threads, devices), applied before torch works."""
    from ablate.run.worker import child_main

    context = _fork_server()
    args = (job_argv(study, job, strict), os.getcwd(), {**job_environment(), **slot}, str(log_path(folder)))
    process = context.Process(target=child_main, args=args, name=f"ablate-{job}")
    process.start()
    return _Forked(process)


# ---- torchrun ------------------------------------------------------------------------------


class _Subprocess:
    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def composer_command(
    study: str, job: str, gpus: int, folder: Path | str, *, nodes: int = 1, strict: bool = False
) -> list[str]:
    """Composer's launcher running the job on `gpus` local processes of `nodes` × `gpus` (the node's
    rank and the master's address come from NODE_RANK, MASTER_ADDR, MASTER_PORT); ranks > 0 log
    beside run.log."""
    logs = f"{folder}/logs"
    return [
        sys.executable, "-m", "composer.cli.launcher", "-n", str(gpus), "--world_size", str(nodes * gpus),
        "--stdout", f"{logs}/rank{{rank}}.stdout", "--stderr", f"{logs}/rank{{rank}}.stderr",
        "-m", "ablate.run.worker", *job_argv(study, job, strict),
    ]  # fmt: skip


# Master ports below Linux's ephemeral range (32768+): a port there that was free a moment ago can be
# taken by any outgoing connection before rank 0 binds it, and the other ranks then meet a stranger
# ("failed to recv, got 0 bytes"). Composer's launcher, left to itself, picks one there.
MASTER_PORTS = range(20_000, 32_768)


def free_master_port() -> int:
    """A port of MASTER_PORTS that nothing on this host listens on now, drawn at random so that jobs
    started together (--parallel) do not try the same ones."""
    import random
    import socket

    for port in random.sample(MASTER_PORTS, 64):
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError:
                continue
            return port
    raise AblateError(f"no free port in {MASTER_PORTS.start}–{MASTER_PORTS.stop - 1} for the job's rendezvous")


def start_torchrun(
    study: str, job: str, folder: Path, *, gpus: int, nodes: int = 1, slot: dict[str, str], strict: bool = False
) -> Running:
    log = log_path(folder)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **job_environment(), **slot}
    if nodes == 1 and "MASTER_PORT" not in env:  # across hosts the user's MASTER_PORT is the meeting point
        env["MASTER_PORT"] = str(free_master_port())
    with log.open("a") as handle:
        process = subprocess.Popen(
            composer_command(study, job, gpus, folder, nodes=nodes, strict=strict),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return _Subprocess(process)
