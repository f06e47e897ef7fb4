"""Writing a report's files: the one place in the report stage that touches the disk.

The heatmap is imported inside `write_report` so that `import ablate.report` (and `ablate report
--no-plot`) never loads matplotlib.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ablate.report.build import Report
from ablate.report.markdown import to_markdown
from ablate.report.records import to_csv, to_json
from ablate.store import write_atomic


def write_report(report: Report, out_dir: Path, *, plot: bool = True) -> list[Path]:
    """report.md, report.csv, report.json and (with `plot`) deltas.png, and phases.png for a phase study,
    in `out_dir`, each written atomically."""
    paths = {name: out_dir / name for name in ("report.md", "report.csv", "report.json")}
    write_atomic(paths["report.md"], to_markdown(report))
    write_atomic(paths["report.csv"], to_csv(report))
    write_atomic(paths["report.json"], json.dumps(to_json(report), indent=2, default=_json_default) + "\n")
    written = list(paths.values())
    if plot:
        from ablate.report.heatmap import plot_deltas

        buffer = io.BytesIO()
        plot_deltas(report, buffer)
        write_atomic(out_dir / "deltas.png", buffer.getvalue())
        written.append(out_dir / "deltas.png")
        if report.phases:
            from ablate.report.phase_plot import plot_phases

            buffer = io.BytesIO()
            plot_phases(report, buffer)
            write_atomic(out_dir / "phases.png", buffer.getvalue())
            written.append(out_dir / "phases.png")
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
