"""`contimg ms ...` and the lineage of `contimg images show`, run as a user types them.

One upstream day per module (tests/assets/ms/scenario.py: two MSs and a truncated one, a
subband group missing sb07, calibration set S1 applied to the first MS, two images named after
it), indexed by `contimg ms scan`; the tests read it. Usage errors are one line, exit 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from resources import engines
from resources.database import Databases
from tests.assets.ms import scenario
from tests.fixtures_pipeline import migrate_all, sqlite_urls
from tests.pipeline_defs.cli.as_typed import contimg, error_lines

DAY = scenario.DAY.isoformat()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], scenario.Files, str]:
    root = tmp_path_factory.mktemp("ms_cli")
    files = scenario.write_files(root / "files")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    env = {**base, "CONTIMG_DATA_DIR": str(root / "var"), "CONTIMG_MS_DIRS": str(files.ms)}
    (root / "var").mkdir()
    urls = sqlite_urls(root / "var")
    migrate_all(urls)
    scenario.register_upstream(Databases(urls), files)
    engines.dispose_all()
    scan = contimg(["ms", "scan"], env)
    assert scan.returncode == 0, scan.stderr
    return env, files, scan.stdout + scan.stderr


def test_scan_says_what_it_did_and_warns_per_unreadable_ms(site) -> None:
    _, _, output = site
    assert "3 measurement sets under 1 directory, 2 indexed" in output
    assert "1 unreadable, 2 image links changed" in output
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "CorruptCasaTableError" in warnings[0]
    assert f"  {DAY}: 2 measurement sets (1 converted, 0 calibrated, 1 imaged)" in output


def test_list_json_and_table(site) -> None:
    env, files, _ = site
    listed = contimg(["ms", "list", "--date", DAY, "--json"], env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)
    first = next(r for r in rows if r["path"] == str(scenario.first_ms(files)))
    assert first["stage"] == "imaged" and first["n_images"] == 2 and first["obs_date"] == DAY
    assert first["hdf5_group"] == scenario.START.strftime(scenario.STAMP)
    imaged = contimg(["ms", "list", "--stage", "converted"], env)
    assert imaged.returncode == 0 and "1 measurement sets: 1 converted" in imaged.stdout
    assert scenario.first_ms(files).name not in imaged.stdout


def test_show_follows_the_chain(site) -> None:
    env, files, _ = site
    shown = contimg(["ms", "show", str(scenario.first_ms(files))], env)
    assert shown.returncode == 0, shown.stderr
    assert "stage imaged" in shown.stdout
    assert "15 files, missing 7" in shown.stdout
    assert shown.stdout.count("  calibration ") == 3 and "S1" in shown.stdout
    assert shown.stdout.count("  image       /images/") == 2
    as_json = json.loads(
        contimg(["ms", "show", str(scenario.first_ms(files)), "--json"], env).stdout
    )
    assert as_json["subband_group"]["missing_subbands"] == [7]
    assert {c["table_type"] for c in as_json["calibration"]} == {"K", "BP", "GP"}


def test_images_show_prints_the_lineage_and_unknown_links(site) -> None:
    env, files, _ = site
    stem = scenario.START.strftime(scenario.STAMP)
    shown = contimg(["images", "show", f"/images/{stem}_dec+16.3.fits"], env)
    assert shown.returncode == 0, shown.stderr
    lineage = [line for line in shown.stdout.splitlines() if line.startswith("  lineage")]
    assert len(lineage) == 3
    assert str(scenario.first_ms(files)) in lineage[0]
    assert "incomplete, missing subbands 7" in lineage[1]
    assert "set S1: K " in lineage[2]
    data = json.loads(
        contimg(["images", "show", f"/images/{stem}_dec+16.3.fits", "--json"], env).stdout
    )
    assert data["lineage"]["ms"]["path"] == str(scenario.first_ms(files))
    assert data["lineage"]["subband_group"]["missing_subbands"] == [7]


def test_an_image_without_ms_says_unknown(site) -> None:
    env, _, _ = site
    scenario.add_image(Databases(sqlite_urls(Path(env["CONTIMG_DATA_DIR"]))), "orphan.fits")
    engines.dispose_all()
    shown = contimg(["images", "show", "/images/orphan.fits"], env)
    assert shown.returncode == 0, shown.stderr
    lineage = [line for line in shown.stdout.splitlines() if line.startswith("  lineage")]
    assert [line.split()[-1] for line in lineage] == ["unknown"] * 3


def test_failed_lists_the_truncated_ms(site) -> None:
    env, _, _ = site
    failed = contimg(["ms", "failed", "--date", DAY, "--json"], env)
    assert failed.returncode == 0, failed.stderr
    (row,) = json.loads(failed.stdout)
    assert row["error_class"] == "CorruptCasaTableError" and row["path"] in row["error"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ms", "list", "--stage", "done"], "'--stage'"),
        (["ms", "list", "--date", "2026-13-01"], "--date"),
        (["ms", "failed", "--date", "yesterday-ish"], "--date"),
        (["ms", "scan", "/no/such/dir"], "/no/such/dir"),
    ],
)
def test_usage_errors_are_one_line_exit_2(site, args: list[str], needle: str) -> None:
    env, _, _ = site
    result = contimg(args, env)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr


def test_show_of_an_unknown_ms_is_one_line_exit_1(site) -> None:
    env, _, _ = site
    result = contimg(["ms", "show", "/nowhere.ms"], env)
    assert result.returncode == 1
    assert error_lines(result) == [
        "error: no measurement set with path or id '/nowhere.ms' in the index"
    ]


def test_recording_calibration_updates_the_index_at_once(site) -> None:
    """Last in the module: it changes the second MS's stage, which the tests above read."""
    env, files, _ = site
    second = str((files.ms / f"{scenario.SECOND.strftime(scenario.STAMP)}.ms").resolve())
    recorded = contimg(["cal", "record-applied", second, "--set", "S1"], env)
    assert recorded.returncode == 0, recorded.stderr
    assert "recorded 3 calibration tables" in recorded.stdout and not recorded.stderr
    listed = json.loads(contimg(["ms", "list", "--stage", "calibrated", "--json"], env).stdout)
    assert [(r["path"], r["cal_set_name"]) for r in listed] == [(second, "S1")]
    unindexed = contimg(["cal", "record-applied", "/elsewhere/x.ms", "--set", "S1"], env)
    assert unindexed.returncode == 0
    assert "is not in the MS index yet" in unindexed.stderr
