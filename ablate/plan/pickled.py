"""What torch saved, read without torch: the pickled structure of a `torch.save` file and the non-tensor
entries of a torch.distributed.checkpoint folder, every tensor reduced to its shape.

    state = read_archive(Path("ep8-ba800-rank0.pt"))["state"]       # Composer's one-file checkpoint
    entries, tensors = read_dcp(Path("ep8-ba800"), lambda key: key.startswith("state.integrations."))

Why: `ablate plan` reads a start checkpoint's architecture and optimizer class, and importing torch costs
~13 s (plan imports none of the training stack). A file of `torch.save` is a zip whose `data.pkl` holds
everything but the tensors' bytes, which sit in entries of their own; a sharded folder's `.metadata`
pickles each tensor's shape and where each entry lies in the `__<rank>_0.distcp` files, and each
non-tensor entry is a `torch.save` of its own at that place. Only those pickles are read.

Safety: the unpickler imports nothing. A global outside a short list of plain ones (OrderedDict,
timedelta, the codec protocol 2 writes bytes with) becomes an inert `Opaque` record of its name, its
arguments and its state; a tensor becomes a `Tensor` of its shape; storages are never read. So a
checkpoint's pickle runs none of its own code, whoever wrote it.
"""

from __future__ import annotations

import codecs
import collections
import datetime
import io
import math
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DCP_METADATA = ".metadata"  # what makes a folder a torch.distributed.checkpoint (Composer's sharded form)
PLAIN = {
    ("collections", "OrderedDict"): collections.OrderedDict,  # a state dict: filled item by item
    ("datetime", "timedelta"): datetime.timedelta,  # Composer's timestamp holds wall-clock durations
    ("_codecs", "encode"): codecs.encode,  # pickle protocol 2 writes bytes as encode(text, 'latin1')
}
REBUILD_TENSOR = ("torch._utils", "_rebuild_tensor_v2")  # how torch.save pickles a tensor


@dataclass(frozen=True)
class Tensor:
    """A saved tensor without its bytes: its shape, and which bytes it views (tied weights view one)."""

    shape: tuple[int, ...]
    storage: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class Opaque:
    """An object of a class that is not imported: its global's name, the arguments it was rebuilt from
    and the state pickle set on it (a dataclass's fields)."""

    origin = ""
    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        self = super().__new__(cls)
        self.args, self.state = args, None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def field(self, name: str) -> Any:
        """One field of the pickled object's state (a dataclass's `__dict__`)."""
        return self.state.get(name) if isinstance(self.state, dict) else None

    def __repr__(self) -> str:
        return f"{self.origin}{self.args!r}"


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self._opaque: dict[tuple[str, str], type[Opaque]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in PLAIN:
            return PLAIN[(module, name)]
        if (module, name) == REBUILD_TENSOR:
            return _tensor
        if (module, name) not in self._opaque:
            self._opaque[(module, name)] = type(name, (Opaque,), {"origin": f"{module}.{name}"})
        return self._opaque[(module, name)]

    def persistent_load(self, pid: Any) -> str:
        """A storage of `torch.save`: ('storage', its type, its key in the archive, device, size); only the key."""
        return str(pid[2]) if isinstance(pid, tuple) and len(pid) > 2 else str(pid)


def _tensor(storage: str, offset: int, size: tuple[int, ...], *rest: Any) -> Tensor:
    return Tensor(tuple(int(n) for n in size), f"{storage}@{offset}")


def loads(data: bytes) -> Any:
    """One pickle, unpickled inertly (see the module's docstring)."""
    return _Unpickler(data).load()


def read_archive(source: Path | bytes) -> Any:
    """The object a `torch.save` wrote (a file, or its bytes), its tensors as shapes. Only torch's zip
    format (the default since torch 1.6) is read; anything else raises ValueError."""
    with zipfile.ZipFile(source if isinstance(source, Path) else io.BytesIO(source)) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"not one torch.save archive (data.pkl entries: {len(pickles)})")
        return loads(archive.read(pickles[0]))


def read_dcp(folder: Path, wanted: Callable[[str], bool]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Of a torch.distributed.checkpoint folder: its non-tensor entries whose flat key is `wanted`, nested
    again as they were saved (a list's items keyed by their index), and every tensor's shape by its flat
    key (`state.model.<name>`). Entries saved through a stream transform (compressed)
    raise ValueError: reading them needs torch's own extensions."""
    metadata = loads((folder / DCP_METADATA).read_bytes())
    entries, paths = metadata.field("state_dict_metadata"), metadata.field("planner_data")
    tensors = {
        key: Tensor(tuple(int(n) for n in entry.field("size").args[0]), key)
        for key, entry in entries.items()
        if isinstance(entry, Opaque) and entry.field("size") is not None
    }
    nested: dict[str, Any] = {}
    for index, where in metadata.field("storage_data").items():
        key = index.field("fqn")
        if key in tensors or not wanted(key):
            continue
        if where.field("transform_descriptors"):
            raise ValueError(f"{key} is saved through {where.field('transform_descriptors')}")
        with open(folder / where.field("relative_path"), "rb") as file:
            file.seek(where.field("offset"))
            blob = file.read(where.field("length"))
        level = nested
        *parents, last = paths[key]
        for part in parents:
            level = level.setdefault(part, {})
        level[last] = read_archive(blob)
    return nested, tensors
