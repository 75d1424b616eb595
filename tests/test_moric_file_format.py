"""MoRIC's format constants have one home, `moric/file_format.py`: no other
module of the package defines a constant of the same name (a copy could drift
from the original, and the header parser would accept what the streams refuse),
and no two limits share a name."""

from __future__ import annotations

import ast
from pathlib import Path

from segpic_codec.moric import file_format

PACKAGE = Path(file_format.__file__).parent


def _module_constants(path: Path) -> set[str]:
    """The upper-case names a module assigns at its top level."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()}
    return names


def test_format_constants_are_defined_once():
    home = _module_constants(PACKAGE / "file_format.py")
    assert {"MODULES", "KINDS", "NUM_GRIDS", "NUM_SCALES", "MAX_CODED_REGIONS"} <= home
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "file_format.py":
            continue
        copies = home & _module_constants(path)
        assert not copies, f"{path.relative_to(PACKAGE)} redefines {sorted(copies)}"


def test_no_module_names_a_bare_region_limit():
    # a file's regions (16), a contour stream's (255) and SegPIC's masks' are
    # different limits: each has its own name
    for path in sorted(PACKAGE.parent.rglob("*.py")):
        assert "MAX_REGIONS" not in _module_constants(path), path

