"""`ablate run --launcher slurm`: the script fits the cluster, and on a real Slurm the study runs to
done, a cancelled task resumes to the same weights, and a variant over two nodes trains like one process.

The first half is pure (the script's text, overrides, launcher checks). The second half starts Debian's
slurm-wlm on this machine as a two-node cluster (tests/slurm_cluster.py) and skips, with the reason,
where it cannot.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_cluster import local_cluster, why_not
from tiny_study import PHASE, STUDY, ablate, clone, status

from ablate.errors import AblateError
from ablate.recipe import Slurm
from ablate.run import slurm
from ablate.run.runner import Launch


def script(jobs=("start", "baseline"), *, gpus=1, nodes=1, request=None, **fields) -> str:
    return slurm.script("demo", list(jobs), gpus=gpus, nodes=nodes, slurm=Slurm(**fields), request=request)


def sbatch_lines(text: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in text.splitlines() if line.startswith("#SBATCH ")]


def bash_parses(text: str, tmp_path: Path) -> bool:
    path = tmp_path / "run.sbatch"
    path.write_text(text)
    return subprocess.run(["bash", "-n", str(path)]).returncode == 0


# ---- the script, without a cluster ---------------------------------------------------------


def test_a_cpu_study_asks_for_no_gpus(tmp_path):
    text = script(gpus=0, request=slurm.gpu_request(Slurm(), 0))
    assert not [line for line in sbatch_lines(text) if "gpu" in line or "gres" in line]
    assert "composer.cli.launcher" not in text  # one process: the job itself
    assert bash_parses(text, tmp_path)


def test_gpu_request_forms():
    assert slurm.gpu_request(Slurm(gpu_request="gpus-per-node"), 8) == "--gpus-per-node=8"
    assert slurm.gpu_request(Slurm(gpu_request="gres"), 8) == "--gres=gpu:8"
    assert slurm.gpu_request(Slurm(gpu_request="none"), 8) is None
    assert slurm.gpu_request(Slurm(gpu_request="gres"), 0) is None  # --gpus 0: CPUs only, whatever the form


def test_resources_from_the_recipe_block_and_extra_options_last(tmp_path):
    text = script(
        gpus=8, request="--gres=gpu:8", partition="h100", account="lm", qos="high", time="2-00:00:00",
        constraint="nvlink", cpus_per_task=64, mem="800G", requeue=True, extra=["--exclusive", "--nodes=3"],
    )  # fmt: skip
    lines = sbatch_lines(text)
    for expected in (
        "--gres=gpu:8", "--partition=h100", "--account=lm", "--qos=high", "--time=2-00:00:00",
        "--constraint=nvlink", "--cpus-per-task=64", "--mem=800G", "--requeue", "--array=0-1",
    ):  # fmt: skip
        assert expected in lines, expected
    assert lines[-2:] == ["--exclusive", "--nodes=3"]  # last, so they override what came before
    assert "composer.cli.launcher -n 8" in text and "srun" not in text
    assert bash_parses(text, tmp_path)


def test_several_nodes_start_one_launcher_per_node(tmp_path):
    text = script(gpus=8, nodes=4, request="--gpus-per-node=8")
    assert "--nodes=4" in sbatch_lines(text) and "--ntasks-per-node=1" in sbatch_lines(text)
    assert "exec srun --kill-on-bad-exit=1 bash -c" in text
    assert "--world_size $((SLURM_NTASKS * 8)) --node_rank $SLURM_PROCID" in text
    assert 'FIRST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in text
    assert "MASTER_ADDR=$(scontrol -o show node \"$FIRST\" | grep -o 'NodeAddr=[^ ]*' | cut -d= -f2)" in text
    assert bash_parses(text, tmp_path)


def test_overrides_name_the_field_when_wrong():
    base = Slurm(partition="cpu", extra=["--exclusive"])
    merged = slurm.settings(base, ("time=1:00:00", "extra=--mail-type=END", "requeue=true"))
    assert merged.time == "1:00:00" and merged.requeue and merged.partition == "cpu"
    assert merged.extra == ["--exclusive", "--mail-type=END"]
    with pytest.raises(AblateError, match="--slurm nope=1: use FIELD=VALUE"):
        slurm.settings(base, ("nope=1",))
    with pytest.raises(AblateError, match="--slurm: .*cpus_per_task"):
        slurm.settings(base, ("cpus_per_task=many",))
    with pytest.raises(AblateError, match="is not one sbatch option"):
        slurm.settings(base, ("extra=exclusive",))


def test_scheduler_states_read_as_words():
    assert slurm.readable("OUT_OF_MEMORY") == "out of memory"
    assert slurm.readable("CANCELLED by 0") == "cancelled"
    assert slurm.readable("PENDING") == "pending" and slurm.readable("NODE_FAIL") == "node failure"
    assert slurm.readable("PREEMPTED") == "preempted" and slurm.readable("TIMEOUT") == "timeout"


def test_launch_combinations_that_cannot_work(monkeypatch):
    for key in ("NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    cases = {
        Launch("local", nodes=2): "--nodes 2: the local launcher runs on one machine",
        Launch("torchrun", nodes=2): "--nodes 2: set NODE_RANK, MASTER_ADDR, MASTER_PORT on every node",
        Launch("local", slurm=("time=1:00",)): "--slurm: only with --launcher slurm",
        Launch("slurm", gpus=-1): "--gpus -1: use 0 (CPUs only) or more",
        Launch("slurm", nodes=0): "--nodes 0: use 1 or more",
    }
    for how, message in cases.items():
        with pytest.raises(AblateError, match=message.replace("(", r"\(").replace(")", r"\)")):
            how.check()
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "node0")
    monkeypatch.setenv("MASTER_PORT", "29500")
    Launch("torchrun", nodes=2).check()
    assert Launch("torchrun", nodes=2).node_rank == 1 and Launch("torchrun").node_rank == 0


# ---- on a real one-node Slurm ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = why_not()
    if reason:
        pytest.skip(reason)
    with local_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def wait_until(ready, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def settled(results: Path, jobs: list[str], cluster: dict) -> bool:
    """Every job's task has left the queue (finished, failed or cancelled)."""
    recorded = json.loads((results / STUDY / "slurm" / "jobs.json").read_text())
    ids = ",".join(recorded[job]["job_id"] for job in jobs)
    queue = subprocess.run(["squeue", "-h", "-j", ids], capture_output=True, text=True, env=cluster_env(cluster))
    return queue.returncode == 0 and not queue.stdout.strip()


def logs(results: Path, job: str) -> str:
    """The tails of a job's Slurm log and per-rank logs: what a failed assertion shows."""
    folder = results / STUDY
    files = [*sorted((folder / "slurm").glob("*.log")), *sorted((folder / job / "logs").glob("rank*"))]
    return "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for path in files)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_env(cluster: dict) -> dict:
    return {**os.environ, **cluster}


def weights(results: Path, variant: str) -> dict:
    import torch

    path = results / STUDY / variant / "checkpoints" / "latest-rank0.pt"
    return torch.load(path, weights_only=False, map_location="cpu")["state"]["model"]


@pytest.mark.slow
def test_a_study_runs_to_done_through_sbatch_and_reports(tiny, cluster):
    results = clone(tiny, "slurm-study")
    submitted = ablate("run", "--launcher", "slurm", cwd=tiny.root, results=results, env=cluster)
    assert submitted.returncode == 0, submitted.stderr
    line = submitted.stderr.strip().splitlines()[-1]
    assert line.startswith("submitted Slurm job ") and "an array of 3 tasks (start, baseline, no-g) from " in line
    text = (results / STUDY / "slurm" / "run.sbatch").read_text()
    assert not [option for option in sbatch_lines(text) if "gpu" in option]  # no GPU GRES here: none asked for
    again = ablate("run", "--launcher", "slurm", "--dry-run", cwd=tiny.root, results=results, env=cluster)
    assert again.stdout.split().count("busy") + again.stdout.split().count("skip") == 3, again.stdout
    wait_until(lambda: settled(results, ["start", "baseline", "no-g"], cluster), 600, "the array did not finish")
    for job in ("start", "baseline", "no-g"):
        assert status(results, job)["state"] == "done", (job, status(results, job), logs(results, job))
    for variant in ("baseline", "no-g"):
        assert status(results, variant)["scores"] == status(tiny.results, variant)["scores"]
    shown = ablate("status", cwd=tiny.root, results=results, env={**cluster, "COLUMNS": "200"})
    assert shown.returncode == 0 and shown.stdout.count("completed") == 3, shown.stdout
    report = ablate("report", cwd=tiny.root, results=results, env=cluster)
    assert report.returncode == 0 and "no-g" in report.stdout, report.stderr
    rerun = ablate("run", "--launcher", "slurm", cwd=tiny.root, results=results, env=cluster)
    assert rerun.returncode == 0 and "nothing to do" in rerun.stderr, rerun.stderr


def longer(raw: dict) -> None:
    """A phase 76 times longer (~1.6M tokens), checkpointed every 64k tokens: a task is surely still
    training a few seconds after its first checkpoint, when the test stops it."""
    raw["training"]["total_tokens"] *= 40
    raw["training"]["phase"] = 0.95
    raw["training"]["checkpoint_every_tokens"] = 65_536


@pytest.fixture(scope="module")
def uninterrupted(tiny):
    """The longer study's baseline, trained locally without a break: what a stopped one must end as."""
    reference = replanned(tiny, "longer-reference", longer)
    local = ablate("run", "--variant", "baseline", cwd=tiny.root, results=reference, timeout=600)
    assert local.returncode == 0, local.stderr
    return weights(reference, "baseline")


def assert_same_weights(results: Path, expected: dict) -> None:
    import torch

    for key, value in weights(results, "baseline").items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.slow
def test_cancel_mid_run_then_resubmit_ends_with_the_same_weights(tiny, cluster, uninterrupted):
    results = replanned(tiny, "slurm-cancel", longer)
    run = ("run", "--launcher", "slurm", "--variant", "baseline")
    assert ablate(*run, cwd=tiny.root, results=results, env=cluster).returncode == 0
    folder = results / STUDY / "baseline"
    wait_until(lambda: (folder / "checkpoints" / "latest-rank0.pt").exists(), 300, "no checkpoint was written")
    shown = ablate("status", cwd=tiny.root, results=results, env={**cluster, "COLUMNS": "200"})
    assert "running" in shown.stdout, shown.stdout
    cancelled = ablate("cancel", cwd=tiny.root, results=results, env=cluster)
    assert cancelled.returncode == 0 and cancelled.stderr.startswith("cancelled "), cancelled.stderr
    assert "baseline (" in cancelled.stderr and "resumes them" in cancelled.stderr
    wait_until(lambda: settled(results, ["start", "baseline"], cluster), 120, "the cancelled task stayed queued")
    interrupted = status(results, "baseline")
    assert interrupted["state"] == "failed" and interrupted["tokens_done"] < interrupted["tokens"], interrupted
    assert interrupted["error"].startswith("stopped by SIGTERM (cancelled, preempted or out of time)")
    shown = ablate("status", cwd=tiny.root, results=results, env={**cluster, "COLUMNS": "200"})
    assert "cancelled" in shown.stdout, shown.stdout

    resubmitted = ablate(*run, cwd=tiny.root, results=results, env=cluster)
    assert resubmitted.returncode == 0 and "baseline)" in resubmitted.stderr, resubmitted.stderr
    wait_until(lambda: settled(results, ["start"], cluster), 600, "the start evaluation did not finish")
    wait_until(lambda: settled(results, ["baseline"], cluster), 600, "the resubmitted task did not finish")
    done = status(results, "baseline")
    assert done["state"] == "done" and 0 < done["resumed_at"] < done["tokens"], (done, logs(results, "baseline"))
    assert_same_weights(results, uninterrupted)


@pytest.mark.slow
def test_a_requeued_task_resumes_by_itself_to_the_same_weights(tiny, cluster, uninterrupted):
    """What preemption does to a task submitted with `requeue: true`: killed, queued again, restarted."""
    results = replanned(tiny, "slurm-requeue", longer)
    run = ("run", "--launcher", "slurm", "--variant", "baseline", "--slurm", "requeue=true")
    assert ablate(*run, cwd=tiny.root, results=results, env=cluster).returncode == 0
    assert "#SBATCH --requeue" in (results / STUDY / "slurm" / "run.sbatch").read_text()
    folder = results / STUDY / "baseline"
    wait_until(lambda: (folder / "checkpoints" / "latest-rank0.pt").exists(), 300, "no checkpoint was written")
    job_id = json.loads((results / STUDY / "slurm" / "jobs.json").read_text())["baseline"]["job_id"]
    requeued = subprocess.run(["scontrol", "requeue", job_id], env=cluster_env(cluster), capture_output=True)
    assert requeued.returncode == 0, requeued.stderr
    wait_until(lambda: settled(results, ["start", "baseline"], cluster), 600, "the requeued task did not finish")
    done = status(results, "baseline")
    assert done["state"] == "done" and 0 < done["resumed_at"] < done["tokens"], (done, logs(results, "baseline"))
    assert_same_weights(results, uninterrupted)


def replanned(tiny, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    """A results root with the tiny study planned from a changed copy of its recipe."""
    raw = yaml.safe_load(tiny.recipe.read_text())
    change(raw)
    recipe = tiny.root / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    results = tiny.root / name
    assert ablate("plan", "--recipe", str(recipe), "--remove", "g", cwd=tiny.root, results=results).returncode == 0
    return results


@pytest.mark.slow
def test_a_variant_over_two_nodes_trains_like_one_process(tiny, cluster):
    """--nodes 2: one Composer launcher on each of the cluster's two nodes, gloo between them. With
    training.canonical_nodes fixed, streaming draws the same global batches on one node or two."""

    def two_canonical_nodes(raw: dict) -> None:
        raw["training"]["canonical_nodes"] = 2

    reference, results = (replanned(tiny, name, two_canonical_nodes) for name in ("nodes-reference", "slurm-nodes"))
    local = ablate("run", "--variant", "no-g", cwd=tiny.root, results=reference, timeout=600)
    assert local.returncode == 0, local.stderr
    run = ("run", "--launcher", "slurm", "--nodes", "2", "--variant", "no-g")
    submitted = ablate(*run, cwd=tiny.root, results=results, env=cluster)
    assert submitted.returncode == 0, submitted.stderr
    wait_until(lambda: settled(results, ["start", "no-g"], cluster), 600, "the two-node task did not finish")
    two, one = status(results, "no-g"), status(reference, "no-g")
    assert two["state"] == "done", (two, logs(results, "no-g"))
    assert two["world_size"] == 2 and one["world_size"] == 1
    curves = [
        [json.loads(line) for line in (where / STUDY / "no-g" / "train_log.jsonl").open()]
        for where in (results, reference)
    ]
    assert [step["tokens"] for step in curves[0]] == [step["tokens"] for step in curves[1]]
    assert two["tokens_done"] == one["tokens_done"] == PHASE
    for a, b in zip(*curves, strict=True):  # the same global batches over 2 nodes: the same curve
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    import torch

    split, whole = weights(results, "no-g"), weights(reference, "no-g")
    for key, value in split.items():
        assert torch.allclose(value, whole[key], atol=1e-4), key


@pytest.mark.slow
def test_torchrun_across_two_hosts_without_slurm(tiny):
    """The same command on two "hosts" with NODE_RANK, MASTER_ADDR and MASTER_PORT set: node 0 runs the
    study, node 1 follows it. The second host is this one in a mount namespace with its own /dev/shm."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a second host's private /dev/shm needs root and unshare")

    def two_canonical_nodes(raw: dict) -> None:
        raw["training"]["canonical_nodes"] = 2

    reference, results = (replanned(tiny, name, two_canonical_nodes) for name in ("hosts-reference", "hosts"))
    assert ablate("run", "--variant", "no-g", cwd=tiny.root, results=reference, timeout=600).returncode == 0
    port = str(free_port())
    command = [sys.executable, "-m", "ablate.cli", "run", "--launcher", "torchrun", "--nodes", "2", "--variant", "no-g"]
    hosts = []
    private_shm = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "-"]
    for rank, prefix in enumerate(([], private_shm)):
        env = {**os.environ, "ABLATE_RESULTS": str(results), "NODE_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port}  # fmt: skip
        hosts.append(subprocess.Popen([*prefix, *command], cwd=tiny.root, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))  # fmt: skip
    printed = [host.communicate(timeout=600)[0] for host in hosts]
    assert [host.returncode for host in hosts] == [0, 0], printed
    two, one = status(results, "no-g"), status(reference, "no-g")
    assert two["state"] == "done" and two["world_size"] == 2, two
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-4)
    assert status(results, "start")["state"] == "done"  # evaluated once, by node 0
