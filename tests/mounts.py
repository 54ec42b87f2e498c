"""Real small file systems for fault tests: a tmpfs mounted for one test, unmounted after.

Root ignores permission bits, so a read-only directory has to be a read-only mount; a full disk
has to be a small one. Where mounting is not allowed (no privilege) the test is skipped, saying why.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    """Mount a tmpfs with `options` (e.g. `ro,size=1m`) on `mountpoint` (created)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
