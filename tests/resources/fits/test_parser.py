"""Metadata extraction on real files: astropy's test data and synthetic DSA-110 images."""

from __future__ import annotations

import datetime as dt
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from resources.errors import (
    DecompressionError,
    MissingObservationDateError,
    NoImageError,
    UnsupportedLayoutError,
)
from resources.fits import structure
from resources.fits.parser import parse_fits, read_obs_date, read_obs_time, require_obs_date
from resources.fits.synthetic import BANDWIDTH_HZ, FREQ_HZ, ImageSpec, make_header, make_pixels
from tests.resources.fits.helpers import (
    COMPRESSED_DATA,
    FITS_DATA,
    MODELING_DATA,
    NDDATA_DATA,
    WCS_DATA,
    WHEN,
    dsa_image,
    independent_centre,
    write_hdu,
)


def test_dsa_image_metadata_matches_independent_wcs(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "a.fits", size=96, dec_deg=65.7)
    meta = parse_fits(path)
    ra, dec = independent_centre(path, 0)
    assert meta.ra_deg == pytest.approx(ra, abs=1e-9)
    assert meta.dec_deg == pytest.approx(dec, abs=1e-9)
    assert meta.dec_deg == pytest.approx(65.7, abs=1e-6)  # CRPIX = N/2 + 1: centre = phase centre
    assert meta.naxis == (96, 96, 1, 1) and (meta.width, meta.height) == (96, 96)
    assert meta.bitpix == -32 and meta.hdu_index == 0
    assert meta.cellsize_arcsec == pytest.approx(4.0)
    assert meta.freq_hz == pytest.approx(FREQ_HZ)
    assert meta.bandwidth_hz == pytest.approx(BANDWIDTH_HZ)
    assert meta.stokes == "I"
    assert (meta.beam_major_arcsec, meta.beam_minor_arcsec) == (pytest.approx(20.0),
                                                                 pytest.approx(12.0))  # fmt: skip
    assert meta.beam_pa_deg == pytest.approx(15.0)
    assert meta.date_obs == WHEN and meta.obs_date == WHEN.date()
    assert meta.mjd_obs == pytest.approx(60953.142361, abs=1e-6)
    assert (meta.telescope, meta.bunit) == ("DSA-110", "Jy/beam")
    assert meta.size_bytes == path.stat().st_size and meta.mtime_ns == path.stat().st_mtime_ns
    assert meta.fingerprint.startswith("xxh3:") and meta.warnings == ()


@pytest.mark.parametrize("compression", ["gzip", "rice"])
def test_compressed_dsa_images_give_the_same_metadata(tmp_path: Path, compression: str) -> None:
    plain = parse_fits(dsa_image(tmp_path / "a.fits"))
    name = "b.fits.gz" if compression == "gzip" else "b.fz"
    packed = parse_fits(dsa_image(tmp_path / name, compression=compression))
    assert packed.hdu_index == (0 if compression == "gzip" else 1)
    for field in ("ra_deg", "dec_deg", "freq_hz", "bandwidth_hz", "beam_major_arcsec",
                  "date_obs", "naxis", "bitpix", "stokes"):  # fmt: skip
        assert getattr(packed, field) == getattr(plain, field), field


@pytest.mark.parametrize(
    ("path", "hdu"),
    [
        (FITS_DATA / "scale.fits", 0),  # scaled integers, TAN
        (FITS_DATA / "comp.fits", 1),  # tile-compressed, SIN, FK4-era EQUINOX 1950
        (COMPRESSED_DATA / "m13_rice.fits", 1),
        (COMPRESSED_DATA / "m13_gzip.fits", 1),
        (WCS_DATA / "dss.14.29.56-62.41.05.fits.gz", 0),  # gzip, PC matrix
        (MODELING_DATA / "1904-66_AZP.fits", 0),
        (NDDATA_DATA / "sip-wcs.fits", 0),  # SIP distortion, FK5
        (FITS_DATA / "checksum.fits", 0),
    ],
    ids=lambda p: p.name if isinstance(p, Path) else str(p),
)
def test_astropy_images_centre_matches_independent_wcs(path: Path, hdu: int) -> None:
    meta = parse_fits(path)
    assert meta.hdu_index == hdu
    ra, dec = independent_centre(path, hdu)
    assert meta.ra_deg == pytest.approx(ra, abs=1e-9)
    assert meta.dec_deg == pytest.approx(dec, abs=1e-9)
    assert meta.cellsize_arcsec is not None and meta.cellsize_arcsec > 0


def test_galactic_and_fk5_headers_are_converted_to_icrs(tmp_path: Path) -> None:
    spec = ImageSpec(date_obs=WHEN, dec_deg=0.0, ra_deg=0.0, size=32, n_sources=0)
    data = make_pixels(spec)
    gal = dict(make_header(spec))
    gal.update(CTYPE1="GLON-SIN", CTYPE2="GLAT-SIN", CRVAL1=0.0, CRVAL2=0.0)
    gal.pop("RADESYS")
    gal.pop("EQUINOX")
    meta = parse_fits(write_hdu(tmp_path / "gal.fits", data, gal))
    # The Galactic centre in ICRS (Reid & Brunthaler): RA 266.405, Dec -28.936.
    assert meta.ra_deg == pytest.approx(266.405, abs=0.01)
    assert meta.dec_deg == pytest.approx(-28.936, abs=0.01)
    assert (meta.ra_deg, meta.dec_deg) == pytest.approx(independent_centre(tmp_path / "gal.fits",
                                                                             0), abs=1e-9)  # fmt: skip
    fk5 = dict(make_header(spec))
    fk5.update(RADESYS="FK5", EQUINOX=1950.0, CRVAL1=10.0, CRVAL2=20.0)
    meta = parse_fits(write_hdu(tmp_path / "fk5.fits", data, fk5))
    assert abs(meta.ra_deg - 10.0) > 0.3  # precessed from B1950 equinox to ICRS
    assert (meta.ra_deg, meta.dec_deg) == pytest.approx(independent_centre(tmp_path / "fk5.fits",
                                                                             0), abs=1e-9)  # fmt: skip


def test_image_in_extension_inherits_date_from_primary() -> None:
    meta = parse_fits(FITS_DATA / "test0.fits")
    assert meta.hdu_index == 1 and meta.naxis == (40, 40)
    assert meta.date_obs == dt.datetime(1994, 5, 19, tzinfo=dt.UTC)  # '19/05/94' means 19yy
    assert any("celestial WCS" in w for w in meta.warnings)


def test_old_date_form_and_gzip_from_astropy_data() -> None:
    meta = parse_fits(WCS_DATA / "dss.14.29.56-62.41.05.fits.gz")
    assert meta.obs_date == dt.date(1976, 3, 11)
    assert meta.telescope == "UK 48-inch Schmidt"


def test_restfrq_and_header_beam() -> None:
    meta = parse_fits(MODELING_DATA / "1904-66_AZP.fits")
    with fits.open(MODELING_DATA / "1904-66_AZP.fits") as hdul:
        h = hdul[0].header
        assert meta.beam_major_arcsec == pytest.approx(h["BMAJ"] * 3600)
        assert meta.beam_minor_arcsec == pytest.approx(h["BMIN"] * 3600)
        assert meta.freq_hz == pytest.approx(h["RESTFRQ"])
    assert meta.bandwidth_hz is None


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (FITS_DATA / "table.fits", NoImageError),
        (FITS_DATA / "ascii.fits", NoImageError),
        (FITS_DATA / "zerowidth.fits", NoImageError),  # a zero-size primary, then tables
        (FITS_DATA / "random_groups.fits", NoImageError),
        (FITS_DATA / "group.fits", NoImageError),
        (FITS_DATA / "invalid" / "group_invalid.fits", NoImageError),
        (FITS_DATA / "arange.fits", UnsupportedLayoutError),  # 3-D, 7 planes, no CTYPE3
        (WCS_DATA / "dist.fits", NoImageError),  # only a 1-D D2IMARR lookup table
        (WCS_DATA / "ie6d07ujq_wcs.fits", NoImageError),  # only 2-D D2IMARR lookup tables
        (FITS_DATA / "compressed_float_bzero.fits", UnsupportedLayoutError),  # a lone 1-D vector
        (FITS_DATA / "lzw.fits.Z", DecompressionError),
    ],
    ids=lambda p: p.name if isinstance(p, Path) else p.__name__,
)
def test_astropy_non_images_raise_the_specific_error(path: Path, error: type) -> None:
    with pytest.raises(error) as info:
        parse_fits(path)
    assert info.value.path == str(path)


# --- observation time -------------------------------------------------------------------------


def _dated(tmp_path: Path, drop: tuple[str, ...] = ("DATE-OBS",), **cards: object) -> Path:
    spec = ImageSpec(date_obs=WHEN, dec_deg=16.3, size=16, n_sources=0, drop_cards=drop,
                     extra_cards=cards)  # fmt: skip
    return dsa_image(tmp_path / "d.fits", **{k: getattr(spec, k) for k in
                     ("size", "n_sources", "drop_cards", "extra_cards")})  # fmt: skip


@pytest.mark.parametrize(
    ("cards", "expected"),
    [
        ({"DATE-OBS": "2025-10-05"}, dt.datetime(2025, 10, 5, tzinfo=dt.UTC)),
        ({"DATE-OBS": "2025-10-05T23:59:59.5"},
         dt.datetime(2025, 10, 5, 23, 59, 59, 500000, tzinfo=dt.UTC)),
        ({"DATE-OBS": "05/10/97"}, dt.datetime(1997, 10, 5, tzinfo=dt.UTC)),
        ({"DATE-OBS": "", "MJD-OBS": 60953.5}, dt.datetime(2025, 10, 5, 12, tzinfo=dt.UTC)),
        ({"MJD-OBS": 60953.25}, dt.datetime(2025, 10, 5, 6, tzinfo=dt.UTC)),
        ({"DATE-BEG": "2025-10-04T22:00:00"}, dt.datetime(2025, 10, 4, 22, tzinfo=dt.UTC)),
        ({"DATE-AVG": "2025-10-04T22:30:00"}, dt.datetime(2025, 10, 4, 22, 30, tzinfo=dt.UTC)),
        ({"DATE-OBS": "2025-10-05", "MJD-OBS": 1.0}, dt.datetime(2025, 10, 5, tzinfo=dt.UTC)),
    ],
)  # fmt: skip
def test_observation_time_rules(tmp_path: Path, cards: dict, expected: dt.datetime) -> None:
    path = _dated(tmp_path, **cards)
    meta = parse_fits(path)
    assert meta.date_obs == expected
    assert meta.obs_date == expected.date()
    assert read_obs_time(path) == expected
    assert read_obs_date(path) == expected.date()


def test_date_card_alone_is_never_used(tmp_path: Path) -> None:
    path = _dated(tmp_path)  # DATE (write time) stays, DATE-OBS dropped
    meta = parse_fits(path)
    assert meta.date_obs is None and meta.obs_date is None and meta.mjd_obs is None
    assert any("DATE" in w and "not used" in w for w in meta.warnings)
    assert read_obs_date(path) is None
    with pytest.raises(MissingObservationDateError) as info:
        require_obs_date(meta, mtime_fallback=False)
    assert info.value.path == meta.path and "CONTIMG_OBS_DATE_FALLBACK" in str(info.value)
    filled = require_obs_date(meta, mtime_fallback=True)
    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime_ns / 1e9, tz=dt.UTC)
    assert filled.date_obs == mtime and filled.obs_date == mtime.date()
    assert "modification time" in filled.warnings[-1]


def test_unparsable_date_obs_falls_through_with_warning(tmp_path: Path) -> None:
    meta = parse_fits(_dated(tmp_path, **{"DATE-OBS": "yesterday", "MJD-OBS": 60953.0}))
    assert meta.obs_date == dt.date(2025, 10, 5)
    assert any("yesterday" in w for w in meta.warnings)


# --- beams, axes, duplicates -------------------------------------------------------------------


def test_aips_history_beam_is_used_when_cards_are_missing(tmp_path: Path) -> None:
    spec = ImageSpec(date_obs=WHEN, dec_deg=16.3, size=16, n_sources=0)
    cards = {k: v for k, v in make_header(spec).items() if k not in ("BMAJ", "BMIN", "BPA")}
    path = write_hdu(tmp_path / "aips.fits", make_pixels(spec), cards)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header.add_history("AIPS   CLEAN BMAJ=  1.0000E-02 BMIN=  5.0000E-03 BPA=  30.00")
        hdul[0].header.add_history("AIPS   CLEAN BMAJ=  5.5556E-03 BMIN=  2.7778E-03 BPA= -12.50")
    meta = parse_fits(path)
    assert meta.beam_major_arcsec == pytest.approx(20.0, abs=1e-3)  # the last restoring beam
    assert meta.beam_minor_arcsec == pytest.approx(10.0, abs=1e-3)
    assert meta.beam_pa_deg == pytest.approx(-12.5)
    assert any("AIPS HISTORY" in w for w in meta.warnings)


def test_nan_beam_is_a_warning_not_an_error(tmp_path: Path) -> None:
    from resources.fits.synthetic import BROKEN_KINDS

    kind = next(k for k in BROKEN_KINDS if k.name == "nan_beam")
    kind.writer(tmp_path / "nan.fits", ImageSpec(date_obs=WHEN, dec_deg=16.3, size=16))
    meta = parse_fits(tmp_path / "nan.fits")
    assert meta.beam_major_arcsec is None and meta.beam_minor_arcsec is None
    assert any("beam left empty" in w for w in meta.warnings)


def test_degenerate_axes_only_in_the_wcs(tmp_path: Path) -> None:
    spec = ImageSpec(date_obs=WHEN, dec_deg=54.6, size=32, n_sources=0)
    cards = dict(make_header(spec))
    cards["WCSAXES"] = 4
    path = write_hdu(tmp_path / "wcs4.fits", make_pixels(spec), {"WCSAXES": 4, **cards})
    with fits.open(path) as hdul:
        assert hdul[0].header["NAXIS"] == 2
    meta = parse_fits(path)
    assert meta.naxis == (32, 32)
    assert meta.freq_hz == pytest.approx(FREQ_HZ) and meta.stokes == "I"
    assert meta.bandwidth_hz == pytest.approx(BANDWIDTH_HZ)
    assert (meta.ra_deg, meta.dec_deg) == pytest.approx(independent_centre(path, 0), abs=1e-9)


def test_multichannel_full_stokes_cube(tmp_path: Path) -> None:
    spec = ImageSpec(date_obs=WHEN, dec_deg=54.6, size=16, n_sources=0)
    header = make_header(spec)
    header["CDELT3"] = 10e6
    header["CRPIX3"] = 1.0
    header["CRVAL3"] = 1.3e9
    data = np.zeros((4, 8, 16, 16), dtype=np.float32)
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(data=data, header=header).writeto(path)
    meta = parse_fits(path)
    assert meta.stokes == "I,Q,U,V"
    assert meta.bandwidth_hz == pytest.approx(80e6)
    assert meta.freq_hz == pytest.approx(1.3e9 + 3.5 * 10e6)  # centre of the 8 channels


def test_frequency_axis_in_ghz_is_reported_in_hz(tmp_path: Path) -> None:
    spec = ImageSpec(date_obs=WHEN, dec_deg=54.6, size=16, n_sources=0,
                     extra_cards={"CUNIT3": "GHz", "CRVAL3": 1.4, "CDELT3": 0.1875})  # fmt: skip
    meta = parse_fits(dsa_image(tmp_path / "ghz.fits", size=16, extra_cards=spec.extra_cards))
    assert meta.freq_hz == pytest.approx(1.4e9) and meta.bandwidth_hz == pytest.approx(187.5e6)


def test_duplicate_keyword_warns_and_uses_the_first_copy(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "dup.fits", size=16)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"OBSERVER=")
    raw[at : at + 80] = f"{'BMAJ    = 0.01':<80}".encode("ascii")  # a second BMAJ, 36 arcsec
    path.write_bytes(bytes(raw))
    meta = parse_fits(path)
    assert meta.beam_major_arcsec == pytest.approx(20.0)
    dup = [w for w in meta.warnings if "BMAJ appears 2 times" in w]
    assert dup and "first copy" in dup[0]


def test_astropy_warnings_do_not_leak() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta = parse_fits(WCS_DATA / "dss.14.29.56-62.41.05.fits.gz")
    assert any(w.startswith("astropy:") for w in meta.warnings)


def test_metadata_has_no_nan_and_is_json_ready(tmp_path: Path) -> None:
    meta = parse_fits(dsa_image(tmp_path / "a.fits", size=16))
    for value in meta.to_json_dict().values():
        assert not (isinstance(value, float) and math.isnan(value))


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_follows_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = parse_fits(dsa_image(tmp_path / "a.fits", size=32, seed=1))
    assert parse_fits(tmp_path / "a.fits").fingerprint == a.fingerprint
    b = parse_fits(dsa_image(tmp_path / "b.fits", size=32, seed=2))
    assert b.fingerprint != a.fingerprint
    assert parse_fits(tmp_path / "a.fits", compute_fingerprint=False).fingerprint == ""
    # Above the full-hash limit the fingerprint samples data blocks; headers are always covered.
    monkeypatch.setattr(structure, "FINGERPRINT_FULL_LIMIT", 0)
    sampled = parse_fits(tmp_path / "a.fits").fingerprint
    assert sampled != a.fingerprint and sampled.startswith("xxh3:")
    with fits.open(tmp_path / "a.fits", mode="update") as hdul:
        hdul[0].header["OBJECT"] = "renamed"
    assert parse_fits(tmp_path / "a.fits").fingerprint != sampled


def test_duplicate_wcs_card_uses_the_first_copy_for_the_centre(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "dupwcs.fits", size=16, dec_deg=54.6)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"OBSERVER=")
    raw[at : at + 80] = f"{'CRVAL2  =                 10.0':<80}".encode("ascii")
    path.write_bytes(bytes(raw))
    meta = parse_fits(path)
    assert meta.dec_deg == pytest.approx(54.6, abs=1e-6)  # wcslib alone would take the last copy
    assert any("CRVAL2 appears 2 times" in w for w in meta.warnings)
