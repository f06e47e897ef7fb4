"""The manifest `ablate data build` writes beside each subset's shards. Light: `plan` reads it.

    <location>/ablate-manifest.json
    {"subset", "source", "text_field", "tokenizer", "documents", "tokens", "samples", "dropped_tokens",
     "columns", "source_hash", "tokenizer_hash", "seq_len"}

`tokens` counts the tokens in the shards (samples × seq_len, EOS included); `dropped_tokens` the
final remainder too short for a sample. The manifest is written last into the build folder, which
is renamed into place whole: a location with a manifest is a finished build. A folder without one
(llm-foundry's, say) is sized and checked from its shards by ablate.data.check.
"""

from __future__ import annotations

import json
from pathlib import Path

from ablate.study.store import write_json

MANIFEST = "ablate-manifest.json"


def is_remote(location: str) -> bool:
    return "://" in location


def read_manifest(location: str) -> dict | None:
    """A local subset's manifest, or None where there is none (not built yet, or remote)."""
    if is_remote(location):
        return None
    path = Path(location) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_manifest(folder: Path, manifest: dict) -> None:
    write_json(folder / MANIFEST, manifest)


def read_index(location: str) -> dict | None:
    """streaming's index.json of a local MDS folder; None where there is none or it cannot be read."""
    if is_remote(location):
        return None
    try:
        index = json.loads((Path(location) / "index.json").read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def index_samples(location: str) -> int | None:
    """Samples in a local MDS folder, from streaming's index.json; None where it cannot be read."""
    try:
        return sum(int(shard["samples"]) for shard in (read_index(location) or {})["shards"])
    except (KeyError, TypeError, ValueError):
        return None
