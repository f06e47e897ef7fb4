"""Shared test set-up: offline always, and every test in its own working directory."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models: one thread per process is fastest, and child processes inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The process as pytest started it: what every test that does not use the tiny study sees.
STARTED_IN, STARTED_RESULTS = Path.cwd(), os.environ.get("ABLATE_RESULTS")


@pytest.fixture(autouse=True)
def _outside_the_tiny_study(request, monkeypatch):
    """The tiny study's session set-up moves the working folder into it and points ABLATE_RESULTS at
    its results, for the tests that use it. Every other test gets the process back as it started, so
    a CLI it runs cannot plan into the tiny study's results, whichever test first built the study."""
    if "tiny" in request.fixturenames:
        return
    monkeypatch.chdir(STARTED_IN)
    if STARTED_RESULTS is None:
        monkeypatch.delenv("ABLATE_RESULTS", raising=False)
    else:
        monkeypatch.setenv("ABLATE_RESULTS", STARTED_RESULTS)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a fresh folder: relative recipe paths and results/ land there, not in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATE_RESULTS", raising=False)
    monkeypatch.delenv("ABLATE_RECIPE", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny study (tests/tiny_study.py): data, pretraining and plan, then one uninterrupted run of
    every job. Shared by the run and Slurm tests, which copy its plan to run variants again."""
    root = tmp_path_factory.mktemp("study")
    patch = pytest.MonkeyPatch()
    patch.chdir(root)
    patch.setenv("ABLATE_RESULTS", str(root / "results"))
    from tiny_study import write_tiny_study

    recipe_path = write_tiny_study(root)

    from ablate.cli import app
    from ablate.recipe import load_recipe
    from ablate.run.pretrain import pretrain
    from ablate.run.runner import run_study

    checkpoint = pretrain(load_recipe(recipe_path))
    planned = CliRunner().invoke(app, ["plan", "--recipe", str(recipe_path), "--remove", "g"])
    assert planned.exit_code == 0, planned.output
    tick = time.perf_counter()
    outcomes = run_study()
    seconds = time.perf_counter() - tick
    yield SimpleNamespace(
        root=root, results=root / "results", recipe=recipe_path, checkpoint=checkpoint,
        outcomes=outcomes, seconds=seconds, patch=patch,
    )  # fmt: skip
    patch.undo()


@pytest.fixture(scope="session")
def ladder(tmp_path_factory):
    """The scale ladder (tests/ladder_study.py: `ablate demo --ladder --fast`'s build): one removal study at four
    model sizes, pretrained and run for real (~1 minute on 2 cores). Built under its own results root, which a test points ABLATE_RESULTS at
    (`ladder.results`); the process's folder and environment are left as they were."""
    from ladder_study import build_ladder

    root = tmp_path_factory.mktemp("ladder")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("ABLATE_RESULTS", str(root / "results"))
        return build_ladder(root)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """A real S3-compatible server (moto's, tests/s3_server.py) on 127.0.0.1 for the whole session, with
    credentials, region and S3_ENDPOINT_URL in os.environ while it runs: what `ablate run` and the
    processes it starts read. A local job forked from a server started before this fixture keeps that
    server's environment (ablate.run.launch): run such studies through the CLI, a process of their own."""
    from s3_server import S3Server

    with S3Server.start(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server
