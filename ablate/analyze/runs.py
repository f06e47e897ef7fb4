"""Runs made elsewhere (a RegMix or Olmix swarm, a team's own sweep) as `ablate fit --from RUNS.csv` and
`ablate suggest --from RUNS.csv` read them: one row per run.

    run,share:web,share:code,share:math,params,tokens,split,loss:web,mmlu
    r1,0.6,0.3,0.1,1.2e8,1e9,train,2.91,41.2

- `share:<domain>` columns: the run's mixture, each share in [0, 1], a row summing to 1 within
  SUM_TOLERANCE (published tables round their shares; each row is renormalized);
- `run` (optional): the run's name, unique; a run named `baseline` is suggest's baseline;
- `params` (optional): the run's model size N, its parameters (without it every run is one size);
- `tokens` (optional): the tokens the run trained, D, also the power law's D_j = share × D (without it every
  run is one length). Rows spanning two values of N or of D are a ladder: `ablate fit` fits across scale
  (ablate.analyze.across); every row then needs both cells where the column is given;
- the `--test-split` column (optional): `train` or `test` per run; test runs are held out of every fit;
- every other column is a target, numeric; an empty cell leaves that run out of that target. As in a
  study, a target named loss:<domain> is lower-is-better for suggest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ablate.analyze.laws import Points, requirement
from ablate.analyze.scale import ScalePoints
from ablate.analyze.suggest import Suggestion, SuggestRequest
from ablate.errors import AblateError

SHARE = "share:"
SUM_TOLERANCE = 0.01  # RegMix's published shares are rounded to 0.001 and sum to within 0.004 of 1
SPLITS = ("train", "test")


def read_runs(path: Path, *, split: str | None = None) -> tuple[dict[str, ScalePoints], dict[str, ScalePoints]]:
    """RUNS.csv → (target → the runs fitted on, target → the held-out test runs; empty without `split`),
    each row at its scale (N and D are 1 where the table has no such column; `.mixture_points()` is what
    the mixture models see). Refuses, in one line naming the column or row, what would fit quietly wrong."""
    table = _table(path, "--from", "a CSV of runs (see `ablate fit --help`)")
    domains = [c for c in table.columns if c.startswith(SHARE)]
    if len(domains) < 2:
        raise AblateError(f"--from {path}: name two or more mixture columns `share:<domain>`; found {len(domains)}")
    names = _names(path, table)
    shares = _shares(path, table, domains, names)
    size, tokens = (
        _numbers(path, table, column, positive=True) if column in table else np.ones(len(table))
        for column in ("params", "tokens")
    )
    held = np.zeros(len(table), dtype=bool)
    if split is not None:
        if split not in table:
            raise AblateError(f"--test-split {split}: {path} has no column {split}; name the train/test column")
        marks = table[split].astype(str).str.strip().str.lower().tolist()
        wrong = [(i, v) for i, v in enumerate(marks) if v not in SPLITS]
        if wrong:
            raise AblateError(f"--test-split {split}: run {names[wrong[0][0]]} is `{wrong[0][1]}`; use train or test")
        held = np.array([v == "test" for v in marks])
        if held.all() or not held.any():
            raise AblateError(f"--test-split {split}: mark some runs train and some test; all are {marks[0]}")
    used = {*domains, "run", "params", "tokens", *([split] if split else [])}
    subsets = [d.removeprefix(SHARE) for d in domains]
    fitted: dict[str, ScalePoints] = {}
    tested: dict[str, ScalePoints] = {}
    for column in (c for c in table.columns if c not in used):
        values = _numbers(path, table, column, positive=False)
        for rows, into in ((~held, fitted), (held, tested)):
            keep = rows & ~np.isnan(values)
            if keep.any():
                i = np.flatnonzero(keep)
                into[column] = ScalePoints([names[k] for k in i], subsets, shares[i], size[i], tokens[i], values[i])
    if not fitted:
        raise AblateError(
            f"--from {path}: no target column (every column besides share:*, run, params, tokens, the split)"
        )
    need = requirement("linear", subsets)[0]
    most = max(len(p.target) for p in fitted.values())
    if most < need:
        raise AblateError(
            f"--from {path}: {most} runs to fit on, too few for any model (linear over {len(subsets)} domains "
            f"needs {need}); add runs"
        )
    return fitted, tested


def _table(path: Path, flag: str, what: str) -> pd.DataFrame:
    """The CSV a flag names, or one line saying it is missing or unreadable."""
    if not path.is_file():
        raise AblateError(f"{flag} {path}: no such file; pass {what}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise AblateError(f"{flag} {path}: not a readable CSV ({str(error).splitlines()[0]})") from None


def _names(path: Path, table: pd.DataFrame) -> list[str]:
    if "run" not in table:
        return [f"run-{i + 1}" for i in range(len(table))]
    names = table["run"].astype(str).str.strip().tolist()
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise AblateError(f"--from {path}: run {repeated} appears twice in column run; name each run once")
    return names


def _numbers(path: Path, table: pd.DataFrame, column: str, *, positive: bool) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero((np.isnan(values) & table[column].notna().to_numpy()) | np.isinf(values))
    empty = np.flatnonzero(table[column].isna().to_numpy())
    if positive and len(empty) and (not len(bad) or empty[0] < bad[0]):
        raise AblateError(
            f"--from {path}: column {column}, row {empty[0] + 1}: empty; give every run its {column} or drop the column"
        )
    if positive:
        bad = np.union1d(bad, np.flatnonzero(~(values > 0)))
    if len(bad):
        hint = "" if positive or column.startswith(SHARE) else " (a train/test column? name it with --test-split)"
        raise AblateError(
            f"--from {path}: column {column}, row {bad[0] + 1}: `{table[column].iloc[bad[0]]}` is not a "
            f"{'positive ' if positive else ''}number{hint}"
        )
    return values


def _shares(path: Path, table: pd.DataFrame, domains: list[str], names: list[str]) -> np.ndarray:
    """The mixture columns, checked and each row renormalized."""
    shares = np.column_stack([_numbers(path, table, d, positive=False) for d in domains])
    for i, row in enumerate(shares):
        if np.isnan(row).any() or (row < 0).any() or (row > 1).any():
            raise AblateError(f"--from {path}: run {names[i]}: every share:<domain> must be a number in [0, 1]")
        if abs(row.sum() - 1) > SUM_TOLERANCE:
            raise AblateError(
                f"--from {path}: run {names[i]}: its shares sum to {row.sum():.4g}, not 1 within {SUM_TOLERANCE:g}; "
                "give each run's mixture as fractions of its tokens"
            )
    return shares / shares.sum(axis=1, keepdims=True)


def baseline_mixture(spec: str, subsets: list[str]) -> dict[str, float]:
    """`--baseline-mix web=0.5,code=0.3,math=0.2` → domain → share, checked like a run's mixture."""
    mixture: dict[str, float] = {}
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        domain, _, share = item.partition("=")
        try:
            value = float(share)
        except ValueError:
            value = float("nan")
        if domain not in subsets or not 0 <= value <= 1 or domain in mixture:
            raise AblateError(f"--baseline-mix {item}: use DOMAIN=SHARE, each of {subsets} at most once, in [0, 1]")
        mixture[domain] = value
    total = sum(mixture.values())
    if abs(total - 1) > SUM_TOLERANCE:
        raise AblateError(f"--baseline-mix: the shares sum to {total:.4g}, not 1 within {SUM_TOLERANCE:g}")
    return {d: v / total for d, v in mixture.items()}


def suggest_runs(
    path: Path, request: SuggestRequest, *, baseline: str | None = None, split: str | None = None
) -> tuple[Suggestion, Points, Path]:
    """`ablate suggest --from RUNS.csv`: propose a mixture for the request's objective from the table's
    runs (its train runs with a `split` column, the models `ablate fit --from` scored), around the run
    named `baseline` or the `baseline` mixture spec (--baseline-mix). Written to RUNS.suggested.json
    under the request's name; returns the suggestion, the objective's first target's points and that file."""
    from dataclasses import asdict

    from ablate.analyze.across import spans
    from ablate.analyze.suggest import check_targets, propose
    from ablate.study.artifacts import add_suggestion

    runs, _ = read_runs(path, split=split)
    if spans(runs):
        raise AblateError(
            f"--from {path}: its runs span several model sizes or token counts; suggest fits one scale: "
            "keep the rows of one params and tokens"
        )
    points = {target: p.mixture_points() for target, p in runs.items()}
    data = check_targets(points, request.objective, request.caps, request.floors)
    mixture = None if baseline is None else baseline_mixture(baseline, data.subsets)
    if mixture is None and "baseline" not in data.names:
        raise AblateError(
            f"--from {path}: no run is named baseline (column run); pass --baseline-mix DOMAIN=SHARE,... "
            "for the mixture to stay near"
        )
    found = propose(
        points,
        request,
        baseline="baseline" if mixture is None else "--baseline-mix",
        baseline_mixture=mixture,
        ablation=request.name,
    )
    registry = path.with_name(f"{path.stem}.suggested.json")
    add_suggestion(registry, request.name, asdict(found))
    return found, data, registry


def read_mixtures(path: Path, subsets: list[str]) -> tuple[list[str], np.ndarray]:
    """`--mix FILE.csv`: mixtures to predict at a target scale, a `share:<domain>` column per fitted subset
    (checked and renormalized like a run's) and an optional `run` name column → (names, shares in `subsets`' order)."""
    table = _table(path, "--mix", "a CSV with a share:<domain> column per subset")
    given = sorted(c.removeprefix(SHARE) for c in table.columns if c.startswith(SHARE))
    if given != sorted(subsets):
        raise AblateError(f"--mix {path}: its share columns are {given}; give one share:<domain> per fitted {subsets}")
    names = _names(path, table) if "run" in table else [f"mix-{i + 1}" for i in range(len(table))]
    return names, _shares(path, table, [SHARE + s for s in subsets], names)
