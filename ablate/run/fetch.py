"""A start checkpoint at a URI, fetched once per study into the study's cache, and removed once no job needs it.

    from ablate.run.fetch import fetch, release
    fetch("demo", "s3://bucket/run/ep8-ba800-rank0.pt", label="--checkpoint ckpt-800B")
    # → results/demo/cache/checkpoints/<hash of the URI>/ep8-ba800-rank0.pt, fetched on the first call only
    release("demo", "s3://bucket/run/ep8-ba800-rank0.pt")  # → the bytes freed

A URI is read with Composer's object stores, as streaming reads shards: s3:// (an S3-compatible server
through S3_ENDPOINT_URL), gs://, oci://, azure://; an http(s) URL is fetched as one file. It names
- one file, Composer's one-file checkpoint; where only `<name>.symlink` is there (how Composer uploads
  `latest-rank0.pt`), the object that link names;
- or a sharded checkpoint folder (torch.distributed.checkpoint's `.metadata` and one `__<rank>_0.distcp`
  per process): every object under `<uri>/`.

`ablate run` fetches before any job starts (ablate.run.runner), so a wrong URI or missing credentials is
one line there, and removes the copy once every job of the study that starts from it is done. Each job
reads the copy (local_start, once per job) and fetches it only where it is missing (a Slurm task
that runs after the copy was removed). A copy is written under a partial name and renamed into place,
so jobs or nodes racing never read half of one; a flock makes jobs on one machine wait for the first
fetch instead of fetching again. Composer (torch) is imported only inside the functions that reach a store.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from ablate.data.manifest import is_remote
from ablate.errors import AblateError, StudyError
from ablate.plan.build import Plan
from ablate.plan.identity import content_hash
from ablate.plan.pickled import DCP_METADATA
from ablate.plan.study import check_local_start, start_checkpoint
from ablate.recipe import Recipe
from ablate.study.artifacts import State, Status, read_status, resolve_checkpoint
from ablate.study.job import CACHE, START
from ablate.study.store import study_dir, variant_dir

CHECKPOINTS = "checkpoints"  # in the study's cache: one folder per fetched URI, named after the URI's hash
LOCK = "fetch.lock"  # in that folder: held by the one process fetching into it or removing it
SYMLINK = ".symlink"  # Composer's link in an object store: an object holding the name of its target
URLS = ("http", "https")  # fetched as one file by Composer's get_file, which knows their size only as it reads
POLL_SECONDS = 0.2  # how often the bytes on disk are reported while a fetch runs

Progress = Callable[[int, int], None]  # (bytes fetched so far, bytes in all; 0 where unknown)


@dataclass(frozen=True)
class Remote:
    """What a URI names in its object store: the objects to fetch and the size of them all."""

    store: Any  # a composer.utils.ObjectStore; None for an http(s) URL
    objects: dict[str, str]  # object name → its path inside the copy ("": the copy is that one file)
    size: int


def copy_path(study: str, uri: str) -> Path:
    """Where the study keeps its copy of `uri`, fetched or not: the file or folder under the URI's own
    name, in a folder named after the URI's hash (two runs' `latest-rank0.pt` never meet)."""
    name = PurePosixPath(urlparse(uri).path).name or "checkpoint"
    return study_dir(study) / CACHE / CHECKPOINTS / content_hash(uri) / name


def disk_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder; 0 where there is nothing."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for file in path.rglob("*") if path.is_dir() else ():
        with suppress(OSError):  # a store's temporary file, renamed meanwhile
            total += file.stat().st_size if file.is_file() else 0
    return total


def fetch(study: str, uri: str, *, label: str, on_bytes: Progress | None = None) -> Path:
    """The study's copy of `uri`, fetched first where it is not there yet; `on_bytes` follows the transfer.

    Bad input (`label` names where the URI came from) is one AblateError line, and nothing is written:
    the URI is looked up before any folder is made, and a fetch cut short leaves no partial copy.
    """
    target = copy_path(study, uri)
    if target.exists():  # renamed into place whole: never half of one
        return target
    remote = locate(uri, label)
    with _locked(target.parent):
        if target.exists():  # another job fetched it while this one waited
            return target
        partial = target.with_name(f"{target.name}.partial-{socket.gethostname()}-{os.getpid()}")
        try:
            with _reporting(partial, remote.size, on_bytes):
                _download(remote, partial)
            _land(partial, target)
        except BaseException as exc:
            _remove(partial)
            if isinstance(exc, Exception) and not isinstance(exc, AblateError):
                where = f"; check the URI, the credentials, and the free space in {target.parent}"
                raise AblateError(f"{label}: cannot fetch {uri} ({_first_line(exc)}){where}") from None
            raise
    return target


def local_start(study: str, recipe: Recipe, ref: str | None, *, on_bytes: Progress | None = None) -> str:
    """The start checkpoint `ref` names (ablate.plan.study.start_checkpoint) as a local path a job loads:
    where it is a URI, the study's copy, fetched once (`on_bytes` follows it) and checked against the
    recipe as a local start is."""
    path = str(start_checkpoint(study, recipe, ref))
    if not is_remote(path):
        return path
    copy = str(fetch(study, path, label=f"--checkpoint {ref}", on_bytes=on_bytes))
    check_local_start(recipe, str(ref), copy)
    return copy


def release(study: str, uri: str) -> int:
    """Remove the study's copy of `uri`, with whatever fetches cut short left beside it, and the cache
    folders that leaves empty; the bytes freed (0 where there was no copy)."""
    target = copy_path(study, uri)
    if not target.parent.exists():
        return 0
    with _locked(target.parent):
        freed = disk_size(target)
        shutil.rmtree(target.parent)
    for folder in (target.parent.parent, target.parent.parent.parent):  # cache/checkpoints, then cache/
        with suppress(OSError):  # not empty: other copies, or what else the study caches
            folder.rmdir()
    return freed


def release_done(study: str, plan: Plan) -> list[tuple[str, int]]:
    """Remove the copy of each start checkpoint at a URI that every job of the study starting from it is
    done with: the start's evaluation done, each variant trained (a failed or unfinished one resumes from
    it, so it is kept till then; one to train again is fetched again). Each URI removed, and the bytes freed."""
    start = _status(study_dir(study) / START)
    done = {plan.options.checkpoint: start.state == State.DONE and start.hash == plan.start_hash}
    for variant in plan.variants:
        status = _status(variant_dir(study, variant.name))
        trained = bool(status.trained) and status.train_hash == variant.train_hash
        finished = trained or (status.state == State.DONE and status.hash == variant.hash)
        done[variant.checkpoint] = done.get(variant.checkpoint, True) and finished
    named = plan.recipe.get("checkpoints") or {}
    uris = [resolve_checkpoint(study, named, ref) for ref, finished in done.items() if ref and finished]
    freed = [(uri, release(study, uri)) for uri in uris if is_remote(uri)]
    return [(uri, size) for uri, size in freed if size]


def _status(folder: Path) -> Status:
    """A job's status; one that cannot be read counts as not done (`ablate status` says why)."""
    try:
        return read_status(folder)
    except StudyError:
        return Status()


# ---- the object store ----------------------------------------------------------------------


def locate(uri: str, label: str) -> Remote:
    """What `uri` names: one object, the target of its Composer `.symlink`, or a sharded folder, found by
    asking for sizes and names only. No store for the scheme, nothing there, or a store that refuses
    (credentials, a missing bucket) is one line naming `label` and the fix."""
    from composer.utils import maybe_create_object_store_from_uri, parse_uri

    if urlparse(uri).scheme in URLS:
        return Remote(None, {uri: ""}, 0)
    try:
        store = maybe_create_object_store_from_uri(uri)
        found = _objects(store, parse_uri(uri)[2].rstrip("/"), follow=True)
    except Exception as exc:
        credentials = "for s3://, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; S3_ENDPOINT_URL for another server"
        fix = f"check the URI and the store's credentials ({credentials})"
        raise AblateError(f"{label}: cannot read {uri} ({_first_line(exc)}); {fix}") from None
    if found is None:
        raise AblateError(
            f"{label}: no object at {uri}, nor a sharded checkpoint under it ({uri.rstrip('/')}/{DCP_METADATA}); "
            "check the URI (a checkpoint file, or the folder of a sharded one)"
        )
    return found


def _objects(store: Any, key: str, *, follow: bool) -> Remote | None:
    """The objects `key` names in `store`, or None where there are none."""
    size = _size(store, key)
    if size is not None:
        return Remote(store, {key: ""}, size)
    if follow and _size(store, key + SYMLINK) is not None:
        from composer.utils.file_helpers import extract_path_from_symlink, parse_uri

        target = extract_path_from_symlink(key + SYMLINK, store).strip()
        return _objects(store, (parse_uri(target)[2] if "://" in target else target).rstrip("/"), follow=False)
    names = store.list_objects(f"{key}/")
    if f"{key}/{DCP_METADATA}" not in names:
        return None
    return Remote(store, {name: name[len(key) + 1 :] for name in names}, sum(_size(store, n) or 0 for n in names))


def _size(store: Any, key: str) -> int | None:
    """An object's size in bytes, None where there is no such object. Composer's S3 store asks with a GET
    (and drops its body); a HEAD reads none, so a study's one fetch is its only GET."""
    from composer.utils.object_store import S3ObjectStore

    try:
        if isinstance(store, S3ObjectStore):
            return int(store.client.head_object(Bucket=store.bucket, Key=store.get_key(key))["ContentLength"])
        return int(store.get_object_size(key))
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")  # botocore's ClientError
        if isinstance(exc, FileNotFoundError) or code in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _download(remote: Remote, partial: Path) -> None:
    """Every object of `remote` to `partial` (the file, or the folder's files by their paths inside it)."""
    from composer.utils import get_file

    partial.parent.mkdir(parents=True, exist_ok=True)  # removed meanwhile, where a release came first
    if remote.store is None:
        get_file(next(iter(remote.objects)), str(partial), progress_bar=False)
        return
    for name, inside in remote.objects.items():
        path = partial / inside if inside else partial
        path.parent.mkdir(parents=True, exist_ok=True)
        remote.store.download_object(name, str(path))


# ---- on disk -------------------------------------------------------------------------------


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the flock of a copy's folder: one process at a time fetches into it or removes it. The kernel
    releases it when its holder dies, even by SIGKILL."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _land(partial: Path, target: Path) -> None:
    """Rename the fetched `partial` into place; where another node's fetch of the same URI landed first
    (a folder cannot be renamed over a full one), keep that one: the same bytes."""
    try:
        partial.rename(target)
    except OSError:
        if not target.exists():
            raise
        _remove(partial)


def _remove(path: Path) -> None:
    """A partial copy and what the stores wrote beside it under its name (their own temporary files)."""
    for leftover in path.parent.glob(glob.escape(path.name) + "*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextmanager
def _reporting(partial: Path, total: int, on_bytes: Progress | None) -> Iterator[None]:
    """Call `on_bytes(done, total)` a few times a second while the block fetches into `partial`, reading
    the bytes on disk (every store's temporary files are named after it): stores report progress each in
    their own way, or not at all. The last call, once the block ends, says all of them are there."""
    if on_bytes is None:
        yield
        return
    stop = threading.Event()

    def written() -> int:
        return sum(disk_size(path) for path in partial.parent.glob(glob.escape(partial.name) + "*"))

    def poll() -> None:
        while not stop.wait(POLL_SECONDS):
            on_bytes(written(), total)

    watcher = threading.Thread(target=poll, name="ablate-fetch-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
    done = disk_size(partial)
    on_bytes(done, max(total, done))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
