"""Shard folders that llm-foundry's converter writes (no ablate manifest): read for their column, dtype and
sample length without touching the folder; planned and sized where their samples are seq_len tokens, and
refused in one line at `plan` (exit 2, nothing written) and before `run` where they are not."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_study import ablate

from ablate.data.manifest import read_index
from ablate.data.shards import check_shards, folder_tokens, read_shape
from ablate.errors import AblateError
from ablate.recipe import parse_recipe
from ablate.run.heldout import check_heldout

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
REFUSED = {
    "double-zstd": f"holds foundry-style shards of {2 * SEQ}-token samples (tokens: ndarray:int32), the recipe's "
    f"seq_len is {SEQ}; rebuild them with `llmfoundry data_prep convert_dataset_json ... --concat_tokens {SEQ}` or "
    f"`ablate data build` (from a `source:` of raw text), or set seq_len: {2 * SEQ}",
    "half": f"holds foundry-style shards of {SEQ // 2}-token samples (tokens: ndarray:int32), the recipe's seq_len "
    f"is {SEQ}; rebuild them with `llmfoundry data_prep convert_dataset_json ... --concat_tokens {SEQ}`",
    "text-zstd": "holds a text column (foundry's converter without --concat_tokens), not token ids; tokenize it "
    f"with `llmfoundry data_prep convert_dataset_json ... --concat_tokens {SEQ}` or `ablate data build`",
    "bytes": "holds tokens stored as bytes (tokens: bytes, llm-foundry before 0.8: 512 bytes a sample, 64 tokens "
    "if int64, its default); rebuild them with llm-foundry 0.8 or later (`llmfoundry data_prep "
    f"convert_dataset_json ... --concat_tokens {SEQ}`) or `ablate data build`",
}


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
    with pytest.raises(AblateError) as info:
        check_shards("subsets.r.location", str(folder), SEQ)
    assert f"holds foundry-style shards of samples from {SEQ - 5} to 70,000 tokens (tokens: ndarray:int32)" in str(
        info.value
    )
    assert "set seq_len" not in str(info.value)


def test_other_columns_and_a_dynamic_dtype_are_read_too(tmp_path):
    rows = [{"id": i, "tokens": np.arange(SEQ, dtype=np.uint16), "url": "x" * i} for i in range(3)]
    folder = write_mds(tmp_path / "mixed", {"id": "int", "tokens": "ndarray", "url": "str"}, rows, "gz")
    shape = read_shape(str(folder), read_index(str(folder)))
    assert (shape.dtype, shape.length, shape.tokens, shape.shortest) == ("uint16", SEQ, 3 * SEQ, None)
    assert check_shards("subsets.m.location", str(folder), SEQ).tokens == 3 * SEQ


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_run_refuses_a_folder_not_of_seq_len_samples_in_one_line(folders, name):
    with pytest.raises(AblateError) as info:
        check_shards(f"subsets.{name}.location", str(folders[name]), SEQ)
    message = str(info.value)
    assert message.startswith(f"subsets.{name}.location: {folders[name]} {REFUSED[name]}") and "\n" not in message


def test_the_heldout_check_refuses_a_foundry_folder_of_another_length(folders, tmp_path):
    recipe = parse_recipe(recipe_raw(tmp_path, folders["fits"]) | {"eval": {"tasks": ["t"], "heldout": {
        "web": str(folders["fits"]), "math": str(folders["half"])}}})  # fmt: skip
    with pytest.raises(AblateError) as info:
        check_heldout(recipe)
    assert str(info.value).startswith(f"eval.heldout.math.location: {folders['half']} {REFUSED['half']}")


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
def test_plan_refuses_a_folder_not_of_seq_len_samples_and_writes_nothing(folders, tmp_path, name):
    before = listing(folders[name])
    result = plan_with(tmp_path, recipe_raw(tmp_path, folders[name]))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"subsets.web.location: {folders[name]} {REFUSED[name]}" in result.stderr, result.stderr
    assert not (tmp_path / "results").exists()
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


def test_plan_refuses_a_heldout_folder_of_another_length_and_warns_of_a_missing_one(folders, tmp_path):
    raw = recipe_raw(tmp_path, folders["fits"])
    raw["eval"]["heldout"] = {"web": str(folders["fits"]), "math": str(folders["double-zstd"])}
    result = plan_with(tmp_path, raw)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"eval.heldout.math.location: {folders['double-zstd']} {REFUSED['double-zstd']}" in result.stderr
    assert not (tmp_path / "results").exists()
    raw["eval"]["heldout"]["math"] = str(tmp_path / "not-yet")
    warned = plan_with(tmp_path, raw)
    assert warned.returncode == 0, warned.stderr
    assert f"eval.heldout.math.location: no MDS shards at {tmp_path / 'not-yet'} here" in warned.stderr
