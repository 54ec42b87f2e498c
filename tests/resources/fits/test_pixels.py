"""read_plane: one 2-D plane in physical units, against astropy's own reading."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from resources.errors import DecompressionError, NoImageError
from resources.fits.pixels import read_plane, recent_header
from resources.fits.synthetic import ImageSpec, make_header
from tests.resources.fits.helpers import COMPRESSED_DATA, FITS_DATA, WHEN, dsa_image


@pytest.mark.parametrize(
    ("path", "hdu"),
    [
        (FITS_DATA / "scale.fits", 0),  # BSCALE/BZERO on int16
        (FITS_DATA / "fixed-1890.fits", 0),  # BZERO 32768 (unsigned)
        (FITS_DATA / "comp.fits", 1),
        (FITS_DATA / "double_ext.fits", 1),  # compressed with BZERO
        (COMPRESSED_DATA / "m13_rice.fits", 1),
        (COMPRESSED_DATA / "compressed_with_nan.fits", 1),
    ],
    ids=lambda p: p.name if isinstance(p, Path) else str(p),
)
def test_matches_astropy(path: Path, hdu: int) -> None:
    plane = read_plane(path, hdu)
    expected = fits.getdata(path, hdu)
    assert plane.shape == expected.shape
    np.testing.assert_allclose(plane, expected, equal_nan=True, rtol=1e-6)


def test_dsa_cube_first_plane_plain_gzip_and_tile_compressed(tmp_path: Path) -> None:
    plain = dsa_image(tmp_path / "a.fits", size=64)
    expected = fits.getdata(plain)[0, 0]
    np.testing.assert_array_equal(read_plane(plain, 0), expected)
    np.testing.assert_array_equal(read_plane(dsa_image(tmp_path / "a.fits.gz", size=64,
                                                        compression="gzip"), 0), expected)  # fmt: skip
    rice = read_plane(dsa_image(tmp_path / "a.fz", size=64, compression="rice"), 1)
    assert rice.shape == (64, 64) and rice.dtype == np.float32
    assert np.nanmax(np.abs(rice - expected)) < 0.2 * float(np.std(expected))  # lossy quantise


def test_stokes_i_is_chosen_whatever_its_position(tmp_path: Path) -> None:
    header = make_header(ImageSpec(date_obs=WHEN, dec_deg=54.6, size=8, n_sources=0))
    header["CRVAL4"], header["CDELT4"] = 4.0, -1.0  # planes V, U, Q, I
    data = np.stack([np.full((1, 8, 8), v, dtype=np.float32) for v in (4.0, 3.0, 2.0, 1.0)])
    path = tmp_path / "stokes.fits"
    fits.PrimaryHDU(data=data, header=header).writeto(path)
    assert np.all(read_plane(path, 0) == 1.0)


def test_blank_integers_become_nan(tmp_path: Path) -> None:
    data = np.arange(16, dtype=np.int16).reshape(4, 4)
    hdu = fits.PrimaryHDU(data=data)
    hdu.header["BLANK"] = 5
    hdu.header["BSCALE"] = 2.0
    hdu.header["BZERO"] = 1.0
    path = tmp_path / "blank.fits"
    hdu.writeto(path)
    plane = read_plane(path, 0)
    assert np.isnan(plane[1, 1])
    assert plane[0, 3] == pytest.approx(3 * 2.0 + 1.0)


def test_errors(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "c.fits.gz", size=64, compression="gzip")
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DecompressionError):
        read_plane(path, 0)
    with pytest.raises(NoImageError):
        read_plane(FITS_DATA / "table.fits", 1)


def test_recent_header_is_the_one_this_thread_just_read(tmp_path: Path) -> None:
    """What the source extraction takes its WCS from instead of reading the file again: the
    header of the last plane this thread read, for that (path, HDU) only, also compressed."""
    plain = dsa_image(tmp_path / "a.fits", size=64)
    rice = dsa_image(tmp_path / "b.fz", size=64, compression="rice")
    read_plane(plain, 0)
    header = recent_header(plain, 0)
    assert header is not None and header == fits.getheader(plain, 0)
    assert recent_header(plain, 1) is None and recent_header(rice, 1) is None
    read_plane(rice, 1)
    assert recent_header(plain, 0) is None
    assert recent_header(rice, 1)["CTYPE1"] == fits.getheader(rice, 1)["CTYPE1"]
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(recent_header(rice, 1)))
    thread.start()
    thread.join()
    assert seen == [None]  # another thread read nothing
