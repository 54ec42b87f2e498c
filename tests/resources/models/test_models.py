"""The five schemas on a real (migrated) SQLite database: columns, constraints, ON DELETE rules,
and the HDF5 name helpers (the calibration query is tested with its repository)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from migrations import runner
from resources.engines import build_engine
from resources.errors import FileNameError
from resources.fits.metadata import ImageMetadata
from resources.models import METADATA
from resources.models.cal_registry import (
    APPLY_ORDER,
    caltable_type_from_path,
)
from resources.models.hdf5 import Hdf5File, parse_hdf5_name
from resources.models.products import (
    Image,
    ImageQA,
    Measurement,
    MeasurementSet,
    Source,
    SourceExtraction,
    Thumbnail,
    image_values,
)
from resources.settings import DATABASE_NAMES, PoolSettings


def migrated_engine(name: str, data_dir: Path) -> Engine:
    url = f"sqlite:///{data_dir / f'{name}.sqlite3'}"
    runner.upgrade(name, url, backup=False)
    return build_engine(url, PoolSettings())


def sample_metadata(path: str = "/data/img1.fits") -> ImageMetadata:
    return ImageMetadata(
        path=path,
        size_bytes=2_000_000,
        mtime_ns=1_700_000_000_000_000_000,
        fingerprint="ab" * 16,
        hdu_index=0,
        naxis=(512, 512, 1, 1),
        bitpix=-32,
        width=512,
        height=512,
        ra_deg=150.1,
        dec_deg=2.2,
        cellsize_arcsec=3.0,
        freq_hz=1.4e9,
        bandwidth_hz=2.5e8,
        stokes="I",
        beam_major_arcsec=30.0,
        beam_minor_arcsec=20.0,
        beam_pa_deg=45.0,
        date_obs=dt.datetime(2025, 10, 5, 12, 0, tzinfo=dt.UTC),
        mjd_obs=60953.5,
        obs_date=dt.date(2025, 10, 5),
        telescope="DSA",
        object="field1",
        bunit="JY/BEAM",
        warnings=("beam from HISTORY",),
    )


def test_metadata_keys_are_the_database_names() -> None:
    assert tuple(METADATA) == DATABASE_NAMES
    owners: dict[str, str] = {}
    for name, metadata in METADATA.items():
        for table in metadata.tables:
            assert table not in owners, f"{table} defined by {owners.get(table)} and {name}"
            owners[table] = name


def test_images_mirror_every_image_metadata_field(data_dir: Path) -> None:
    columns = {c.name for c in Image.__table__.columns}
    fields = {f.name for f in dataclasses.fields(ImageMetadata)}
    assert fields <= columns, fields - columns
    engine = migrated_engine("products", data_dir)
    md = sample_metadata()
    with engine.begin() as conn:
        conn.execute(insert(Image.__table__).values(**image_values(md)))
        row = conn.execute(select(Image.__table__)).mappings().one()
    assert row["naxis"] == [512, 512, 1, 1]
    assert row["warnings"] == ["beam from HISTORY"]
    assert row["obs_date"] == dt.date(2025, 10, 5)
    assert row["beam_pa_deg"] == 45.0 and row["freq_hz"] == 1.4e9
    indexed = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("images")}
    assert {
        ("obs_date",),
        ("dec_deg", "ra_deg"),
        ("obs_date", "dec_deg"),
        ("ra_deg",),
        ("date_obs",),
    } <= indexed
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(Image.__table__).values(**image_values(md)))  # duplicate path
    engine.dispose()


def test_on_delete_rules(data_dir: Path) -> None:
    engine = migrated_engine("products", data_dir)
    t_img, t_qa, t_th = Image.__table__, ImageQA.__table__, Thumbnail.__table__
    t_src, t_m, t_ms = Source.__table__, Measurement.__table__, MeasurementSet.__table__
    t_ex = SourceExtraction.__table__
    with engine.begin() as conn:
        ms_id = conn.execute(insert(t_ms).values(path="/ms/a.ms").returning(t_ms.c.id)).scalar()
        img = conn.execute(
            insert(t_img)
            .values(**image_values(sample_metadata()), ms_id=ms_id)
            .returning(t_img.c.id)
        ).scalar_one()
        conn.execute(insert(t_qa).values(image_id=img, grade="good", reasons=[], thresholds={}))
        conn.execute(insert(t_th).values(image_id=img, path="/t/a.png", width=256, height=256))
        conn.execute(insert(t_ex).values(image_id=img, n_sources=2, settings={}))
        src = conn.execute(
            insert(t_src)
            .values(name="J0", wavg_ra=1.0, wavg_dec=2.0, state={})
            .returning(t_src.c.id)
        ).scalar_one()
        day = sample_metadata().obs_date
        for forced in (False, True):
            conn.execute(
                insert(t_m).values(
                    image_id=img, source_id=src, forced=forced, obs_date=day, ra=1.0, dec=2.0
                )
            )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(t_qa).values(grade="excellent"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(t_m).values(association="sideways"))
    with engine.begin() as conn:
        conn.execute(delete(t_ms))  # SET NULL: the image stays
        assert conn.execute(select(t_img.c.ms_id)).scalar_one() is None
        conn.execute(delete(t_src))  # CASCADE: a removed sky source takes its measurements
        assert conn.execute(select(func.count()).select_from(t_m)).scalar_one() == 0
        conn.execute(delete(t_img))  # CASCADE to everything derived from the image
        for table in (t_qa, t_th, t_ex):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("2025-10-05T12:00:00_kcal", "K"),
        ("x_bacal", "BA"),
        ("x_bpcal", "BP"),
        ("x_gacal", "GA"),
        ("x_gpcal", "GP"),
        ("/cal/x_2gcal/", "2G"),
        ("x_flux.cal", "FLUX"),
    ],
)
def test_caltable_type_from_path(name: str, kind: str) -> None:
    assert caltable_type_from_path(name) == (kind, APPLY_ORDER[kind])


def test_caltable_unknown_suffix_names_the_file() -> None:
    with pytest.raises(FileNameError, match="x_weird"):
        caltable_type_from_path("/cal/x_weird")


def test_parse_hdf5_name_and_groups(data_dir: Path) -> None:
    parsed = parse_hdf5_name("/raw/2025-10-05T12:00:00_sb03.hdf5")
    assert parsed.subband == 3
    assert parsed.timestamp == dt.datetime(2025, 10, 5, 12, tzinfo=dt.UTC)
    assert parsed.mjd == pytest.approx(60953.5)
    assert parsed.timestamp_iso == "2025-10-05T12:00:00"
    for bad in ("2025-10-05T12:00:00_sb16.hdf5", "2025-13-05T12:00:00_sb01.hdf5", "x.hdf5"):
        with pytest.raises(FileNameError, match=bad.split("/")[-1]):
            parse_hdf5_name(bad)
    engine = migrated_engine("hdf5", data_dir)
    t = Hdf5File.__table__
    with engine.begin() as conn:
        conn.execute(
            insert(t).values(
                path="/raw/" + parsed.filename,
                filename=parsed.filename,
                subband=parsed.subband,
                timestamp_iso=parsed.timestamp_iso,
                timestamp=parsed.timestamp,
                mjd=parsed.mjd,
                group_id=parsed.timestamp_iso,
            )
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(t).values(
                path="/raw/y",
                filename="y",
                subband=16,
                timestamp_iso="x",
                timestamp=parsed.timestamp,
                mjd=1.0,
            )
        )
    engine.dispose()
