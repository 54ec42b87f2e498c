"""Issue 17's three classes of valid files that used to be refused: lookup-table distortions,
a 1-D HDU before the image, non-celestial (solar, linear) frames; and what ingest and QA do
with an image whose centre is unknown."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from sqlalchemy import select

from assets.catalogue.ingest import ingest_day
from assets.qa.grading import grade_day
from assets.qa.statistics import QAThresholds
from resources.fits.parser import parse_fits, read_obs_time
from resources.fits.synthetic import ImageSpec, make_header, make_pixels
from resources.fits_service import FitsMetadataService
from resources.repositories.products import IMAGES, ImageFilter, list_images
from resources.repositories.sky import Cone
from tests.fixtures_pipeline import migrated_sqlite
from tests.resources.fits.helpers import WCS_DATA, WHEN, dsa_image


def _sunpy_file(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("sunpy")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "test" / name


def _solar(path: Path, ctype1: str, ctype2: str, unit: str = "arcsec") -> Path:
    """A small synthetic image whose image axes are in a solar or linear frame."""
    spec = ImageSpec(date_obs=WHEN, dec_deg=0.0, ra_deg=0.0, size=32, n_sources=0)
    header = make_header(spec)
    header.update(CTYPE1=ctype1, CTYPE2=ctype2, CUNIT1=unit, CUNIT2=unit, CRVAL1=10.0,
                  CRVAL2=-5.0, CDELT1=2.0, CDELT2=2.0)  # fmt: skip
    for key in ("RADESYS", "EQUINOX", "LONPOLE", "LATPOLE", "PV2_1", "PV2_2"):
        header.remove(key, ignore_missing=True)
    data = make_pixels(spec)[np.newaxis, np.newaxis, :, :]
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)
    return path


# --- 1. lookup-table distortions ------------------------------------------------------------


def _centres(path: Path) -> tuple[SkyCoord, SkyCoord]:
    """astropy's centre of HDU 1's central pixel (50, 50): with the lookup tables, and with
    only the SIP polynomial (the lookup cards removed)."""
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = WCS(hdul[1].header, hdul).pixel_to_world(50, 50).icrs
        header = hdul[1].header.copy()
        for key in {k for k in header if k.startswith(("CPDIS", "D2IM", "DP"))}:
            header.remove(key, ignore_missing=True, remove_all=True)
        sip_only = WCS(header).pixel_to_world(50, 50).icrs
    return full, sip_only


def test_lookup_distortion_is_resolved_with_the_hdulist() -> None:
    path = WCS_DATA / "dist_lookup.fits.gz"
    meta = parse_fits(path)  # used to be MemoryError: NAXES was not set
    assert meta.hdu_index == 1 and meta.naxis == (100, 100)
    full, sip_only = _centres(path)
    assert full.separation(sip_only) > 1 * u.mas  # the tables move this pixel by ~1.5 mas
    assert SkyCoord(meta.ra_deg, meta.dec_deg, unit="deg").separation(full) < 0.01 * u.mas
    assert not any("distortion" in w for w in meta.warnings)


def test_missing_lookup_extensions_drop_the_distortion_with_a_warning(tmp_path: Path) -> None:
    with fits.open(WCS_DATA / "dist_lookup.fits.gz") as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.HDUList([hdul[0].copy(), hdul[1].copy()]).writeto(tmp_path / "cut.fits")
    _, sip_only = _centres(WCS_DATA / "dist_lookup.fits.gz")
    meta = parse_fits(tmp_path / "cut.fits")
    notes = [w for w in meta.warnings if "distortion lookup tables" in w]
    assert len(notes) == 1 and "CPDIS1" in notes[0] and "without that distortion" in notes[0]
    assert SkyCoord(meta.ra_deg, meta.dec_deg, unit="deg").separation(sip_only) < 0.01 * u.mas


# --- 2. the first HDU that spans a plane ----------------------------------------------------


def _spectrum_then_image(path: Path, spectrum_shape: tuple[int, ...]) -> Path:
    spec = ImageSpec(date_obs=WHEN, dec_deg=54.6, size=32, n_sources=0)
    primary = fits.PrimaryHDU(data=np.arange(np.prod(spectrum_shape), dtype=np.float32)
                              .reshape(spectrum_shape))  # fmt: skip
    primary.header["DATE-OBS"] = "1999-01-01"  # must not be the date: the image's HDU is
    image = fits.ImageHDU(data=make_pixels(spec)[np.newaxis, np.newaxis], header=make_header(spec))
    fits.HDUList([primary, image]).writeto(path, overwrite=True)
    return path


@pytest.mark.parametrize("shape", [(4096,), (1, 4096)], ids=["1-D", "4096x1"])
def test_image_after_a_spectrum_is_catalogued_from_its_hdu(tmp_path: Path, shape: tuple) -> None:
    path = _spectrum_then_image(tmp_path / "spec.fits", shape)
    meta = parse_fits(path)
    assert meta.hdu_index == 1 and meta.naxis == (32, 32, 1, 1)
    assert meta.dec_deg == pytest.approx(54.6, abs=1e-6)
    assert meta.date_obs == WHEN  # the image HDU's own DATE-OBS, not the primary's
    assert read_obs_time(path) == WHEN  # the ingest sensor reads the same HDU
    note = next(w for w in meta.warnings if "passed over" in w)
    assert "HDU 0 (4096)" in note or "HDU 0 (4096x1)" in note


def test_gzip_image_after_a_spectrum(tmp_path: Path) -> None:
    plain = _spectrum_then_image(tmp_path / "spec.fits", (4096,))
    packed = tmp_path / "spec.fits.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    assert parse_fits(packed).hdu_index == 1 and read_obs_time(packed) == WHEN


# --- 3. non-celestial frames ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctypes", "unit", "named"),
    [
        (("HPLN-TAN", "HPLT-TAN"), "arcsec", "helioprojective (HPLN/HPLT)"),
        (("HGLN-CAR", "HGLT-CAR"), "deg", "Stonyhurst heliographic (HGLN/HGLT)"),
        (("CRLN-CEA", "CRLT-CEA"), "deg", "Carrington heliographic (CRLN/CRLT)"),
        (("SOLX", "SOLY"), "arcsec", "helioprojective-cartesian (SOLX/SOLY)"),
        (("LINEAR", "LINEAR"), "m", "linear (LINEAR/LINEAR)"),
    ],
    ids=lambda v: v[0] if isinstance(v, tuple) else None,
)
def test_non_sky_frames_are_catalogued_without_centre(
    tmp_path: Path, ctypes: tuple[str, str], unit: str, named: str
) -> None:
    meta = parse_fits(_solar(tmp_path / "sun.fits", *ctypes, unit=unit))
    assert (meta.ra_deg, meta.dec_deg, meta.cellsize_arcsec) == (None, None, None)
    assert meta.naxis == (32, 32, 1, 1) and meta.freq_hz == pytest.approx(1.4e9)
    assert any(named in w and "unknown (null)" in w for w in meta.warnings), meta.warnings


def test_solar_frames_registered_by_sunpy_do_not_become_sky_positions() -> None:
    """sunpy adds its frames to astropy's WCS registry on import; the answer must not change."""
    code = (
        "import sunpy.coordinates\n"
        "from resources.fits.parser import parse_fits\n"
        f"m = parse_fits({str(_sunpy_file('aia_171_level1.fits'))!r})\n"
        "print(m.ra_deg, m.dec_deg, m.cellsize_arcsec)\n"
        "print([w for w in m.warnings if 'HPLN/HPLT' in w])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[3], timeout=120)  # fmt: skip
    first, second = out.stdout.splitlines()
    assert first == "None None None"
    assert "helioprojective (HPLN/HPLT)" in second


def test_unknown_radesys_leaves_the_centre_null_with_a_warning(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "x.fits", size=16, n_sources=0, extra_cards={"RADESYS": "NOPE"})
    meta = parse_fits(path)
    assert meta.ra_deg is None and meta.dec_deg is None
    notes = [w for w in meta.warnings if "cannot determine the celestial frame" in w]
    assert len(notes) == 1 and "RADESYS NOPE" in notes[0] and "(RA/DEC)" in notes[0]


# --- ingest and QA of an image without a centre ---------------------------------------------


def test_image_without_centre_is_ingested_graded_and_left_out_of_cone_searches(
    data_dir: Path, tmp_path: Path
) -> None:
    incoming = data_dir / "incoming"
    incoming.mkdir()
    sun = _solar(incoming / "sun.fits", "HPLN-TAN", "HPLT-TAN")
    sky = dsa_image(incoming / "sky.fits", dec_deg=54.6, ra_deg=120.0, size=32, n_sources=0)
    for path in (sun, sky):
        stamp = (WHEN + dt.timedelta(minutes=20)).timestamp()
        os.utime(path, (stamp, stamp))
    dbs = migrated_sqlite(data_dir)
    service = FitsMetadataService(cache_path=tmp_path / "cache.sqlite3", max_workers=1)
    try:
        report = ingest_day(dbs, service, WHEN.date(), run_id="run-null-centre")
    finally:
        service.close()
    assert report.failures == [] and report.parsed == 2
    with dbs.connect("products") as conn:
        rows = {Path(r["path"]).name: r for r in conn.execute(select(IMAGES)).mappings()}
    assert rows["sun.fits"]["ra_deg"] is None and rows["sun.fits"]["dec_deg"] is None
    assert rows["sky.fits"]["dec_deg"] == pytest.approx(54.6, abs=1e-6)

    graded = grade_day(dbs, WHEN.date(), QAThresholds(), max_workers=1)
    assert graded.graded == 2 and graded.unreadable == []
    with dbs.connect("products") as conn:
        listed = {Path(i.path).name: i for i in list_images(conn, ImageFilter(date=WHEN.date()))}
        assert listed["sun.fits"].grade in ("good", "warn", "fail")  # graded like any other
        assert listed["sun.fits"].grade == listed["sky.fits"].grade  # same pixels, same verdict
        cone = ImageFilter(cone=Cone(ra_deg=120.0, dec_deg=54.6, radius_deg=180.0))
        assert [Path(i.path).name for i in list_images(conn, cone)] == ["sky.fits"]
