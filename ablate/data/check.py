"""What ablate can train on, checked before any work: `plan` sizes every folder and says how `run` reads
it; a folder holding no token ids or text is one line naming the field and the fix.

    from ablate.data.check import check_shards, plan_data
    shards = check_shards("subsets.web.location", "data/web", 2048)   # index, tokens, and why run reads a copy
    sizes, warnings = plan_data(recipe)                               # what `plan` takes from every folder

A local, uncompressed folder of seq_len-token samples (ablate's own, or llm-foundry's at that
--concat_tokens) is read in place. Any other shape llm-foundry writes (remote, compressed, another
length, `tokens: bytes`, `text`) is read through a copy made once per study (ablate.data.ready).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablate.data.manifest import is_remote, read_index, read_manifest
from ablate.data.shards import BYTES_DTYPE, TEXT, TOKENS, ShardShape, Unreadable, index_shape, read_shape
from ablate.errors import AblateError
from ablate.recipe import HeldOut, Recipe, Subset


@dataclass(frozen=True)
class Shards:
    """A checked folder: streaming's index, the tokens it trains where known (its manifest, else samples ×
    length, cut to whole sequences), and why `run` reads a copy of it (None: it reads it in place)."""

    index: dict
    tokens: int | None
    copy: str | None


def check_shards(
    field: str, location: str, seq_len: int, bytes_dtype: str = BYTES_DTYPE, index: dict | None = None
) -> Shards:
    """A folder's index, the tokens it trains, and whether `run` reads it in place or a copy made ready
    in the study's cache (ablate.data.ready); one line naming `field`, what was found and the fix
    where it holds nothing ablate can train on. A remote folder's `index` is passed in (one request,
    ablate.data.buckets); a local one is read here."""
    remote = is_remote(location)
    index = index if remote else read_index(location)
    if index is None:
        raise AblateError(
            f"{field}: no MDS shards at {location} (index.json missing or unreadable); run `ablate data build` "
            "or fix the location"
        )
    manifest = read_manifest(location)
    if manifest is not None and manifest.get("seq_len") in (None, seq_len) and not _compressed(index):
        return Shards(index, int(manifest["tokens"]) if manifest.get("tokens") else None, None)
    rebuild = f"`llmfoundry data_prep convert_dataset_json ... --concat_tokens {seq_len}` or `ablate data build`"
    try:
        shape = index_shape(index, bytes_dtype) if remote else read_shape(location, index, bytes_dtype)
    except Unreadable as exc:
        raise AblateError(
            f"{field}: cannot read the MDS shards at {location} ({exc}); rebuild them with {rebuild}"
        ) from None
    if shape.dtype is not None and not np.issubdtype(np.dtype(shape.dtype), np.integer):
        raise AblateError(
            f"{field}: {location} holds {shape.describe()}, {shape.dtype} values rather than token ids; rebuild "
            f"them with {rebuild}"
        )
    fits = shape.column == TOKENS and not shape.varies and shape.length == seq_len
    if fits and shape.encoding != "bytes" and not remote and not shape.compression:
        return Shards(index, shape.tokens, None)
    tokens = shape.tokens // seq_len * seq_len if shape.tokens else None
    return Shards(index, tokens, _copy(shape, remote, fits, seq_len))


def _compressed(index: dict) -> bool:
    return any(shard.get("compression") for shard in index.get("shards", []))


def _copy(shape: ShardShape, remote: bool, fits: bool, seq_len: int) -> str:
    """What `run` does to a folder it cannot read in place, in the words `plan` prints."""
    steps = ["downloads"] if remote else []
    if shape.compression:
        steps.append(f"decompresses ({shape.compression})")
    if shape.encoding == "bytes":
        steps.append(f"decodes as {shape.dtype}")
    if shape.column == TEXT:
        steps.append(f"tokenizes (the recipe's tokenizer, EOS after each document) into {seq_len}-token sequences")
    elif not fits:
        steps.append(
            f"re-chunks into {seq_len}-token sequences (samples joined in order, only the final remainder dropped; "
            "llm-foundry would cut or pad each sample)"
        )
    return f"{', '.join(steps)} it once, into the study's cache"


def field_spec(recipe: Recipe, field: str) -> tuple[str, str]:
    """A folder field's location and token encoding: subsets.<name>.location or eval.heldout.<domain>.location."""
    parts = field.split(".")
    if parts[0] == "subsets":
        subset = recipe.subsets[parts[1]]
        return subset.location, subset.token_encoding_type
    return recipe.eval.heldout[parts[2]].location, BYTES_DTYPE


def check_heldout_folder(
    field: str, location: str, seq_len: int, bytes_dtype: str = BYTES_DTYPE, index: dict | None = None
) -> Shards:
    """A held-out folder, checked like training shards, and holding some samples."""
    shards = check_shards(field, location, seq_len, bytes_dtype, index)
    if not shards.index.get("shards"):
        raise AblateError(f"{field}: {location} holds no samples; add held-out text")
    return shards


def plan_data(recipe: Recipe) -> tuple[dict[str, int], list[str]]:
    """What `plan` takes from the recipe's folders: each subset's tokens, and warnings.

    A folder that is there (local, or a bucket's index.json: one request, ablate.data.buckets, made
    only for a subset the recipe gives no `tokens`, so a sized study plans offline) must
    hold token ids or text ablate can train on (check_shards), or planning stops with one line; one
    that `run` reads through a copy says so. A local folder not there yet is planned without: a
    subset with a `source` (`ablate data build` writes it) or with `tokens` (planned away from its
    data), a held-out domain always (no figure of the plan depends on it); `run` refuses it before
    any work. A subset with neither is refused here.
    """
    from ablate.data.buckets import fetch_index

    sizes: dict[str, int] = {}
    warnings: list[str] = []
    folders: dict[str, Subset | HeldOut] = {
        **{f"subsets.{name}.location": spec for name, spec in recipe.subsets.items()},
        **{f"eval.heldout.{domain}.location": spec for domain, spec in recipe.eval.heldout.items()},
    }
    for field, spec in folders.items():
        location, encoding = field_spec(recipe, field)
        subset = field.split(".")[1] if isinstance(spec, Subset) else None
        if is_remote(location) and isinstance(spec, Subset) and spec.tokens is not None:
            continue  # sized by the recipe: planned without a request (`run` reads its index before any job)
        index = fetch_index(field, location) if is_remote(location) else read_index(location)
        if index is not None:
            shards = check_shards(field, location, recipe.seq_len, encoding, index)
            if subset and shards.tokens:
                sizes[subset] = shards.tokens
            if shards.copy:
                warnings.append(f"{field}: `ablate run` {shards.copy}")
        elif is_remote(location):
            warnings.append(f"{field}: {location} is not sized here (plan reads the index of s3:// folders only)")
        elif isinstance(spec, Subset) and spec.source is None and spec.tokens is None:
            raise AblateError(
                f"{field}: no MDS shards at {location} (index.json missing or unreadable) and no `source` to "
                f"build them from; fix the location, or give subsets.{subset}.source for `ablate data build`"
            )
        elif spec.source is None:
            warnings.append(f"{field}: no MDS shards at {location} here; `ablate run` needs them there")
    return sizes, warnings
