"""A known sky seen over several days, through the sources domain's plain code on real
databases and FITS files: extraction in the pixel pass, association, forced photometry
(backwards too), variability and the new-source flag; a re-run gives identical tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event, select

from assets.catalogue.ingest import ingest_day
from assets.products.day import products_day
from assets.qa.statistics import QAThresholds
from assets.sources.association import AssociationConfig
from assets.sources.day import (
    VariabilityConfig,
    associate_day,
    force_day,
    variability_day,
)
from assets.sources.forced import ForcedConfig
from assets.sources.variability import eta, max_significant_pair, v_index
from resources.database import Databases
from resources.fits.synthetic import ImageSpec, write_image
from resources.fits_service import FitsMetadataService
from resources.repositories.products import EXTRACTIONS, MEASUREMENTS, RELATIONS, SOURCES
from tests.fixtures_pipeline import migrated_single_url, migrated_sqlite
from tests.services import pg_admin_url, temporary_pg_database

FIRST = dt.date(2026, 3, 1)
DAYS = 4
PER_DAY = 3
RA0, DEC0 = 150.0, 16.3
NOISE = 5e-4  # Jy/beam
CELL = 4.0 / 3600.0


def _population() -> tuple[list[tuple[float, float, float]], int, int]:
    """Steady sources on a grid ≥ 10 beams apart, plus one variable and one transient (their
    indices returned). Peaks 10-40 mJy: SNR 20-80."""
    rng = np.random.default_rng(11)
    steady = []
    for i in range(4):
        for j in range(4):
            ra = RA0 + (i - 1.5) * 50 * CELL / math.cos(math.radians(DEC0))
            dec = DEC0 + (j - 1.5) * 50 * CELL
            steady.append((ra, dec, float(rng.uniform(0.01, 0.04))))
    # Both ~35 px (~10 beams) from their nearest grid neighbours.
    variable = (RA0, DEC0, 0.02)
    transient = (RA0, DEC0 + 50 * CELL, 0.015)
    return [*steady, variable, transient], len(steady), len(steady) + 1


SKY, VARIABLE, TRANSIENT = _population()


def _variable_flux(day_index: int) -> float:
    return 0.02 if day_index % 2 == 0 else 0.006  # 20 and 6 mJy: SNR 40 and 12


def write_days(incoming: Path, days: int = DAYS) -> list[dt.date]:
    dates = []
    for d in range(days):
        day = FIRST + dt.timedelta(days=d)
        dates.append(day)
        for k in range(PER_DAY):
            when = dt.datetime.combine(day, dt.time(2, 0), tzinfo=dt.UTC) + k * dt.timedelta(
                minutes=5
            )
            sky = []
            for n, (ra, dec, flux) in enumerate(SKY):
                if n == VARIABLE:
                    flux = _variable_flux(d)
                if n == TRANSIENT and d < 2:
                    continue  # appears on day 3
                sky.append((ra, dec, flux))
            spec = ImageSpec(
                date_obs=when,
                dec_deg=DEC0,
                ra_deg=RA0 + 0.01 * (k - 1),  # pointings differ: pixel grids differ
                size=256,
                n_sources=0,
                noise_jy=NOISE,
                seed=1000 * d + k,
                sky_sources=tuple(sky),
            )
            write_image(incoming / f"{when:%Y-%m-%dT%H:%M:%S}_dec+16.3.fits", spec)
    return dates


def run_day(dbs: Databases, service: FitsMetadataService, day: dt.date) -> dict:
    ingest_day(dbs, service, day, run_id="test")
    done = products_day(
        dbs, day, qa=True, thumbnails=False, thresholds=QAThresholds(), sources=True, threads=2
    )
    assoc = associate_day(dbs, day, AssociationConfig())
    forced = force_day(dbs, day, assoc.new_source_ids, ForcedConfig(), threads=2)
    var = variability_day(
        dbs,
        day,
        set(assoc.touched_source_ids) | set(forced.touched_source_ids),
        assoc.new_source_ids,
        VariabilityConfig(),
    )
    return {"pass": done, "assoc": assoc, "forced": forced, "var": var}


def table(dbs: Databases, t, *, drop=("id", "measured_at", "updated_at", "extracted_at")):  # type: ignore[no-untyped-def]
    """A table's content without surrogate ids and clocks, for comparing runs."""
    with dbs.connect("products") as conn:
        rows = [dict(r) for r in conn.execute(select(t)).mappings()]
    return rows, [{k: v for k, v in r.items() if k not in drop} for r in rows]


def _by_source(dbs: Databases) -> dict[int, list[dict]]:
    rows, _ = table(dbs, MEASUREMENTS)
    out: dict[int, list[dict]] = {}
    for r in sorted(rows, key=lambda r: (r["mjd"], r["id"])):
        out.setdefault(r["source_id"], []).append(r)
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dbs(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Databases]:
    """The five databases at head, on each backend (the sources lock differs between them)."""
    if request.param == "sqlite":
        yield migrated_sqlite(data_dir)
        return
    dbs = migrated_single_url(request.getfixturevalue("pg_url"))
    yield dbs
    for name in dbs.names:
        dbs.engine(name, check_schema=False).dispose()


@pytest.fixture
def sky_days(data_dir: Path, dbs: Databases, service: FitsMetadataService) -> dict:
    dates = write_days(data_dir / "incoming")
    reports = {day: run_day(dbs, service, day) for day in dates}
    return {"dates": dates, "reports": reports}


def _nearest(sources: list[dict], ra: float, dec: float) -> dict:
    def sep(s: dict) -> float:
        return math.hypot((s["wavg_ra"] - ra) * math.cos(math.radians(dec)), s["wavg_dec"] - dec)

    return min(sources, key=sep)


def test_known_sky_is_extracted_associated_forced_and_flagged(
    dbs: Databases, sky_days: dict
) -> None:
    n_images = DAYS * PER_DAY
    sources, _ = table(dbs, SOURCES)
    # every injected source is one sky source; nothing else at SNR >= 5 on this little noise
    assert len(sources) == len(SKY), [s["name"] for s in sources]
    for n, (ra, dec, _flux) in enumerate(SKY):
        s = _nearest(sources, ra, dec)
        offset = math.hypot((s["wavg_ra"] - ra) * math.cos(math.radians(dec)), s["wavg_dec"] - dec)
        assert offset * 3600 < 1.0  # weighted position within 1" (beam 20")
        if n == TRANSIENT:
            # detected on days 3-4, forced backwards in the 6 earlier images
            assert (s["n_meas"], s["n_meas_forced"]) == (n_images, 2 * PER_DAY)
            assert s["first_obs_date"] == FIRST + dt.timedelta(days=2)
            assert s["new"] and s["new_high_sigma"] >= 5
        else:
            assert (s["n_meas"], s["n_meas_forced"]) == (n_images, 0)
            assert not s["new"]
    # light curves: V and η as computed directly from the stored light curve
    curves = _by_source(dbs)
    for s in sources:
        lc = curves[s["id"]]
        f = np.array([m["flux_int"] for m in lc])
        e = np.array([m["flux_int_err"] for m in lc])
        assert s["v_int"] == pytest.approx(v_index(f), rel=1e-9)
        assert s["eta_int"] == pytest.approx(eta(f, e), rel=1e-9)
        # ...updated day by day from the running state, as the whole light curve gives them
        pair = max_significant_pair(f, e)
        assert s["m_abs_significant_max_int"] == (
            pytest.approx(abs(pair.m), rel=1e-12) if pair else None
        )
        assert s["n_meas"] == len(lc) and s["avg_flux_int"] == pytest.approx(f.mean())
    with dbs.connect("products") as conn:  # every measurement counted once
        left = conn.execute(select(MEASUREMENTS.c.id).where(~MEASUREMENTS.c.in_stats)).all()
    assert left == []
    var = _nearest(sources, *SKY[VARIABLE][:2])
    steady = [s for s in sources if s["id"] != var["id"] and not s["new"]]
    assert var["eta_int"] > 50 and var["v_int"] > 0.4
    assert var["m_abs_significant_max_int"] > 0.8  # 20 vs 6 mJy: m = 1.08
    assert max(s["eta_int"] for s in steady) < 10
    # the forced fits of the transient before it appeared are consistent with no flux
    t = _nearest(sources, *SKY[TRANSIENT][:2])
    forced = [m for m in curves[t["id"]] if m["forced"]]
    assert len(forced) == 2 * PER_DAY
    assert all(abs(m["flux_peak"]) < 4 * m["flux_peak_err"] for m in forced)
    # each image has one extraction record
    ext, _ = table(dbs, EXTRACTIONS)
    assert len(ext) == n_images and all(e["error"] is None for e in ext)


def _sources_content(dbs: Databases) -> list[tuple]:
    """The sources table without ids, clocks and the running sums, floats to 9 digits (the
    weighted sums of a re-run add the same values in another order)."""
    _rows, content = table(dbs, SOURCES)
    out = []
    for r in content:
        r.pop("state")
        out.append(
            tuple(
                (k, float(f"{v:.9g}") if isinstance(v, float) else v) for k, v in sorted(r.items())
            )
        )
    return sorted(out)


def _measurements_content(dbs: Databases, *, blind_only: bool = False) -> list[str]:
    """Measurements with their source named (ids of re-created sources change); with
    `blind_only`, the blind ones without d2d and dr plus the keys of the forced ones."""
    names = {r["id"]: r["name"] for r in table(dbs, SOURCES)[0]}
    rows, content = table(dbs, MEASUREMENTS)
    out = []
    for r, c in zip(rows, content, strict=True):
        c = {**c, "source_id": names.get(r["source_id"])}
        if blind_only:
            if c["forced"]:
                c = {k: c[k] for k in ("image_id", "source_id", "forced")}
            c = {k: v for k, v in c.items() if k not in ("d2d", "dr")}
        out.append(repr(c))
    return sorted(out)


def _source_keys(dbs: Databases) -> list[tuple]:
    return sorted(
        (r["name"], r["n_meas"], r["n_meas_forced"], r["n_rel"], r["new"])
        for r in table(dbs, SOURCES)[0]
    )


def test_rerun_of_a_day_gives_identical_tables(
    dbs: Databases, service: FitsMetadataService, sky_days: dict
) -> None:
    """Re-running day 2 twice: each run leaves the same blind measurements, the same forced
    (image, source) pairs, the same sources and relations - no duplicates, no orphans - and the
    second run changes nothing at all. The first may change values that depend on when they
    were computed: a measurement's distance to its source (d2d, dr) and a forced fit's position
    are those of the source as it stood then, and days 3 and 4 have moved it since."""
    measurements_before = _measurements_content(dbs, blind_only=True)
    sources_before = _source_keys(dbs)
    relations_before = len(table(dbs, RELATIONS)[0])
    day2 = sky_days["dates"][1]
    runs = []
    for _ in range(2):
        again = run_day(dbs, service, day2)
        assert again["pass"].sources.extracted == 0  # files unchanged: no new extraction
        assert _measurements_content(dbs, blind_only=True) == measurements_before
        assert _source_keys(dbs) == sources_before
        assert len(table(dbs, RELATIONS)[0]) == relations_before
        runs.append((_measurements_content(dbs), _sources_content(dbs)))
    assert runs[0] == runs[1]


def _grid_day(incoming: Path, side: int) -> dt.date:
    """One day of three images of a field with side x side steady sources (SNR 40-80)."""
    for k in range(PER_DAY):
        when = dt.datetime.combine(FIRST, dt.time(2, 0), tzinfo=dt.UTC) + k * dt.timedelta(
            minutes=5
        )
        sky = tuple(
            (
                RA0 + (i - (side - 1) / 2) * 40 * CELL / math.cos(math.radians(DEC0)),
                DEC0 + (j - (side - 1) / 2) * 40 * CELL,
                0.02 + 0.002 * (i + j),
            )
            for i in range(side)
            for j in range(side)
        )
        spec = ImageSpec(
            date_obs=when,
            dec_deg=DEC0,
            ra_deg=RA0 + 0.01 * (k - 1),
            size=256,
            n_sources=0,
            noise_jy=NOISE,
            seed=k,
            sky_sources=sky,
        )
        write_image(incoming / f"{when:%Y-%m-%dT%H:%M:%S}_dec+16.3.fits", spec)
    return FIRST


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_statements_of_a_day_do_not_grow_with_its_new_sources(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Association, forced photometry and variability of a day talk to the database in batches:
    a field with 25 new sources costs the same statements as one with 4 (a statement per
    source - an insert, a state read and an update, an image lookup in forced photometry and
    another for the new-source flag - made the first day of a field cost queries per
    detection)."""
    counts = {}
    with contextlib.ExitStack() as stack:
        for side in (2, 5):
            root = tmp_path / f"side{side}"
            monkeypatch.setenv("CONTIMG_DATA_DIR", str(root))
            monkeypatch.setenv("CONTIMG_INCOMING_DIRS", str(root / "incoming"))
            (root / "incoming").mkdir(parents=True)
            if backend == "sqlite":
                dbs = migrated_sqlite(root)
            else:
                name = stack.enter_context(temporary_pg_database())
                dbs = migrated_single_url(pg_admin_url(database=name))
            stack.callback(
                lambda dbs=dbs: [dbs.engine(n, check_schema=False).dispose() for n in dbs.names]
            )
            service = FitsMetadataService(cache_path=root / "cache.sqlite3")
            day = _grid_day(root / "incoming", side)
            ingest_day(dbs, service, day, run_id="test")
            products_day(
                dbs,
                day,
                qa=True,
                thumbnails=False,
                thresholds=QAThresholds(),
                sources=True,
                threads=1,
            )
            statements: list[str] = []

            def seen(conn, cursor, statement, *args, into=statements) -> None:  # type: ignore[no-untyped-def]
                into.append(statement)

            engine = dbs.engine("products")
            event.listen(engine, "before_cursor_execute", seen)
            assoc = associate_day(dbs, day, AssociationConfig())
            forced = force_day(dbs, day, assoc.new_source_ids, ForcedConfig(), threads=1)
            variability_day(
                dbs,
                day,
                set(assoc.touched_source_ids) | set(forced.touched_source_ids),
                assoc.new_source_ids,
                VariabilityConfig(),
            )
            event.remove(engine, "before_cursor_execute", seen)
            assert len(assoc.new_source_ids) == side * side
            counts[side] = len(statements)
    assert counts[5] == counts[2], counts
