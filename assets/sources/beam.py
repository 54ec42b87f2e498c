"""The restoring beam in pixels, and the Gaussian it makes: what every source fit is built on.

Pixel convention (the one of `resources.fits.synthetic` and of a north-up image with negative
CDELT1): x is the column, y the row, both 0-based; north is +y, east is -x. A position angle is
measured from north (+y) through east (-x), as the FITS BPA keyword is. An image rotated
against north (a PC or CD matrix with cross terms) would need the angle of +y on the sky added:
`Beam.from_arcsec` takes it as `rotation_deg`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class Beam:
    """A Gaussian restoring beam: FWHM major and minor axes in pixels, PA in degrees (E of N)."""

    bmaj_px: float
    bmin_px: float
    bpa_deg: float

    @classmethod
    def from_arcsec(
        cls,
        bmaj_arcsec: float,
        bmin_arcsec: float,
        bpa_deg: float,
        cell_arcsec: float,
        rotation_deg: float = 0.0,
    ) -> Beam:
        """The beam of a header (BMAJ, BMIN in arcsec; BPA) on pixels of `cell_arcsec`."""
        return cls(bmaj_arcsec / cell_arcsec, bmin_arcsec / cell_arcsec, bpa_deg - rotation_deg)

    @property
    def sigma_major_px(self) -> float:
        return self.bmaj_px * FWHM_TO_SIGMA

    @property
    def sigma_minor_px(self) -> float:
        return self.bmin_px * FWHM_TO_SIGMA

    @property
    def area_px(self) -> float:
        """Beam solid angle in pixels (2π σ_maj σ_min): Jy/beam × pixels → Jy."""
        return 2.0 * math.pi * self.sigma_major_px * self.sigma_minor_px

    def gaussian(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """The peak-normalised beam at offsets (dx, dy) pixels from its centre."""
        pa = math.radians(self.bpa_deg)
        s, c = math.sin(pa), math.cos(pa)
        u = -dx * s + dy * c  # along the major axis
        v = dx * c + dy * s
        return np.exp(-0.5 * ((u / self.sigma_major_px) ** 2 + (v / self.sigma_minor_px) ** 2))
