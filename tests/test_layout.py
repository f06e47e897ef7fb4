"""The code's layout stays readable: no module of the package grows past 400 lines (a module that
does is holding more than one idea; split it where the ideas part), and imports point down the stages:
the study folder's package below them all, plan below run."""

from __future__ import annotations

import ast

from conftest import REPO

MOST_LINES = 400


def test_no_module_is_over_400_lines():
    sizes = {
        path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
        for path in (REPO / "ablate").rglob("*.py")
    }
    assert len(sizes) > 50  # the package was found
    assert {path: n for path, n in sizes.items() if n > MOST_LINES} == {}


def imported(package: str) -> dict[str, set[str]]:
    """Each module of `package` (a folder under ablate/) → the ablate modules it imports, lazily too."""
    found: dict[str, set[str]] = {}
    for path in (REPO / "ablate" / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[path.relative_to(REPO).as_posix()] = {name for name in names if name.startswith("ablate")}
    return found


def test_the_study_package_imports_no_stage_and_plan_imports_no_run():
    below = ("ablate.errors", "ablate.choices", "ablate.recipe", "ablate.names", "ablate.study")
    upward = {path: sorted(n for n in names if not n.startswith(below)) for path, names in imported("study").items()}
    assert {path: names for path, names in upward.items() if names} == {}
    back = {path: sorted(n for n in names if n.startswith("ablate.run")) for path, names in imported("plan").items()}
    assert {path: names for path, names in back.items() if names} == {}
