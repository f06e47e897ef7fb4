"""`ablate data build`: shards read back exactly, manifests count right, rebuilds are skipped or forced,
interrupted builds never count as built, and bad input fails with one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablate.data.build import build_subsets
from ablate.data.check import plan_data
from ablate.data.manifest import MANIFEST, read_manifest
from ablate.demo.corpus import write_tokenizer
from ablate.errors import AblateError
from ablate.recipe import parse_recipe

SEQ = 8
DOCS = ["hello world", "a", "", "the bakery sells bread", "x = 1\ny = 2"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer"
    write_tokenizer(path)
    return path


def char_ids(tokenizer_dir: Path) -> tuple[dict[str, int], int]:
    """Character → id and the EOS id, read from tokenizer.json: independent of the code under test."""
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    return spec["model"]["vocab"], spec["model"]["vocab"]["<eos>"]


def recipe_for(tokenizer: Path, **subsets) -> object:
    """A valid recipe whose subsets are given as name → subset fields."""
    return parse_recipe(
        {
            "name": "t",
            "seq_len": SEQ,
            "tokenizer": str(tokenizer),
            "subsets": {name: {"location": f"mds/{name}", **fields} for name, fields in subsets.items()},
            "mixes": {"base": {n: 1 for n in subsets}, "upsample": {n: 1 for n in subsets}},
            "training": {"total_tokens": 1000, "phase": 0.5, "batch_size": 2},
            "eval": {"tasks": ["t"]},
        }
    )


def write_jsonl(path: Path, texts: list[str], field: str = "text") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({field: t, "id": i}) + "\n" for i, t in enumerate(texts)))


def read_shards(location: Path, tmp: Path) -> list[list[int]]:
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    dataset = StreamingDataset(local=str(location), shuffle=False, batch_size=1)
    return [dataset[i]["tokens"].tolist() for i in range(len(dataset))]


def test_shards_hold_exactly_the_tokens_written(in_tmp, tokenizer_dir):
    write_jsonl(in_tmp / "raw" / "a.jsonl", DOCS)
    manifests = build_subsets(recipe_for(tokenizer_dir, a={"source": "raw/a.jsonl"}))

    vocab, eos = char_ids(tokenizer_dir)
    stream = [t for doc in DOCS if doc for t in [*(vocab[c] for c in doc), eos]]
    full = len(stream) // SEQ * SEQ
    expected = [stream[i : i + SEQ] for i in range(0, full, SEQ)]
    got = read_shards(in_tmp / "mds" / "a", in_tmp)
    assert got == expected
    assert all(len(sample) == SEQ for sample in got)

    manifest = manifests["a"]
    assert manifest == read_manifest("mds/a")
    assert manifest["documents"] == 4  # the empty line is no document
    assert manifest["samples"] == len(expected)
    assert manifest["tokens"] == full and manifest["dropped_tokens"] == len(stream) - full
    assert manifest["columns"] == {"tokens": "ndarray:int32"}
    assert plan_data(recipe_for(tokenizer_dir, a={"source": "raw/a.jsonl"}))[0] == {"a": full}


def test_plain_text_files_by_glob_are_one_document_each(in_tmp, tokenizer_dir):
    (in_tmp / "books").mkdir()
    (in_tmp / "books" / "one.txt").write_text("first book, " * 3)
    (in_tmp / "books" / "two.txt").write_text("second book " * 2)
    (in_tmp / "books" / "skip.md").write_text("not matched")
    manifest = build_subsets(recipe_for(tokenizer_dir, b={"source": "books/*.txt"}))["b"]
    assert manifest["documents"] == 2
    assert manifest["tokens"] + manifest["dropped_tokens"] == len("first book, " * 3) + len("second book " * 2) + 2


def test_custom_text_field(in_tmp, tokenizer_dir):
    write_jsonl(in_tmp / "raw" / "c.jsonl", ["some content here"], field="body")
    manifest = build_subsets(recipe_for(tokenizer_dir, c={"source": "raw/c.jsonl", "text_field": "body"}))["c"]
    assert manifest["documents"] == 1 and manifest["samples"] == 2


def test_rebuild_is_skipped_unless_forced_or_changed(in_tmp, tokenizer_dir):
    write_jsonl(in_tmp / "raw" / "a.jsonl", DOCS)
    recipe = recipe_for(tokenizer_dir, a={"source": "raw/a.jsonl"})
    build_subsets(recipe)
    index = in_tmp / "mds" / "a" / "index.json"
    first = index.stat().st_ino

    build_subsets(recipe)
    assert index.stat().st_ino == first, "an up-to-date subset is not rewritten"

    build_subsets(recipe, force=True)
    forced = index.stat().st_ino
    assert forced != first

    write_jsonl(in_tmp / "raw" / "a.jsonl", [*DOCS, "one more document"])
    manifest = build_subsets(recipe)["a"]
    assert index.stat().st_ino != forced and manifest["documents"] == 5
    assert not [p for p in (in_tmp / "mds").iterdir() if p.name.startswith(".")], "no hidden folders left"


def test_failed_build_leaves_nothing_that_counts_as_built(in_tmp, tokenizer_dir):
    raw = in_tmp / "raw" / "a.jsonl"
    write_jsonl(raw, ["enough text to fill several samples"] * 20)
    raw.write_text(raw.read_text() + "{not json\n")  # fails after many samples were written
    recipe = recipe_for(tokenizer_dir, a={"source": "raw/a.jsonl"})
    with pytest.raises(AblateError, match=r"subsets\.a\.source: .*line 21 is not JSON"):
        build_subsets(recipe)
    assert not (in_tmp / "mds" / "a").exists()
    assert list((in_tmp / "mds").iterdir()) == []
    assert plan_data(recipe)[0] == {}


def test_interrupt_keeps_the_previous_build(in_tmp, tokenizer_dir, monkeypatch):
    import ablate.data.build

    write_jsonl(in_tmp / "raw" / "a.jsonl", DOCS)
    recipe = recipe_for(tokenizer_dir, a={"source": "raw/a.jsonl"})
    before = build_subsets(recipe)["a"]

    real = ablate.data.build.documents

    def interrupted(*args):  # Ctrl-C after the first document
        texts = real(*args)
        yield next(texts)
        raise KeyboardInterrupt

    monkeypatch.setattr(ablate.data.build, "documents", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_subsets(recipe, force=True)
    assert read_manifest("mds/a") == before
    assert [p.name for p in (in_tmp / "mds").iterdir()] == ["a"]


def test_leftover_of_a_killed_build_is_ignored_and_cleared(in_tmp, tokenizer_dir):
    leftover = in_tmp / "mds" / ".a.building-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / "shard.00000.mds").write_bytes(b"partial")
    write_jsonl(in_tmp / "raw" / "a.jsonl", DOCS)
    recipe = recipe_for(tokenizer_dir, a={"source": "raw/a.jsonl"})
    assert plan_data(recipe)[0] == {}
    build_subsets(recipe)
    assert not leftover.exists() and (in_tmp / "mds" / "a" / MANIFEST).exists()


BAD = {
    "missing source": (lambda root: None, {"source": "raw/nope.jsonl"}, "subsets.a.source: ", "matches no file"),
    "empty source": (
        lambda root: write_jsonl(root / "raw" / "a.jsonl", ["", ""]),
        {"source": "raw/a.jsonl"},
        "subsets.a.source: raw/a.jsonl holds no documents",
        "",
    ),
    "text field absent": (
        lambda root: write_jsonl(root / "raw" / "a.jsonl", ["hi"], field="content"),
        {"source": "raw/a.jsonl"},
        "subsets.a.text_field: ",
        "line 1 has no 'text' (has ['content', 'id'])",
    ),
    "output not ours": (
        lambda root: (write_jsonl(root / "raw" / "a.jsonl", DOCS), (root / "mds" / "a").mkdir(parents=True),
                      (root / "mds" / "a" / "precious.txt").write_text("keep")),
        {"source": "raw/a.jsonl"},
        "subsets.a.location: mds/a exists and was not written by `ablate data build`",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_clear_error_and_writes_nothing(in_tmp, tokenizer_dir, case):
    prepare, fields, start, detail = BAD[case]
    prepare(in_tmp)
    with pytest.raises(AblateError) as info:
        build_subsets(recipe_for(tokenizer_dir, a=fields))
    message = str(info.value)
    assert message.startswith(start) and detail in message and "\n" not in message
    assert not (in_tmp / "mds" / "a" / MANIFEST).exists()
    if case == "output not ours":
        assert (in_tmp / "mds" / "a" / "precious.txt").read_text() == "keep"


def test_tokenizer_without_eos_is_refused(in_tmp, tokenizer_dir):
    import shutil

    shutil.copytree(tokenizer_dir, in_tmp / "tok")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        config = json.loads((in_tmp / "tok" / name).read_text())
        config.pop("eos_token")
        (in_tmp / "tok" / name).write_text(json.dumps(config))
    write_jsonl(in_tmp / "raw" / "a.jsonl", DOCS)
    with pytest.raises(AblateError, match="^tokenizer: tok has no EOS token; set eos_token"):
        build_subsets(recipe_for(Path("tok"), a={"source": "raw/a.jsonl"}))


def test_cli_missing_tokenizer_exits_2_with_one_line(in_tmp):
    write_jsonl(in_tmp / "raw" / "a.jsonl", DOCS)
    (in_tmp / "r.yaml").write_text(
        "name: t\nseq_len: 8\ntokenizer: tok\n"
        "subsets: {a: {location: mds/a, source: raw/a.jsonl}}\n"
        "mixes: {base: {a: 1}, upsample: {a: 1}}\n"
        "training: {total_tokens: 1000, phase: 0.5, batch_size: 2}\neval: {tasks: [t]}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "data", "build", "--recipe", "r.yaml"],
        cwd=in_tmp, capture_output=True, text=True, env=os.environ, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: tokenizer: tok not found; run `ablate data demo`")
    assert result.stderr.count("\n") == 1
    assert not (in_tmp / "mds").exists()
