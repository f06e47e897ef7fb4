"""`ablate demo --ladder`: the demo's scale ladder built (ablate.demo.ladder), then the largest size's held-out
losses and removal Δs as predicted from the smaller sizes, beside what it measured.

    ablate demo --ladder --out /tmp/dl          # five sizes, ~2.5 minutes on 2 cores; rerun to resume
    ablate demo --ladder --fast --out /tmp/dl   # four sizes, ~1 minute: the test suite's ladder
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.cli.app import err, out, stop_on_failures

if TYPE_CHECKING:
    from ablate.demo.ladder import Compared


class _Shown:
    """The build's progress on stderr, as `ablate demo` shows it: a tokens bar while a rung pretrains, the
    runner's bars while its variants run (rich draws one live display at a time)."""

    def stage(self, name: str) -> None:
        err.print(f"[bold]── {name}[/bold]")

    @contextlib.contextmanager
    def pretraining(self, tokens: int) -> Iterator[Callable[[int], None] | None]:
        from ablate.run.view import token_bar

        with token_bar(err, "pretrain", tokens) as on_progress:
            yield on_progress

    @contextlib.contextmanager
    def running(self) -> Iterator[Any]:
        from ablate.run.view import RunDisplay

        with RunDisplay(err) as display:
            yield display


def demo_ladder(out_dir: Path, *, fast: bool, parallel: int | None) -> None:
    """Build (or resume) the ladder under `out_dir`, then print the comparison per held-out loss."""

    from ablate.demo.ladder import build_ladder, compare_largest
    from ablate.demo.study import working_directory

    started = time.perf_counter()
    built = build_ladder(out_dir, fast=fast, parallel=parallel, shown=_Shown())
    stop_on_failures(built.failed, "ladder stopped", f"logs in {built.results}; rerun `ablate demo --ladder`")
    err.print("[bold]── fit[/bold]")
    tick = time.perf_counter()
    with working_directory(out_dir):  # the results root, like the build's: $ABLATE_RESULTS, else out/results
        size, found = compare_largest(built.studies)
    fitted = time.perf_counter() - tick
    smaller = ", ".join(built.studies[:-1])
    out.print(
        f"\nHeld out: {built.studies[-1]} (N = {size:,} parameters), predicted from {smaller} "
        f"(fitted across scale, 95% intervals from bootstrap refits).",
        soft_wrap=True,
    )
    for compared in found:
        _print(compared)
    errors = ", ".join(f"{c.target} {c.mean_error:.1%}" for c in found)
    out.print(f"\n{built.studies[-1]}'s held-out losses, mean |predicted − measured| / measured: {errors}")
    seconds = {**built.seconds, "fit": fitted}
    timing = ", ".join(f"{stage} {value:.0f} s" for stage, value in seconds.items())
    err.print(f"ladder done in {time.perf_counter() - started:.0f} s ({timing}); files in {built.results}")


def _print(compared: Compared) -> None:
    """One held-out loss: predicted [interval] vs measured per mixture, the error, and Δ vs the baseline."""
    from rich.markup import escape
    from rich.table import Table

    how = "chosen on the held-out scale" if compared.chosen else "no model chosen"
    table = Table(title=f"{compared.target}: model {compared.model}, {how}", title_justify="left", box=None)
    for column in ("mixture", "predicted", "95% interval", "measured", "error", "Δ predicted", "Δ measured"):
        table.add_column(column, justify="left" if column == "mixture" else "right")
    notes = []
    for row in compared.rows:
        interval = f"[{row.low:.3f}, {row.high:.3f}]" if row.low is not None and row.high is not None else "refused*"
        if row.note:
            notes.append(f"* {row.mixture}: {row.note}")
        predicted, measured = compared.delta(row)
        deltas = ("", "") if row.mixture == "baseline" else (f"{predicted:+.3f}", f"{measured:+.3f}")
        table.add_row(row.mixture, f"{row.point:.3f}", interval, f"{row.measured:.3f}", f"{row.error:+.1%}", *deltas)
    out.print()
    out.print(table)
    out.print(f"mean |error| {compared.mean_error:.1%}", highlight=False)
    if compared.why:
        out.print(escape(f"{compared.model}: {compared.why}"), soft_wrap=True, highlight=False)
    for note in notes:
        out.print(escape(note), soft_wrap=True, highlight=False)
