"""How `ablate run` looks in the terminal: a bar over the jobs, a bar over each running job's tokens,
and one summary line per finished job (tokens, time, tokens/s, final loss, headline scores).

    from ablate.run.runner import run_study
    from ablate.run.view import RunDisplay
    with RunDisplay(console) as display:
        run_study("demo", observer=display)

Off a terminal (CI logs, pipes) the bars are left out and only the summary lines are printed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ablate.run.fetch import disk_size
from ablate.run.runner import Action, Outcome
from ablate.study.artifacts import Status
from ablate.study.job import CACHE, START, WORK, Do
from ablate.study.store import study_dir

if TYPE_CHECKING:
    import pandas as pd

_STYLE = {"done": "green", "failed": "red", "busy": "yellow", "submitted": "cyan", "stale": "red", "damaged": "red"}
_STATE_STYLE = {"training": "yellow", "evaluating": "yellow", **_STYLE}


def summary_line(outcome: Outcome) -> str:
    """One line per job: tokens, wall time, tokens/s, final loss and headline scores, or the error."""
    status = outcome.status
    if outcome.state != "done":
        return f"{outcome.job}: {outcome.state}" + (f" — {outcome.error}" if outcome.error else "")
    parts = [f"{outcome.job}: done in {outcome.seconds:.1f} s"]
    if status.tokens_per_s:
        parts.append(f"{status.tokens_done or 0:,} tokens at {status.tokens_per_s:,.0f} tok/s")
    if status.final_loss is not None:
        parts.append(f"loss {status.final_loss:.3f}")
    scores = status.scores or {}
    if scores:
        parts.append(" ".join(f"{task} {100 * value:.1f}" for task, value in scores.items()))
    return ", ".join(parts)


class RunDisplay:
    """An `ablate.run.Observer` that draws progress with rich and keeps the outcomes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.outcomes: list[Outcome] = []
        self.progress: Progress | None = None
        self.jobs: TaskID | None = None
        self.bars: dict[str, TaskID] = {}  # running job → its bar

    def __enter__(self) -> RunDisplay:
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(), console=self.console, transient=True,
            )  # fmt: skip
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def planned(self, actions: list[Action]) -> None:
        for action in actions:  # what a rerun recovers, and from what (--dry-run's reason)
            if action.do in (Do.RESUME, Do.EVALUATE) and action.job != START:
                line = f"{escape(action.job)}: {action.do}, {escape(action.why)}"
                self.console.print(f"[dim]{line}[/dim]", highlight=False, soft_wrap=True)
        if self.progress:
            todo = sum(action.do in WORK for action in actions)
            self.jobs = self.progress.add_task("jobs", total=todo, detail=f"0 of {todo} done")

    def running(self, action: Action, status: Status) -> None:
        if not self.progress:
            return
        if action.job not in self.bars:
            self.bars[action.job] = self.progress.add_task(
                escape(action.job), total=action.tokens or None, detail="starting"
            )
        done = status.tokens_done or 0
        detail = f"{status.state}" + (f" {done:,} tokens" if action.tokens else "")
        self.progress.update(self.bars[action.job], completed=done if action.tokens else 0, detail=detail)

    def finished(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if self.progress:
            if outcome.job in self.bars:
                self.progress.remove_task(self.bars.pop(outcome.job))
            if self.jobs is not None:
                self.progress.advance(self.jobs)
                # rich's `tasks` is a list of those shown, not indexed by TaskID once a bar was removed
                total = next(task.total for task in self.progress.tasks if task.id == self.jobs)
                self.progress.update(self.jobs, detail=f"{len(self.outcomes)} of {total:.0f} done")
        style = _STYLE.get(outcome.state, "yellow")
        self.console.print(f"[{style}]{escape(summary_line(outcome))}[/{style}]", highlight=False, soft_wrap=True)
        if outcome.status.warning:
            self.console.print(f"[yellow]warning: {escape(outcome.status.warning)}[/yellow]", soft_wrap=True)

    def fetching(self, uri: str, done: int, total: int) -> None:
        """A bar over the bytes of a start checkpoint being fetched, gone once all of them are there."""
        self._transfer(f"fetch {escape(uri)}", done, total, f"{decimal(done)} of {decimal(total)}")

    def copying(self, label: str, done: int, total: int) -> None:
        """A bar over the samples of a data folder being made ready (ablate.data.ready), gone once done."""
        self._transfer(f"copy {escape(label)}", done, total, f"{done:,} of {total:,} samples")

    def _transfer(self, key: str, done: int, total: int, detail: str) -> None:
        if not self.progress:
            return
        if key not in self.bars:  # never a job's name: those hold no space
            self.bars[key] = self.progress.add_task(key, total=total or None, detail="")
        self.progress.update(self.bars[key], completed=done, detail=detail)
        if total and done >= total:
            self.progress.remove_task(self.bars.pop(key))

    def note(self, line: str) -> None:
        self.console.print(f"[dim]{escape(line)}[/dim]", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def token_bar(console: Console, label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A tokens bar on the console in a terminal; off a terminal, no bar (logs stay clean)."""
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} tokens"))
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as progress:
        bar = progress.add_task(label, total=total)
        yield lambda tokens: progress.update(bar, completed=tokens)


def print_status(
    console: Console, study: str, states: pd.DataFrame, scheduler: Mapping[str, tuple[str, str]] | None = None
) -> None:
    """`ablate status`: one row per job (ablate.report.load.variant_states) with, where the study was
    submitted to Slurm, each task's id and the scheduler's state (ablate.run.slurm), then the counts."""
    from ablate.plan.view import human

    scheduler = scheduler or {}
    table = Table(title=f"Study '{study}'", title_justify="left")
    columns = ["variant", "state", "tokens done / planned", "hash", *(["slurm"] if scheduler else []), "error"]
    for column in columns:
        table.add_column(column, justify="right" if column.startswith("tokens") else "left", overflow="fold")
    for row in states.to_dict("records"):
        style = _STATE_STYLE.get(row["state"], "dim")
        # pandas turns a missing count into NaN, which is the one number not equal to itself
        done, planned = (
            human(n) if isinstance(n, (int, float)) and n == n else "—" for n in (row["tokens_done"], row["tokens"])
        )
        hash_check = {True: "ok", False: "[red]mismatch[/red]"}.get(row["hash_ok"], "—")
        error = ""
        if row["state"] in ("failed", "stale", "damaged") and row["error"]:
            error = f"{escape(str(row['error']).splitlines()[0])} [dim]({escape(str(row['folder']))}/status.json)[/dim]"
        state = f"[{style}]{row['state']}[/{style}]"
        cells = [escape(str(row["variant"])), state, f"{done} / {planned}", hash_check]
        if scheduler:
            job_id, scheduled = scheduler.get(str(row["variant"]), ("", "—"))
            cells.append(f"{job_id} {scheduled}".strip())
        table.add_row(*cells, error)
    console.print(table)
    counts = states[states.variant != START].state.value_counts()
    console.print(", ".join(f"{n} {state}" for state, n in counts.items()), highlight=False)
    cache = study_dir(study) / CACHE
    if cache.is_dir():
        console.print(
            f"[dim]{escape(str(cache))}: {decimal(disk_size(cache))}, the study's copies of data folders and "
            "fetched start checkpoints; `ablate run` makes them again if deleted between runs[/dim]",
            highlight=False,
            soft_wrap=True,
        )
