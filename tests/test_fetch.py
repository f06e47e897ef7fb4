"""A start checkpoint at a URI is fetched once per study into its cache (ablate.run.fetch), on a real S3
server (moto's, tests/s3_server.py): one file, a Composer `.symlink`, a sharded folder, jobs racing, a
bad URI. The slow test runs the tiny study from a bucket and compares it with the same study from the
local file."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import pytest
from tiny_study import STUDY, ablate, clone, status, write_tiny_study

BUCKET = "ablate-starts"


def _files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _temp_copies() -> set[Path]:
    """What ablate used to leave behind: a whole checkpoint in the temp folder per job."""
    return set(Path(tempfile.gettempdir()).glob("ablate-ckpt-*"))


def test_a_checkpoint_file_is_fetched_once_however_many_jobs_ask(s3, in_tmp):
    from ablate.run.fetch import copy_path, fetch, release

    local = in_tmp / "ep8-ba80-rank0.pt"
    local.write_bytes(os.urandom(3_000_000))
    uri = s3.upload(local, BUCKET, "race/ep8-ba80-rank0.pt")
    temp_before = _temp_copies()
    seen: list[list[tuple[int, int]]] = [[] for _ in range(4)]  # what each job's progress bar was told
    got: list[Path] = []

    def job(bar: list[tuple[int, int]]) -> None:  # each opens the lock file itself, as jobs in processes of their own
        got.append(fetch(STUDY, uri, label="--checkpoint x", on_bytes=lambda done, total: bar.append((done, total))))

    jobs = [threading.Thread(target=job, args=(bar,)) for bar in seen]
    for thread in jobs:
        thread.start()
    for thread in jobs:
        thread.join()
    target = copy_path(STUDY, uri)
    assert got == [target] * 4 and target.read_bytes() == local.read_bytes()
    assert target.parent.parent.resolve() == in_tmp / "results" / STUDY / "cache" / "checkpoints"
    assert sorted(p.name for p in target.parent.iterdir()) == ["ep8-ba80-rank0.pt", "fetch.lock"]  # no partial left
    assert fetch(STUDY, uri, label="--checkpoint x") == target
    assert s3.requests("GET", f"/{BUCKET}/race/ep8-ba80-rank0.pt") == 1
    assert sorted(bool(bar) for bar in seen) == [False, False, False, True]  # one fetched, the rest waited
    assert max(seen)[-1] == (3_000_000, 3_000_000)  # the bar's last word: every byte is there
    assert _temp_copies() == temp_before
    assert release(STUDY, uri) == 3_000_000
    assert not (in_tmp / "results" / STUDY / "cache").exists()  # nothing left, not even the lock
    assert release(STUDY, uri) == 0


def test_a_sharded_folder_is_fetched_whole_and_a_composer_symlink_is_followed(s3, in_tmp):
    from ablate.run.fetch import fetch

    sharded = in_tmp / "ep1-ba8"
    sharded.mkdir()
    for name in (".metadata", "__0_0.distcp", "__1_0.distcp"):
        (sharded / name).write_bytes(os.urandom(50_000))
    s3.upload(sharded, BUCKET, "run/checkpoints/ep1-ba8")
    link = in_tmp / "latest-rank0.pt.symlink"
    link.write_text("run/checkpoints/ep1-ba8")  # what Composer uploads beside a run's checkpoints
    s3.upload(link, BUCKET, "run/checkpoints/latest-rank0.pt.symlink")
    for uri in (f"s3://{BUCKET}/run/checkpoints/ep1-ba8/", f"s3://{BUCKET}/run/checkpoints/latest-rank0.pt"):
        copy = fetch(STUDY, uri, label="--checkpoint x")
        assert copy.is_dir() and _files(copy) == _files(sharded), uri
    assert s3.requests("GET", f"/{BUCKET}/run/checkpoints/ep1-ba8/__1_0.distcp") == 2  # two URIs, two copies


def test_a_uri_that_names_nothing_is_one_line_and_writes_nothing(s3, in_tmp, monkeypatch):
    from ablate.errors import AblateError
    from ablate.run.fetch import fetch

    s3.upload(Path(__file__), BUCKET, "here.py")
    cases = {
        f"s3://{BUCKET}/missing.pt": f"--checkpoint x: no object at s3://{BUCKET}/missing.pt, nor a sharded",
        "s3://no-such-bucket/start.pt": "--checkpoint x: cannot read s3://no-such-bucket/start.pt (NoSuchBucket: ",
        "mem://bucket/start.pt": "--checkpoint x: cannot read mem://bucket/start.pt (NotImplementedError: ",
    }
    for uri, expected in cases.items():
        with pytest.raises(AblateError) as caught:
            fetch(STUDY, uri, label="--checkpoint x")
        assert str(caught.value).startswith(expected) and "\n" not in str(caught.value), str(caught.value)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud's metadata address
    with pytest.raises(AblateError, match=r"\(NoCredentialsError: Unable to locate credentials\); check the URI and"):
        fetch(STUDY, f"s3://{BUCKET}/here.py", label="--checkpoint x")
    assert not (in_tmp / "results").exists()


def test_run_refuses_a_bad_checkpoint_uri_in_one_line_before_any_job(s3, in_tmp):
    from ablate.errors import AblateError
    from ablate.run.runner import run_study

    missing = f"s3://{BUCKET}/nowhere/start.pt"
    recipe = write_tiny_study(in_tmp)
    results = in_tmp / "results"
    planned = ablate(
        "plan", "--recipe", str(recipe), "--remove", "g", "--checkpoint", missing, cwd=in_tmp, results=results
    )
    assert planned.returncode == 0, planned.stderr  # plan makes no request: the URI is only recorded
    with pytest.raises(AblateError, match=f"^--checkpoint {missing}: no object at {missing}, nor a sharded"):
        run_study()
    plan_before = (results / STUDY / "plan.json").read_text()
    nowhere = "s3://no-such-bucket/start.pt"
    run = ablate("run", "--checkpoint", nowhere, cwd=in_tmp, results=results, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"Error: --checkpoint {nowhere}: cannot read {nowhere} (NoSuchBucket: " in run.stderr
    assert (results / STUDY / "plan.json").read_text() == plan_before  # not re-planned
    assert sorted(p.name for p in (results / STUDY).iterdir()) == ["plan.json"]  # no job started, nothing cached


# ---- a whole study ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_study_from_a_bucket_fetches_its_start_once_and_matches_the_local_one(tiny, s3):
    import torch

    uri = s3.upload(Path(tiny.checkpoint).resolve(), BUCKET, "tiny/start.pt")
    results = clone(tiny, "from-s3")
    temp_before = _temp_copies()
    first = ablate("run", "--checkpoint", uri, "--variant", "baseline", cwd=tiny.root, results=results, timeout=600)
    assert first.returncode == 0, first.stderr
    assert f"fetched {uri}" in first.stderr
    cache = results / STUDY / "cache" / "checkpoints"
    assert [p.name for p in cache.glob("*/*.pt")] == ["start.pt"]  # kept: no-g still starts from it
    second = ablate("run", "--keep-fetched", cwd=tiny.root, results=results, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "removed" not in second.stderr and [p.name for p in cache.glob("*/*.pt")] == ["start.pt"]  # as asked
    third = ablate("run", cwd=tiny.root, results=results, timeout=600)  # nothing to run: the copy goes
    assert third.returncode == 0, third.stderr
    assert f"removed the study's copy of {uri} (" in third.stderr
    assert not cache.exists()  # the study's other cached things (shards made ready) are not this test's
    assert s3.requests("GET", f"/{BUCKET}/tiny/start.pt") == 1  # once for the study: 3 jobs, 2 runs
    assert _temp_copies() == temp_before
    assert status(results, "start")["checkpoint"] == uri
    assert status(results, "start")["scores"] == status(tiny.results, "start")["scores"]
    for variant in ("baseline", "no-g"):
        assert status(results, variant)["scores"] == status(tiny.results, variant)["scores"]
        paths = [r / STUDY / variant / "checkpoints" / "latest-rank0.pt" for r in (tiny.results, results)]
        one, two = (torch.load(p, weights_only=False, map_location="cpu")["state"]["model"] for p in paths)
        assert one.keys() == two.keys()
        for key, value in one.items():
            assert torch.equal(value, two[key]), (variant, key)


@pytest.mark.slow
def test_a_sharded_start_at_a_uri_loads_as_the_one_file_it_came_from(tiny, s3, in_tmp):
    import torch
    from torch.distributed.checkpoint.format_utils import torch_save_to_dcp

    from ablate.run.fetch import fetch
    from ablate.run.start import is_sharded, load_start

    local = Path(tiny.checkpoint).resolve()
    torch_save_to_dcp(local, in_tmp / "sharded")  # the same state, as a team's FSDP run saves it
    s3.upload(in_tmp / "sharded", BUCKET, "tiny/sharded")
    copy = fetch(STUDY, f"s3://{BUCKET}/tiny/sharded", label="--checkpoint x")
    assert is_sharded(copy)
    one, two = load_start(str(local)), load_start(str(copy))
    assert two.tokens == one.tokens and two.optimizer == one.optimizer
    for key, value in one.model.state_dict().items():
        assert torch.equal(value, two.model.state_dict()[key]), key
