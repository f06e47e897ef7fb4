"""The phase's data: one streaming `Stream` per subset, weighted by the mixture, for exactly the
samples the run needs, with the counts each subset contributes (streaming repeats a small stream
silently, so the run reports it).

    from ablate.run.stream import build_dataloader
    loader, drawn = build_dataloader(recipe, {"prose": 0.5, "code": 0.5}, seed=0, samples=4096, cache=study / "cache")
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import numpy as np
import torch
from streaming import Stream, StreamingDataset
from streaming.base.dataset import _ShardState
from torch.utils.data import DataLoader

from ablate.errors import AblateError
from ablate.recipe import Recipe
from ablate.run.dist import world_size


def _collate(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """MDS samples of `seq_len` token ids → a causal-LM batch (the model shifts the labels itself)."""
    ids = torch.from_numpy(np.stack([s["tokens"] for s in samples]).astype(np.int64))
    return {"input_ids": ids, "labels": ids}


PREFIX_LOCK_SECONDS = 60  # building a dataset takes well under a second; a holder this slow is stuck


@contextmanager
def _one_dataset_at_a_time() -> Iterator[None]:
    """Jobs on one machine build their StreamingDatasets in turn, under a flock per node and user.

    Why: streaming names a dataset's shared memory after the first prefix free in /dev/shm, so two
    datasets built at once can pick the same one (FileExistsError: '/000694_locals'). Only local rank
    0 takes the lock (the other ranks meet it at streaming's barriers); a holder stuck for
    PREFIX_LOCK_SECONDS is passed by, since the lock narrows a race and must not stop the node. The
    lock file lives in the folder raced over (/dev/shm, else the temp folder); its holder first frees
    what killed runs' datasets left there (`free_dead_shared_memory`).
    """
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        yield
        return
    shm = Path("/dev/shm")
    folder = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    # One lock per user: a file another user created could not be opened for writing.
    with (folder / f"ablate-streaming-prefix-{os.getuid()}.lock").open("a") as handle:
        locked = _flock_within(handle, PREFIX_LOCK_SECONDS)
        try:
            if folder == shm:
                free_dead_shared_memory(shm)
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


_STREAMING_SHM = re.compile(r"(\d{6})_\w+")  # streaming's names: a six-digit prefix per dataset, then the part


def free_dead_shared_memory(shm: Path) -> list[str]:
    """Unlink streaming's files in `shm` whose prefix no live process maps: what killed runs left there.
    Returns their names. streaming's own clean_stale_shared_memory unlinks every prefix, a live
    dataset's too; which are live is read off /proc/*/maps. A file another user owns stays (the
    folder is sticky), so a process this user cannot see is never harmed."""
    mapped = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with suppress(OSError):  # a process that ended meanwhile, or another user's
            mapped |= set(re.findall(rf"{re.escape(str(shm))}/(\d{{6}})_", maps.read_text()))
    freed = []
    for path in shm.iterdir():
        match = _STREAMING_SHM.fullmatch(path.name)
        if match and match[1] not in mapped:
            with suppress(OSError):
                path.unlink()
                freed.append(path.name)
    return freed


def _flock_within(handle: IO[str], seconds: float) -> bool:
    """Take an exclusive flock on `handle`, waiting at most `seconds`; whether it was taken."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


class _LocalShards(StreamingDataset):
    """A StreamingDataset over shards already on local disk, which checks each shard once.

    streaming's helper thread calls prepare_shard for every sample: a file lock, a stat and a
    timestamp (~250 µs), which on a small model contends with training for the GIL (+8–17% per step
    for the demo's, benchmarks/train_overhead.py). Without a cache limit nothing evicts a local
    shard, so once it is known to be local the later checks cannot change anything; the samples
    and their order are the same.
    """

    def prepare_shard(self, shard_id: int, blocking: bool = True) -> None:
        known = self.__dict__.setdefault("_known_local", set())
        if shard_id in known:
            return
        super().prepare_shard(shard_id, blocking)
        if self._shard_states[shard_id] == _ShardState.LOCAL:
            known.add(shard_id)


def per_device_batch(recipe: Recipe) -> int:
    batch, world = recipe.training.batch_size, world_size()
    if batch % world:
        raise AblateError(f"training.batch_size: {batch} does not split over {world} processes; use a multiple")
    return batch // world


def build_dataloader(
    recipe: Recipe, mixture: dict[str, float], *, seed: int, samples: int, cache: Path
) -> tuple[DataLoader, dict[str, int]]:
    """A loader over one `Stream` per subset, weighted by `mixture`, for exactly `samples` samples.

    Each subset is read from a local folder of seq_len-token samples: its own, or the study's copy
    in `cache` (ablate.data.ready, made here if the runner has not made it yet). Returns the loader
    and the samples each subset contributes to the epoch, so a subset repeated past its size (which
    streaming does silently) shows up in the run's summary.
    """
    from ablate.data.ready import ready_folders

    owners: dict[str, str] = {}
    for name in mixture:
        location = recipe.subsets[name].location
        if location in owners:
            raise AblateError(
                f"subsets.{name}.location: {location} is also subset '{owners[location]}'s; streaming reads a "
                "folder once per dataset, so give each subset its own shards"
            )
        owners[location] = name
    folders = ready_folders(recipe, [f"subsets.{name}.location" for name in mixture], cache=cache)
    streams = [
        Stream(local=folders[f"subsets.{name}.location"], proportion=proportion) for name, proportion in mixture.items()
    ]
    batch = per_device_batch(recipe)
    with _one_dataset_at_a_time():
        dataset = _LocalShards(
            streams=streams,
            shuffle=True,
            shuffle_seed=seed,
            num_canonical_nodes=recipe.training.canonical_nodes,
            batch_size=batch,
            epoch_size=samples,
            # The shards are local, so streaming's two helper threads may walk the whole epoch at once
            # and exit. Held to the default (8 batches ahead) they wake every 7 ms to check, and each
            # wake-up makes the training thread wait for the GIL: +20% per step for the demo's model
            # on a busy 2-core machine (benchmarks/train_overhead.py).
            predownload=samples,
        )
    drawn = {name: int(stream.choose) for name, stream in zip(mixture, dataset.streams, strict=True)}
    return DataLoader(dataset, batch_size=batch, collate_fn=_collate), drawn
