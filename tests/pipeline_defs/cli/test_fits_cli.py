"""`contimg fits inspect / invalidate-cache` and `contimg sample-data`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pipeline_defs.cli import main
from resources.fits.synthetic import BROKEN_KINDS, SampleFile, generate_sample_data
from resources.fits_service import FitsMetadataService

RUNNER = CliRunner()


def _samples(tmp_path: Path) -> list[SampleFile]:
    return generate_sample_data(tmp_path / "in", days=2, per_day=2, size=64, seed=3)


def test_inspect_json_contract_and_exit_status(tmp_path: Path) -> None:
    files = _samples(tmp_path)
    result = RUNNER.invoke(main, ["fits", "inspect", "--json", *[str(f.path) for f in files]])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == len(files)
    for sample, record in zip(files, lines, strict=True):
        assert record["path"] == str(sample.path)
        if sample.inspect_error is None:
            assert set(record) == {"path", "ok", "metadata"} and record["ok"] is True
            assert record["metadata"]["path"] == str(sample.path)
            if sample.kind == "good":
                assert record["metadata"]["obs_date"] == str(sample.obs_date)
        else:
            assert set(record) == {"path", "ok", "error", "message"} and record["ok"] is False
            assert record["error"] == sample.inspect_error
            assert str(sample.path) in record["message"]


def test_inspect_all_good_exits_zero_human_format(tmp_path: Path) -> None:
    good = [str(f.path) for f in _samples(tmp_path) if f.kind == "good"]
    result = RUNNER.invoke(main, ["fits", "inspect", *good])
    assert result.exit_code == 0, result.output
    assert "centre     RA" in result.output and "Stokes I" in result.output
    assert f"{len(good)} file(s): {len(good)} ok, 0 failed" in result.output
    json_result = RUNNER.invoke(main, ["fits", "inspect", "--json", "--no-cache", *good])
    assert json_result.exit_code == 0 and all(
        json.loads(line)["ok"] for line in json_result.output.splitlines()
    )


def test_inspect_real_process_no_traceback_and_shares_the_cache(tmp_path: Path) -> None:
    files = _samples(tmp_path)
    good = next(f.path for f in files if f.kind == "good")
    missing = tmp_path / "nope.fits"
    FitsMetadataService().close()  # the cache exists (inspect uses it, never creates it)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_defs.cli.fits_main", str(good), str(missing)],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["ok"] for r in records] == [True, False]
    assert records[1]["error"] == "FITSFileAccessError"
    service = FitsMetadataService()  # same data dir: the other process's entry is a hit
    [outcome] = service.parse_many([good])
    assert outcome.from_cache


def test_invalidate_cache_command(tmp_path: Path) -> None:
    good = [str(f.path) for f in _samples(tmp_path) if f.kind == "good"]
    FitsMetadataService().close()  # an existing cache, which inspect then fills
    RUNNER.invoke(main, ["fits", "inspect", *good])
    result = RUNNER.invoke(main, ["fits", "invalidate-cache", str(tmp_path / "in" / "*")])
    assert result.exit_code == 0
    assert f"invalidated {len(good)} cached entries" in result.output


def test_sample_data_command_is_deterministic(tmp_path: Path, data_dir: Path) -> None:
    args = ["sample-data", "--days", "2", "--per-day", "2", "--size", "48", "--seed", "7"]
    first = RUNNER.invoke(main, [*args, "--out", str(tmp_path / "a")])
    second = RUNNER.invoke(main, [*args, "--out", str(tmp_path / "b")])
    assert first.exit_code == 0 and second.exit_code == 0, first.output
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert len(names) == 4 + len(BROKEN_KINDS)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert "2025-10-01 (2), 2025-10-02 (2)" in first.output
    default = RUNNER.invoke(main, ["sample-data", "--days", "1", "--per-day", "1", "--size", "32",
                                   "--no-broken"])  # fmt: skip
    assert default.exit_code == 0
    assert len(list((data_dir / "incoming").iterdir())) == 1
