"""Writing a report's files: the one place in the report stage that touches the disk.

The heatmap is imported inside `write_report` so that `import ablate.report` (and `ablate report
--no-plot`) never loads matplotlib.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ablate.report.build import Report
from ablate.report.markdown import to_markdown
from ablate.report.records import to_csv, to_json
from ablate.study.store import write_atomic


def write_report(report: Report, out_dir: Path, *, plot: bool = True, prefix: str = "") -> list[Path]:
    """report.md, report.csv, report.json and (with `plot`) deltas.png, then phases.png for a phase study
    or scale.png for a ladder, in `out_dir`, each written atomically, each name after `prefix` (ladder-)."""
    paths = {name: out_dir / f"{prefix}{name}" for name in ("report.md", "report.csv", "report.json")}
    write_atomic(paths["report.md"], to_markdown(report))
    write_atomic(paths["report.csv"], to_csv(report))
    write_atomic(paths["report.json"], json.dumps(to_json(report), indent=2, default=_json_default) + "\n")
    written = list(paths.values())
    if plot:
        from ablate.report.heatmap import plot_deltas

        figures: list[tuple[str, Callable[[Report, IO[bytes]], None]]] = [("deltas.png", plot_deltas)]
        if report.across is not None:
            from ablate.report.ladder_plot import plot_ladder

            figures.append(("scale.png", plot_ladder))
        elif report.phases:
            from ablate.report.phase_plot import plot_phases

            figures.append(("phases.png", plot_phases))
        for name, draw in figures:
            buffer = io.BytesIO()
            draw(report, buffer)
            write_atomic(out_dir / f"{prefix}{name}", buffer.getvalue())
            written.append(out_dir / f"{prefix}{name}")
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
