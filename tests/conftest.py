"""Shared test set-up: offline always, and every test in its own working directory."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models: one thread per process is fastest, and child processes inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a fresh folder: relative recipe paths and results/ land there, not in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATE_RESULTS", raising=False)
    monkeypatch.delenv("ABLATE_RECIPE", raising=False)
    return tmp_path
