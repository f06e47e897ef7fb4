"""The `ablate` command line. Thin: each command parses, calls one library function, prints.

    app.py       the Typer app, the consoles, the shared options, main() and its one error line
    init.py      ablate init
    plan.py      ablate plan
    run.py       ablate pretrain, run, status, cancel, export
    report.py    ablate report
    analyze.py   ablate fit
    data.py      ablate data build, data demo, demo
    recipe.py    ablate recipe from-foundry

Heavy libraries (torch, composer, streaming, lm_eval) are imported only inside the commands that
train or evaluate, so `--help`, `plan` and `report` start fast.
"""

# Each module registers its commands on the app, in the order `ablate --help` lists them.
from ablate.cli import init, plan, report, run, analyze  # noqa: I001, F401
from ablate.cli import data, recipe  # noqa: F401
from ablate.cli.app import app, main

__all__ = ["app", "main"]
