"""What a local MDS folder holds, read without streaming, and the checks `plan` and `run` make with it.

    from ablate.data.shards import check_shards, plan_data, read_shape
    shape = read_shape("data/web", read_index("data/web"))   # tokens: ndarray:int32, 2048 a sample, 1,000 samples
    check_shards("subsets.web.location", "data/web", 2048)   # its index and tokens, or one line naming the fix
    sizes, warnings = plan_data(recipe)                      # what `plan` takes from every local folder

llm-foundry's converter (`llmfoundry data_prep convert_dataset_json`) writes folders that look like
ablate's shards without ablate's manifest: `tokens: ndarray:int32` of its --concat_tokens length,
zstd-compressed by default; `text: str` without --concat_tokens; `tokens: bytes` before 0.8. Each
sample trains as one sequence, so a folder of samples longer or shorter than the recipe's seq_len
would train silently at another batch size in tokens: `plan` and `run` refuse it. Only index.json
and the first shard are read. A compressed shard is decompressed in memory, never beside the source
(streaming, given the folder as its `local`, would write the decompressed shard there).

MDS layout (streaming.base.format.mds): a shard is a uint32 sample count, uint32 offsets (count + 1),
then the samples; a sample is a uint32 size per variable-size column, then each column's bytes. An
`ndarray:<dtype>` value of dynamic shape is [ndim << 2 | shape width code][shape][values].
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ablate.data.manifest import is_remote, read_index, read_manifest
from ablate.errors import AblateError
from ablate.recipe import Recipe

TOKENS, TEXT = "tokens", "text"
BYTES_DTYPE = "int64"  # llm-foundry's default token_encoding_type for a `tokens: bytes` column
# streaming's NDArray encoding: value dtype codes (a dynamic dtype's first byte).
DTYPE_CODES = {8: "uint8", 9: "int8", 16: "uint16", 17: "int16", 18: "float16", 32: "uint32", 33: "int32",
               34: "float32", 64: "uint64", 65: "int64", 66: "float64"}  # fmt: skip
DECOMPRESSORS = {"zstd": "zstd", "gz": "gzip", "bz2": "bz2", "br": "brotli", "snappy": "snappy"}  # streaming's


class Unreadable(Exception):
    """A folder this reader cannot make sense of; the message says what it found."""


@dataclass(frozen=True)
class ShardShape:
    """What a folder's samples are: the column read, its token dtype and length, and how many there are."""

    column: str  # `tokens` or `text`
    encoding: str  # the column's MDS encoding in index.json: ndarray:int32, bytes, str
    dtype: str | None  # token dtype: read (ndarray), assumed int64 (bytes), None (text)
    length: int | None  # tokens in the first sample; None for text
    shortest: int | None  # the first shard's shortest and longest sample (offsets table); None: not verified
    longest: int | None
    samples: int  # in the whole folder, from index.json
    compression: str | None

    @property
    def varies(self) -> bool:
        """Whether the first shard's samples are of more than one length."""
        return self.shortest != self.longest

    @property
    def tokens(self) -> int | None:
        """samples × the first sample's length: every sample is taken to be as long as the first, as
        llm-foundry's --concat_tokens writes them (verified for the first shard where `shortest` is set).
        None for text, and where the first shard's samples vary in length."""
        return None if self.length is None or self.varies else self.samples * self.length

    def describe(self) -> str:
        """'foundry-style shards of 128-token samples (tokens: ndarray:int32)', and the like."""
        if self.column == TEXT:
            return "a text column (foundry's converter without --concat_tokens), not token ids"
        column = f"{self.column}: {self.encoding}"
        if self.encoding == "bytes":
            size = (self.length or 0) * 8
            return (
                f"tokens stored as bytes ({column}, llm-foundry before 0.8: {size:,} bytes a sample, "
                f"{self.length:,} tokens if {BYTES_DTYPE}, its default)"
            )
        if self.varies:
            return f"foundry-style shards of samples from {self.shortest:,} to {self.longest:,} tokens ({column})"
        return f"foundry-style shards of {self.length:,}-token samples ({column})"


@dataclass(frozen=True)
class Shards:
    """A checked folder: streaming's index, and its tokens where known (manifest, else index × length)."""

    index: dict
    tokens: int | None


# ---- reading -------------------------------------------------------------------------------


def read_shape(location: str, index: dict) -> ShardShape:
    """The shape of a local MDS folder's samples, from its index and the first sample of its first shard."""
    try:
        shards = index["shards"]
        if not shards:
            raise Unreadable("its index.json lists no shards")
        first = shards[0]
        names, encodings, sizes = first["column_names"], first["column_encodings"], first["column_sizes"]
        column = TOKENS if TOKENS in names else TEXT if TEXT in names else None
        if column is None:
            raise Unreadable(f"no `tokens` or `text` column: {names}")
        at = names.index(column)
        encoding = encodings[at]
        samples = sum(int(shard["samples"]) for shard in shards)
        compression = first.get("compression")
        if column == TEXT:
            return ShardShape(column, encoding, None, None, None, None, samples, compression)
        sample_sizes, sample = _first_shard(location, first)
        value = _column_value(sample, sizes, at)
        dtype, length, tokens_in = _decoder(encoding, value)
        # Where the other columns are fixed-size, the offsets table gives every sample's bytes of this one.
        others = [size for i, size in enumerate(sizes) if i != at]
        shortest: int | None = None
        longest: int | None = None
        if all(others):
            spans = sample_sizes - 4 * sum(not size for size in sizes) - sum(others)
            if tokens_in(int(spans[0])) != length:
                raise Unreadable("its first sample's size and its offsets table disagree")
            shortest, longest = tokens_in(int(spans.min())), tokens_in(int(spans.max()))
        return ShardShape(column, encoding, dtype, length, shortest, longest, samples, compression)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable(f"not streaming's MDS as this reader knows it: {type(exc).__name__} {exc}") from None
    except OSError as exc:
        raise Unreadable(f"{exc.strerror or exc}: {exc.filename or 'a shard'}") from None


def _first_shard(location: str, shard: dict) -> tuple[np.ndarray, bytes]:
    """The first shard's sample sizes in bytes (its offsets table) and its first sample's bytes. A
    compressed shard is decompressed in memory, unless streaming left a decompressed copy beside it."""
    raw = Path(location) / shard["raw_data"]["basename"]
    compression = shard.get("compression")
    if compression and not raw.is_file():
        data = _decompress(compression, (Path(location) / shard["zip_data"]["basename"]).read_bytes())
        offsets = _offsets(data[:4], lambda count: data[4 : 4 * (count + 2)])
        return np.diff(offsets), data[offsets[0] : offsets[1]]
    with raw.open("rb") as handle:
        offsets = _offsets(handle.read(4), lambda count: handle.read(4 * (count + 1)))
        handle.seek(int(offsets[0]))
        return np.diff(offsets), handle.read(int(offsets[1] - offsets[0]))


def _offsets(head: bytes, table: Callable[[int], bytes]) -> np.ndarray:
    """A shard's offsets table from its sample count (`head`) and `table`, which reads count + 1 offsets."""
    count = int(np.frombuffer(head, "<u4")[0])
    if not count:
        raise Unreadable("its first shard holds no samples")
    offsets = np.frombuffer(table(count), "<u4").astype(np.int64)
    if len(offsets) != count + 1:
        raise Unreadable("its first shard is cut short")
    return offsets


def _decompress(compression: str, data: bytes) -> bytes:
    family = compression.split(":")[0]  # `zstd:7` is zstd at level 7
    if family not in DECOMPRESSORS:
        raise Unreadable(f"compressed with {compression}, which streaming does not know")
    try:
        return importlib.import_module(DECOMPRESSORS[family]).decompress(data)
    except Exception as exc:  # each library raises its own error on a damaged frame
        raise Unreadable(f"its first shard does not decompress with {family}: {exc}") from None


def _column_value(sample: bytes, sizes: list[int | None], at: int) -> bytes:
    """Column `at`'s bytes in one sample: the variable-size columns' uint32 sizes come first."""
    variable = [i for i, size in enumerate(sizes) if not size]
    given = np.frombuffer(sample[: 4 * len(variable)], "<u4")
    lengths = [int(size) if size else int(given[variable.index(i)]) for i, size in enumerate(sizes)]
    start = 4 * len(variable) + sum(lengths[:at])
    return sample[start : start + lengths[at]]


def _decoder(encoding: str, value: bytes) -> tuple[str, int, Callable[[int], int]]:
    """The token dtype and the first sample's length, and how a value's byte size gives its length."""
    if encoding == "bytes":
        return BYTES_DTYPE, len(value) // 8, lambda size: size // 8
    kind, _, rest = encoding.partition(":")
    if kind != "ndarray":
        raise Unreadable(f"a `tokens` column encoded as {encoding}, neither ndarray nor bytes")
    dtype, _, static = rest.partition(":")
    head = 0
    if not dtype:  # the dtype is each value's first byte
        dtype, head = DTYPE_CODES[value[0]], 1
    itemsize = np.dtype(dtype).itemsize
    if static:  # a fixed shape: every sample as long
        length = math.prod(int(n) for n in static.split(","))
        return dtype, length, lambda size: length
    ndim, width = value[head] >> 2, 1 << (value[head] & 3)
    if ndim != 1:
        raise Unreadable(f"`tokens` arrays of {ndim} dimensions, not one sequence a sample")
    length = int(np.frombuffer(value[head + 1 : head + 1 + width], f"<u{width}")[0])
    return dtype, length, lambda size: _ndarray_length(size, itemsize, head)


def _ndarray_length(size: int, itemsize: int, head: int) -> int:
    """The length of a 1-D array whose encoding takes `size` bytes: streaming writes its length in
    the narrowest unsigned width (1, 2, 4 or 8 bytes) that holds it."""
    floor = 1
    for width in (1, 2, 4, 8):
        length, rest = divmod(size - head - 1 - width, itemsize)
        if not rest and floor <= length < 1 << (8 * width):
            return length
        floor = 1 << (8 * width)
    raise Unreadable(f"a {size}-byte sample that no 1-D {itemsize}-byte array encodes to")


def folder_tokens(location: str) -> int | None:
    """Tokens in a local MDS folder: its manifest's count, else samples × the first sample's length;
    None where it is remote, missing, unreadable or holds text."""
    manifest = read_manifest(location)
    if manifest and manifest.get("tokens"):
        return int(manifest["tokens"])
    index = read_index(location)
    try:
        return None if index is None else read_shape(location, index).tokens
    except Unreadable:
        return None


# ---- checking ------------------------------------------------------------------------------


def check_shards(field: str, location: str, seq_len: int) -> Shards:
    """A local MDS folder's index and tokens, once it is known to be there and to hold `seq_len`-token
    samples: by its manifest where ablate built it, else by its first shard. Otherwise one line naming
    `field`, what was found and the fix."""
    index = read_index(location)
    if index is None:
        raise AblateError(
            f"{field}: no MDS shards at {location} (index.json missing or unreadable); run `ablate data build` "
            "or fix the location"
        )
    manifest = read_manifest(location)
    if manifest is not None:
        built = manifest.get("seq_len")
        if built not in (None, seq_len):
            raise AblateError(
                f"{field}: the shards at {location} hold {built}-token samples, the recipe's seq_len is {seq_len}; "
                "rebuild them with `ablate data build --force` or fix seq_len"
            )
        return Shards(index, int(manifest["tokens"]) if manifest.get("tokens") else None)
    foundry = f"`llmfoundry data_prep convert_dataset_json ... --concat_tokens {seq_len}`"
    rebuild = f"{foundry} or `ablate data build` (from a `source:` of raw text)"
    try:
        shape = read_shape(location, index)
    except Unreadable as exc:
        raise AblateError(
            f"{field}: cannot read the MDS shards at {location} ({exc}); rebuild them with {rebuild}"
        ) from None
    found = f"{field}: {location} holds {shape.describe()}"
    if shape.column == TEXT:
        raise AblateError(f"{found}; tokenize it with {rebuild}")
    if shape.encoding == "bytes":
        raise AblateError(f"{found}; rebuild them with llm-foundry 0.8 or later ({foundry}) or `ablate data build`")
    if not np.issubdtype(np.dtype(shape.dtype), np.integer):
        raise AblateError(f"{found}, {shape.dtype} values rather than token ids; rebuild them with {rebuild}")
    if shape.varies or shape.length != seq_len:
        other = "" if shape.varies else f", or set seq_len: {shape.length}"
        raise AblateError(f"{found}, the recipe's seq_len is {seq_len}; rebuild them with {rebuild}{other}")
    return Shards(index, shape.tokens)


def check_heldout_folder(field: str, location: str, seq_len: int) -> dict:
    """A held-out folder's index: checked like training shards, and uncompressed MDS with `tokens`
    (its sequences are read in place, and streaming would decompress a shard beside the source)."""
    index = check_shards(field, location, seq_len).index
    for shard in index.get("shards", []):
        if shard.get("format") != "mds" or TOKENS not in shard.get("column_names", []):
            raise AblateError(
                f"{field}: {location} is not MDS with a `tokens` column; build it with `ablate data build`"
            )
        if shard.get("compression"):
            raise AblateError(f"{field}: {location} is compressed ({shard['compression']}); write it uncompressed")
    if not index.get("shards"):
        raise AblateError(f"{field}: {location} holds no samples; add held-out text")
    return index


def plan_data(recipe: Recipe) -> tuple[dict[str, int], list[str]]:
    """What `plan` takes from the recipe's local folders: each subset's tokens, and warnings.

    A folder that is there must hold `seq_len`-token samples (check_shards), or planning stops with
    one line. One not there yet is planned without: a subset with a `source` (`ablate data build` writes
    it) or with `tokens` (planned away from its data), a held-out domain always (no figure of the
    plan depends on it); `run` refuses it before any work. A subset with neither is refused here.
    """
    sizes: dict[str, int] = {}
    warnings: list[str] = []
    for name, subset in recipe.subsets.items():
        field = f"subsets.{name}.location"
        if is_remote(subset.location):
            continue
        if read_index(subset.location) is not None:
            tokens = check_shards(field, subset.location, recipe.seq_len).tokens
            if tokens:
                sizes[name] = tokens
        elif subset.source is None and subset.tokens is None:
            raise AblateError(
                f"{field}: no MDS shards at {subset.location} (index.json missing or unreadable) and no `source` to "
                f"build them from; fix the location, or give subsets.{name}.source for `ablate data build`"
            )
        elif subset.source is None:
            warnings.append(f"{field}: no MDS shards at {subset.location} here; `ablate run` needs them there")
    for domain, held in recipe.eval.heldout.items():
        field = f"eval.heldout.{domain}.location"
        if read_index(held.location) is not None:
            check_heldout_folder(field, held.location, recipe.seq_len)
        elif held.source is None:
            warnings.append(f"{field}: no MDS shards at {held.location} here; `ablate run` needs them there")
    return sizes, warnings
