"""Where this process sits in a job: its rank and the world size, from the launcher's environment.

Composer's launcher (and torchrun, and srun through it) sets RANK and WORLD_SIZE before Python
starts, so these are valid before torch.distributed is initialised; a plain process is rank 0 of 1.
"""

from __future__ import annotations

import os


def rank() -> int:
    """Global rank: 0 writes the folder's files and evaluates."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_device() -> str:
    """Where this process computes outside Composer: its GPU (cuda:LOCAL_RANK) where there is one, else
    the CPU. A model loaded from a folder starts on the CPU, where a 7B's evaluation would take days."""
    import torch

    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"


def join_process_group() -> None:
    """Join the job's process group now, once, if it has several processes (a no-op otherwise).

    Before the training data is built: streaming's dataset otherwise makes a process group of its own
    and destroys it, and the Trainer's, made right after on the same MASTER_PORT, races rank 0's store
    server being torn down and rebuilt: a rank that reaches the old server as it closes fails with
    "failed to recv, got 0 bytes" or "Gloo connectFullMesh failed". One group, made here and reused by
    streaming and Composer (both skip their own when one exists), has no such window.
    """
    if world_size() <= 1:
        return
    import torch
    from composer.devices import DeviceCPU, DeviceGPU
    from composer.utils import dist

    dist.initialize_dist(DeviceGPU() if torch.cuda.is_available() else DeviceCPU())
