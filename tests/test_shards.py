"""Shard folders that llm-foundry's converter writes (no ablate manifest): read for their column, dtype and
sample length without touching the folder; planned and sized, with a line saying how `run` reads those it
cannot read in place; refused in one line at `plan` (exit 2, nothing written) where they hold no token ids
or text."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_study import ablate

from ablate.data.check import check_shards
from ablate.data.manifest import read_index
from ablate.data.shards import folder_tokens, index_shape, read_shape
from ablate.errors import AblateError
from ablate.recipe import parse_recipe

SEQ = 64
SAMPLES = 12


def write_mds(folder: Path, columns: dict[str, str], rows: list[dict], compression: str | None = None) -> Path:
    """An MDS folder written by streaming's own writer, as llm-foundry's converter calls it."""
    from streaming import MDSWriter

    with MDSWriter(out=str(folder), columns=columns, compression=compression, progress_bar=False) as writer:
        for row in rows:
            writer.write(row)
    return folder


def token_rows(length: int, n: int = SAMPLES, dtype: str = "int32") -> list[dict]:
    return [{"tokens": np.arange(i, i + length, dtype=dtype)} for i in range(n)]


# name → (columns, rows, compression): what llm-foundry's converter writes, and ablate's own layout.
FOLDERS = {
    "fits": ({"tokens": "ndarray:int32"}, token_rows(SEQ), None),
    "fits-zstd": ({"tokens": "ndarray:int32"}, token_rows(SEQ), "zstd"),
    "double-zstd": ({"tokens": "ndarray:int32"}, token_rows(2 * SEQ), "zstd"),
    "half": ({"tokens": "ndarray:int32"}, token_rows(SEQ // 2), None),
    "text-zstd": ({"text": "str"}, [{"text": f"document {i} " * (i + 1)} for i in range(SAMPLES)], "zstd"),
    "bytes": ({"tokens": "bytes"}, [{"tokens": r["tokens"].tobytes()} for r in token_rows(SEQ, dtype="int64")], None),
}
# name → (column, encoding, dtype, length, tokens)
SHAPES = {
    "fits": ("tokens", "ndarray:int32", "int32", SEQ, SAMPLES * SEQ),
    "fits-zstd": ("tokens", "ndarray:int32", "int32", SEQ, SAMPLES * SEQ),
    "double-zstd": ("tokens", "ndarray:int32", "int32", 2 * SEQ, SAMPLES * 2 * SEQ),
    "half": ("tokens", "ndarray:int32", "int32", SEQ // 2, SAMPLES * SEQ // 2),
    "text-zstd": ("text", "str", None, None, None),
    "bytes": ("tokens", "bytes", "int64", SEQ, SAMPLES * SEQ),
}
# name → what `plan` says `run` does to the folder (None: read in place)
COPIES = {
    "fits": None,
    "fits-zstd": "decompresses (zstd) it once, into the study's cache",
    "double-zstd": f"decompresses (zstd), re-chunks into {SEQ}-token sequences (samples joined in order, only the "
    "final remainder dropped; llm-foundry would cut or pad each sample) it once, into the study's cache",
    "half": f"re-chunks into {SEQ}-token sequences",
    "text-zstd": f"decompresses (zstd), tokenizes (the recipe's tokenizer, EOS after each document) into {SEQ}-token "
    "sequences it once",
    "bytes": "decodes as int64 it once, into the study's cache",
}
# name → (columns, rows): folders that hold no token ids or text, and what the refusal says of them
REFUSED = {
    "floats": ({"tokens": "ndarray:float32"}, [{"tokens": np.ones(SEQ, "float32")}] * 3, "float32 values rather than token ids"),
    "matrix": ({"tokens": "ndarray:int32"}, [{"tokens": np.ones((2, SEQ), "int32")}] * 3, "`tokens` arrays of 2 dimensions"),
    "ids": ({"id": "int"}, [{"id": 1}] * 3, "no `tokens` or `text` column: ['id']"),
}  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("foundry")
    return {name: write_mds(root / name, *spec) for name, spec in FOLDERS.items()}


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time: what reading must not change."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_the_reader_tells_column_dtype_length_and_tokens_and_leaves_the_folder_alone(folders, name):
    folder = folders[name]
    before = listing(folder)
    shape = read_shape(str(folder), read_index(str(folder)))
    assert (shape.column, shape.encoding, shape.dtype, shape.length, shape.tokens) == SHAPES[name]
    assert shape.samples == SAMPLES and shape.compression == FOLDERS[name][2]
    if shape.length is not None:  # every sample of the first shard measured from its offsets table
        assert shape.shortest == shape.longest == shape.length and not shape.varies
    assert folder_tokens(str(folder)) == SHAPES[name][4]
    assert listing(folder) == before, "reading a folder adds or changes no file in it"
    if FOLDERS[name][2]:
        assert not list(folder.glob("*.mds")), "a compressed shard is decompressed in memory only"


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_a_folders_index_alone_gives_the_tokens_its_shards_do(folders, name):
    """What `plan` knows of a bucket's folder from one request: its index.json."""
    index = read_index(str(folders[name]))
    local, remote = read_shape(str(folders[name]), index), index_shape(index)
    assert (remote.column, remote.dtype, remote.length, remote.tokens) == (local.column, local.dtype, local.length, local.tokens)


@pytest.mark.parametrize("lengths", [(SEQ, SEQ, 5), (300, 2, 70_000), (1,)])
def test_a_folders_index_counts_tokens_of_samples_of_any_lengths(tmp_path, lengths):
    rows = [{"tokens": np.arange(n, dtype="int32")} for n in lengths]
    shape = index_shape(read_index(str(write_mds(tmp_path / "ragged", {"tokens": "ndarray:int32"}, rows, "zstd"))))
    if max(lengths) < 256 or min(lengths) >= 256:  # one width for every sample's length
        assert shape.tokens == sum(lengths)
    assert shape.shortest is None and shape.longest is None, "one length or several: the index cannot tell"


def test_reading_a_compressed_folder_imports_no_heavy_library(folders):
    probe = (
        "import sys\nfrom ablate.data.shards import folder_tokens\n"
        f"assert folder_tokens({str(folders['fits-zstd'])!r}) == {SAMPLES * SEQ}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'composer', 'streaming', 'lm_eval'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_samples_of_varying_length_are_found_from_the_offsets_table(tmp_path):
    rows = [{"tokens": np.arange(n, dtype=np.int32)} for n in (SEQ, SEQ, SEQ - 5, 70_000, SEQ)]
    folder = write_mds(tmp_path / "ragged", {"tokens": "ndarray:int32"}, rows, "zstd")
    shape = read_shape(str(folder), read_index(str(folder)))
    assert (shape.length, shape.shortest, shape.longest, shape.varies) == (SEQ, SEQ - 5, 70_000, True)
    assert shape.tokens is None, "one sample's length is not every sample's"
    assert shape.describe() == f"samples from {SEQ - 5} to 70,000 tokens (tokens: ndarray:int32)"
    shards = check_shards("subsets.r.location", str(folder), SEQ)
    assert shards.tokens is None and f"re-chunks into {SEQ}-token sequences" in (shards.copy or "")


def test_other_columns_and_a_dynamic_dtype_are_read_too(tmp_path):
    rows = [{"id": i, "tokens": np.arange(SEQ, dtype=np.uint16), "url": "x" * i} for i in range(3)]
    folder = write_mds(tmp_path / "mixed", {"id": "int", "tokens": "ndarray", "url": "str"}, rows, "gz")
    shape = read_shape(str(folder), read_index(str(folder)))
    assert (shape.dtype, shape.length, shape.tokens, shape.shortest) == ("uint16", SEQ, 3 * SEQ, None)
    assert check_shards("subsets.m.location", str(folder), SEQ).tokens == 3 * SEQ


@pytest.mark.parametrize("name", sorted(COPIES))
def test_every_shape_foundry_writes_is_sized_and_says_how_run_reads_it(folders, name):
    shards = check_shards(f"subsets.{name}.location", str(folders[name]), SEQ)
    expected = SHAPES[name][4]
    assert shards.tokens == (expected // SEQ * SEQ if expected else None)
    if COPIES[name] is None:
        assert shards.copy is None
    else:
        assert COPIES[name] in (shards.copy or ""), shards.copy


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_folder_without_token_ids_or_text_is_refused_in_one_line(tmp_path, name):
    columns, rows, found = REFUSED[name]
    folder = write_mds(tmp_path / name, columns, rows)
    with pytest.raises(AblateError) as info:
        check_shards(f"subsets.{name}.location", str(folder), SEQ)
    message = str(info.value)
    assert message.startswith(f"subsets.{name}.location: ") and found in message and "\n" not in message
    assert "llmfoundry data_prep convert_dataset_json ... --concat_tokens" in message


# ---- through `ablate plan` ----------------------------------------------------------------


def recipe_raw(root: Path, location: Path | str, **subset) -> dict:
    """A recipe of two subsets: `web` at `location` (the folder under test), `code` sized by the recipe."""
    return {
        "name": "foundry",
        "seq_len": SEQ,
        "tokenizer": "tok",
        "model": {"params": 1000},
        "subsets": {
            "web": {"location": str(location), **subset},
            "code": {"location": "s3://bucket/code", "tokens": 10_000},
        },
        "mixes": {"base": {"web": 1, "code": 1}, "upsample": {"web": 1, "code": 1}},
        "training": {"total_tokens": 40 * SEQ * SAMPLES, "phase": 0.1, "batch_size": 2},
        "eval": {"tasks": ["t"], "include": [str(root / "tasks")]},
        "ablations": {"control": False, "baseline_seeds": 1},
    }


def plan_with(tmp_path: Path, raw: dict):
    (tmp_path / "tasks").mkdir(exist_ok=True)
    (tmp_path / "tasks" / "t.yaml").write_text("task: t\n")  # plan checks lm-eval can find every task
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    results = tmp_path / "results"
    return ablate("plan", "--recipe", "recipe.yaml", cwd=tmp_path, results=results, env={"COLUMNS": "400"}, timeout=120)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_plan_refuses_a_folder_without_token_ids_or_text_and_writes_nothing(tmp_path, name):
    columns, rows, found = REFUSED[name]
    folder = write_mds(tmp_path / name, columns, rows)
    before = listing(folder)
    result = plan_with(tmp_path, recipe_raw(tmp_path, folder))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"subsets.web.location: " in result.stderr and found in result.stderr, result.stderr
    assert not (tmp_path / "results").exists()
    assert listing(folder) == before


@pytest.mark.parametrize("name", ["double-zstd", "text-zstd", "bytes"])
def test_plan_says_how_run_reads_a_folder_of_another_shape_and_sizes_it(folders, tmp_path, name):
    before = listing(folders[name])
    result = plan_with(tmp_path, recipe_raw(tmp_path, folders[name]))
    assert result.returncode == 0, result.stderr
    assert f"warning: subsets.web.location: `ablate run` {COPIES[name]}" in " ".join(result.stderr.split())
    plan = json.loads((tmp_path / "results" / "foundry" / "plan.json").read_text())
    sized = SHAPES[name][4]
    assert plan["subset_sizes"].get("web") == (sized // SEQ * SEQ if sized else None)
    assert ("sizes unknown for ['web']" in result.stderr) == (sized is None)
    assert listing(folders[name]) == before


def test_plan_sizes_a_foundry_folder_of_seq_len_samples_from_its_index(folders, tmp_path):
    before = listing(folders["fits-zstd"])
    result = plan_with(tmp_path, recipe_raw(tmp_path, folders["fits-zstd"]))
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "results" / "foundry" / "plan.json").read_text())
    assert plan["subset_sizes"] == {"web": SAMPLES * SEQ, "code": 10_000}
    baseline = plan["variants"][0]
    assert baseline["epochs"]["web"] == pytest.approx(baseline["subset_tokens"]["web"] / (SAMPLES * SEQ))
    assert "sizes unknown" not in result.stderr
    assert listing(folders["fits-zstd"]) == before, "planning adds or changes no file in the source folder"


def test_plan_refuses_a_missing_folder_with_nothing_to_build_or_size_it_from(tmp_path):
    missing = tmp_path / "nowhere"
    result = plan_with(tmp_path, recipe_raw(tmp_path, missing))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert (
        f"subsets.web.location: no MDS shards at {missing} (index.json missing or unreadable) and no `source` to "
        "build them from; fix the location, or give subsets.web.source for `ablate data build`"
    ) in result.stderr
    assert not (tmp_path / "results").exists()
    # A source to build from (ablate's own demo plans before `ablate data build`), or a size: planned.
    (tmp_path / "raw.jsonl").write_text('{"text": "hello"}\n')
    assert plan_with(tmp_path, recipe_raw(tmp_path, missing, source=str(tmp_path / "raw.jsonl"))).returncode == 0
    sized = plan_with(tmp_path, recipe_raw(tmp_path, missing, tokens=5_000))
    assert sized.returncode == 0 and f"subsets.web.location: no MDS shards at {missing} here" in sized.stderr


def test_plan_takes_a_heldout_folder_of_another_length_and_warns_of_a_missing_one(folders, tmp_path):
    raw = recipe_raw(tmp_path, folders["fits"])
    raw["eval"]["heldout"] = {"web": str(folders["fits"]), "math": str(folders["double-zstd"])}
    result = plan_with(tmp_path, raw)
    assert result.returncode == 0, result.stderr
    assert f"eval.heldout.math.location: `ablate run` decompresses (zstd), re-chunks" in result.stderr
    raw["eval"]["heldout"]["math"] = str(tmp_path / "not-yet")
    warned = plan_with(tmp_path, raw)
    assert warned.returncode == 0, warned.stderr
    assert f"eval.heldout.math.location: no MDS shards at {tmp_path / 'not-yet'} here" in warned.stderr
    raw["eval"]["heldout"]["math"] = write_mds(tmp_path / "floats", *REFUSED["floats"][:2]).as_posix()
    refused = plan_with(tmp_path, raw)
    assert refused.returncode == 2 and "eval.heldout.math.location: " in refused.stderr, refused.stderr


# ---- folders in a bucket (the S3 test server) -----------------------------------------------


def test_plan_sizes_a_bucket_folder_from_its_index_in_one_request(folders, s3, tmp_path):
    uri = s3.upload(folders["double-zstd"], "plan-sizes", "mds/web")
    raw = recipe_raw(tmp_path, uri)
    raw["subsets"]["code"] = {"location": str(folders["fits"])}
    result = plan_with(tmp_path, raw)
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "results" / "foundry" / "plan.json").read_text())
    assert plan["subset_sizes"] == {"web": SAMPLES * 2 * SEQ, "code": SAMPLES * SEQ}
    assert s3.requests("GET", "/plan-sizes/mds/web/index.json") == 1
    assert s3.requests("GET", "/plan-sizes/mds/web/shard.00000.mds.zstd") == 0, "no shard is read at plan time"
    assert "subsets.web.location: `ablate run` downloads, decompresses (zstd), re-chunks" in result.stderr


@pytest.mark.parametrize(
    ("location", "found"),
    [
        ("s3://plan-refuses/mds/wbe", "no index.json at s3://plan-refuses/mds/wbe/index.json"),
        ("s3://no-such-bucket/mds/web", "no bucket no-such-bucket"),
    ],
)
def test_plan_refuses_a_bucket_folder_that_is_not_there_in_one_line(folders, s3, tmp_path, location, found):
    s3.upload(folders["fits"], "plan-refuses", "mds/web")
    result = plan_with(tmp_path, recipe_raw(tmp_path, location))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"subsets.web.location: {found}; fix the location" in result.stderr, result.stderr
    assert not (tmp_path / "results").exists()
