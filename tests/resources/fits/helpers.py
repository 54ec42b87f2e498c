"""Real FITS files for the FITS tests: astropy's own test data and synthetic DSA-110 images."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import astropy
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame

from resources.fits.synthetic import ImageSpec, write_image

ASTROPY = Path(astropy.__file__).parent
FITS_DATA = ASTROPY / "io" / "fits" / "tests" / "data"
COMPRESSED_DATA = ASTROPY / "io" / "fits" / "hdu" / "compressed" / "tests" / "data"
WCS_DATA = ASTROPY / "wcs" / "tests" / "data"
MODELING_DATA = ASTROPY / "modeling" / "tests" / "data"
NDDATA_DATA = ASTROPY / "nddata" / "tests" / "data"

WHEN = dt.datetime(2025, 10, 5, 3, 25, 0, tzinfo=dt.UTC)


def dsa_image(path: Path, *, compression: str | None = None, **kw: object) -> Path:
    """A small synthetic DSA-110 image (64 px unless told otherwise)."""
    params: dict[str, object] = {"date_obs": WHEN, "dec_deg": 54.6, "size": 64, "n_sources": 3}
    params.update(kw)
    return write_image(path, ImageSpec(**params), compression=compression)  # type: ignore[arg-type]


def write_hdu(path: Path, data: np.ndarray | None, cards: dict[str, object]) -> Path:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)
    return path


def independent_centre(path: Path, hdu: int) -> tuple[float, float]:
    """ICRS centre of the central pixel (N//2 on the data axes), computed here with astropy
    directly, without our parser."""
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's notes about these old headers
        header = hdul[hdu].header
        shape = hdul[hdu].shape[::-1]  # FITS axis order
        w = WCS(header)
    pix = [shape[i] // 2 if i < len(shape) else 0 for i in range(w.naxis)]
    world = w.all_pix2world(np.array([pix], dtype=float), 0)[0]
    coord = SkyCoord(
        world[w.wcs.lng], world[w.wcs.lat], unit="deg", frame=wcs_to_celestial_frame(w)
    )
    icrs = coord.icrs
    return float(icrs.ra.deg), float(icrs.dec.deg)
