"""The broad exception handlers of the project are exactly those docs/exceptions.md lists.

ruff's BLE001 only flags a broad handler that swallows the exception; one that re-raises passes
silently, and the document once said "three" while four existed. This test makes the rule
checkable: every `except Exception`, `except BaseException` and bare `except:` (also inside a
tuple) under the project's packages is found with `ast`, named by file and enclosing function,
and compared with the table of the section "The rule for broad handlers".
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("resources", "assets", "migrations", "pipeline_defs")
DOC = REPO / "docs" / "exceptions.md"
BROAD = {"Exception", "BaseException"}
ROW = re.compile(r"^\| `(?P<file>[^`]+\.py)` \| `(?P<function>[^`]+)` \|")


def _is_broad(node: ast.ExceptHandler) -> bool:
    if node.type is None:
        return True
    kinds = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
    return any(isinstance(k, ast.Name) and k.id in BROAD for k in kinds)


def _handlers(path: Path, root: Path = REPO) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    relative = path.relative_to(root).as_posix()

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = (*scope, child.name)
            if isinstance(child, ast.ExceptHandler) and _is_broad(child):
                found.add((relative, ".".join(scope) or "<module>"))
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), ())
    return found


def code_handlers() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found |= _handlers(path)
    return found


def documented_handlers() -> set[tuple[str, str]]:
    text = DOC.read_text()
    section = text.split("## The rule for broad handlers", 1)[1].split("\n## ", 1)[0]
    rows = (ROW.match(line) for line in section.splitlines())
    return {(m["file"], m["function"]) for m in rows if m}


def test_the_document_lists_every_broad_handler_and_only_those() -> None:
    code, documented = code_handlers(), documented_handlers()
    assert documented, "no table of broad handlers found in docs/exceptions.md"
    assert code - documented == set(), "broad handlers missing from docs/exceptions.md"
    assert documented - code == set(), "docs/exceptions.md lists handlers that no longer exist"


def test_the_finder_sees_each_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def a():\n    try: pass\n    except: pass\n"
        "class K:\n    def b(self):\n        try: pass\n        except (OSError, Exception): raise\n"
        "def c():\n    try: pass\n    except BaseException as e: raise\n"
        "def d():\n    try: pass\n    except OSError: pass\n"
    )
    found = {function for _file, function in _handlers(sample, tmp_path)}
    assert found == {"a", "K.b", "c"}
