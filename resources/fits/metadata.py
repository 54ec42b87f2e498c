"""The metadata record of one FITS image (docs/fits-service.md); the `images` table mirrors it."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageMetadata:
    """Everything we know about one FITS image without reading its pixels.

    Units are in the field names: degrees, arcseconds, hertz. `None` means the file does not
    say (and a warning explains why). Times are UTC.
    """

    path: str
    size_bytes: int
    mtime_ns: int
    fingerprint: str  # hex digest identifying the file's content (see docs/fits-service.md)
    hdu_index: int  # which HDU holds the image (0 = primary)
    naxis: tuple[int, ...]  # NAXIS1..NAXISn as in the header (FITS order: x first)
    bitpix: int
    width: int  # NAXIS1
    height: int  # NAXIS2
    ra_deg: float | None  # ICRS right ascension of the central pixel
    dec_deg: float | None  # ICRS declination of the central pixel
    cellsize_arcsec: float | None  # |CDELT2| (pixel size along the declination axis)
    freq_hz: float | None
    bandwidth_hz: float | None
    stokes: str | None  # e.g. "I", or "I,Q,U,V" when the Stokes axis is longer than 1
    beam_major_arcsec: float | None
    beam_minor_arcsec: float | None
    beam_pa_deg: float | None
    date_obs: dt.datetime | None  # timezone-aware UTC
    mjd_obs: float | None
    obs_date: dt.date | None  # UTC date of date_obs: the partition key
    telescope: str | None
    object: str | None
    bunit: str | None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict (ISO dates, lists): the `metadata` object of `fits inspect --json`."""
        out = asdict(self)
        out["naxis"] = list(self.naxis)
        out["warnings"] = list(self.warnings)
        out["date_obs"] = self.date_obs.isoformat() if self.date_obs else None
        out["obs_date"] = self.obs_date.isoformat() if self.obs_date else None
        return out
