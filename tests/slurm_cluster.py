"""A real Slurm cluster on this machine, for the tests: Debian's slurm-wlm, run as root, two nodes.

Both nodes are this host (two slurmd, `slurmd -N`). The second runs in its own mount namespace with
a private /dev/shm, as a second machine would have, so that a variant spread over the two nodes
meets what it meets on real ones: each node's shared memory is its own (streaming keys a dataset's
shared memory by node, and two nodes that shared one /dev/shm would collide).

`make slurm` (which .ci/run calls) installs the packages `slurmctld slurmd slurm-client munge`.
`why_not()` says why a cluster cannot start here (not root, a package missing), and the tests that
need one skip with that reason. The cluster's configuration, state and logs live in a folder of
the test's own; clients find it through SLURM_CONF. Only the daemons started here are stopped, by
their processes; a munged already running is used as it is.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun", "unshare")
NODES = ("n1", "n2")
MUNGE_KEY = Path("/etc/munge/munge.key")


def why_not() -> str | None:
    """None when a cluster can start here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "a one-node Slurm needs root (slurmctld and slurmd run as root here)"
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} not found); `make slurm` installs it"
    return None


def _config(root: Path, host: str) -> str:
    cpus = os.cpu_count() or 1
    with open("/proc/meminfo") as meminfo:
        memory = max(int(meminfo.readline().split()[1]) // 1024 // len(NODES) - 512, 512)
    ports = _free_ports(1 + len(NODES))
    nodes = [
        f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus} RealMemory={memory}"
        for name, port in zip(NODES, ports[1:], strict=True)
    ]
    return "\n".join(
        [
            "ClusterName=ablate-tests",
            f"SlurmctldHost={host}",
            f"SlurmctldPort={ports[0]}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "MpiDefault=none",
            "MinJobAge=3600",  # finished tasks stay visible to scontrol for the whole test session
            f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool-%n",
            f"SlurmctldPidFile={root}/slurmctld.pid",
            f"SlurmdPidFile={root}/slurmd-%n.pid",
            f"SlurmctldLogFile={root}/slurmctld.log",
            f"SlurmdLogFile={root}/slurmd-%n.log",
            *nodes,
            f"PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _munge_works() -> bool:
    encoded = subprocess.run(["munge", "-n"], capture_output=True, check=False)
    if encoded.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True, check=False).returncode == 0


def _start_munge(root: Path) -> subprocess.Popen | None:
    """munged in the foreground as the munge user, unless one already answers; its key made if missing."""
    if _munge_works():
        return None
    if not MUNGE_KEY.exists():
        subprocess.run(["mungekey", "--create", "--keyfile", str(MUNGE_KEY)], check=True)
    shutil.chown(MUNGE_KEY, "munge", "munge")
    MUNGE_KEY.chmod(0o400)
    for folder in (Path("/run/munge"), Path("/var/lib/munge"), Path("/var/log/munge")):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(folder, "munge", "munge")
    process = subprocess.Popen(
        ["runuser", "-u", "munge", "--", "munged", "--foreground"],
        stdout=(root / "munged.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    _wait(_munge_works, 20, "munged did not answer", root / "munged.log")
    return process


def _wait(ready, seconds: float, what: str, log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"{what} within {seconds:.0f} s; {log}:\n{tail}")
        time.sleep(0.2)


@contextmanager
def local_cluster(root: Path) -> Iterator[dict[str, str]]:
    """munged, slurmctld and a slurmd per node, configured under `root`; yields the clients' environment."""
    (root / "state").mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(_config(root, host))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started: list[subprocess.Popen] = []
    try:
        munged = _start_munge(root)
        if munged:
            started.append(munged)
        log = (root / "daemons.out").open("w")
        started.append(subprocess.Popen(["slurmctld", "-D", "-f", str(conf)], env=env, stdout=log, stderr=log))
        first, *others = NODES
        slurmd = ["slurmd", "-D", "-N", first, "-f", str(conf)]
        started.append(subprocess.Popen(slurmd, env=env, stdout=log, stderr=log))
        for node in others:  # a private /dev/shm: what a second machine would have
            private = f"mount -t tmpfs tmpfs /dev/shm && exec slurmd -D -N {node} -f {conf}"
            started.append(subprocess.Popen(["unshare", "-m", "sh", "-c", private], env=env, stdout=log, stderr=log))

        def idle() -> bool:
            sinfo = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
            return sinfo.stdout.split() == ["idle"] * len(NODES)

        _wait(idle, 60, "the nodes did not come up idle", root / "slurmctld.log")
        yield {"SLURM_CONF": str(conf)}
    finally:
        # Jobs first: a task still running when slurmd stops would outlive the cluster.
        subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True, check=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            queue = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, check=False)
            if queue.returncode != 0 or not queue.stdout.strip():
                break
            time.sleep(0.5)
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
