"""`contimg` start-up benchmark: what a user pays before a command does anything.

    .venv/bin/python bench/cli_bench.py [--runs 10]

Each command is run as a user types it (the venv's `contimg` script, a fresh process, from a
directory outside the project) and compared, in the same run, with the floor of any click
program: `python -c "import click"`. Ratios > 1 mean slower than that floor. Wall-clock medians
on a shared machine: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
COMMANDS = {
    "import click (floor)": [sys.executable, "-c", "import click"],
    "contimg --help": [str(VENV_BIN / "contimg"), "--help"],
    "contimg fits inspect --help": [str(VENV_BIN / "contimg"), "fits", "inspect", "--help"],
    "contimg db status --help": [str(VENV_BIN / "contimg"), "db", "status", "--help"],
}


def median_seconds(command: list[str], runs: int, cwd: str) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        results = {name: median_seconds(cmd, args.runs, cwd) for name, cmd in COMMANDS.items()}
    floor = results["import click (floor)"]
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.2f} runs={args.runs}")
    for name, seconds in results.items():
        print(f"{name:32s} {seconds * 1000:8.1f} ms  {seconds / floor:5.2f}x")


if __name__ == "__main__":
    main()
