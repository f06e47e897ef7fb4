"""The code's layout stays readable: no module of the package grows past 400 lines (a module that
does is holding more than one idea; split it where the ideas part)."""

from __future__ import annotations

from conftest import REPO

MOST_LINES = 400


def test_no_module_is_over_400_lines():
    sizes = {
        path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
        for path in (REPO / "ablate").rglob("*.py")
    }
    assert len(sizes) > 50  # the package was found
    assert {path: n for path, n in sizes.items() if n > MOST_LINES} == {}
