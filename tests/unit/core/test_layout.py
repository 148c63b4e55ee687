"""The API keeps one subpackage per area (issue 9): no loose modules, no
import cycle between areas, and each area reaches another only through the
small entry points listed here."""
from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[3] / "api" / "ooniapi"

# area -> modules of other areas it may import (besides core, which all may)
ALLOWED = {
    "probe": {"ooniapi.prioritization.checkin"},
    "oonirun": {"ooniapi.prioritization.checkin"},
}


def _imported(module: str, name: str) -> str:
    """``from a.b import c``: the module a.b.c when c is one, else a.b."""
    base = API.parent.joinpath(*module.split("."))
    if (base / f"{name}.py").exists() or (base / name).is_dir():
        return f"{module}.{name}"
    return module


def _area_imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in API.rglob("*.py"):
        rel = path.relative_to(API)
        if len(rel.parts) < 2:
            continue
        area = rel.parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [_imported(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                parts = n.split(".")
                if parts[0] == "ooniapi" and len(parts) > 1 and parts[1] != area \
                        and (API / parts[1]).is_dir():
                    edges.setdefault(area, set()).add(n)
    return edges


def test_no_loose_modules():
    loose = sorted(p.name for p in API.glob("*.py") if p.name != "__init__.py")
    assert loose == []


def test_every_area_is_a_package():
    for d in API.iterdir():
        if d.is_dir() and d.name != "__pycache__":
            assert (d / "__init__.py").exists(), d


def test_cross_area_imports_go_through_named_entry_points():
    bad = []
    for area, targets in _area_imports().items():
        for t in targets:
            other = t.split(".")[1]
            if other == "core":
                continue
            if not any(t == a or t.startswith(a + ".") for a in ALLOWED.get(area, ())):
                bad.append(f"{area} -> {t}")
    assert sorted(bad) == []


def test_core_imports_no_area():
    assert not {t for t in _area_imports().get("core", set()) if t.split(".")[1] != "core"}
