"""Stale results: the study's job folders holding work that a new plan would not reuse.

    from ablate.study.stale import Planned, refuse_stale
    refuse_stale("demo", start_hash, [Planned("no-math", hash, train_hash)], before=["baseline", "no-math"],
                 doing="re-planning", fix="pass --force to replace the plan anyway")

A plan is plain data here (its study, start hash, and each variant's name and hashes), so this sits
below every stage: `ablate plan`, `ablate run --checkpoint` and `ablate suggest` pass what their plan
says, and the names the study's current plan.json holds (ablate.plan.study.refuse_stale).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ablate.errors import StudyError
from ablate.study.artifacts import State, Status, read_status
from ablate.study.job import LATEST, START
from ablate.study.store import study_dir, variant_dir


class Planned(NamedTuple):
    """A variant as the new plan names it: its folder's name and the hashes its results must carry."""

    name: str
    hash: str
    train_hash: str


class Held(NamedTuple):
    """A job folder's work that a plan would not reuse."""

    label: str  # `no-math (done, training changed)`
    retrains: bool  # its training (not only its evaluation) would be redone
    dropped: bool = False  # no variant of the plan names the folder: run and report would not see it


def stale_results(study: str, start_hash: str, planned: Sequence[Planned], before: Sequence[str]) -> list[Held]:
    """Jobs of the study whose folders hold results (or training) that the plan would not reuse: each
    described, and whether its training (not only its evaluation) would be redone. A variant named
    `before` (by the current plan.json) that the plan no longer names counts as redone: run and report
    would not see it, so a re-plan (another --design, fewer --remove) must not drop finished work unasked."""
    held: list[Held] = []
    start = read_status(study_dir(study) / START)
    if start.state == State.DONE and start.hash != start_hash:
        held.append(Held(f"{START} (evaluated)", False))
    for folder in _dropped(study, planned, before):
        held.append(Held(f"{folder.name} ({read_status(folder).state}, not in the new plan)", True, True))
    for variant in planned:
        folder = variant_dir(study, variant.name)
        status = read_status(folder)
        if _kept(folder, status) and status.hash != variant.hash:
            retrains = status.train_hash != variant.train_hash
            changed = "training" if retrains else "evaluation"
            held.append(Held(f"{variant.name} ({status.state}, {changed} changed)", retrains))
    return held


def _kept(folder: Path, status: Status) -> bool:
    """Whether a job folder holds work worth keeping: results, or training done or under way."""
    return status.state == State.DONE or bool(status.trained) or (folder / LATEST).exists()


def _dropped(study: str, planned: Sequence[Planned], before: Sequence[str]) -> list[Path]:
    """Folders of variants named `before` and not `planned`, holding work."""
    named = {v.name for v in planned}
    folders = [variant_dir(study, name) for name in before if name not in named]
    return [folder for folder in folders if _kept(folder, read_status(folder))]


def refuse_stale(
    study: str,
    start_hash: str,
    planned: Sequence[Planned],
    before: Sequence[str],
    doing: str,
    *,
    fix: str,
    reevaluate: bool = False,
) -> None:
    """One line naming the jobs whose results the plan would turn stale, or nothing. `reevaluate`: only
    trained weights count; results that would only be evaluated again may be."""
    held = [h for h in stale_results(study, start_hash, planned, before) if h.retrains or not reevaluate]
    if held:
        kept = "; variants left out keep their folders, and a plan naming them again reuses them"
        dropped = kept if any(h.dropped for h in held) else ""
        labels = ", ".join(h.label for h in held)
        raise StudyError(
            f"{doing} would turn finished results in {study_dir(study)} stale: {labels}; "
            f"{fix} (`ablate run` then re-evaluates what only evaluates differently and refuses the rest until "
            f"deleted{dropped}), or set another `name` in the recipe to plan a new study"
        )
