"""`contimg sample-data --ms` as a user types it: what it writes, what the index then says, and
its usage errors (one line, exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resources.ms.reader import read_ms
from tests.pipeline_defs.cli.as_typed import contimg, error_lines


def _env(root: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    return {**base, "CONTIMG_DATA_DIR": str(root / "var")}


def test_writes_named_sets_and_the_broken_cases(tmp_path: Path) -> None:
    env = _env(tmp_path)
    wrote = contimg(
        ["sample-data", "--ms", "--days", "1", "--per-day", "2", "--start", "2025-11-02"], env
    )
    assert wrote.returncode == 0, wrote.stderr
    assert "wrote 2 measurement sets to" in wrote.stdout and "1 with CORRECTED_DATA" in wrote.stdout
    assert wrote.stdout.count("unreadable (`contimg ms failed`)") == 3
    good = sorted((tmp_path / "var" / "ms").glob("2025-11-02T02:0*.ms"))
    assert [p.name for p in good] == ["2025-11-02T02:00:00.ms", "2025-11-02T02:05:00.ms"]
    summaries = [read_ms(p) for p in good]
    assert [s.has_corrected_data for s in summaries] == [False, True]
    assert all(s.n_channels == 64 and s.obs_date.isoformat() == "2025-11-02" for s in summaries)

    assert contimg(["db", "upgrade"], env).returncode == 0
    scan = contimg(["ms", "scan"], env)
    assert scan.returncode == 0
    assert "5 measurement sets under 1 directory, 2 indexed" in scan.stdout
    assert len([line for line in scan.stderr.splitlines() if line.startswith("warning:")]) == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ms", "--hdf5"], "give one of them"),
        (["--ms", "--sky"], "--sky"),
        (["--ms", "--size", "64"], "--size"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    result = contimg(["sample-data", *args], _env(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and needle in lines[0]
    assert not (tmp_path / "var" / "ms").exists()
