"""Nothing imports upward: the layers of docs/architecture.md, checked on every import statement.

Function-level imports count too (they used to hide cycles between resources/ and migrations/).
From the bottom up:

    resources   infrastructure: settings, errors, engines, FITS reading, metrics, repositories
    migrations  Alembic histories and the runner (uses resources)
    assets      the daily products (use resources)
    pipeline_defs.monitoring   health monitor, metrics exporter (above resources and migrations)
    pipeline_defs              definitions, jobs, sensors, CLI (the top)

Within `pipeline_defs`, monitoring imports nothing of the rest (the CLI hands the exporter the
code location's catalogue).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: What each layer may import from the project (its own package always allowed).
ALLOWED: dict[str, set[str]] = {
    "resources": set(),
    "migrations": {"resources"},
    "assets": {"resources"},
    "pipeline_defs.monitoring": {"resources", "migrations"},
    "pipeline_defs": {"resources", "migrations", "assets", "pipeline_defs.monitoring"},
}
PROJECT = ("resources", "migrations", "assets", "pipeline_defs")


def _layer(module: str) -> str:
    if module == "pipeline_defs.monitoring" or module.startswith("pipeline_defs.monitoring."):
        return "pipeline_defs.monitoring"
    return module.split(".")[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a project module in the file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = (package or _module_name(path)).split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from pipeline_defs import monitoring` names a sub-package: check it as such.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(line, m) for line, m in found if m.split(".")[0] in PROJECT]


def _allowed(importer: str, imported: str) -> bool:
    own = _layer(importer)
    target = _layer(imported)
    return target == own or target in ALLOWED[own]


def _sources() -> list[Path]:
    return sorted(p for top in PROJECT for p in (REPO / top).rglob("*.py"))


def violations() -> list[str]:
    out = []
    for path in _sources():
        importer = _module_name(path)
        for line, imported in _imports(path):
            if not _allowed(importer, imported):
                out.append(f"{path.relative_to(REPO)}:{line}: {importer} imports {imported}")
    return sorted(set(out))


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("resources.database", "migrations.runner", False),
        ("resources.database", "pipeline_defs", False),
        ("migrations.runner", "assets.qa.statistics", False),
        ("assets.qa.grading", "pipeline_defs.definitions", False),
        ("pipeline_defs.monitoring.health", "pipeline_defs.cli.health", False),
        ("pipeline_defs.monitoring.exporter", "pipeline_defs.definitions", False),
        ("pipeline_defs.monitoring.exporter", "migrations.runner", True),
        ("pipeline_defs.cli.metrics", "pipeline_defs.monitoring.exporter", True),
        ("assets.qa.grading", "resources.fits.pixels", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, allowed: bool) -> None:
    """The checker would catch an upward import (so an empty list above means something)."""
    assert _allowed(importer, imported) is allowed


def test_every_project_module_is_seen() -> None:
    names = {_module_name(p) for p in _sources()}
    assert {"resources.settings", "migrations.runner", "assets.qa.grading"} <= names
    assert "pipeline_defs.monitoring.exporter" in names
