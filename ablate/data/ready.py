"""Folders `run` cannot read in place, made ready once per study: whole seq_len-token sequences,
uncompressed, in the study's cache, read by every job of the study.

    from ablate.data.ready import ready_folders
    folders = ready_folders(recipe, ["subsets.web.location"], cache=Path("results/s/cache"))  # field → folder

What check_shards says needs a copy (a remote folder, compressed shards, samples of another length,
`tokens: bytes`, `text`) is read shard by shard with streaming's own readers, turned into token ids
(bytes decoded as the subset's token_encoding_type, text tokenized with the recipe's tokenizer and
EOS after each document, as `ablate data build` does), joined in order and cut into seq_len-token
sequences: only the final remainder is dropped, and the manifest counts it. A downloaded or
decompressed shard lives in a sibling scratch folder only while it is read; nothing is ever written
beside the source.

The copy is keyed by the location, its index.json, seq_len, the token encoding and (for text) the
tokenizer's files: a changed source makes a new copy. It is built under a file lock into a partial
folder renamed into place whole, so jobs of one study started together build it once and an
interrupted build is never read. It stays in results/<study>/cache/data until the study is deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ablate.data.buckets import INDEX, fetch_index
from ablate.data.build import COLUMNS, chunk, hash_files, load_tokenizer, tokenize
from ablate.data.check import check_shards, field_spec
from ablate.data.manifest import is_remote, read_manifest, write_manifest
from ablate.data.shards import TEXT, TOKENS
from ablate.errors import AblateError
from ablate.recipe import Recipe

DATA = "data"  # within the study's cache
DOWNLOAD_SECONDS = 600  # streaming's timeout for one shard


def remote_index(field: str, location: str, scratch: Path) -> dict:
    """A remote folder's index.json: s3:// with boto3 (one line on any failure), other schemes with
    streaming's downloaders."""
    index = fetch_index(field, location)
    if index is not None:
        return index
    from streaming.base.storage import CloudDownloader

    local = scratch / INDEX
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        CloudDownloader.direct_download(f"{location.rstrip('/')}/{INDEX}", str(local), DOWNLOAD_SECONDS)
        return json.loads(local.read_text())
    except Exception as exc:  # each object store raises its own errors
        raise AblateError(f"{field}: cannot read {location}/{INDEX} ({exc}); fix the location or credentials") from None
    finally:
        local.unlink(missing_ok=True)


Progress = Callable[[str, int], Callable[[int], None]]  # (label, samples) → advance(samples read)


def ready_folders(recipe: Recipe, fields: list[str], *, cache: Path, progress: Progress | None = None) -> dict:
    """Each folder field's local folder to read: its own location where it can be read in place, else
    the study's copy, made now if not made yet. `progress(label, samples)` gives an `advance(n)`."""
    return {field: ready_folder(recipe, field, cache=cache, progress=progress) for field in fields}


def ready_folder(recipe: Recipe, field: str, *, cache: Path, progress: Progress | None = None) -> str:
    """One folder field's local folder to read (ready_folders); the cache is made only for a copy."""
    location, encoding = field_spec(recipe, field)
    folder = cache / DATA
    index = remote_index(field, location, folder) if is_remote(location) else None
    shards = check_shards(field, location, recipe.seq_len, encoding, index)
    if shards.copy is None:
        return location
    folder.mkdir(parents=True, exist_ok=True)
    text = TOKENS not in shards.index["shards"][0]["column_names"]  # check_shards found `text` then
    tokenizer = Path(recipe.tokenizer)
    key = _key(location, shards.index, recipe.seq_len, encoding, tokenizer if text else None)
    label = field.removeprefix("subsets.").removesuffix(".location").replace("eval.heldout.", "heldout-")
    target = folder / f"{label}-{key}"
    with (folder / f".{target.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if read_manifest(str(target)) is None:
            for part in ("partial", "scratch"):  # what a killed build left: the lock says none is running
                for leftover in folder.glob(f".{target.name}.{part}-*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            samples = sum(int(shard["samples"]) for shard in shards.index["shards"])
            advance = progress(label, samples) if progress else (lambda n: None)
            _build(target, field, location, shards.index, recipe, encoding, tokenizer if text else None, advance)
    return str(target)


def _key(location: str, index: dict, seq_len: int, encoding: str, tokenizer: Path | None) -> str:
    digest = hashlib.sha256(json.dumps([location, index, seq_len, encoding], sort_keys=True).encode())
    if tokenizer is not None:
        digest.update(hash_files(sorted(p for p in tokenizer.iterdir() if p.is_file())).encode())
    return digest.hexdigest()[:12]


def _build(
    target: Path,
    field: str,
    location: str,
    index: dict,
    recipe: Recipe,
    encoding: str,
    tokenizer: Path | None,
    advance: Callable[[int], None],
) -> None:
    """Write the ready copy into a partial folder, its manifest last, and rename it into place."""
    from streaming import MDSWriter

    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    scratch = target.with_name(f".{target.name}.scratch-{os.getpid()}")
    stats = {"documents": 0, "dropped_tokens": 0}
    samples = 0
    try:
        arrays = _token_arrays(field, location, index, scratch, encoding, tokenizer, stats, advance)
        with MDSWriter(out=str(partial), columns=COLUMNS, progress_bar=False) as writer:
            for sequence in chunk(arrays, recipe.seq_len, stats):
                writer.write({"tokens": sequence})
                samples += 1
        if not samples:
            raise AblateError(f"{field}: {location} holds fewer tokens than seq_len {recipe.seq_len}; add data")
        write_manifest(partial, {
            "source": location, "seq_len": recipe.seq_len, "tokens": samples * recipe.seq_len, "samples": samples,
            "dropped_tokens": stats["dropped_tokens"], "columns": COLUMNS, "token_encoding_type": encoding,
            **({"tokenizer": str(tokenizer), "documents": stats["documents"]} if tokenizer else {}),
        })  # fmt: skip
        try:
            partial.rename(target)
        except OSError:  # another machine's build of the same copy landed first: the same samples
            shutil.rmtree(partial, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _token_arrays(
    field: str,
    location: str,
    index: dict,
    scratch: Path,
    encoding: str,
    tokenizer: Path | None,
    stats: dict[str, int],
    advance: Callable[[int], None],
) -> Iterator[np.ndarray]:
    """Every sample's token ids in index order: arrays as stored, bytes decoded, text tokenized in batches."""
    if tokenizer is None:
        for sample in _samples(field, location, index, scratch, advance):
            value = sample["tokens"]
            yield np.frombuffer(value, dtype=encoding) if isinstance(value, bytes) else np.asarray(value)
        return
    samples = _samples(field, location, index, scratch, advance)
    yield from tokenize((sample[TEXT] for sample in samples), *load_tokenizer(tokenizer), stats)


def _samples(
    field: str, location: str, index: dict, scratch: Path, advance: Callable[[int], None]
) -> Iterator[dict[str, Any]]:
    """Every sample of the folder in index order, one shard at a time: downloaded (remote) and
    decompressed into `scratch`, read with streaming's reader for its format, then deleted."""
    from streaming.base.compression import decompress
    from streaming.base.format import reader_from_json
    from streaming.base.storage import CloudDownloader

    remote = is_remote(location)
    downloader = CloudDownloader.get(location) if remote else None
    scratch.mkdir(parents=True, exist_ok=True)
    for shard in index["shards"]:
        raw, zipped = shard["raw_data"]["basename"], (shard.get("zip_data") or {}).get("basename")
        stored = zipped or raw
        source = scratch / stored if remote else Path(location) / stored
        if downloader is not None:
            try:
                downloader.download(f"{location.rstrip('/')}/{stored}", str(source), DOWNLOAD_SECONDS)
            except Exception as exc:  # each object store raises its own errors
                raise AblateError(f"{field}: cannot fetch {location}/{stored} ({exc}); check the bucket") from None
        if zipped:
            (scratch / raw).write_bytes(decompress(shard["compression"], source.read_bytes()))
        reader = reader_from_json(str(scratch if zipped or remote else location), None, shard)
        for i in range(reader.samples):
            yield reader.get_item(i)
        advance(reader.samples)
        for leftover in {scratch / raw, scratch / stored}:
            leftover.unlink(missing_ok=True)
    if downloader is not None:
        downloader.clean_up()
