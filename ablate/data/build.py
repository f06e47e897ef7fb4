"""Data: turn each subset's raw source into tokenized MDS shards, with a manifest beside them.

    ablate data build                          # every subset of the recipe that names a `source`
    ablate data build --recipe my.yaml --force # rebuild even where the manifest says up to date

    from ablate.data.build import build_subsets
    manifests = build_subsets(load_recipe("recipes/demo.yaml"))

A source is a path or glob. A `.jsonl` file holds one document a line, its text under the subset's
`text_field`; any other file is one document; blank documents are skipped. Documents are tokenized
with the recipe's tokenizer (its tokenizer.json, no special tokens added), each followed by EOS,
concatenated, and cut into samples of exactly `seq_len` tokens (MDS column `tokens: ndarray:int32`).
The final remainder, shorter than `seq_len`, is dropped and counted in the manifest as
`dropped_tokens`: every sample is a full sequence.

A subset is built in a hidden folder beside its location and renamed into place when complete,
manifest included, so an interrupted build never looks built. A subset whose manifest matches its
source, text field, tokenizer and seq_len is skipped unless `force`. Relative paths resolve against
`root` (the working directory by default), like everything in a recipe.

Held-out domains (`eval.heldout.<domain>` with a `source`) are built the same way, to their own
location: text never trained on, whose per-domain loss each variant is measured on.
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ablate.data.manifest import MANIFEST, is_remote, read_manifest, write_manifest
from ablate.errors import AblateError
from ablate.recipe import HeldOut, Recipe, Subset
from ablate.study.store import write_atomic, write_json

COLUMNS = {"tokens": "ndarray:int32"}
BATCH_DOCS = 1024  # documents tokenized per call: the fast tokenizer's batch path
CHUNK_SAMPLES = 256  # samples cut at once from the joined token ids
_BUILDING, _OLD = ".building-", ".old-"  # hidden siblings of a location, ours to delete


# ---- inputs --------------------------------------------------------------------------------


def source_files(field: str, pattern: str, root: Path) -> list[Path]:
    """The files a source names, sorted; an error when there are none."""
    full = root / pattern
    files = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
    if not files:
        raise AblateError(f"{field}.source: {full} matches no file; run `ablate data demo` or fix the path")
    return files


def hash_files(files: list[Path], extra: str = "") -> str:
    """sha256 over the files' names (in order) and bytes, plus `extra`: equal inputs, equal hash."""
    digest = hashlib.sha256(extra.encode())
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_tokenizer(path: Path) -> tuple[Any, int]:
    """The recipe's tokenizer (its tokenizer.json, read with `tokenizers`) and its EOS id.

    Any fast Hugging Face tokenizer saved with `save_pretrained` has a tokenizer.json; reading it
    directly skips importing transformers, which costs seconds.
    """
    if not path.is_dir():
        raise AblateError(
            f"tokenizer: {path} not found; run `ablate data demo` or set tokenizer to a local Hugging Face "
            "tokenizer folder"
        )
    spec = path / "tokenizer.json"
    if not spec.is_file():
        raise AblateError(f"tokenizer: {path} has no tokenizer.json; save a fast tokenizer there with save_pretrained")
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(spec))
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise AblateError(f"tokenizer: cannot read {spec} ({exc}); save the tokenizer again") from None
    eos = _special_token(path, "eos_token")
    eos_id = tokenizer.token_to_id(eos) if eos else None
    if eos_id is None:
        raise AblateError(f"tokenizer: {path} has no EOS token; set eos_token in its tokenizer_config.json")
    return tokenizer, eos_id


def save_tokenizer(tokenizer: Any, path: Path, special: dict[str, str]) -> None:
    """A `tokenizers` Tokenizer as a Hugging Face folder: load_tokenizer, AutoTokenizer and
    PreTrainedTokenizerFast all read it. `special`: pad_token, eos_token, ... → the token's text."""
    write_atomic(path / "tokenizer.json", tokenizer.to_str())
    write_json(path / "special_tokens_map.json", special)
    write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", **special, "model_max_length": 1 << 20,
        "clean_up_tokenization_spaces": False,
    })  # fmt: skip


def _special_token(path: Path, key: str) -> str | None:
    """A special token's text from tokenizer_config.json or special_tokens_map.json."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        try:
            value = json.loads((path / name).read_text()).get(key)
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            return value
    return None


def documents(field: str, subset: Subset | HeldOut, files: list[Path], advance: Any) -> Iterator[str]:
    """Each non-blank document's text, in file order; `advance(bytes)` reports progress."""
    for path in files:
        if path.suffix != ".jsonl":
            text = path.read_text(errors="replace")
            advance(path.stat().st_size)
            if text.strip():
                yield text
            continue
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                advance(len(raw))
                text = _jsonl_text(field, subset.text_field, path, number, raw) if raw.strip() else ""
                if text.strip():
                    yield text


def _jsonl_text(field: str, text_field: str, path: Path, number: int, raw: bytes) -> str:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AblateError(f"{field}.source: {path} line {number} is not JSON ({exc.msg}); fix or remove it") from None
    if not isinstance(record, dict) or text_field not in record:
        fields = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise AblateError(
            f"{field}.text_field: {path} line {number} has no '{text_field}' (has {fields}); "
            "set text_field to the field that holds the text"
        )
    if not isinstance(record[text_field], str):
        raise AblateError(f"{field}.text_field: {path} line {number}: '{text_field}' is not a string")
    return record[text_field]


# ---- packing -------------------------------------------------------------------------------


def tokenize(texts: Iterable[str], tokenizer: Any, eos: int, stats: dict[str, int]) -> Iterator[Any]:
    """Each document's token ids (int32) with EOS after it, tokenized BATCH_DOCS at a time (the fast
    tokenizer's batch path); counts documents into `stats`."""
    import numpy as np

    batch: list[str] = []
    for text in _ended(texts):
        if text is not None:
            batch.append(text)
        if batch and (text is None or len(batch) == BATCH_DOCS):
            for document in tokenizer.encode_batch(batch, add_special_tokens=False):
                yield np.array([*document.ids, eos], dtype=np.int32)
            stats["documents"] += len(batch)
            batch.clear()


def _ended(items: Iterable[Any]) -> Iterator[Any]:
    """`items`, then None: the end, where a batch still held is flushed."""
    yield from items
    yield None


def chunk(arrays: Iterable[Any], seq_len: int, stats: dict[str, int]) -> Iterator[Any]:
    """Token arrays joined in order and cut into samples of exactly `seq_len` ids (int32); the final
    remainder, too short for a sample, is counted in `stats["dropped_tokens"]`."""
    import numpy as np

    pending: list[Any] = []
    held = 0
    for array in _ended(arrays):
        if array is not None:
            pending.append(array)
            held += len(array)
        if pending and (held >= CHUNK_SAMPLES * seq_len or array is None):
            joined = np.concatenate(pending).astype(np.int32, copy=False)
            full = len(joined) // seq_len * seq_len
            yield from joined[:full].reshape(-1, seq_len)
            pending, held = [joined[full:]], len(joined) - full
    stats["dropped_tokens"] = held


# ---- building ------------------------------------------------------------------------------


def _clear_leftovers(location: Path) -> None:
    """Remove hidden siblings an earlier, interrupted build left: they never count as built."""
    for pattern in (_BUILDING, _OLD):
        for leftover in location.parent.glob(f".{location.name}{pattern}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _check_location(field: str, location: Path) -> dict | None:
    """The existing manifest there, None if nothing is there; an error if the folder is not ours."""
    if not location.exists():
        return None
    manifest_path = location / MANIFEST
    if location.is_dir() and not any(location.iterdir()):
        return None
    if not manifest_path.exists():
        raise AblateError(
            f"{field}.location: {location} exists and was not written by `ablate data build`; "
            "move it away or choose another location"
        )
    return read_manifest(str(location)) or {}  # unreadable: ours, but stale


def build_subset(
    field: str,
    subset: Subset | HeldOut,
    files: list[Path],
    recipe: Recipe,
    tokenizer: tuple[Any, int],
    tokenizer_hash: str,
    root: Path,
    force: bool,
    progress: Any,
) -> dict:
    """Build (or skip) one subset (`field` subsets.<name>) or held-out domain (eval.heldout.<name>)
    from its source `files`; returns its manifest."""
    from streaming import MDSWriter

    name = _label(field)

    location = root / subset.location
    expected = {
        "source_hash": hash_files(files, extra=subset.text_field),
        "tokenizer_hash": tokenizer_hash,
        "seq_len": recipe.seq_len,
    }
    existing = _check_location(field, location)
    task = progress.add_task(name, total=sum(f.stat().st_size for f in files))
    if existing and not force and all(existing.get(k) == v for k, v in expected.items()):
        progress.update(task, completed=progress.tasks[task].total, description=f"{name} (up to date)")
        return existing

    _clear_leftovers(location)
    building = location.parent / f".{location.name}{_BUILDING}{uuid.uuid4().hex[:8]}"
    stats = {"documents": 0, "samples": 0, "dropped_tokens": 0}
    try:
        texts = documents(field, subset, files, lambda n: progress.advance(task, n))
        with MDSWriter(out=str(building), columns=COLUMNS, progress_bar=False) as writer:
            for sample in chunk(tokenize(texts, *tokenizer, stats), recipe.seq_len, stats):
                writer.write({"tokens": sample})
                stats["samples"] += 1
        if stats["documents"] == 0:
            raise AblateError(f"{field}.source: {subset.source} holds no documents; add text or fix the path")
        if stats["samples"] == 0:
            raise AblateError(
                f"{field}.source: {subset.source} has fewer tokens than seq_len {recipe.seq_len}; add text"
            )
        manifest = {
            "subset": name,
            "source": subset.source,
            "text_field": subset.text_field,
            "tokenizer": recipe.tokenizer,
            "documents": stats["documents"],
            "tokens": stats["samples"] * recipe.seq_len,
            "samples": stats["samples"],
            "dropped_tokens": stats["dropped_tokens"],
            "columns": COLUMNS,
            **expected,
        }
        write_manifest(building, manifest)
        _swap_in(building, location)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return manifest


def _swap_in(building: Path, location: Path) -> None:
    """Put a finished build at `location`, replacing an older build of ours."""
    location.parent.mkdir(parents=True, exist_ok=True)
    if location.exists():
        old = location.parent / f".{location.name}{_OLD}{uuid.uuid4().hex[:8]}"
        location.rename(old)
        building.rename(location)
        shutil.rmtree(old, ignore_errors=True)
    else:
        building.rename(location)


def _label(field: str) -> str:
    """What a build is called in progress bars and manifests: `prose` (subsets.prose) or
    `heldout/prose` (eval.heldout.prose)."""
    return field.removeprefix("subsets.").replace("eval.heldout.", "heldout/")


def build_subsets(recipe: Recipe, force: bool = False, root: Path | None = None) -> dict[str, dict]:
    """Build every subset and held-out domain (eval.heldout) that names a `source`; returns subset (or
    heldout/<domain>) → manifest, built or up to date.

    A rich progress bar per subset goes to stderr.
    """
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    root = root or Path(".")
    wanted: dict[str, Subset | HeldOut] = {
        **{f"subsets.{name}": s for name, s in recipe.subsets.items() if s.source is not None},
        **{f"eval.heldout.{name}": h for name, h in recipe.eval.heldout.items() if h.source is not None},
    }
    if not wanted:
        raise AblateError("subsets: no subset names a `source`; add `source: <path or glob>` to build shards")
    files = {}
    for field, subset in wanted.items():  # every cheap check before any work
        if is_remote(subset.location):
            raise AblateError(f"{field}.location: {subset.location} is remote; build to a local folder and upload it")
        files[field] = source_files(field, subset.source or "", root)
        _check_location(field, root / subset.location)
    tokenizer_path = root / recipe.tokenizer
    tokenizer = load_tokenizer(tokenizer_path)
    tokenizer_hash = hash_files(sorted(p for p in tokenizer_path.iterdir() if p.is_file()))
    columns = (TextColumn("{task.description:<24}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    manifests: dict[str, dict] = {}
    with Progress(*columns, console=Console(stderr=True)) as progress:
        for field, subset in wanted.items():
            manifests[_label(field)] = build_subset(
                field, subset, files[field], recipe, tokenizer, tokenizer_hash, root, force, progress
            )
    return manifests
