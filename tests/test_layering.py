"""The floors of taylorlens (docs/architecture.md): each part imports only the parts below it.

Read from the source with ``ast`` (every import, also those inside functions): ``engine`` imports no other
part; ``methods`` and ``metrics`` import the engine; ``taylor`` the engine and the methods; the bench, the
report and the command line read the registries. ``taylorlens`` itself (the public API in
``taylorlens/__init__.py``) imports the floors, so only the parts above them may import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "taylorlens"
#: ``taylorlens/__init__.py``: the public API, importing engine, methods, metrics, taylor and axioms.
PUBLIC = "taylorlens"

#: Part (subpackage or top-level module) -> the parts it may import.
ALLOWED: dict[str, set[str]] = {
    "engine": set(),
    "zoo": set(),
    "methods": {"engine"},
    "metrics": {"engine"},
    "taylor": {"engine", "methods"},
    "axioms": {"engine", "methods"},
    "bench": {"engine", "methods", "metrics", "taylor", "zoo", PUBLIC},
    "report": {"engine", "methods", "metrics", "taylor", "bench", PUBLIC},
    "explain": {"engine", "methods", "metrics", "taylor", "zoo", "report", PUBLIC},
    "explain_text": {"engine", "methods", "metrics", "taylor", "zoo", "report", "explain", PUBLIC},
    "cli": {"engine", "methods", "metrics", "taylor", "zoo", "bench", "report", "explain", "explain_text", PUBLIC},
    "__main__": {"cli"},
    "__init__": {"engine", "methods", "metrics", "taylor", "axioms"},
}
#: The imports that cross a floor on purpose, each with its reason: (file below taylorlens/, imported part).
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("methods/smooth_taylor.py", "metrics"): "Algorithm 1 minimises a metric (AUPC or AUTVC) over sigma",
    ("metrics/randomization.py", PUBLIC): "the randomization test attributes through the public attribute()",
    ("metrics/randomization.py", "zoo"): "the data randomization test loads a shuffled-label model by zoo name",
    ("taylor/table3.py", PUBLIC): "the paper's Table 3 runs the methods by name",
    ("taylor/table3.py", "zoo"): "the paper's Table 3 runs on the zoo's models",
}


def public_names() -> set[str]:
    """Names ``taylorlens/__init__.py`` binds with ``from taylorlens.x import name`` (``taylorlens.methods`` is the
    function listing the methods, not the subpackage)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    return {
        alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
        and node.module and node.module.startswith(f"{PUBLIC}.") for alias in node.names
    }


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_parts(path: Path) -> set[str]:
    """The parts of taylorlens a source file imports (``from taylorlens import zoo`` counts as ``zoo``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != PUBLIC else [
                PUBLIC if a.name in PUBLIC_NAMES else f"{PUBLIC}.{a.name}" for a in node.names
            ]
        else:
            continue
        for name in names:
            dotted = name.split(".")
            if dotted[0] != PUBLIC:
                continue
            sub = dotted[1] if len(dotted) > 1 else PUBLIC
            found.add(sub if sub in ALLOWED else PUBLIC)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))
PUBLIC_NAMES = public_names()


def test_every_part_has_a_floor():
    assert {part_of(path) for path in SOURCES} <= set(ALLOWED)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_imports_only_the_floors_below_it(path):
    part, name = part_of(path), str(path.relative_to(PACKAGE))
    upward = {
        other for other in imported_parts(path) - {part}
        if other not in ALLOWED[part] and (name, other) not in EXCEPTIONS
    }
    assert not upward, f"taylorlens/{name} ({part}) imports {sorted(upward)}; {part} may import {sorted(ALLOWED[part])}"


def test_every_exception_is_still_needed():
    for name, other in EXCEPTIONS:
        assert other in imported_parts(PACKAGE / name), f"taylorlens/{name} no longer imports {other}: drop it"
