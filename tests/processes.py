"""Children that a fault test kills at a chosen point: started, awaited, SIGKILLed, reaped.

The child prints one line (starting with an agreed word) when it has reached the point where the
test kills it, and then blocks; the test reads that line instead of sleeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def child_at(
    args: Sequence[str], ready: str, *, cwd: Path, **popen: Any
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start `args`, wait for its line starting with `ready`, yield (process, line); the
    process is killed and reaped on the way out whatever happened."""
    proc = subprocess.Popen(
        list(args), cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **popen
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the child is there (or has ended)
        assert line.startswith(ready), line
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def kill9(proc: subprocess.Popen[str]) -> None:
    """SIGKILL, and check that this is how the process ended."""
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
