"""Slurm: one job-array task per job, submitted with sbatch; what the scheduler says of each; scancel.

    ablate run --launcher slurm --gpus 8 --nodes 4          # each variant on 4 nodes × 8 GPUs
    ablate run --launcher slurm --gpus 0                    # a CPU cluster: no GPU request at all
    ablate run --launcher slurm --slurm partition=h100 --slurm time=2-00:00:00
    ablate status                                           # ablate's state and the scheduler's, per job
    ablate cancel                                           # scancel the study's queued and running tasks

An array task runs one job. On one node with one process that is `python -m ablate.run.worker`;
with more processes, Composer's launcher; with several nodes, srun starts one Composer launcher per
node (SLURM_PROCID is the node rank, the address of the allocation's first node the master's) and the variant trains
data-parallel over all of them. Every submission is recorded in results/<study>/slurm/jobs.json
(job → array job id and task), so `status` can ask the scheduler, `cancel` knows what to stop, and a
rerun submits only what is neither done nor queued or running. Nothing here changes a result: a
cancelled, preempted or requeued task resumes from the variant's latest checkpoint.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ablate.errors import AblateError
from ablate.recipe import Slurm, describe_errors
from ablate.run.launch import MASTER_PORTS, job_environment
from ablate.study.store import read_shaped, study_dir, write_atomic, write_json

SCRIPT = "run.sbatch"
JOBS = "jobs.json"
# Scheduler states in which a task still holds, or waits for, its allocation: not to be submitted again.
LIVE = {"pending", "running", "configuring", "completing", "requeued", "resizing", "suspended", "stopped"}
_READABLE = {"OUT_OF_MEMORY": "out of memory", "NODE_FAIL": "node failure", "BOOT_FAIL": "boot failure"}


def folder(study: str) -> Path:
    return study_dir(study) / "slurm"


# ---- the script ----------------------------------------------------------------------------


def gpu_request(slurm: Slurm, gpus: int) -> str | None:
    """The #SBATCH option that asks for `gpus` GPUs per node, or None where none should be asked.

    'auto' asks sinfo whether the partition has GPU GRES: a request for GPUs on a cluster without
    them is rejected by sbatch ("Invalid generic resource (gres) specification"). Where it has them
    the request is --gres=gpu:N, which every Slurm reads; where sinfo cannot tell, --gpus-per-node.
    """
    form: str = slurm.gpu_request
    if gpus == 0 or form == "none":
        return None
    if form == "auto":
        form = {"gres": "gres", "none": "none"}.get(_partition_gres(slurm.partition), "gpus-per-node")
    if form == "none":
        return None
    return f"--gres=gpu:{gpus}" if form == "gres" else f"--gpus-per-node={gpus}"


def _partition_gres(partition: str | None) -> str:
    """'none' when sinfo lists no GPU GRES on the partition's nodes, 'gres' when it lists some, 'unknown'."""
    command = ["sinfo", "-h", "-o", "%G", *(["-p", partition] if partition else [])]
    try:
        listed = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not listed:
        return "unknown"
    return "gres" if any("gpu" in entry for entry in listed) else "none"


def script(
    study: str, jobs: list[str], *, gpus: int, nodes: int, slurm: Slurm, request: str | None, strict: bool = False
) -> str:
    """The array script; `request` is gpu_request's answer. Asks nothing of the cluster: the text
    depends only on the arguments, the interpreter, the working folder and the results root."""
    if not jobs:
        raise AblateError("nothing to submit: every selected variant is done or queued")
    procs = max(gpus, 1)
    python, flags = shlex.quote(sys.executable), " --strict" if strict else ""
    options = [
        f"--job-name=ablate-{study}",
        f"--array=0-{len(jobs) - 1}",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        *([request] if request else []),
        *(f"--{name.replace('_', '-')}={value}" for name, value in _set(slurm).items()),
        *(["--requeue"] if slurm.requeue else []),
        f"--output={folder(study).resolve()}/%x-%A_%a.log",
        *slurm.extra,  # last: sbatch takes the last of an option given twice, so these can override
    ]
    worker = f'{python} -m ablate.run.worker {shlex.quote(study)} "$JOB"{flags}'
    launcher = f"{python} -m composer.cli.launcher -n {procs}"
    logs = '--stdout "$LOGS/rank{rank}.stdout" --stderr "$LOGS/rank{rank}.stderr"'
    if nodes == 1:
        train = f'exec {launcher} {logs} \\\n  -m ablate.run.worker {shlex.quote(study)} "$JOB"{flags}'
    else:  # one launcher per node: srun's task id is the node rank, every node joins the first one
        # The master port is drawn from the job and task ids, in MASTER_PORTS (below the ephemeral range).
        per_node = (
            f"exec {launcher} --world_size $((SLURM_NTASKS * {procs})) --node_rank $SLURM_PROCID "
            f"--master_addr $MASTER_ADDR --master_port $MASTER_PORT {logs} "
            f"-m ablate.run.worker {shlex.quote(study)} $JOB{flags}"
        )
        train = (
            'FIRST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            "MASTER_ADDR=$(scontrol -o show node \"$FIRST\" | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)\n"
            f"MASTER_PORT=$(({MASTER_PORTS.start} + (SLURM_ARRAY_JOB_ID * 1000 + SLURM_ARRAY_TASK_ID) % "
            f"{len(MASTER_PORTS)}))\n"
            "export MASTER_ADDR MASTER_PORT LOGS JOB\n"
            f"exec srun --kill-on-bad-exit=1 bash -c {shlex.quote(per_node)}"
        )
    if nodes == 1 and procs == 1:
        body = [f"exec {worker}"]
    else:  # the start checkpoint's evaluation needs one process; training takes the whole allocation
        body = ['if [ "$JOB" = start ]; then', f"  exec {worker}", "fi", f'LOGS="$ABLATE_RESULTS/{study}/$JOB/logs"']
        body += ['mkdir -p "$LOGS"', train]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Written by `ablate run --launcher slurm`: one array task per job of study '{study}'.",
            "# Resources come from the recipe's `slurm:` block and `--slurm FIELD=VALUE`; edit those, not this file.",
            *(f"#SBATCH {option}" for option in options),
            "set -euo pipefail",
            f"JOBS=({' '.join(shlex.quote(job) for job in jobs)})",
            'JOB="${JOBS[$SLURM_ARRAY_TASK_ID]}"',
            f"cd {shlex.quote(str(Path.cwd()))}",
            *(f"export {key}={shlex.quote(value)}" for key, value in job_environment().items()),
            *body,
            "",
        ]
    )


def _set(slurm: Slurm) -> dict[str, str]:
    """The recipe's plain resource fields that are set, as sbatch option names → values."""
    fields = ("partition", "account", "qos", "time", "constraint", "cpus_per_task", "mem")
    return {name: str(getattr(slurm, name)) for name in fields if getattr(slurm, name) is not None}


def write_script(study: str, text: str) -> Path:
    path = folder(study) / SCRIPT
    write_atomic(path, text)
    path.chmod(0o755)
    return path


# ---- submitting and recording --------------------------------------------------------------


def submit(study: str, jobs: list[str], path: Path) -> str:
    """sbatch the script and record which array task runs which job; returns the array job id."""
    try:
        done = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise AblateError(f"--launcher slurm: sbatch not found on PATH; submit {path} from a login node") from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise AblateError(f"--launcher slurm: sbatch refused {path} ({reason}); fix the recipe's slurm block")
    job_id = done.stdout.strip().split(";")[0]
    known = recorded(study)
    for task, job in enumerate(jobs):
        known[job] = {"job_id": f"{job_id}_{task}", "array": job_id, "task": task, "submitted": time.time()}
    write_json(folder(study) / JOBS, known)
    return job_id


class _Submitted(BaseModel):
    """One job's entry in jobs.json, as `submit` writes it."""

    job_id: str
    array: str
    task: int
    submitted: float


def recorded(study: str) -> dict[str, dict]:
    """Job → its submission, from jobs.json; a file of another shape is one line, not a traceback."""
    path = folder(study) / JOBS
    return (
        read_shaped(path, dict[str, _Submitted], "delete it (ablate forgets those submissions) and rerun")
        if path.exists()
        else {}
    )


# ---- asking the scheduler ------------------------------------------------------------------


def scheduler_states(study: str) -> dict[str, tuple[str, str]]:
    """Job → (Slurm job id, the scheduler's state in words) for every job the study submitted.

    squeue knows queued and running tasks; scontrol remembers finished ones for a few minutes
    (MinJobAge); sacct for as long as the cluster keeps accounting. A task none of them knows is 'gone'.
    """
    known = {job: entry["job_id"] for job, entry in recorded(study).items()}
    if not known:
        return {}
    states = _squeue(sorted({entry["array"] for entry in recorded(study).values()}))
    for job_id in set(known.values()) - set(states):
        states[job_id] = _scontrol(job_id) or _sacct(job_id) or "gone"
    return {job: (job_id, states[job_id]) for job, job_id in known.items()}


def readable(state: str) -> str:
    """A Slurm state ('OUT_OF_MEMORY', 'CANCELLED by 0', 'PENDING') as words ('out of memory', ...)."""
    word = state.split()[0].rstrip("+") if state.strip() else "unknown"
    return _READABLE.get(word, word.lower().replace("_", " "))


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _squeue(arrays: list[str]) -> dict[str, str]:
    text = _run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(arrays)]) or ""
    pairs = (line.split("|", 1) for line in text.splitlines() if "|" in line)
    return {job_id.strip(): readable(state) for job_id, state in pairs}


def _scontrol(job_id: str) -> str | None:
    text = _run(["scontrol", "-o", "show", "job", job_id]) or ""
    for field in text.split():
        if field.startswith("JobState="):
            return readable(field.removeprefix("JobState="))
    return None


def _sacct(job_id: str) -> str | None:
    text = _run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id]) or ""
    lines = [line for line in text.splitlines() if line.strip()]
    return readable(lines[-1]) if lines else None


def queued(study: str) -> dict[str, str]:
    """Jobs whose task is still queued or running: job → why they are not submitted again."""
    return {
        job: f"Slurm job {job_id} {state}" for job, (job_id, state) in scheduler_states(study).items() if state in LIVE
    }


def cancel(jobs: Mapping[str, str]) -> list[str]:
    """scancel the tasks of `jobs` (job → Slurm job id); returns the ids cancelled."""
    ids = sorted(set(jobs.values()))
    if not ids:
        return []
    try:
        done = subprocess.run(["scancel", *ids], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise AblateError("ablate cancel: scancel not found on PATH; run it where Slurm's commands are") from None
    if done.returncode != 0:
        raise AblateError(f"ablate cancel: scancel failed ({done.stderr.strip()}); job ids {', '.join(ids)}")
    return ids


def settings(recipe: Slurm, overrides: tuple[str, ...]) -> Slurm:
    """The recipe's slurm block with `--slurm FIELD=VALUE` overrides (`extra=...` adds an option)."""
    fields = recipe.model_dump()
    for override in overrides:
        name, equals, value = override.partition("=")
        name = name.strip().replace("-", "_")
        if not equals or name not in Slurm.model_fields:
            raise AblateError(f"--slurm {override}: use FIELD=VALUE with a field of {sorted(Slurm.model_fields)}")
        fields[name] = [*fields["extra"], value] if name == "extra" else value
    try:
        return Slurm.model_validate(fields)
    except ValidationError as exc:
        raise AblateError(f"--slurm: {describe_errors(exc)}") from None
