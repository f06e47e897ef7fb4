"""Eval tasks before anything runs: do lm-eval know their names, and how many items do they have?

Reads lm-eval task YAML as plain data (no lm_eval import, which costs seconds): a local task with
`dataset_path: json` names its JSONL files, whose lines are its items; the names a task folder
registers are read off its YAML files as lm-eval's own index reads them (lm_eval/tasks/_index.py),
for eval.include and for the installed lm-eval's built-in task folder alike.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import os
import re
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import AblateError
from ablate.recipe import Eval

# Test-split sizes of common lm-eval benchmarks, from the datasets' own cards.
PUBLISHED_SIZES = {
    "arc_challenge": 1172,
    "arc_easy": 2376,
    "boolq": 3270,
    "gsm8k": 1319,
    "hellaswag": 10042,
    "humaneval": 164,
    "lambada_openai": 5153,
    "mmlu": 14042,
    "openbookqa": 500,
    "piqa": 1838,
    "winogrande": 1267,
}


class _LenientLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """lm-eval YAML uses `!function` tags; for names and item counts their values do not matter.
    libyaml's loader where PyYAML has it: it reads lm-eval's ~14k task files several times faster."""


_LenientLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def local_task_files(include: list[str]) -> dict[str, Path]:
    """Task name → the JSONL file of its evaluation split, for local `dataset_path: json` tasks."""
    found: dict[str, Path] = {}
    for folder in include:
        for config_path in sorted(Path(folder).glob("**/*.yaml")):
            config: Any = yaml.load(config_path.read_text(), Loader=_LenientLoader)
            if not isinstance(config, dict) or config.get("dataset_path") != "json" or "task" not in config:
                continue
            files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
            split = config.get("test_split") or config.get("validation_split") or "test"
            data = files.get(split) if isinstance(files, dict) else files
            if isinstance(data, list):
                data = data[0] if len(data) == 1 else None
            if isinstance(data, str):
                path = Path(data)
                found[config["task"]] = path if path.is_absolute() or path.exists() else config_path.parent / path
    return found


def task_sizes(tasks: list[str], include: list[str]) -> dict[str, int]:
    """Items per task where they can be known without lm-eval; tasks of unknown size are left out."""
    local = local_task_files(include)
    sizes: dict[str, int] = {}
    for task in tasks:
        if task in local and local[task].exists():
            with local[task].open() as handle:
                sizes[task] = sum(1 for line in handle if line.strip())
        elif task in PUBLISHED_SIZES:
            sizes[task] = PUBLISHED_SIZES[task]
    return sizes


# ---- task names ----------------------------------------------------------------------------

IGNORED = {"__pycache__", ".ipynb_checkpoints"}  # folders lm-eval's index skips
# A line that registers a name, for close-match suggestions only: `task: x`, `group: x`, `tag: x`.
_INCLUDE = re.compile(rb"^include:[ \t]*(.*)$", re.MULTILINE)
_NAME_LINE = re.compile(rb"^(?:task|group|tag):[ \t]*['\"]?([\w.\-]+)", re.MULTILINE)


def _yaml_files(folder: Path) -> Iterator[str]:
    """Every *.yaml under `folder`, as lm-eval's index finds them; plain strings: pathlib's overhead
    was half the time of reading lm-eval's 14k files."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED)
        yield from (os.path.join(root, name) for name in sorted(files) if name.endswith(".yaml"))


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _config(path: Path, text: bytes | None = None, seen: frozenset[Path] = frozenset()) -> dict | None:
    """One task YAML as lm-eval's index reads it: the `include:`d files' keys, the file's own over
    them; None where lm-eval would skip the file (unreadable, not a mapping, an include cycle)."""
    try:
        config = yaml.load(path.read_bytes() if text is None else text, Loader=_LenientLoader)
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    included = config.pop("include", None)
    merged: dict = {}
    for name in included if isinstance(included, list) else [] if included is None else [included]:
        target = path.parent / str(name)
        base = None if target in seen else _config(target, seen=seen | {path})
        if base is None:
            return None
        merged.update(base)
    return {**merged, **config}


def _registered(config: dict) -> list[str]:
    """The names lm-eval registers for one config: a (Python) task's name and its tags, or a group's."""
    if "class" in config or ("group" not in config and "task" in config):
        tags = config.get("tag")
        names = [config.get("task"), *(tags if isinstance(tags, list) else [tags])]
    else:
        names = [config.get("group")]
    return [name for name in names if isinstance(name, str)]


def folder_tasks(folder: Path, wanted: set[str] | None = None) -> set[str]:
    """Task, group and tag names the YAML files under `folder` register with lm-eval. With `wanted`,
    only those of them, and a file is parsed only when one of them is a word of its text or of a file
    it includes, so lm-eval's built-in task files are read, not parsed (the same names as lm-eval's own
    index, tested; benchmarks/README.md times it); it stops once all are found."""
    if wanted is not None and not wanted:
        return set()
    found: set[str] = set()
    words = [name.encode() for name in sorted(wanted or ())]
    mentions = re.compile(rb"(?<![\w.\-])(?:" + b"|".join(map(re.escape, words)) + rb")(?![\w.\-])")
    memo: dict[str, bool] = {}
    for path in _yaml_files(folder):
        text = _read(path)
        if wanted is not None and not _may_register(path, text, words, mentions, memo):
            continue
        config = _config(Path(path), text)
        found.update(_registered(config) if config else [])
        if wanted is not None and wanted <= found:
            break
    return found if wanted is None else found & wanted


def _may_register(path: str, text: bytes, words: list[bytes], mentions: re.Pattern, memo: dict[str, bool]) -> bool:
    """Whether the file may register a name `mentions` matches: it or a file it includes names one
    (lm-eval's templates hold tags). An include that is not one plain file name counts as a yes."""
    if any(name in text for name in words) and mentions.search(text):  # `in` first: ~10× faster
        return True
    for line in _INCLUDE.findall(text):
        target = line.split(b"#")[0].strip().strip(b"'\"")
        if not target or target.startswith(b"["):
            return True
        included = os.path.normpath(os.path.join(os.path.dirname(path), target.decode(errors="replace")))
        if included not in memo:
            memo[included] = True  # an include cycle, or an unreadable file: let the parse decide
            with contextlib.suppress(OSError):
                memo[included] = _may_register(included, _read(included), words, mentions, memo)
        if memo[included]:
            return True
    return False


def lm_eval_tasks() -> Path | None:
    """The installed lm-eval's built-in task folder, found without importing lm_eval; None without it."""
    spec = importlib.util.find_spec("lm_eval")
    locations = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(locations[0]) / "tasks" if locations else None
    return folder if folder is not None and folder.is_dir() else None


def check_tasks(spec: Eval) -> list[str]:
    """Refuse (one line) an eval task lm-eval would not find in eval.include or among its built-in
    tasks, so a misspelled name fails at `plan`, not well into `ablate run`. Returns warnings for the
    names that cannot be checked yet: an include folder not written yet, or no lm-eval installed."""
    folders = [Path(folder) for folder in spec.include]
    here = [folder for folder in folders if folder.is_dir()]
    unknown = set(spec.tasks) - set().union(*(folder_tasks(folder) for folder in here))
    registry = lm_eval_tasks()
    if unknown and registry is not None:
        # Most built-in tasks live in a folder named after them or their family (arc_easy: arc/):
        # found there, the rest of the registry need not be read. Not found there: read it all.
        likely = {registry / part for name in unknown for part in (name, name.split("_")[0])}
        for folder in sorted(f for f in likely if f.is_dir()):
            unknown -= folder_tasks(folder, unknown)
        unknown -= folder_tasks(registry, unknown)
    if not unknown:
        return []
    names = [task for task in spec.tasks if task in unknown]
    absent = [str(folder) for folder in folders if folder not in here]
    if absent or registry is None:
        why = f"eval.include {absent} not found yet" if absent else "lm-eval is not installed here"
        return [f"{why}, so eval.tasks {names} are unchecked; `ablate run` needs them"]
    known = set().union(*(_skimmed(folder) for folder in [*here, registry]))
    described = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        described.append(f"{name} (did you mean {close[0]}?)" if close else name)
    builtin = f"lm-eval {_version()}'s built-in tasks"
    where = f"neither in eval.include ({', '.join(spec.include)}) nor in " if spec.include else "not in "
    raise AblateError(
        f"eval.tasks: {', '.join(described)} {'is' if len(names) == 1 else 'are'} {where}{builtin}; fix the name, "
        "or add the folder of its task YAML to eval.include"
    )


def _skimmed(folder: Path) -> set[str]:
    """Names the files under `folder` appear to register, read off their lines: for suggestions."""
    return {m.decode() for path in _yaml_files(folder) for m in _NAME_LINE.findall(_read(path))}


def _version() -> str:
    try:
        return version("lm_eval")
    except PackageNotFoundError:
        return "the installed"
