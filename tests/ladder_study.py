"""The scale tests' ladder: the fast form of the demo's ladder (ablate.demo.ladder, `ablate demo --ladder
--fast`), one removal study at four model sizes, each pretrained and run for real.

    from ladder_study import build_ladder
    built = build_ladder(root)     # ~1 minute on 2 cores; built.studies: ladder-s1 … ladder-s4, smallest first
"""

from __future__ import annotations

from pathlib import Path

from ablate.demo.ladder import SUBSETS, BuiltLadder, studies
from ablate.demo.ladder import build_ladder as build_demo_ladder

STUDIES = studies(fast=True)
__all__ = ["STUDIES", "SUBSETS", "build_ladder"]


def build_ladder(root: Path) -> BuiltLadder:
    """The demo's fast ladder under `root`, two variants at once. ABLATE_RESULTS must point at root/results
    (the fixture sets it)."""
    built = build_demo_ladder(root, fast=True, parallel=2)
    assert not built.failed, [f"{o.job}: {o.error}" for o in built.failed]
    return built
