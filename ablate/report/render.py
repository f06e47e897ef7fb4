"""How the report's figures read as text: signed points, a Δ cell with its interval, a markdown table,
the adjustments' names and a suggestion's models. Shared by report.md (markdown.py, sections.py), the
heatmap and `ablate suggest`, so a figure reads the same everywhere.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ablate.report.load import DONE

ADJUSTMENT_NAMES = {"bh": "Benjamini–Hochberg", "holm": "Holm"}  # how --adjust reads in text


def fmt_signed(value: float, digits: int) -> str:
    """Signed, `digits` decimals; zero without a sign."""
    text = f"{value:+.{digits}f}"
    return text.lstrip("+-") if float(text) == 0 else text


def fmt_pp(value: float) -> str:
    """Percentage points: signed, one decimal."""
    return fmt_signed(value, 1)


def delta_text(row: Any | None) -> str:
    """'+1.2 [-0.8, +3.1] *' for a measured cell of Report.rows (a row of its itertuples(), fractions
    written in points; `*`: significant after the table's adjustment), the state for one that is not,
    "—" for none."""
    if row is None:
        return "—"
    if row.state != DONE or pd.isna(row.delta):
        return "—" if row.state in (DONE, "missing") else str(row.state)
    text = fmt_pp(100 * row.delta)
    if pd.isna(row.ci_low):
        return text + " (no CI)"
    text += f" [{fmt_pp(100 * row.ci_low)}, {fmt_pp(100 * row.ci_high)}]"
    return text + " *" if row.significant_adjusted is True else text


def markdown_table(header: list[str], rows: list[list[str]], align: list[str]) -> list[str]:
    """A GitHub markdown table's lines; `align` has "r" for each right-aligned (numeric) column."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def models_text(models: dict[str, str], loo_rmse: dict[str, float], checked: str = "leave-one-out") -> str:
    """law for skills (leave-one-out RMSE 5.2), linear for loss:prose (...): what a suggestion fitted;
    `checked`: how its error was measured (held-out-scale for `suggest --at`)."""
    return ", ".join(f"{m} for {t} ({checked} RMSE {loo_rmse[t]:.3g})" for t, m in models.items())
