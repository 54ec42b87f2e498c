"""`contimg sources list/show/lightcurve` on a real migrated products database.

A few images, sky sources and measurements with known values are written with SQLAlchemy; the
commands run through click's CliRunner (as `contimg` parses them) on SQLite and PostgreSQL, and
the usage errors, the unwritable plot and the read-only promise also as a user types them (the
console script in a subprocess).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage
from sqlalchemy.engine import Engine

from resources.repositories.products import (
    LIGHT_CURVE_FIELDS,
    MEASUREMENTS,
    SOURCE_FIELDS,
    SOURCES,
    upsert_images,
)
from resources.settings import DATABASE_NAMES
from tests.pipeline_defs.cli.as_typed import contimg, error_lines
from tests.pipeline_defs.cli.catalogue_cli import run
from tests.resources.repositories.catalogue_data import meta, migrated
from tests.services import pg_admin_url, temporary_pg_database

UTC = dt.UTC
DAYS = [dt.datetime(2025, 10, d, 3, 0, tzinfo=UTC) for d in (1, 2, 3)]
PATHS = [f"/data/{d:%Y-%m-%d}/field.fits" for d in DAYS]


def _source(sid: int, name: str, ra: float, dec: float, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": sid,
        "name": name,
        "wavg_ra": ra,
        "wavg_dec": dec,
        "wavg_uncertainty_ew": 1.0 / 3600.0,
        "wavg_uncertainty_ns": 2.0 / 3600.0,
        "avg_flux_int": 10.0,
        "avg_flux_peak": 9.0,
        "max_flux_peak": 11.0,
        "min_flux_peak": 7.0,
        "max_flux_int": 12.0,
        "min_flux_int": 8.0,
        "min_snr": 20.0,
        "max_snr": 40.0,
        "n_meas": 1,
        "n_meas_forced": 0,
        "n_rel": 0,
        "v_int": None,
        "eta_int": None,
        "v_peak": None,
        "eta_peak": None,
        "vs_abs_significant_max_int": None,
        "m_abs_significant_max_int": None,
        "vs_abs_significant_max_peak": None,
        "m_abs_significant_max_peak": None,
        "new": False,
        "new_high_sigma": None,
        "first_obs_date": dt.date(2025, 10, 1),
        "first_mjd": 60949.125,
        "last_mjd": 60949.125,
        "state": {},
    }
    row.update(values)
    return row


SOURCE_ROWS = [
    _source(1, "J100000.0+161800", 150.0, 16.3, eta_int=0.5, v_int=0.02, n_meas=3),
    _source(
        2,
        "J100000.2+161801",
        150.001,
        16.3005,
        eta_int=12.0,
        v_int=0.6,
        v_peak=0.55,
        eta_peak=11.0,
        avg_flux_int=5.0,
        n_meas=3,
        n_meas_forced=1,
        n_rel=1,
        vs_abs_significant_max_int=9.5,
        m_abs_significant_max_int=1.2,
        new=True,
        new_high_sigma=8.25,
        first_obs_date=dt.date(2025, 10, 2),
    ),
    _source(3, "J235948.0+000000", 359.95, 0.0, eta_int=3.0, v_int=0.3, avg_flux_int=2.0),
    _source(4, "J000012.0+000000", 0.05, 0.0, new=True, avg_flux_int=1.0),
    _source(5, "J132000.0-300000", 200.0, -30.0, eta_int=2.0, v_int=0.1, avg_flux_int=50.0),
    # cos(dec) widening: 1.8 deg of RA at Dec 60 is 0.9 deg on the sky (inside a 1 deg cone);
    # the next one is inside the RA/Dec box of that cone but 1.3 deg from its centre.
    _source(6, "J064712.0+600000", 101.8, 60.0, eta_int=1.0, v_int=0.05),
    _source(7, "J064736.0+605400", 101.9, 60.9, eta_int=1.5, v_int=0.07),
]

# Source 2's light curve: forced on day 1 (before it was detected), blind on days 2 and 3.
SOURCE2_CURVE = [
    (0, True, 0.2, 0.1, None),
    (1, False, 4.0, 0.3, "new"),
    (2, False, 10.8, 0.4, "basic"),
]


def _load(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        image_ids = upsert_images(
            conn, [meta(p, d, 150.0, 16.3) for p, d in zip(PATHS, DAYS, strict=True)]
        )
        conn.execute(SOURCES.insert(), SOURCE_ROWS)
        rows = []
        for day, forced, flux, err, assoc in SOURCE2_CURVE:
            image = image_ids[PATHS[day]]
            rows.append(_measurement(image, 2, DAYS[day], forced, flux, err, assoc))
            rows.append(_measurement(image, 1, DAYS[day], False, 10.0 + day, 0.2, "basic"))
        conn.execute(MEASUREMENTS.insert(), rows)
    return image_ids


def _measurement(
    image_id: int,
    source_id: int,
    when: dt.datetime,
    forced: bool,
    flux: float,
    err: float,
    association: str | None,
) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "source_id": source_id,
        "forced": forced,
        "obs_date": when.date(),
        "mjd": when.timestamp() / 86400.0 + 40587.0,
        "ra": 150.0,
        "dec": 16.3,
        "flux_int": flux,
        "flux_int_err": err,
        "flux_peak": flux * 0.9,
        "flux_peak_err": err,
        "local_rms": 0.25,
        "snr": flux / 0.25,
        "association": None if forced else association,
    }


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Engine, dict[str, int]]]:
    """The products database migrated on one backend and loaded, once per module (the commands
    only read it): (URL, engine, image ids by path)."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = pg_admin_url(database=stack.enter_context(temporary_pg_database()))
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('sources_cli') / 'products.sqlite3'}"
        engine = migrated("products", url)
        stack.callback(engine.dispose)
        yield url, engine, _load(engine)


@pytest.fixture(name="db")
def sources_db(
    loaded: tuple[str, Engine, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> tuple[Engine, dict[str, int]]:
    """The loaded database, named by CONTIMG_DB_PRODUCTS_URL for the commands of the test."""
    url, engine, ids = loaded
    monkeypatch.setenv("CONTIMG_DB_PRODUCTS_URL", url)
    return engine, ids


def _json(*args: str) -> Any:
    code, out, err = run(*args)
    assert code == 0, err
    return json.loads(out)


def _ids(*args: str) -> list[int]:
    return [s["id"] for s in _json("sources", "list", *args, "--json")]


# --- list ---------------------------------------------------------------------------------------


def test_json_has_vast_names_and_units(db) -> None:  # type: ignore[no-untyped-def]
    rows = _json("sources", "list", "--sort", "id", "--json")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert all(list(r) == list(SOURCE_FIELDS) for r in rows)
    required = {
        "id", "name", "wavg_ra", "wavg_dec", "wavg_uncertainty_ew", "wavg_uncertainty_ns",
        "avg_flux_int", "avg_flux_peak", "max_flux_peak", "min_flux_peak", "min_snr", "max_snr",
        "n_meas", "n_meas_forced", "n_rel", "v_int", "eta_int", "v_peak", "eta_peak",
        "vs_abs_significant_max_int", "m_abs_significant_max_int", "vs_abs_significant_max_peak",
        "m_abs_significant_max_peak", "new", "new_high_sigma", "first_obs_date",
    }  # fmt: skip
    assert required <= set(SOURCE_FIELDS)
    two = rows[1]
    assert two["name"] == "J100000.2+161801"
    assert two["wavg_ra"] == 150.001 and two["wavg_dec"] == 16.3005  # degrees
    assert two["wavg_uncertainty_ew"] == pytest.approx(1 / 3600)  # degrees
    assert two["avg_flux_int"] == 5.0 and two["max_flux_peak"] == 11.0  # mJy
    assert (two["n_meas"], two["n_meas_forced"], two["n_rel"]) == (3, 1, 1)
    assert (two["eta_int"], two["v_int"], two["eta_peak"], two["v_peak"]) == (12.0, 0.6, 11.0, 0.55)
    assert two["vs_abs_significant_max_int"] == 9.5 and two["m_abs_significant_max_int"] == 1.2
    assert two["new"] is True and two["new_high_sigma"] == 8.25
    assert two["first_obs_date"] == "2025-10-02"
    assert rows[0]["new"] is False and rows[0]["v_peak"] is None


def test_csv_header_is_the_json_keys(db) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("sources", "list", "--sort", "id", "--csv")
    assert code == 0
    reader = csv.reader(io.StringIO(out))
    header = next(reader)
    assert header == list(_json("sources", "list", "--json")[0])
    rows = [dict(zip(header, r, strict=True)) for r in reader]
    assert [int(r["id"]) for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert rows[1]["eta_int"] == "12.0" and rows[1]["first_obs_date"] == "2025-10-02"
    assert rows[0]["v_peak"] == ""  # unknown: empty cell


def test_sort_and_limit(db) -> None:  # type: ignore[no-untyped-def]
    assert _ids() == [2, 3, 5, 7, 6, 1, 4]  # eta_int largest first, unknown last
    assert _ids("--sort", "v") == [2, 3, 5, 7, 6, 1, 4]
    assert _ids("--sort", "flux") == [5, 1, 6, 7, 2, 3, 4]
    _, out, err = run("sources", "list", "--limit", "2", "--json")
    assert [s["id"] for s in json.loads(out)] == [2, 3] and "2 shown; more match" in err
    _, out, err = run("sources", "list", "--limit", "7", "--json")
    assert len(json.loads(out)) == 7 and err == ""


def test_filters(db) -> None:  # type: ignore[no-untyped-def]
    assert _ids("--min-eta", "2") == [2, 3, 5]
    assert _ids("--min-v", "0.1", "--sort", "id") == [2, 3, 5]
    assert _ids("--min-eta", "2.5", "--min-v", "0.5") == [2]
    assert _ids("--new", "--sort", "id") == [2, 4]
    assert _ids("--date", "2025-10-02") == [2]
    assert _ids("--date", "2025-10-09") == []


def test_cone_with_ra_wrap_and_cos_dec(db) -> None:  # type: ignore[no-untyped-def]
    assert _ids("--ra", "0", "--dec", "0", "--radius", "0.1") == [3, 4]
    assert _ids("--ra", "359.99", "--dec", "0", "--radius", "0.05") == [3]
    assert _ids("--ra", "0.01", "--dec", "0", "--radius", "0.05") == [4]
    assert _ids("--ra", "100", "--dec", "60", "--radius", "1", "--sort", "id") == [6]
    assert _ids("--ra", "150", "--dec", "16.3", "--radius", "0.01", "--new") == [2]
    assert _ids("--ra", "150", "--dec", "16.3", "--radius", "0.01", "--limit", "1") == [2]


def test_table_and_empty_result(db) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("sources", "list", "--min-eta", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["ID", "NAME", "RA", "DEC"]
    assert lines[1].split()[:2] == ["2", "J100000.2+161801"] and "yes" in lines[1].split()
    assert len(lines) == 5 and lines[-1] == "3 sources, sorted by eta_int"
    code, out, err = run("sources", "list", "--min-eta", "100")
    assert (code, out) == (0, "no sources match\n")
    code, out, err = run("sources", "list", "--min-eta", "100", "--json")
    assert (code, json.loads(out), err) == (0, [], "no sources match\n")


# --- show ---------------------------------------------------------------------------------------


def test_show_json_light_curve(db) -> None:  # type: ignore[no-untyped-def]
    _, image_ids = db
    out = _json("sources", "show", "2", "--json")
    assert out["source"]["id"] == 2 and list(out["source"]) == list(SOURCE_FIELDS)
    curve = out["light_curve"]
    assert [list(m) for m in curve] == [list(LIGHT_CURVE_FIELDS)] * 3
    assert [m["obs_date"] for m in curve] == ["2025-10-01", "2025-10-02", "2025-10-03"]
    assert [m["forced"] for m in curve] == [True, False, False]
    assert [m["flux_int"] for m in curve] == [0.2, 4.0, 10.8]
    assert [m["flux_int_err"] for m in curve] == [0.1, 0.3, 0.4]
    assert [m["association"] for m in curve] == [None, "new", "basic"]
    assert [m["image_path"] for m in curve] == PATHS
    assert [m["image_id"] for m in curve] == [image_ids[p] for p in PATHS]
    assert curve[0]["mjd"] == pytest.approx(60949.125)
    assert curve[1]["snr"] == pytest.approx(16.0) and curve[1]["local_rms"] == 0.25


def test_show_table_and_csv(db) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("sources", "show", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "J100000.2+161801 (id 2)"
    assert "  new          yes (8.2 sigma)" in lines
    assert "light curve (3 measurements)" in lines
    at = lines.index("light curve (3 measurements)")
    assert lines[at + 1].split()[:3] == ["OBS_DATE", "MJD", "KIND"]
    first = lines[at + 2].split()
    assert first[0] == "2025-10-01" and first[2] == "forced" and first[-1] == PATHS[0]
    assert lines[at + 3].split()[2:4] == ["blind", "4.000"] and "new" in lines[at + 3].split()
    code, out, _ = run("sources", "show", "2", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and list(rows[0]) == list(LIGHT_CURVE_FIELDS)
    assert [r["flux_int"] for r in rows] == ["0.2", "4.0", "10.8"]
    assert [r["association"] for r in rows] == ["", "new", "basic"]


def test_show_unknown_id(db) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("sources", "show", "999")
    assert (code, out) == (1, "")
    assert err == "error: no source with id 999 in the catalogue\n"


def test_show_writes_a_png(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    png = tmp_path / "curve.png"
    code, out, err = run("sources", "show", "2", "--png", str(png), "--json")
    assert code == 0 and json.loads(out)["source"]["id"] == 2
    assert err == f"wrote the light curve plot to {png}\n"
    with PILImage.open(png) as picture:
        assert picture.format == "PNG" and picture.size[0] == 640


# --- lightcurve ---------------------------------------------------------------------------------


def test_lightcurve_at_a_position(db) -> None:  # type: ignore[no-untyped-def]
    near = _json("sources", "lightcurve", "--ra", "150.001", "--dec", "16.3005", "--json")
    assert [s["id"] for s in near] == [2, 1]  # source 1 is 3.9 arcsec away
    near = _json(
        "sources", "lightcurve", "--ra", "150.001", "--dec", "16.3005", "--radius", "3", "--json"
    )
    assert [s["id"] for s in near] == [2]
    near = _json(
        "sources", "lightcurve", "--ra", "150.0009", "--dec", "16.3004", "--radius", "5", "--json"
    )
    assert [s["id"] for s in near] == [2, 1]  # nearest first
    assert near[0]["separation_arcsec"] < near[1]["separation_arcsec"] < 5
    expected = math.hypot(0.0009 * math.cos(math.radians(16.3)), 0.0004) * 3600
    assert near[1]["separation_arcsec"] == pytest.approx(expected, rel=1e-3)
    assert [m["flux_int"] for m in near[1]["light_curve"]] == [10.0, 11.0, 12.0]
    assert len(near[0]["light_curve"]) == 3

    code, out, _ = run("sources", "lightcurve", "--ra", "150", "--dec", "16.3", "--radius", "5")
    assert code == 0 and out.splitlines()[0].startswith("J100000.0+161800 (id 1)  0.00 arcsec")
    assert out.splitlines()[-1] == "2 sources within 5 arcsec of RA 150, Dec +16.3"
    code, out, _ = run("sources", "lightcurve", "--ra", "150", "--dec", "16.3", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["source_id"]) for r in rows] == [1, 1, 1, 2, 2, 2]
    assert list(rows[0])[:3] == ["source_id", "name", "separation_arcsec"]


def test_lightcurve_across_ra_zero_and_nothing_there(db) -> None:  # type: ignore[no-untyped-def]
    near = _json(
        "sources", "lightcurve", "--ra", "359.99", "--dec", "0", "--radius", "300", "--json"
    )
    assert [s["id"] for s in near] == [3, 4]
    assert near[0]["light_curve"] == []
    code, out, _ = run("sources", "lightcurve", "--ra", "10", "--dec", "10")
    assert (code, out) == (0, "no sources within 10 arcsec of RA 10, Dec +10\n")
    code, out, _ = run("sources", "lightcurve", "--ra", "10", "--dec", "10", "--json")
    assert (code, json.loads(out)) == (0, [])


# --- as a user types them -----------------------------------------------------------------------


def _user_env(data_dir: Path) -> dict[str, str]:
    drop = ("CONTIMG_", "DAGSTER_", "PROMETHEUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "CONTIMG_DATA_DIR": str(data_dir), "PYTHONWARNINGS": "ignore"}


USAGE_ERRORS = [
    (("list", "--ra", "150"), "--dec and --radius missing"),
    (("list", "--radius", "1"), "--ra and --dec missing"),
    (("list", "--ra", "150", "--dec", "16", "--radius", "-1"), "radius -1 is outside [0, 180]"),
    (("list", "--ra", "150", "--dec", "91", "--radius", "1"), "Dec 91 is outside [-90, 90]"),
    (("list", "--ra", "360", "--dec", "0", "--radius", "1"), "RA 360 is outside [0, 360)"),
    (("list", "--min-eta", "nan"), "not a finite number"),
    (("list", "--json", "--csv"), "--json and --csv are exclusive"),
    (("list", "--sort", "size"), "'size' is not one of"),
    (("list", "--date", "2025-10-1"), "is not a date"),
    (("show", "abc"), "'abc' is not a valid integer"),
    (("lightcurve", "--ra", "150"), "Missing option '--dec'"),
    (("lightcurve", "--ra", "1", "--dec", "1", "--radius", "-3"), "radius -3 is outside"),
]


def test_usage_errors_are_one_line_exit_2(data_dir: Path) -> None:
    # No database at all: usage errors are found before any is opened. One subprocess for the
    # first case (what a person sees); CliRunner for the rest (same parser, faster).
    (args, words), *rest = USAGE_ERRORS
    result = contimg(["sources", *args], _user_env(data_dir))
    assert result.returncode == 2, result.stderr
    assert error_lines(result) == result.stderr.splitlines() and len(error_lines(result)) == 1
    assert words in result.stderr and "Traceback" not in result.stderr and result.stdout == ""
    for args, words in rest:
        code, out, err = run("sources", *args)
        assert code == 2, (args, err)
        [line] = err.splitlines()
        assert line.startswith("error: ") and words in line, (args, line)
        assert out == ""
    assert sorted(p.name for p in data_dir.iterdir()) == ["dagster_home"]


def test_unwritable_png_is_one_line_and_writes_nothing(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine, _ = db
    env = {**_user_env(tmp_path / "var"), "CONTIMG_DB_PRODUCTS_URL": str(engine.url)}
    if engine.dialect.name != "sqlite":
        pytest.skip("one backend is enough for the file-system case")
    missing = tmp_path / "no-such-dir" / "curve.png"
    for target, reason in ((missing, "No such file or directory"), (tmp_path, "Is a directory")):
        result = contimg(["sources", "show", "2", "--png", str(target)], env)
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert result.stderr.splitlines() == [f"error: cannot write {target}: {reason}"]
    assert not missing.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["var"]


def test_read_only_in_an_empty_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {k: v for k, v in _user_env(cwd).items() if k != "CONTIMG_DATA_DIR"}
    for name in DATABASE_NAMES:
        env.pop(f"CONTIMG_DB_{name.upper()}_URL", None)
    result = contimg(["sources", "list"], env, cwd=cwd)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert (
        line.startswith("error: database 'products': not migrated") and "contimg db upgrade" in line
    )
    assert list(cwd.iterdir()) == []
