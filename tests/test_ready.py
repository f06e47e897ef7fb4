"""Folders `run` cannot read in place (compressed, of another sample length, `tokens: bytes`, `text`)
made ready once per study: the copy holds exactly the token stream ablate's own build makes of the
same documents, cut into seq_len sequences, and nothing is written beside the source."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_shards import listing, write_mds

from ablate.data.build import build_subsets, load_tokenizer
from ablate.data.manifest import read_manifest
from ablate.data.ready import ready_folders
from ablate.demo.corpus import write_tokenizer
from ablate.errors import AblateError
from ablate.recipe import parse_recipe

SEQ = 32


def read_tokens(folder: str) -> np.ndarray:
    """Every sample of an uncompressed MDS folder, in order, with streaming's own reader."""
    from streaming.base.format import reader_from_json

    rows = []
    for shard in json.loads((Path(folder) / "index.json").read_text())["shards"]:
        reader = reader_from_json(folder, None, shard)
        rows += [np.asarray(reader.get_item(i)["tokens"]) for i in range(reader.samples)]
    return np.stack(rows)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """ablate's own build of some documents (the reference), and those documents' raw text."""
    root = tmp_path_factory.mktemp("ready")
    write_tokenizer(root / "tokenizer")
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(list("abcdefgh "), size=rng.integers(5, 90))) for _ in range(300)]
    (root / "raw.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    raw = recipe_raw(root, root / "own", source=str(root / "raw.jsonl"))
    build_subsets(parse_recipe(raw))
    return root, docs, read_tokens(str(root / "own"))


def recipe_raw(root: Path, location: Path | str, **subset) -> dict:
    return {
        "name": "ready",
        "seq_len": SEQ,
        "tokenizer": str(root / "tokenizer"),
        "model": {"params": 1000},
        "subsets": {"web": {"location": str(location), **subset}},
        "mixes": {"base": {"web": 1}, "upsample": {"web": 1}},
        "training": {"total_tokens": 10_000, "phase": 0.1, "batch_size": 2},
        "eval": {"tasks": ["t"]},
    }


def shapes(stream: np.ndarray, docs: list[str]) -> dict[str, tuple[dict, list[dict], str | None]]:
    """What llm-foundry writes of the same token stream: name → (columns, rows, compression)."""
    flat = stream.reshape(-1)
    return {
        "seq-zstd": ({"tokens": "ndarray:int32"}, [{"tokens": r} for r in stream], "zstd"),
        "double": ({"tokens": "ndarray:int32"}, [{"tokens": r} for r in flat[: len(flat) // 64 * 64].reshape(-1, 64)], None),
        "half-gz": ({"tokens": "ndarray:uint16"}, [{"tokens": r.astype("uint16")} for r in flat.reshape(-1, 16)], "gz"),
        "ragged": ({"tokens": "ndarray:int32"}, [{"tokens": p} for p in np.split(flat, [5, 100, 101, 400])], None),
        "bytes": ({"tokens": "bytes"}, [{"tokens": r.astype("int64").tobytes()} for r in stream], None),
        "text-zstd": ({"text": "str"}, [{"text": d} for d in docs], "zstd"),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["seq-zstd", "double", "half-gz", "ragged", "bytes", "text-zstd"])
def test_a_copy_holds_the_same_token_stream_as_ablates_own_build(built, tmp_path, name):
    root, docs, stream = built
    columns, rows, compression = shapes(stream, docs)[name]
    source = write_mds(tmp_path / name, columns, rows, compression)
    before = listing(source)
    recipe = parse_recipe(recipe_raw(root, source))
    cache = tmp_path / "cache"
    folder = ready_folders(recipe, ["subsets.web.location"], cache=cache)["subsets.web.location"]
    assert Path(folder).parent == cache / "data" and Path(folder).name.startswith("web-")
    copied = read_tokens(folder)
    whole = len(stream.reshape(-1)) // SEQ if name != "double" else len(rows) * 2
    np.testing.assert_array_equal(copied, stream.reshape(-1)[: whole * SEQ].reshape(-1, SEQ))
    manifest = read_manifest(folder)
    assert manifest["tokens"] == copied.size and manifest["seq_len"] == SEQ
    assert listing(source) == before, "nothing is added or changed in the source folder"
    assert [p.name for p in (cache / "data").iterdir() if not p.name.endswith(".lock")] == [Path(folder).name]
    stamp = (Path(folder) / "index.json").stat().st_mtime_ns
    again = ready_folders(recipe, ["subsets.web.location"], cache=cache)["subsets.web.location"]
    assert again == folder and (Path(folder) / "index.json").stat().st_mtime_ns == stamp, "made once"


def test_a_killed_builds_leftovers_are_removed_before_the_copy_is_made_again(built, tmp_path):
    root, _, stream = built
    source = write_mds(tmp_path / "src", {"tokens": "bytes"}, [{"tokens": r.astype("int64").tobytes()} for r in stream])
    recipe = parse_recipe(recipe_raw(root, source))
    cache = tmp_path / "cache"
    folder = Path(ready_folders(recipe, ["subsets.web.location"], cache=cache)["subsets.web.location"])
    shutil.rmtree(folder)  # as if killed mid-build: its partial and scratch folders left behind
    leftovers = [folder.with_name(f".{folder.name}.{part}-999999") for part in ("partial", "scratch")]
    for leftover in leftovers:
        (leftover / "sub").mkdir(parents=True)
    assert ready_folders(recipe, ["subsets.web.location"], cache=cache)["subsets.web.location"] == str(folder)
    assert not any(p.exists() for p in leftovers)
    np.testing.assert_array_equal(read_tokens(str(folder)), stream)


def test_a_folder_of_seq_len_samples_is_read_in_place(built, tmp_path):
    root, _, _ = built
    recipe = parse_recipe(recipe_raw(root, root / "own"))
    folders = ready_folders(recipe, ["subsets.web.location"], cache=tmp_path / "cache")
    assert folders == {"subsets.web.location": str(root / "own")}
    assert not (tmp_path / "cache").exists(), "no copy, no cache folder"


def test_text_is_tokenized_with_eos_after_each_document(built, tmp_path):
    root, docs, stream = built
    tokenizer, eos = load_tokenizer(root / "tokenizer")
    first = tokenizer.encode(docs[0], add_special_tokens=False).ids
    assert list(stream.reshape(-1)[: len(first) + 1]) == [*first, eos]


def test_bytes_of_another_token_encoding_are_decoded_as_the_recipe_says(built, tmp_path):
    root, _, stream = built
    rows = [{"tokens": r.astype("uint16").tobytes()} for r in stream]
    source = write_mds(tmp_path / "u16", {"tokens": "bytes"}, rows)
    recipe = parse_recipe(recipe_raw(root, source, token_encoding_type="uint16"))
    folder = ready_folders(recipe, ["subsets.web.location"], cache=tmp_path / "cache")["subsets.web.location"]
    np.testing.assert_array_equal(read_tokens(folder), stream)
    odd = write_mds(tmp_path / "odd", {"tokens": "bytes"}, [{"tokens": b"\0" * 7}] * 3)
    with pytest.raises(AblateError, match=r"subsets\.web\.location: cannot read the MDS shards at .*7-byte samples"):
        ready_folders(parse_recipe(recipe_raw(root, odd)), ["subsets.web.location"], cache=tmp_path / "c2")
