"""`contimg hdf5 ...` and `contimg sample-data --hdf5` run as a user types them.

One sample set per module (pyuvdata writes it in a few seconds), scanned by `contimg hdf5 scan`;
the tests read it: the JSON shapes, the tables, each sample case where it belongs, and usage
errors as one line with exit status 2.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.pipeline_defs.cli.as_typed import contimg, error_lines

DAY = "2025-10-01"
SECOND_DAY = "2025-10-02"


def _environment(root: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    return {**base, "CONTIMG_DATA_DIR": str(root / "var")}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """Two days of sample subband files, migrated databases, one `hdf5 scan`."""
    root = tmp_path_factory.mktemp("hdf5_cli")
    env = _environment(root)
    wrote = contimg(["sample-data", "--hdf5", "--days", "2"], env, cwd=root)
    assert wrote.returncode == 0, wrote.stderr
    assert contimg(["db", "upgrade"], env, cwd=root).returncode == 0
    scan = contimg(["hdf5", "scan"], env, cwd=root)
    assert scan.returncode == 0, scan.stderr
    env["SAMPLE_OUTPUT"] = wrote.stdout
    env["SCAN_OUTPUT"] = scan.stdout
    env["SCAN_ERRORS"] = scan.stderr
    return env, root


def run(sample: tuple[dict[str, str], Path], *args: str) -> subprocess.CompletedProcess[str]:
    env, root = sample
    return contimg(list(args), env, cwd=root)


def test_sample_data_says_where_each_case_is(sample: tuple[dict[str, str], Path]) -> None:
    env, root = sample
    out = env["SAMPLE_OUTPUT"]
    assert out.startswith(f"wrote 128 subband files to {root / 'var' / 'hdf5'}: ")
    assert f"group {DAY}T02:05:00: incomplete, lacks sb07" in out
    assert f"a second sb03 of group {DAY}T02:10:00" in out
    assert "truncated, unreadable" in out
    assert len(list((root / "var" / "hdf5").glob("*_sb??.hdf5"))) == 128
    assert env["SCAN_OUTPUT"].splitlines()[0] == (
        "128 files under 1 directory, 127 new, 0 changed, 0 unchanged, 1 unreadable"
    )
    assert f"  {DAY}: 4 groups, 2 complete, 1 unreadable files" in env["SCAN_OUTPUT"]
    # the unreadable file: one warning line naming it, the others registered, exit 0
    (warning,) = env["SCAN_ERRORS"].splitlines()
    corrupt = next(line for line in out.splitlines() if "truncated, unreadable" in line)
    assert warning.startswith("warning: CorruptHDF5Error: ")
    assert corrupt.split()[0].rstrip(":") in warning and "Traceback" not in warning


def test_groups_json_shape(sample: tuple[dict[str, str], Path]) -> None:
    result = run(sample, "hdf5", "groups", "--date", DAY, "--json")
    assert result.returncode == 0, result.stderr
    groups = json.loads(result.stdout)
    assert [g["group_id"] for g in groups] == [f"{DAY}T02:{m:02d}:00" for m in (0, 5, 10, 15)]
    for group in groups:
        assert {
            "group_id",
            "subbands",
            "missing_subbands",
            "duplicate_subbands",
            "complete",
        } <= set(group)
        for key in ("subbands", "missing_subbands", "duplicate_subbands"):
            assert all(isinstance(n, int) for n in group[key])
        assert isinstance(group["complete"], bool)
    complete, missing, duplicate, corrupt = groups
    assert complete["complete"] and complete["subbands"] == list(range(16))
    assert missing["missing_subbands"] == [7] and not missing["complete"]
    assert duplicate["duplicate_subbands"] == [3] and duplicate["complete"]
    assert duplicate["n_files"] == 17
    assert len(corrupt["missing_subbands"]) == 1 and corrupt["n_files"] == 15


def test_incomplete_only_and_a_complete_day(sample: tuple[dict[str, str], Path]) -> None:
    result = run(sample, "hdf5", "groups", "--date", DAY, "--incomplete", "--json")
    assert [g["group_id"][-8:] for g in json.loads(result.stdout)] == ["02:05:00", "02:15:00"]
    clean = run(sample, "hdf5", "groups", "--date", SECOND_DAY, "--incomplete")
    assert clean.returncode == 0
    assert clean.stdout == f"no incomplete subband groups on {SECOND_DAY}\n"
    empty = run(sample, "hdf5", "groups", "--date", "2025-11-01", "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []


def test_groups_table(sample: tuple[dict[str, str], Path]) -> None:
    result = run(sample, "hdf5", "groups", "--date", DAY)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["GROUP", "FILES", "SUBBANDS", "MISSING", "DUPLICATES", "COMPLETE"]
    assert lines[2].split() == [f"{DAY}T02:05:00", "15", "0-6,8-15", "7", "-", "no"]
    assert lines[3].split() == [f"{DAY}T02:10:00", "17", "0-15", "-", "3", "yes"]
    assert lines[-1] == f"2 of 4 groups complete on {DAY}"


def test_failed_lists_the_corrupt_file(sample: tuple[dict[str, str], Path]) -> None:
    result = run(sample, "hdf5", "failed", "--date", DAY, "--json")
    assert result.returncode == 0, result.stderr
    (failure,) = json.loads(result.stdout)
    assert {"path", "error"} <= set(failure)
    assert failure["error_class"] == "CorruptHDF5Error"
    groups = json.loads(run(sample, "hdf5", "groups", "--date", DAY, "--json").stdout)
    subband = int(failure["path"].split("_sb")[1][:2])
    assert groups[3]["missing_subbands"] == [subband]  # the unreadable file is in no group
    assert Path(failure["path"]).is_file()
    table = run(sample, "hdf5", "failed", "--date", DAY).stdout.splitlines()
    assert table[0].split() == ["FILE", "ERROR", "MESSAGE"]
    assert "CorruptHDF5Error" in table[1] and "truncated" in table[1]
    assert run(sample, "hdf5", "failed", "--date", SECOND_DAY).stdout == (
        f"no unreadable subband files on {SECOND_DAY}\n"
    )


def test_a_second_scan_reads_nothing(sample: tuple[dict[str, str], Path]) -> None:
    result = run(sample, "hdf5", "scan")
    assert result.returncode == 0
    assert result.stdout == (
        "128 files under 1 directory, 0 new, 0 changed, 128 unchanged, 0 unreadable\n"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("hdf5", "groups", "--date", "2025-10-1"), "is not a date"),
        (("hdf5", "groups"), "Missing option '--date'"),
        (("hdf5", "failed", "--date", "tomorrow"), "is not a date"),
        (("hdf5", "groups", "--date", DAY, "--bogus"), "No such option"),
        (("hdf5", "scan", "/nonexistent/dir"), "does not exist"),
        (("hdf5", "frobnicate"), "No such command"),
        (("sample-data", "--hdf5", "--size", "64"), "--size"),
        (("sample-data", "--hdf5", "--per-day", "2"), "--per-day"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    sample: tuple[dict[str, str], Path], args: tuple[str, ...], says: str
) -> None:
    result = run(sample, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = error_lines(result)
    assert says in line
    assert result.stderr.strip() == line and "Traceback" not in result.stderr


def test_unmigrated_database_is_one_line_exit_1(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    result = contimg(["hdf5", "groups", "--date", DAY], env, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = error_lines(result)
    assert "hdf5" in line and result.stderr.strip() == line
    assert not (tmp_path / "var" / "hdf5.sqlite3").exists()
