"""`contimg images list/show` through click's CliRunner on real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from assets.publishing.publish import product_id
from resources.repositories import data_registry
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import ImageFilter, ImageSummary, list_images
from resources.repositories.sky import Cone
from tests.pipeline_defs.cli.catalogue_cli import run
from tests.resources.repositories.catalogue_data import migrated


def repo(engines, flt: ImageFilter) -> list[ImageSummary]:  # type: ignore[no-untyped-def]
    with engines["products"].connect() as conn:
        return list_images(conn, flt)


def test_json_round_trips(env) -> None:  # type: ignore[no-untyped-def]
    engines, _ = env
    code, out, _ = run("images", "list", "--cone", "0.05", "54.6", "0.5", "--json", "--limit", "0")
    assert code == 0
    parsed = [ImageSummary.from_json_dict(json.loads(line)) for line in out.splitlines()]
    assert parsed == repo(engines, ImageFilter(cone=Cone(0.05, 54.6, 0.5)))
    assert len(parsed) >= 2

    args = [
        "--from",
        "2025-10-01",
        "--to",
        "2025-10-03",
        "--sort",
        "ra",
        "--desc",
        "--limit",
        "7",
        "--offset",
        "2",
    ]
    code, out, err = run("images", "list", *args, "--json")
    assert code == 0 and "7 shown" in err
    parsed = [ImageSummary.from_json_dict(json.loads(line)) for line in out.splitlines()]
    expected = repo(
        engines,
        ImageFilter(
            date_from=dt.date(2025, 10, 1),
            date_to=dt.date(2025, 10, 3),
            sort="ra",
            descending=True,
            limit=7,
            offset=2,
        ),
    )
    assert parsed == expected and len(parsed) == 7


def test_csv_parses_and_table_prints(env) -> None:  # type: ignore[no-untyped-def]
    engines, _ = env
    code, out, _ = run("images", "list", "--grade", "warn,fail", "--csv", "--limit", "0")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = repo(engines, ImageFilter(grades=("warn", "fail")))
    assert [int(r["id"]) for r in rows] == [e.id for e in expected]
    assert {r["grade"] for r in rows} == {"warn", "fail"}
    code, out, _ = run("images", "list", "--telescope", "vla")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["ID", "DATE_OBS"] and len(lines) == 2
    assert lines[1].endswith("/data/other/vla.fits") and "VLA" in lines[1]


def test_date_boundary_and_empty_result(env) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("images", "list", "--date", "2025-10-05", "--path", "*/boundary/*", "--json")
    assert code == 0
    assert [json.loads(x)["path"].rsplit("/", 1)[1] for x in out.splitlines()] == ["late.fits"]
    code, out, _ = run("images", "list", "--date", "2025-10-06", "--path", "*/boundary/*", "--json")
    assert [json.loads(x)["path"].rsplit("/", 1)[1] for x in out.splitlines()] == ["midnight.fits"]
    code, out, err = run("images", "list", "--date", "1999-01-01")
    assert code == 0 and out.strip() == "no images match" and err == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--date", "05/10/2025"], "not a date"),
        (["--from", "2025-10-5"], "not a date"),
        (["--ra-min", "360"], "outside [0, 360)"),
        (["--ra-max", "-1"], "outside [0, 360)"),
        (["--dec-max", "90.5"], "outside [-90, 90]"),
        (["--cone", "10", "20", "-0.5"], "radius -0.5"),
        (["--cone", "400", "20", "1"], "outside [0, 360)"),
        (["--cone", "10", "-95", "1"], "outside [-90, 90]"),
        (["--grade", "excellent"], "'excellent' is not one of"),
        (["--dec-min", "10", "--dec-max", "0"], "dec range"),
        (["--date", "2025-10-05", "--from", "2025-10-01"], "not both"),
        (["--path", "/data/[ab"], "unterminated"),
        (["--limit", "-3"], "--limit"),
        (["--bogus"], "No such option"),
    ],
)
def test_bad_input_is_one_line_exit_2(data_dir: Path, args: list[str], needle: str) -> None:
    migrated("products", f"sqlite:///{data_dir / 'products.sqlite3'}").dispose()
    code, out, err = run("images", "list", *args)
    assert code == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in err


def test_database_error_is_one_masked_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_DB_PRODUCTS_URL", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x")
    code, out, err = run("images", "list")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "hunter2" not in err and "u:***@" in err
    monkeypatch.delenv("CONTIMG_DB_PRODUCTS_URL")
    code, _, err = run("stats")  # not migrated SQLite: one line with the fix
    assert code == 1 and "contimg db upgrade" in err and len(err.strip().splitlines()) == 1


def test_images_show(env) -> None:  # type: ignore[no-untyped-def]
    engines, ids = env
    path = "/data/2025-10-05/wrap_a.fits"  # index 2 of the catalogue: grade fail (cycle), thumb
    ingest_queue.register_files(engines["ingest"], [ingest_queue.FileRecord(path, 1000, 1)])
    row = ingest_queue.claim(engines["ingest"], limit=1, worker="w9")[0]
    ingest_queue.mark_failed(engines["ingest"], row.path, "TruncatedFITSError", "short read")
    data_registry.register_product(
        engines["data_registry"],
        product_type="image",
        product_id=product_id("image", path),
        stage_path=path,
        qa_status="failed",
    )
    code, out, _ = run("images", "show", path)
    assert code == 0
    assert out.splitlines()[0] == path
    assert f"id         {ids[path]}" in out
    assert "RA 359.900000 deg, Dec +54.600000 deg" in out
    assert "QA         FAIL" in out and "reason   fail because of test" in out
    assert f"thumbnail  /thumbs/{ids[path]}.png (64 x 64)" in out
    assert "registry   image     staging    qa failed" in out
    assert "ingest     failed, 1 attempt(s)" in out and "TruncatedFITSError: short read" in out
    code, by_id, _ = run("images", "show", str(ids[path]))
    assert code == 0 and by_id == out
    code, js, _ = run("images", "show", path, "--json")
    data = json.loads(js)
    assert data["image"]["path"] == path and data["qa"]["grade"] == "fail"
    assert data["registry"][0]["status"] == "staging" and data["ingest"]["state"] == "failed"
    code, _, err = run("images", "show", "/missing.fits")
    assert (
        code == 1
        and err.strip() == "error: no image with path or id '/missing.fits' in the catalogue"
    )
