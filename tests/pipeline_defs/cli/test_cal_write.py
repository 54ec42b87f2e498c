"""`contimg cal register|retire|list|scan|record-applied|applied` run as a user types them.

Real CASA tables written by python-casacore, a migrated SQLite cal_registry under the test's
data directory; each command's exit status (0, 1 failure, 2 usage) and its one-line errors.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from resources.calibration.synthetic import write_broken_caltable, write_sample_set
from tests.pipeline_defs.cli.as_typed import contimg, error_lines

DAY1 = "2026-01-01_3C286"
DAY2 = "2026-01-02_3C286"


class Cli:
    """`contimg` in a fresh project directory with migrated databases and sample tables."""

    def __init__(self, root: Path) -> None:
        self.root = root
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
        self.env = {**base, "CONTIMG_DATA_DIR": str(root / "var")}
        self.cal = root / "var" / "caltables"
        write_sample_set(self.cal, DAY1, 61041.0, 61041.5)
        write_sample_set(self.cal / "later", DAY2, 61041.4, 61042.0)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return contimg(list(args), self.env, cwd=self.root)

    def day(self, set_name: str) -> list[str]:
        where = self.cal if set_name == DAY1 else self.cal / "later"
        return [str(where / f"{set_name}{s}") for s in ("_kcal", "_bpcal", "_gpcal")]

    def listed(self, *args: str) -> list[dict[str, object]]:
        result = self("cal", "list", "--json", *args)
        assert result.returncode == 0, result.stderr
        rows: list[dict[str, object]] = json.loads(result.stdout)
        return rows


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    runner = Cli(tmp_path)
    assert runner("db", "upgrade", "--no-backup").returncode == 0
    return runner


def one_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    (line,) = error_lines(result)
    assert result.stderr.strip() == line and "Traceback" not in result.stderr
    return line


def test_register_list_and_overlap_refused(cli: Cli) -> None:
    done = cli("cal", "register", *cli.day(DAY1))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"set {DAY1}: 3 registered, 0 unchanged"
    again = cli("cal", "register", *cli.day(DAY1))
    assert again.stdout == f"set {DAY1}: 0 registered, 3 unchanged\n"
    assert done.stdout.splitlines()[1].split()[0] == "SET" and len(done.stdout.splitlines()) == 5
    rows = cli.listed()
    assert [(r["set_name"], r["table_type"], r["status"]) for r in rows] == [
        (DAY1, "K", "active"),
        (DAY1, "BP", "active"),
        (DAY1, "GP", "active"),
    ]
    assert rows[0]["valid_start_mjd"] == 61041.0 and rows[0]["cal_field"] == "3C286"

    refused = cli("cal", "register", *cli.day(DAY2))
    line = one_error(refused, 1)
    assert "overlaps active set 2026-01-01_3C286" in line and "--supersede" in line
    assert len(cli.listed()) == 3  # nothing written

    table = cli("cal", "list", "--status", "active", "--type", "BP")
    assert table.stdout.splitlines()[0].split() == [
        "SET", "TYPE", "STATUS", "VALID", "MJD", "FIELD", "PATH",
    ]  # fmt: skip
    assert table.stdout.splitlines()[1].split()[:4] == [
        DAY1, "BP", "active", "61041.0000..61041.5000",
    ]  # fmt: skip
    assert cli("cal", "list", "--set", "nope").stdout == "no calibration tables match\n"


def test_supersede_window_options_and_retire(cli: Cli) -> None:
    assert cli("cal", "register", *cli.day(DAY1)).returncode == 0
    done = cli("cal", "register", "--supersede", "--notes", "re-solved", *cli.day(DAY2))
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[0]
        == f"set {DAY2}: 3 registered, 0 unchanged, 3 retired (superseded)"
    )
    assert {r["set_name"] for r in cli.listed("--status", "retired")} == {DAY1}
    assert {r["notes"] for r in cli.listed("--status", "active")} == {"re-solved"}

    # an explicit window and set name
    (kcal,) = [p for p in cli.day(DAY1) if p.endswith("_kcal")]
    moved = cli(
        "cal", "register", kcal, "--set", "manual", "--valid-from", "61050", "--valid-to", "61051"
    )
    assert moved.returncode == 1 and "already registered" in one_error(moved, 1)
    moved = cli(
        "cal", "register", kcal, "--set", "manual", "--valid-from", "61050", "--valid-to", "61051",
        "--supersede",
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    (row,) = cli.listed("--set", "manual")
    assert (row["valid_start_mjd"], row["valid_end_mjd"], row["status"]) == (
        61050.0,
        61051.0,
        "active",
    )

    retired = cli("cal", "retire", "--set", DAY2)
    assert retired.returncode == 0 and retired.stdout == "3 tables retired\n"
    assert cli("cal", "retire", kcal).stdout == "1 table retired\n"
    assert cli.listed("--status", "active") == []
    assert cli("cal", "retire", kcal).stdout == "0 tables retired\n"  # already retired
    assert "no registered calibration table matches" in one_error(
        cli("cal", "retire", "--set", "nope"), 1
    )


def test_scan_warns_and_registers_the_rest(cli: Cli) -> None:
    write_broken_caltable(cli.cal / "bad_gpcal")
    result = cli("cal", "scan")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "7 calibration tables under 1 directory, 3 new, 0 known, 1 unreadable, 3 refused (overlap)",
        f"  registered set {DAY1}",
    ]
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: ") for w in warnings)
    assert warnings[0].startswith("warning: CorruptCasaTableError: ") and "bad_gpcal" in warnings[0]
    assert warnings[1].startswith("warning: CalibrationConflictError: ") and DAY2 in warnings[1]
    assert "Traceback" not in result.stderr
    assert {r["set_name"] for r in cli.listed()} == {DAY1}
    second = cli("cal", "scan", str(cli.cal / "later"))
    assert second.stdout.startswith("3 calibration tables under 1 directory, 0 new")


def test_record_applied_and_applied(cli: Cli) -> None:
    assert cli("cal", "register", *cli.day(DAY1)).returncode == 0
    ms = str(cli.root / "obs.ms")
    done = cli("cal", "record-applied", ms, "--mjd", "61041.2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"recorded 3 calibration tables applied to {ms}"
    shown = json.loads(cli("cal", "applied", ms, "--json").stdout)
    assert [(r["table_type"], r["set_name"], r["status"]) for r in shown] == [
        ("K", DAY1, "active"), ("BP", DAY1, "active"), ("GP", DAY1, "active"),
    ]  # fmt: skip
    by_set = cli("cal", "record-applied", ms, "--set", DAY1)
    assert (
        by_set.returncode == 0 and len(json.loads(cli("cal", "applied", ms, "--json").stdout)) == 3
    )

    assert cli("cal", "retire", "--set", DAY1).returncode == 0
    table = cli("cal", "applied", ms)
    assert table.stdout.splitlines()[0].split() == [
        "ORDER",
        "TYPE",
        "SET",
        "STATUS",
        "APPLIED",
        "PATH",
    ]
    assert table.stdout.splitlines()[-1] == "3 of 3 tables applied are now retired"
    assert "no active calibration tables in set" in one_error(
        cli("cal", "record-applied", ms, "--set", DAY1), 1
    )
    assert "no active calibration tables at MJD" in one_error(
        cli("cal", "record-applied", ms, "--mjd", "60000"), 1
    )
    other = str(cli.root / "other.ms")
    assert cli("cal", "applied", other).stdout == f"no calibration recorded for {other}\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("cal", "register", "var/caltables/2026-01-01_3C286_kcal", "--valid-from", "61041"),
         "--valid-from and --valid-to go together"),
        (("cal", "register", "var/caltables/2026-01-01_3C286_kcal", "--valid-from", "61042",
          "--valid-to", "61041"), "--valid-to 61041.0 is before --valid-from 61042.0"),
        (("cal", "register", "var/caltables/none_gpcal"), "does not exist"),
        (("cal", "register", "var/caltables/2026-01-01_3C286_kcal",
          "var/caltables/later/2026-01-02_3C286_kcal"), "pass --set NAME"),
        (("cal", "register"), "Missing argument"),
        (("cal", "retire"), "give either PATH... or --set NAME"),
        (("cal", "retire", "x_gpcal", "--set", "s"), "give either PATH... or --set NAME"),
        (("cal", "list", "--status", "gone"), "--status"),
        (("cal", "list", "--type", "XX"), "--type"),
        (("cal", "scan", "/nonexistent/dir"), "does not exist"),
        (("cal", "record-applied", "a.ms"), "give either --set NAME or --mjd MJD"),
        (("cal", "record-applied", "a.ms", "--set", "s", "--mjd", "1"), "give either --set"),
        (("cal", "record-applied", "a.ms", "--mjd", "nan"), "not a finite MJD"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_exit_2(cli: Cli, args: tuple[str, ...], says: str) -> None:
    assert says in one_error(cli(*args), 2)


def test_unreadable_tables_are_one_line_exit_1(cli: Cli) -> None:
    bad = write_broken_caltable(cli.cal / "bad_gpcal")
    assert "CorruptCasaTableError" not in one_error(cli("cal", "register", str(bad)), 1)
    assert "casacore cannot read it" in one_error(cli("cal", "register", str(bad)), 1)
    (cli.cal / "table_gpcal").write_text("a file")
    assert "is not a directory" in one_error(
        cli("cal", "register", str(cli.cal / "table_gpcal")), 1
    )
    odd = cli.cal / "odd.tbl"
    odd.mkdir()
    assert "unknown calibration table suffix" in one_error(cli("cal", "register", str(odd)), 1)
    assert cli.listed() == []


def test_unmigrated_database_is_one_line_exit_1(tmp_path: Path) -> None:
    runner = Cli(tmp_path)
    line = one_error(runner("cal", "register", *runner.day(DAY1)), 1)
    assert "cal_registry" in line
    assert not (tmp_path / "var" / "cal_registry.sqlite3").exists()
