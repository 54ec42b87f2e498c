"""`contimg` run as a user types it: the venv's console script in a subprocess, output captured.

The CLI tests that must see what a person sees (exit status, the exact lines on stderr, files left
behind) go through here rather than click's CliRunner; each builds the environment it needs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CONTIMG = str(Path(sys.executable).parent / "contimg")


def contimg(
    args: Sequence[str], env: Mapping[str, str], *, cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`contimg ARGS` in `cwd` with exactly `env`; never raises on a non-zero exit status."""
    return subprocess.run(
        [CONTIMG, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The `error: ...` lines of stderr (the CLI's one-line failures)."""
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]
