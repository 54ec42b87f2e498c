"""The maps of the tree in the docs name what exists: docs/architecture.md's "where each concern
lives" (one folder per row, the modules of each row inside it) and README.md's "Where things
are". A move that forgets its map fails here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = re.compile(r"`([^`]+)`")


def _table(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


def _module_names(cell: str) -> list[str]:
    """`x.py`, `sub/` or `path/to/x.py` mentions of a cell (code spans that look like paths)."""
    names = []
    for span in CODE.findall(cell):
        token = span.split()[0].strip("(),")
        if token.endswith((".py", "/", ".yaml")) and "*" not in token:
            names.append(token)
    return names


def test_architecture_rows_name_one_existing_folder_and_its_modules() -> None:
    rows = _table((REPO / "docs/architecture.md").read_text(), "## Where each concern lives")
    assert len(rows) >= 15
    folders = [row[1].strip("`") for row in rows]
    missing = []
    for row, folder in zip(rows, folders, strict=True):
        assert folder.endswith("/"), row
        base = REPO / folder
        if not base.is_dir():
            missing.append(folder)
            continue
        for cell in row[2:]:
            for name in _module_names(cell):
                path = REPO / name if "/" in name.rstrip("/") else base / name
                if not path.exists():
                    missing.append(f"{folder}: {name}")
    assert missing == []


def test_every_top_level_package_and_domain_has_a_row() -> None:
    rows = _table((REPO / "docs/architecture.md").read_text(), "## Where each concern lives")
    folders = {row[1].strip("`") for row in rows}
    domains = {
        f"assets/{p.name}/" for p in (REPO / "assets").iterdir() if (p / "__init__.py").exists()
    }
    assert domains <= folders, domains - folders


def test_readme_where_things_are_matches_the_tree() -> None:
    rows = _table((REPO / "README.md").read_text(), "## Where things are")
    listed = {row[0].strip("`").rstrip("/") for row in rows}
    assert {"pipeline_defs", "assets", "resources", "migrations", "tests", "docs"} <= listed
    for row in rows:
        top = REPO / row[0].strip("`")
        assert top.is_dir(), row[0]
        for name in _module_names(row[1]):
            candidates = [top / name, REPO / name] + list(top.glob(f"*/{name}"))
            assert any(c.exists() for c in candidates), f"{row[0]}: {name}"


def test_nothing_points_to_a_design_document_outside_the_repository() -> None:
    """Code and docs cite the repository's own docs/, never a design file users do not have."""
    offenders = []
    for top in ("assets", "resources", "migrations", "pipeline_defs", "docs", "bench", "tests"):
        for path in (REPO / top).rglob("*"):
            if (
                path.suffix in (".py", ".md")
                and path != Path(__file__)
                and "DESIGN.md" in path.read_text(errors="replace")
            ):
                offenders.append(str(path.relative_to(REPO)))
    assert "DESIGN.md" not in (REPO / "README.md").read_text()
    assert offenders == []
