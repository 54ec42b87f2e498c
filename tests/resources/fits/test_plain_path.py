"""The parser's plain path (no astropy) gives bit-for-bit what the astropy path gives.

Every case parses the same file twice, once with `parser.PLAIN_PATH` off (astropy reads the
header, as before the plain path existed) and once with it on, and compares the whole metadata
record with `==` on floats: the plain path is only worth having if it is exact. Headers the
plain path must not take are checked to go to astropy.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from resources.fits import parser
from resources.fits.parser import parse_fits, read_obs_time
from resources.fits.synthetic import ImageSpec, make_header, write_image

WHEN = dt.datetime(2025, 10, 5, 3, 25, 7, 250000, tzinfo=dt.UTC)


def _parse_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], bool]:
    """(the astropy path's record, whether the plain path took the file); asserts equality."""
    taken: list[bool] = []
    real = parser._describe_plain

    def spy(*args: Any) -> Any:
        result = real(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(parser, "PLAIN_PATH", False)
    slow = parse_fits(path).to_json_dict()
    monkeypatch.setattr(parser, "PLAIN_PATH", True)
    monkeypatch.setattr(parser, "_describe_plain", spy)
    fast = parse_fits(path).to_json_dict()
    assert fast == slow
    # repr: the same bits (== would let -0.0 pass for 0.0)
    assert json.dumps(fast) == json.dumps(slow)
    return slow, taken == [True]


def _write(path: Path, header: fits.Header, shape: tuple[int, ...]) -> Path:
    fits.PrimaryHDU(data=np.zeros(shape[::-1], dtype=np.float32), header=header).writeto(path)
    return path


def _dsa_header(size: int, **cards: Any) -> fits.Header:
    header = make_header(ImageSpec(date_obs=WHEN, dec_deg=16.3, size=size))
    for key, value in cards.items():
        if value is None:
            del header[key]
        else:
            header[key] = value
    return header


def test_synthetic_images_take_the_plain_path_and_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    for i in range(100):
        spec = ImageSpec(
            date_obs=WHEN + dt.timedelta(minutes=5 * i),
            dec_deg=rng.uniform(-88.9, 88.9),
            ra_deg=rng.uniform(0.0, 360.0),
            size=rng.choice([16, 17, 32, 33]),
            cell_arcsec=rng.uniform(0.1, 60.0),
            n_sources=0,
        )
        record, taken = _parse_both(write_image(tmp_path / f"{i}.fits", spec), monkeypatch)
        assert taken, record
        assert record["warnings"] == []


@pytest.mark.parametrize(
    ("name", "cards", "shape"),
    [
        ("tan", {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "PV2_1": None, "PV2_2": None}, None),
        ("no PV cards", {"PV2_1": None, "PV2_2": None}, None),
        ("no CUNIT", {"CUNIT1": None, "CUNIT2": None, "CUNIT3": None, "CUNIT4": None}, None),
        ("no LONPOLE/LATPOLE", {"LONPOLE": None, "LATPOLE": None}, None),
        ("RA just above 0", {"CRVAL1": 1e-5}, None),
        ("south", {"CRVAL2": -65.7, "LATPOLE": -65.7}, None),
        ("integer values", {"CRVAL1": 120, "CRVAL2": 30, "CRPIX1": 9, "CRPIX2": 9}, None),
        ("4 channels", {"CDELT3": 46.875e6, "CRPIX3": 2.0}, (16, 16, 4, 1)),
        ("full Stokes", {}, (16, 16, 1, 4)),
        ("odd Stokes", {"CRVAL4": -5.0, "CDELT4": -1.0}, (16, 16, 1, 4)),
        (
            "no FREQ axis",
            {
                "CTYPE3": "STOKES",
                "CRVAL3": 1.0,
                "CDELT3": 1.0,
                "CUNIT3": None,
                "CTYPE4": None,
                "CRVAL4": None,
                "CDELT4": None,
                "CRPIX4": None,
                "CUNIT4": None,
            },
            (16, 16, 1),
        ),
        (
            "no FREQ axis, no RESTFRQ",
            {
                "CTYPE3": None,
                "CRVAL3": None,
                "CDELT3": None,
                "CRPIX3": None,
                "CUNIT3": None,
                "CTYPE4": None,
                "CRVAL4": None,
                "CDELT4": None,
                "CRPIX4": None,
                "CUNIT4": None,
                "RESTFRQ": None,
            },
            (16, 16),
        ),
        ("beam from HISTORY", {"BMAJ": None, "BMIN": None, "BPA": None}, None),
        ("no beam, no date", {"BMAJ": None, "BMIN": None, "BPA": None, "DATE-OBS": None}, None),
        ("NaN beam", {"BMAJ": "NaN", "BMIN": "NaN"}, None),
        ("odd date", {"DATE-OBS": "01/10/25"}, None),
        ("bad date", {"DATE-OBS": "yesterday"}, None),
        ("quotes in strings", {"OBJECT": "it''s", "TELESCOP": "  DSA-110  "}, None),
        ("no telescope", {"TELESCOP": None, "BUNIT": None}, None),
    ],
)
def test_header_variants_match_astropy(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    cards: dict[str, Any],
    shape: tuple[int, ...] | None,
) -> None:
    header = _dsa_header(16, **cards)
    if name == "beam from HISTORY":
        header.add_history("AIPS   CLEAN BMAJ=  5.5556E-03 BMIN=  3.3333E-03 BPA=  15.00")
    _, taken = _parse_both(_write(tmp_path / "v.fits", header, shape or (16, 16, 1, 1)),
                                monkeypatch)  # fmt: skip
    assert taken, name


@pytest.mark.parametrize(
    ("name", "cards"),
    [
        ("reference pixel off centre", {"CRPIX1": 8.0}),
        ("PC matrix", {"PC1_2": 0.1}),
        ("CD matrix", {"CD1_1": -1e-3}),
        ("rotation", {"CROTA2": 10.0}),
        ("FK5", {"RADESYS": "FK5"}),
        ("no RADESYS", {"RADESYS": None}),
        ("galactic", {"CTYPE1": "GLON-SIN", "CTYPE2": "GLAT-SIN"}),
        ("ARC projection", {"CTYPE1": "RA---ARC", "CTYPE2": "DEC--ARC"}),
        ("slant SIN", {"PV2_1": 0.1}),
        ("LONPOLE 0", {"LONPOLE": 0.0}),
        ("arcsec units", {"CUNIT1": "arcsec"}),
        ("MHz", {"CUNIT3": "MHz", "CRVAL3": 1400.0, "CDELT3": 187.5}),
        ("EPOCH", {"EPOCH": 2000.0}),
        ("alternate WCS", {"CTYPE1A": "RA---TAN"}),
        ("MJD-OBS", {"MJD-OBS": 60953.0}),
        ("TAI", {"TIMESYS": "TAI"}),
        ("near the pole", {"CRVAL2": 89.5}),
        ("RA beyond 360", {"CRVAL1": 370.0}),
        ("RA 0 (wcslib adds ~4e-31)", {"CRVAL1": 0.0}),
        ("velocity axis", {"CTYPE3": "VRAD", "CUNIT3": "m/s"}),
    ],
)
def test_headers_outside_the_plain_family_go_to_astropy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, cards: dict[str, Any]
) -> None:
    path = _write(tmp_path / "o.fits", _dsa_header(16, **cards), (16, 16, 1, 1))
    _, taken = _parse_both(path, monkeypatch)
    assert not taken, name


def _patch_card(path: Path, keyword: str, image: str) -> None:
    """Rewrite one 80-character card in place (forms astropy would not write)."""
    data = bytearray(path.read_bytes())
    for start in range(0, 2880 * 4, 80):
        if data[start : start + 8].decode().rstrip() == keyword:
            data[start : start + 80] = image.ljust(80).encode()
            path.write_bytes(bytes(data))
            return
    raise AssertionError(keyword)


@pytest.mark.parametrize(
    ("keyword", "image"),
    [
        ("BMAJ", "BMAJ    = 5.5556e-03"),  # lower-case exponent: free format
        ("OBJECT", "OBJECT  = 'unterminated"),  # unparsable: astropy's warning, not ours
        ("BUNIT", "bunit   = 'Jy/beam'"),  # lower-case keyword
        ("BPA", "BPA     = (1.0, 2.0)"),  # complex
        ("ORIGIN", "ORIGIN    'no value indicator'"),
    ],
)
def test_cards_the_plain_reader_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keyword: str, image: str
) -> None:
    path = _write(tmp_path / "c.fits", _dsa_header(16), (16, 16, 1, 1))
    _patch_card(path, keyword, image)
    _, taken = _parse_both(path, monkeypatch)
    assert not taken


def test_read_obs_time_plain_equals_astropy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = {"iso": {}, "old": {"DATE-OBS": "01/10/25"}, "none": {"DATE-OBS": None},
             "mjd": {"DATE-OBS": None, "MJD-OBS": 60953.25}}  # fmt: skip
    for name, cards in cases.items():
        path = _write(tmp_path / f"{name}.fits", _dsa_header(16, **cards), (16, 16, 1, 1))
        monkeypatch.setattr(parser, "PLAIN_PATH", False)
        slow = read_obs_time(path)
        monkeypatch.setattr(parser, "PLAIN_PATH", True)
        assert read_obs_time(path) == slow, name


def test_the_plain_path_imports_no_astropy_nor_numpy(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.fits", ImageSpec(date_obs=WHEN, dec_deg=54.6, size=32))
    code = (
        "import sys\n"
        "from resources.fits.parser import parse_fits\n"
        f"meta = parse_fits({str(path)!r})\n"
        "assert meta.ra_deg is not None and meta.freq_hz == 1.4e9, meta\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'astropy', 'numpy'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_astropy_imported_late_still_has_its_warnings_captured(tmp_path: Path) -> None:
    """A fresh process whose first file needs astropy: astropy is imported then, and its logger
    (installed on import) must not take the warnings meant for the record to stderr."""
    header = _dsa_header(16, RADESYS=None)
    header["RADECSYS"] = "FK5"  # astropy: deprecated keyword (a warning of its own)
    path = _write(tmp_path / "old.fits", header, (16, 16, 1, 1))
    code = [
        "from resources.fits.parser import parse_fits",
        f"print(parse_fits({str(path)!r}).warnings)",
    ]
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "RADECSYS keyword is deprecated" in out.stdout
    assert out.stderr == ""


def test_warnings_that_are_not_about_the_file_stay_out_of_its_record() -> None:
    """The capture is process-wide: what the garbage collector or a library warns meanwhile (a
    leaked connection's ResourceWarning, a deprecation) is not a note on the file (seen in CI:
    psycopg's "deleted while still open" in the records of a forked `fits inspect` worker)."""
    import warnings

    from resources.fits.parser import astropy_section

    notes: list[str] = []
    with astropy_section(notes):
        warnings.warn("<psycopg.Connection> deleted while open", ResourceWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
        warnings.warn("Card 'BMAJ' is not FITS standard", UserWarning, stacklevel=1)
    assert notes == ["astropy: Card 'BMAJ' is not FITS standard"]
