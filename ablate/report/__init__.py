"""Report stage (temporary re-exports while the package is split)."""

from ablate.report.build import Report, Settings, build_report, to_csv, to_json, to_markdown, write_report
from ablate.report.load import StudyResults, load_folder, load_study

__all__ = [
    "Report", "Settings", "StudyResults", "build_report", "load_folder", "load_study", "to_csv", "to_json",
    "to_markdown", "write_report",
]
