"""Report stage: attribution tables from evaluation results (scores, Δ vs baseline with intervals,
power, notes) as markdown, CSV, JSON and a heatmap.

    ablate report                          # the current study: tables on stdout, files in results/<study>/
    ablate report --from runs/ --baseline base --format csv
    # in a notebook:
    from ablate.report import load_study, build_report, Settings, to_markdown
    report = build_report(load_study("demo"), Settings(resamples=2000))
    report.rows                            # report.csv's long table as a DataFrame, in fractions

load.py reads results; build.py computes the report (pure, in fractions): scores.py the score table,
noise.py the seed noise, cells.py each cell's statistics (ablate/stats/ the estimators), rows.py the
Δ table's rows, trust.py and heldout.py their sections' figures, suggestions.py what `ablate suggest` proposed,
answers.py each multiple-choice task's correct-answer loss (for ablate.analyze.accuracy).
markdown.py turns it into report.md (sections.py the optional sections, render.py how a figure reads),
records.py into report.csv and report.json; write.py is the only writer, and heatmap.py and
phase_plot.py draw the plots (matplotlib, imported only when a plot is drawn).
"""

from ablate.report.build import Report, Settings, build_report
from ablate.report.load import StudyResults, load_folder, load_study
from ablate.report.markdown import footnotes, to_markdown
from ablate.report.records import to_csv, to_json
from ablate.report.render import delta_text, fmt_pp
from ablate.report.rows import CSV_COLUMNS
from ablate.report.write import write_report

__all__ = [
    "CSV_COLUMNS",
    "Report",
    "Settings",
    "StudyResults",
    "build_report",
    "delta_text",
    "fmt_pp",
    "footnotes",
    "load_folder",
    "load_study",
    "to_csv",
    "to_json",
    "to_markdown",
    "write_report",
]
