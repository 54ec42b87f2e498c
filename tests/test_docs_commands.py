"""Every command the documentation tells people to type is run by a test, so the docs cannot rot.

The convention (docs/architecture.md, "Commands in the docs"): commands meant to be typed sit in
fenced blocks labelled `sh` (or `bash`, `shell`, `console`), and the line just before each such
block is one of

    <!-- runnable -->                          run here; every command must exit 0
    <!-- runnable: exit=N -->                  run here; the block must exit with status N
    <!-- not runnable: WHY; covered by PATH[::TEST] -->

Runnable blocks of one file run in document order, each in its own `bash -e -o pipefail`, in one
temporary copy of the project per file (its git-tracked files, as a fresh clone has them: `dg`
reads pyproject.toml and finds the packages there, `dagster` reads workspace.yaml): the venv's
bin first on PATH, no CONTIMG_* settings (so the
documented defaults apply: everything under ./var) except CONTIMG_EXECUTOR=in_process (one process
per run rather than per step, for time), and DAGSTER_HOME=./var/dagster_home. A not-runnable block
must name the test (or CI file) that covers it; that reference is checked too. No runnable block
may print a Python warning (a `SupersessionWarning` of a superseded command, say).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>runnable|not runnable)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")
EXIT = re.compile(r"^exit=(?P<status>\d+)$")
COVERED = re.compile(r"covered by (?P<path>[\w./-]+)(?:::(?P<test>\w+))?")
BLOCK_TIMEOUT_S = 240
# `SupersessionWarning: ...`, `UserWarning: ...` as Python's warnings module prints them.
PYTHON_WARNING = re.compile(r"\b[A-Z]\w*Warning: ")


@dataclass(frozen=True)
class Block:
    """One fenced shell block of a markdown file, with the marker that precedes it."""

    doc: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    marker: str | None  # "runnable", "not runnable" or None
    argument: str  # what follows the colon in the marker, "" if nothing

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"

    def expected_status(self) -> int:
        if not self.argument:
            return 0
        match = EXIT.match(self.argument)
        assert match, f"{self.where}: expected `runnable: exit=N`, got {self.argument!r}"
        return int(match.group("status"))


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def shell_blocks(doc: Path) -> list[Block]:
    """The fenced blocks labelled as shell, each with the marker on the line before it."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening.group("fence")
        language = opening.group("info").strip().split(" ")[0].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j])
            j += 1
        if language in SHELL_LANGUAGES:
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            marker = MARKER.match(lines[k]) if k >= 0 else None
            blocks.append(
                Block(
                    doc=doc,
                    line=i + 1,
                    language=language,
                    code="\n".join(body) + "\n",
                    marker=marker.group("kind") if marker else None,
                    argument=(marker.group("arg") or "") if marker else "",
                )
            )
        i = j + 1
    return blocks


ALL_BLOCKS = [block for doc in documents() for block in shell_blocks(doc)]
RUNNABLE_DOCS = sorted({b.doc for b in ALL_BLOCKS if b.marker == "runnable"})


def test_the_docs_have_runnable_commands() -> None:
    """Guards the extraction itself: the README's everyday commands must be found."""
    readme = [b for b in ALL_BLOCKS if b.doc.name == "README.md" and b.marker == "runnable"]
    assert readme, "no runnable block found in README.md"
    assert any("contimg db upgrade" in b.code for b in readme)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.where)
def test_every_shell_block_is_marked(block: Block) -> None:
    assert block.marker is not None, (
        f"{block.where}: a ```{block.language} block needs `<!-- runnable -->` or "
        "`<!-- not runnable: WHY; covered by tests/... -->` on the line before it"
    )
    if block.marker == "runnable":
        block.expected_status()  # a malformed `exit=` fails here, not when run
        return
    covered = COVERED.search(block.argument)
    assert covered, f"{block.where}: say which test covers it: `covered by tests/...`"
    path = REPO / covered.group("path")
    assert path.is_file(), f"{block.where}: {covered.group('path')} does not exist"
    test = covered.group("test")
    if test:
        source = path.read_text(encoding="utf-8")
        assert re.search(rf"^\s*def {test}\(", source, re.MULTILINE), (
            f"{block.where}: no test {test} in {covered.group('path')}"
        )


def _copy_project(work: Path) -> None:
    """The tracked files of the working tree (edits included), as a clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)


def _environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DAGSTER_HOME"] = str(work / "var" / "dagster_home")
    env["PWD"] = str(work)
    # The one departure from the defaults: a range backfill runs its steps in its own process
    # instead of one process per step. The command is the documented one; the multiprocess path
    # of the same command is tests/pipeline_defs/test_backfill_cli.py's.
    env["CONTIMG_EXECUTOR"] = "in_process"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE_DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_runnable_blocks_run(doc: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "var" / "dagster_home").mkdir(parents=True)
    _copy_project(work)
    env = _environment(work)
    for block in (b for b in shell_blocks(doc) if b.marker == "runnable"):
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        expected = block.expected_status()
        assert result.returncode == expected, (
            f"{block.where}: exit status {result.returncode}, documented {expected}\n"
            f"--- block\n{block.code}--- stdout\n{result.stdout[-4000:]}\n"
            f"--- stderr\n{result.stderr[-4000:]}"
        )
        warnings = [line for line in result.stderr.splitlines() if PYTHON_WARNING.search(line)]
        assert not warnings, f"{block.where}: the documented command warns:\n" + "\n".join(warnings)


def readme_command(prefix: str) -> str:
    """The one command of a runnable README block that starts with `prefix`, as documented."""
    found = [
        line.strip()
        for block in shell_blocks(REPO / "README.md")
        if block.marker == "runnable"
        for line in block.code.splitlines()
        if line.strip().startswith(prefix)
    ]
    assert len(found) == 1, f"README.md: expected one runnable `{prefix} ...` line, got {found}"
    return found[0]


@pytest.mark.slow
def test_make_demo_payload(tmp_path: Path) -> None:
    """`make demo` builds the venv, then runs `contimg demo`: that part, on one small day."""
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(work)
    del env["DAGSTER_HOME"]  # demo creates <data dir>/dagster_home itself (contimg init-home)
    result = subprocess.run(
        ["contimg", "demo", "--days", "1", "--per-day", "3"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"DAGSTER_HOME  {work / 'var' / 'dagster_home'}" in out
    assert "run           2025-10-01: success" in out
    # 3 images plus the sample data's NaN-beam one (graded warn); of the nine other broken files,
    # six carry a date of that day and three fail before a date can be read.
    row = next(line for line in out.splitlines() if line.startswith("2025-10-01 "))
    assert row.split()[1:] == ["4", "3", "1", "0"], row
    # ... and the files that could not be catalogued are one table: those six and the three
    # that failed before a date could be read.
    assert "files that could not be catalogued: 9" in out
    assert sum(1 for line in out.splitlines() if "  no date  " in line) == 3
    assert len(list((work / "var" / "thumbnails" / "2025-10-01").glob("*.png"))) == 4
