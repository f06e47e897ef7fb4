"""A study on the shards a foundry team already has: llm-foundry's own converter in each of its modes
(concatenated at seq_len and at other lengths, zstd or not; text; tokens as bytes, as before 0.8), for
training and held-out alike, locally and from an S3 server. The study trains the planned tokens in seq_len
sequences, writes nothing into the data folders, and gives the same results from the bucket as from
the local folders."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_ready import read_tokens
from test_shards import listing, write_mds
from tiny_study import BATCH, SEQ_LEN, STUDY, ablate, recipe_dict

pytestmark = pytest.mark.slow

# subset or held-out domain → how its folder is written: llm-foundry's converter with --concat_tokens N
# (None: text), compressed or not; "bytes": `tokens: bytes` (int64), as llm-foundry before 0.8 wrote it.
SHAPES = {
    "alpha": (2 * SEQ_LEN, "zstd"),
    "beta": (None, "zstd"),
    "gamma": ("bytes", None),
    "heldout-alpha": (SEQ_LEN // 2, None),
    "heldout-gamma": (SEQ_LEN, "zstd"),
}


def convert(raw: Path, out: Path, concat: int | None, compression: str | None, tokenizer: Path) -> Path:
    """llm-foundry's `data_prep convert_dataset_json`, in a process of its own as its CLI runs (it sets
    WORLD_SIZE in its environment; the CLI insists on --concat_tokens, the function it calls writes the
    text mode too)."""
    arguments = dict(
        path=str(raw), out_root=str(out), compression=compression, concat_tokens=concat, split="train",
        tokenizer=str(tokenizer) if concat else None, bos_text=None, eos_text="<eos>" if concat else None,
        no_wrap=False, num_workers=None,
    )  # fmt: skip
    script = f"from llmfoundry.command_utils import convert_dataset_json_from_args as c; c(**{arguments!r})"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def foundry(tiny, tmp_path_factory):
    """The tiny study's raw text as llm-foundry's folders (SHAPES), and a recipe reading them."""
    root = tmp_path_factory.mktemp("foundry-data")
    folders = {}
    for name, (concat, compression) in SHAPES.items():
        raw = tiny.root / "raw" / f"{name}.jsonl"
        if concat == "bytes":
            rows = [{"tokens": r.astype("int64").tobytes()} for r in read_tokens(str(tiny.root / "mds" / name))]
            folders[name] = write_mds(root / name, {"tokens": "bytes"}, rows)
        else:
            folders[name] = convert(raw, root / name, concat, compression, tiny.root / "tokenizer")
    return root, folders


def study_recipe(tiny, root: Path, locations: dict[str, str], start: str | None = None) -> Path:
    raw = recipe_dict(tiny.root)
    for name in ("alpha", "beta", "gamma"):
        raw["subsets"][name] = {"location": locations[name], "groups": raw["subsets"][name]["groups"]}
    raw["eval"]["heldout"] = {d: {"location": locations[f"heldout-{d}"]} for d in ("alpha", "gamma")}
    if start:
        raw["checkpoints"]["pretrained"] = start
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_study(tiny, recipe: Path, results: Path):
    """`ablate plan --remove g` and `ablate run` (the start's evaluation, baseline and no-g) under
    `results`, the run's display as in a terminal (its progress bars live); their stderr."""
    planned = ablate("plan", "--recipe", str(recipe), "--remove", "g", cwd=tiny.root, results=results, timeout=300)
    assert planned.returncode == 0, planned.stderr
    ran = ablate("run", cwd=tiny.root, results=results, env={"FORCE_COLOR": "1"}, timeout=900)
    assert ran.returncode == 0, ran.stderr
    return planned.stderr, ran.stderr


def test_a_study_on_every_shape_foundry_writes_trains_seq_len_sequences_and_leaves_the_data_alone(
    tiny, foundry, tmp_path
):
    root, folders = foundry
    before = {name: listing(folder) for name, folder in folders.items()}
    recipe = study_recipe(tiny, tmp_path, {name: str(folder) for name, folder in folders.items()})
    results = tmp_path / "results"
    planned, ran = run_study(tiny, recipe, results)
    said = " ".join(planned.split())
    assert "copy alpha" in ran and "copy heldout-gamma" in ran, "a bar for each copy, beside the run's own"
    assert "subsets.alpha.location: `ablate run` decompresses (zstd), re-chunks into 64-token sequences" in said
    assert "subsets.beta.location: `ablate run` decompresses (zstd), tokenizes" in said
    assert "subsets.gamma.location: `ablate run` decodes as int64 it once" in said
    assert "eval.heldout.alpha.location: `ablate run` re-chunks into 64-token sequences" in said

    plan = json.loads((results / STUDY / "plan.json").read_text())
    assert plan["subset_sizes"]["gamma"] == read_tokens(str(tiny.root / "mds" / "gamma")).size
    for variant in plan["variants"]:  # the planned tokens, in steps of batch × seq_len tokens
        folder = results / STUDY / variant["name"]
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "done" and status["tokens_done"] == variant["tokens"], variant["name"]
        steps = [json.loads(line)["tokens"] for line in (folder / "train_log.jsonl").open()]
        assert np.all(np.diff(steps) == BATCH * SEQ_LEN) and len(steps) == variant["tokens"] // (BATCH * SEQ_LEN)
    copies = sorted((results / STUDY / "cache" / "data").glob("*/ablate-manifest.json"))
    assert [p.parent.name.rsplit("-", 1)[0] for p in copies] == sorted(SHAPES)
    assert {json.loads(p.read_text())["seq_len"] for p in copies} == {SEQ_LEN}
    heldout = json.loads((results / STUDY / "baseline" / "heldout.json").read_text())
    assert {d: heldout["domains"][d]["sequences"] for d in ("alpha", "gamma")} == {"alpha": 12, "gamma": 12}
    assert {name: listing(folder) for name, folder in folders.items()} == before, "no file added or changed"
    shown = ablate("status", cwd=tiny.root, results=results, env={"COLUMNS": "400"}, timeout=120)
    assert shown.returncode == 0 and f"{results / STUDY / 'cache'}: " in shown.stdout, shown.stdout


def test_the_same_study_from_an_s3_bucket_matches_the_local_one(tiny, foundry, s3, tmp_path):
    root, folders = foundry
    local = tmp_path / "local"
    run_study(tiny, study_recipe(tiny, tmp_path, {n: str(f) for n, f in folders.items()}), local)
    uris = {name: s3.upload(folder, "team-data", f"mds/{name}") for name, folder in folders.items()}
    start = s3.upload(Path(tiny.checkpoint), "team-ckpt", "pretrain/latest-rank0.pt")
    bucket = tmp_path / "bucket"
    (tmp_path / "b").mkdir()
    recipe = study_recipe(tiny, tmp_path / "b", uris, start)
    planned = ablate("plan", "--recipe", str(recipe), "--remove", "g", cwd=tiny.root, results=bucket, timeout=300)
    assert planned.returncode == 0, planned.stderr
    said = " ".join(planned.stderr.split())
    assert "subsets.alpha.location: `ablate run` downloads, decompresses (zstd), re-chunks" in said
    assert "sizes unknown for ['beta']" in said, said
    for name in uris:  # plan sizes every folder from its index alone: one request each
        assert s3.requests("GET", f"/team-data/mds/{name}/index.json") == 1, name
    assert sum(s3.requests("GET", f"/team-data/mds/{name}/{p.name}") for name, f in folders.items()
               for p in f.glob("shard.*")) == 0  # fmt: skip
    ran = ablate("run", cwd=tiny.root, results=bucket, timeout=900)
    assert ran.returncode == 0, ran.stderr
    assert s3.requests("GET", "/team-ckpt/pretrain/latest-rank0.pt") == 1, "the start fetched once for the study"
    for name, folder in folders.items():  # every shard downloaded once for the study, whichever job reads it
        for shard in folder.glob("shard.*"):
            assert s3.requests("GET", f"/team-data/mds/{name}/{shard.name}") == 1, (name, shard.name)
    for job in ("start", "baseline", "no-g"):  # the same scores, job by job
        mine, theirs = (json.loads((r / STUDY / job / "status.json").read_text()) for r in (bucket, local))
        assert mine["scores"] == theirs["scores"], job
    for job in ("baseline", "no-g"):  # the same training and held-out losses
        mine, theirs = (json.loads((r / STUDY / job / "heldout.json").read_text()) for r in (bucket, local))
        assert {d: v["nll"] for d, v in mine["domains"].items()} == {d: v["nll"] for d, v in theirs["domains"].items()}
        losses = [[json.loads(line)["loss"] for line in (r / STUDY / job / "train_log.jsonl").open()]
                  for r in (bucket, local)]  # fmt: skip
        assert losses[0] == losses[1], job
