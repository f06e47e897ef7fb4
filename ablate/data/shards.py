"""What an MDS folder holds, read without streaming: its column, token dtype, sample length and count.

    from ablate.data.shards import index_shape, read_shape
    shape = read_shape("data/web", read_index("data/web"))   # tokens: ndarray:int32, 2048 a sample, 1,000 samples
    shape = index_shape(index)                               # a bucket's folder, from its index.json alone

llm-foundry's converter (`llmfoundry data_prep convert_dataset_json`) writes folders that look like
ablate's shards without ablate's manifest: `tokens: ndarray:int32` of its --concat_tokens length,
zstd-compressed by default; `text: str` without --concat_tokens; `tokens: bytes` before 0.8 (int64
unless `token_encoding_type` said otherwise). Each is trained on as whole seq_len sequences: a local,
uncompressed folder of seq_len-token samples is read in place; any other (remote, compressed, of
another length, bytes, text) through a copy made ready once per study (ablate.data.check says
which, ablate.data.ready makes it), never by writing beside the source (streaming, given a
compressed folder as its `local`, would). Only index.json and the first shard are read here (a
remote folder: its index.json alone), a compressed shard decompressed in memory.

MDS layout (streaming.base.format.mds): a shard is a uint32 sample count, uint32 offsets (count + 1),
then the samples; a sample is a uint32 size per variable-size column, then each column's bytes. An
`ndarray:<dtype>` value of dynamic shape is [ndim << 2 | shape width code][shape][values].
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ablate.data.manifest import read_index, read_manifest

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
    total: int | None = None  # tokens in the whole folder, where known apart from the length (index_shape)

    @property
    def varies(self) -> bool:
        """Whether the first shard's samples are of more than one length."""
        return self.shortest != self.longest

    @property
    def tokens(self) -> int | None:
        """The folder's tokens: counted from its shards' sizes (index_shape), else samples × the first
        sample's length, every sample taken to be as long as the first, as llm-foundry's --concat_tokens
        writes them (verified for the first shard where `shortest` is set). None for text, and where the
        first shard's samples vary in length."""
        if self.total is not None:
            return self.total
        return None if self.length is None or self.varies else self.samples * self.length

    def describe(self) -> str:
        """'foundry-style shards of 128-token samples (tokens: ndarray:int32)', and the like."""
        if self.column == TEXT:
            return "a text column (foundry's converter without --concat_tokens), not token ids"
        column = f"{self.column}: {self.encoding}"
        if self.encoding == "bytes":
            return f"tokens stored as bytes ({column}, llm-foundry before 0.8), {self.length or 0:,} {self.dtype} each"
        if self.length is None:
            return f"token ids of a length not known before reading them ({column})"
        if self.varies:
            return f"samples from {self.shortest:,} to {self.longest:,} tokens ({column})"
        return f"{self.length:,}-token samples ({column})"


# ---- reading -------------------------------------------------------------------------------


def _columns(index: dict) -> tuple[str, int, str, list[int | None], int, str | None]:
    """The column read (`tokens`, else `text`), its position and encoding, every column's fixed size
    (None: variable), the folder's samples and its compression, from index.json alone."""
    shards = index["shards"]
    if not shards:
        raise Unreadable("its index.json lists no shards")
    first = shards[0]
    names = first["column_names"]
    column = TOKENS if TOKENS in names else TEXT if TEXT in names else None
    if column is None:
        raise Unreadable(f"no `tokens` or `text` column: {names}")
    at = names.index(column)
    samples = sum(int(shard["samples"]) for shard in shards)
    return column, at, first["column_encodings"][at], first["column_sizes"], samples, first.get("compression")


def read_shape(location: str, index: dict, bytes_dtype: str = BYTES_DTYPE) -> ShardShape:
    """The shape of a local MDS folder's samples, from its index and the first sample of its first shard.
    `bytes_dtype`: what a `tokens: bytes` column holds (llm-foundry's token_encoding_type)."""
    try:
        column, at, encoding, sizes, samples, compression = _columns(index)
        if column == TEXT:
            return ShardShape(column, encoding, None, None, None, None, samples, compression)
        sample_sizes, sample = _first_shard(location, index["shards"][0])
        value = _column_value(sample, sizes, at)
        dtype, length, tokens_in = _decoder(encoding, value, bytes_dtype)
        # Where the other columns are fixed-size, the offsets table gives every sample's bytes of this one.
        others = [size for i, size in enumerate(sizes) if i != at]
        shortest: int | None = None
        longest: int | None = None
        if all(others):
            spans = sample_sizes - 4 * sum(not size for size in sizes) - sum(size or 0 for size in others)
            if tokens_in(int(spans[0])) != length:
                raise Unreadable("its first sample's size and its offsets table disagree")
            shortest, longest = tokens_in(int(spans.min())), tokens_in(int(spans.max()))
        return ShardShape(column, encoding, dtype, length, shortest, longest, samples, compression)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable(f"not streaming's MDS as this reader knows it: {type(exc).__name__} {exc}") from None
    except OSError as exc:
        raise Unreadable(f"{exc.strerror or exc}: {exc.filename or 'a shard'}") from None


def index_shape(index: dict, bytes_dtype: str = BYTES_DTYPE) -> ShardShape:
    """The shape of a remote folder's samples from its index.json alone (one request, no shard read).

    A shard is a sample count, the offsets, the writer's settings (_shard_config) and the samples, so
    its size less those, less each sample's fixed part, is its token ids' bytes: the folder's tokens,
    whatever its samples' lengths (a dynamic ndarray's shape takes 1, 2, 4 or 8 bytes by its length:
    the width the mean length needs is taken, exact where no sample crosses 255 or 65,535 tokens).
    Whether the samples share one length cannot be told: `length` is the mean where it is whole,
    `shortest` and `longest` unknown. None where another column is variable-size or the dtype is
    written in each value."""
    try:
        column, at, encoding, sizes, samples, compression = _columns(index)
        if column == TEXT:
            return ShardShape(column, encoding, None, None, None, None, samples, compression)
        dtype, head = _token_dtype(encoding, bytes_dtype)
        others = [size for i, size in enumerate(sizes) if i != at]
        if dtype is None or not all(others) or not samples:
            return ShardShape(column, encoding, dtype, None, None, None, samples, compression)
        fixed = 4 * sum(not size for size in sizes) + sum(size or 0 for size in others) + head
        body = sum(
            int(s["raw_data"]["bytes"]) - 4 * (int(s["samples"]) + 2) - len(_shard_config(s)) for s in index["shards"]
        )
        total = _total_tokens(encoding, body - samples * fixed, samples, np.dtype(dtype).itemsize)
        length = total // samples if total is not None and total % samples == 0 else None
        return ShardShape(column, encoding, dtype, length, None, None, samples, compression, total)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable(f"not streaming's MDS as this reader knows it: {type(exc).__name__} {exc}") from None


def _total_tokens(encoding: str, values: int, samples: int, itemsize: int) -> int | None:
    """Tokens in `values` bytes of `samples` token values: bare (bytes), of a static shape, or each a
    dynamic 1-D ndarray with its one-byte ndim and its length in the width its mean needs."""
    if encoding == "bytes" or encoding.count(":") >= 2:
        return values // itemsize if values % itemsize == 0 else None
    floor = 1
    for width in (1, 2, 4, 8):
        tokens, rest = divmod(values - samples * (1 + width), itemsize)
        if not rest and floor <= tokens / samples < 1 << (8 * width):
            return tokens
        floor = 1 << (8 * width)
    return None


def _shard_config(shard: dict) -> bytes:
    """The writer's settings that streaming's MDSWriter puts in every shard after its offsets: its index
    entry's own fields, as JSON with sorted keys."""
    keys = (
        "column_encodings",
        "column_names",
        "column_sizes",
        "compression",
        "format",
        "hashes",
        "size_limit",
        "version",
    )
    return json.dumps({key: shard[key] for key in keys}, sort_keys=True).encode()


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


def _token_dtype(encoding: str, bytes_dtype: str) -> tuple[str | None, int]:
    """A token column's dtype as its encoding names it (None: written in each value's first byte, the
    `head`), or an error for an encoding that holds no token ids."""
    if encoding == "bytes":
        return bytes_dtype, 0
    kind, _, rest = encoding.partition(":")
    if kind != "ndarray":
        raise Unreadable(f"a `tokens` column encoded as {encoding}, neither ndarray nor bytes")
    dtype = rest.partition(":")[0]
    return (dtype, 0) if dtype else (None, 1)


def _length_of(encoding: str, size: int, itemsize: int, head: int) -> int:
    """Tokens in a value of `size` bytes: bytes hold them bare, a static ndarray shape fixes them, a
    dynamic one is [head][ndim and width][shape][values]."""
    if encoding == "bytes":
        if size % itemsize:
            raise Unreadable(f"{size}-byte samples, not whole {itemsize}-byte token ids")
        return size // itemsize
    static = encoding.split(":")[2] if encoding.count(":") >= 2 else ""
    if static:
        return math.prod(int(n) for n in static.split(","))
    return _ndarray_length(size, itemsize, head)


def _decoder(encoding: str, value: bytes, bytes_dtype: str) -> tuple[str, int, Callable[[int], int]]:
    """The token dtype and the first sample's length, and how a value's byte size gives its length."""
    dtype, head = _token_dtype(encoding, bytes_dtype)
    if dtype is None:
        dtype = DTYPE_CODES[value[0]]
    itemsize = np.dtype(dtype).itemsize
    if encoding.startswith("ndarray") and encoding.count(":") < 2:
        ndim = value[head] >> 2
        if ndim != 1:
            raise Unreadable(f"`tokens` arrays of {ndim} dimensions, not one sequence a sample")
    return (
        dtype,
        _length_of(encoding, len(value), itemsize, head),
        lambda size: _length_of(encoding, size, itemsize, head),
    )


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
