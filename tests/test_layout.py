"""The code's layout stays readable: no module of the package grows past 400 lines (a module that
does is holding more than one idea; split it where the ideas part), and every import points down the
stages, so the house has no arrow back up and no cycle between packages."""

from __future__ import annotations

import ast

from conftest import REPO

MOST_LINES = 400
# The packages and top-level modules of ablate/, lowest first (docs/development.md's code map): a module
# imports only from its own entry or those before it, lazy imports included.
LAYERS = [
    "errors", "choices", "names", "recipe", "stats", "study", "data", "foundry",
    "plan", "run", "report", "analyze", "demo", "init", "cli",
]  # fmt: skip


def test_no_module_is_over_400_lines():
    sizes = {
        path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
        for path in (REPO / "ablate").rglob("*.py")
    }
    assert len(sizes) > 50  # the package was found
    assert {path: n for path, n in sizes.items() if n > MOST_LINES} == {}


def _reached(node: ast.AST) -> list[str]:
    """The entries of LAYERS an import reaches: `from ablate.plan.build import x` → plan, `from ablate
    import stats` → stats, `import ablate.demo.skills` → demo."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[1] for alias in node.names if alias.name.startswith("ablate.")]
    if not isinstance(node, ast.ImportFrom) or node.level:
        return []
    module = node.module or ""
    if module == "ablate":
        return [alias.name for alias in node.names]
    return [module.split(".")[1]] if module.startswith("ablate.") else []


def test_every_import_points_down_the_stages():
    upward = []
    for path in sorted((REPO / "ablate").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[1] in ("__init__", "__main__"):
            continue
        home = parts[1]
        assert home in LAYERS, f"{path}: place `{home}` in LAYERS"
        for node in ast.walk(ast.parse(path.read_text())):
            upward += [f"{parts[1:]} → {to}" for to in _reached(node) if LAYERS.index(to) > LAYERS.index(home)]
    assert upward == []
