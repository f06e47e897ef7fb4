"""Every `ablate` example in README.md and docs/*.md is a command line the real CLI accepts.

An example is a line of a fenced ```bash, ```sh or ```console block that starts with `ablate `,
`$ ablate ` or `.venv/bin/ablate ` (a trailing `# comment` is dropped). Each is parsed by ablate's own
click command, got from the Typer app, with `make_context`: the subcommand must exist, and every
option, value and argument must parse (an unknown or misspelt option, a missing value, a value of the
wrong type or choice fails), without running the command. A synopsis line, `ablate report [--study NAME]
[--bootstrap 10000] ...` with its indented continuation lines, is checked option by option: each
bracketed `--option` (both halves of `--plot/--no-plot`) must be one of the command's.

Examples that train, evaluate, submit to Slurm or read files a reader makes (a study's own recipe.yaml,
runs.csv, a checkpoint) stay parse-checked only. The cheap read-only ones run for real, in a temporary
ABLATE_RESULTS: every `ablate plan` example whose recipe is the packaged demo recipe or one in
recipes/, then `ablate status` and `ablate report` on the study they planned (its variants all pending).
Every relative link of these pages (and benchmarks/README.md) names a file that exists, and a heading
there when it has an anchor.

The committed results/demo holds only the demo's report, not its variants' folders, so
`ablate report --study demo` cannot be recomputed from it; its table is what the README copies.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from ablate.cli import app

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "console", "shell"}
PREFIXES = ("$ ablate ", "ablate ", ".venv/bin/ablate ")
ROOT = typer.main.get_command(app)


@dataclass
class Example:
    where: str  # page:line
    line: str  # from `ablate` on, comment dropped, continuation lines joined

    @property
    def synopsis(self) -> bool:
        return "[" in self.line


def examples_in(text: str, name: str) -> list[Example]:
    """The `ablate` lines of a page's shell blocks."""
    found: list[Example] = []
    fence: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else (stripped[3:].strip() or "text")
            continue
        if fence not in SHELLS:
            continue
        code = _uncomment(raw)
        start = next((p for p in PREFIXES if code.startswith(p)), None)
        if start is not None:
            found.append(Example(f"{name}:{number}", "ablate " + code[len(start) :].strip()))
        elif found and raw[:1].isspace() and code.strip().startswith("[") and found[-1].synopsis:
            found[-1].line += " " + code.strip()  # a synopsis continued on the next line
    return found


def _uncomment(line: str) -> str:
    """The line without a trailing shell comment (a `#` that starts a word)."""
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0].rstrip()


def all_examples() -> list[Example]:
    return [ex for page in PAGES for ex in examples_in(page.read_text(), str(page.relative_to(REPO)))]


def _is_group(command: Any) -> bool:
    # Typer 0.29 builds on its own copy of click (typer._click), so no isinstance against click's classes.
    return hasattr(command, "commands")


def resolve(words: list[str]) -> tuple[list[str], Any, list[str]]:
    """The subcommand path, its click command and the rest of the words."""
    command: Any = ROOT
    path: list[str] = []
    rest = list(words)
    while _is_group(command):
        if not rest or rest[0] not in command.commands:
            raise AssertionError(f"no command 'ablate {' '.join([*path, *rest[:1]])}'")
        path.append(rest.pop(0))
        command = command.commands[path[-1]]
    return path, command, rest


def check(line: str) -> tuple[list[str], list[str]]:
    """Parse one example as the CLI would, without running it; raise on anything the CLI refuses."""
    groups = re.findall(r"\[([^\]]*)\]", line)
    words = shlex.split(re.sub(r"\[[^\]]*\]", " ", line))[1:]
    path, command, rest = resolve(words)
    if groups:
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for group in groups:
            for word in group.split():
                for opt in word.split("/") if word.startswith("-") else ():
                    assert opt in known, f"'ablate {' '.join(path)}' has no option {opt}"
    try:
        with command.make_context(" ".join(["ablate", *path]), list(rest), resilient_parsing=False):
            pass
    except Exception as exc:  # click's Exit (help printed) and UsageError family, from Typer's click
        if type(exc).__name__ == "Exit":
            raise AssertionError("the example would only print help") from None
        if not hasattr(exc, "format_message"):
            raise
        raise AssertionError(f"'ablate {' '.join(path)}' refuses it: {exc.format_message()}") from None
    return path, rest


EXAMPLES = all_examples()


@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.where for ex in EXAMPLES])
def test_every_example_parses(example):
    check(example.line)


def test_the_pages_have_examples_of_every_command():
    documented = {tuple(resolve(shlex.split(re.sub(r"\[[^\]]*\]", " ", ex.line))[1:])[0]) for ex in EXAMPLES}

    def leaves(group: Any, prefix: tuple[str, ...] = ()):
        for name, command in group.commands.items():
            if _is_group(command):
                yield from leaves(command, (*prefix, name))
            else:
                yield (*prefix, name)

    missing = sorted(" ".join(p) for p in set(leaves(ROOT)) - documented)
    assert not missing, f"commands without an example in README.md or docs/: {missing}"
    assert len(EXAMPLES) >= 40


def test_the_readme_keeps_the_install_commands():
    # .ci/run runs "the README's test command": keep it `make test`, and the demo `make demo`.
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert len(readme.splitlines()) <= 150, "the README is a first screen; the rest goes into docs/"


@pytest.mark.parametrize(
    "line",
    [
        "ablate plan --remvoe math",  # a misspelt option
        "ablate plan --baseline-seeds many",  # a value of the wrong type
        "ablate plna --remove math",  # a misspelt command
        "ablate data",  # a group, not a command
        "ablate report [--study NAME] [--bootstrapp 10000]",  # a misspelt option in a synopsis
        "ablate export no-math",  # a missing argument
        "ablate plan --help",  # help, not an example of the command
    ],
)
def test_a_wrong_example_fails(line):
    with pytest.raises(AssertionError):
        check(line)


def test_a_misspelt_option_in_a_page_is_found():
    page = "```bash\nablate run --dry-rn   # what would run\n  ablate plan\n```\n```text\nablate nothing\n```\n"
    (example,) = examples_in(page, "page.md")
    assert example.line == "ablate run --dry-rn"
    with pytest.raises(AssertionError, match="--dry-rn"):
        check(example.line)


def _runs_for_real(example: Example) -> bool:
    """A plan of the packaged demo recipe, or of a recipe in recipes/: fast, reads nothing a reader makes."""
    if example.synopsis:
        return False
    path, rest = check(example.line)
    if path != ["plan"]:
        return False
    recipes = [rest[i + 1] for i, word in enumerate(rest[:-1]) if word in ("--recipe", "-r")]
    return all((REPO / recipe).is_file() and recipe.startswith("recipes/") for recipe in recipes)


def test_the_read_only_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the examples' relative recipe paths; results go to ABLATE_RESULTS
    monkeypatch.setenv("ABLATE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("ABLATE_RECIPE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    plans = [ex for ex in EXAMPLES if _runs_for_real(ex)]
    assert len(plans) >= 5, [ex.where for ex in plans]
    runner = CliRunner()
    lines = {ex.line for ex in EXAMPLES}
    demo_plans = [ex for ex in plans if "--recipe" not in ex.line]
    for ex in [*plans, *demo_plans[:1]]:  # the demo recipe last, so status and report read its study
        result = runner.invoke(app, shlex.split(ex.line)[1:])
        assert result.exit_code == 0, (ex.where, ex.line, result.output, result.exception)
    for line in ("ablate status", "ablate report"):
        assert line in lines, f"{line!r} is no longer an example"
        result = runner.invoke(app, line.split()[1:])
        assert result.exit_code == 0, (line, result.output, result.exception)
        assert "baseline" in result.output, (line, result.output)
    assert (tmp_path / "results" / "demo" / "report.md").is_file()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_pages_resolves():
    checked = 0
    for page in [*PAGES, REPO / "benchmarks" / "README.md"]:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            assert path.exists(), f"{page.relative_to(REPO)}: {target} does not exist"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
                assert anchor in {_slug(h) for h in headings}, f"{page.relative_to(REPO)}: no heading #{anchor}"
            checked += 1
    assert checked >= 30
