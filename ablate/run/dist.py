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
