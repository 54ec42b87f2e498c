"""Which images could have seen which sky positions: the footprint test of forced photometry
and of the new-source flag, for many positions against many images at once.

An image covers a position when the position's SIN projection about the image centre falls
inside the image, `margin_px` from its edges: exact for the synthetic and DSA-110 images, a close
approximation for others (the forced fit checks the exact pixel position again). A day with
thousands of new sources (the first day of a field: every detection is new) asks this for every
source against every image near it; one query for the candidates of all of them
(`resources.repositories.sky.cones_bounds`) and one vectorised test of the (image, position)
pairs whose RA windows overlap replace a query and a test per source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _inside(
    a0: np.ndarray | float,
    d0: np.ndarray | float,
    cell_deg: np.ndarray | float,
    half_w: np.ndarray | float,
    half_h: np.ndarray | float,
    ra: np.ndarray,
    dec: np.ndarray,
) -> np.ndarray:
    """The projection test, elementwise (centres a0, d0 and positions in radians)."""
    a, d = np.radians(ra), np.radians(dec)
    sin_d0, cos_d0 = np.sin(d0), np.cos(d0)
    cos_da = np.cos(a - a0)
    cos_c = sin_d0 * np.sin(d) + cos_d0 * np.cos(d) * cos_da
    x = np.degrees(np.cos(d) * np.sin(a - a0)) / cell_deg
    y = np.degrees(cos_d0 * np.sin(d) - sin_d0 * np.cos(d) * cos_da) / cell_deg
    return (cos_c > 0) & (np.abs(x) <= half_w) & (np.abs(y) <= half_h)


def footprint_mask(
    image: dict[str, Any], ra: np.ndarray, dec: np.ndarray, margin_px: float
) -> np.ndarray:
    """Whether each position falls inside the image, `margin_px` from its edges."""
    cell = float(image["cellsize_arcsec"] or 0.0) / 3600.0
    if cell <= 0 or image["ra_deg"] is None or image["dec_deg"] is None:
        return np.zeros(len(ra), dtype=bool)
    return _inside(
        math.radians(image["ra_deg"]),
        math.radians(image["dec_deg"]),
        cell,
        0.5 * float(image["width"]) - margin_px,
        0.5 * float(image["height"]) - margin_px,
        np.asarray(ra, dtype=float),
        np.asarray(dec, dtype=float),
    )


def covering_pairs(
    images: Sequence[dict[str, Any]],
    ra: np.ndarray,
    dec: np.ndarray,
    margin_px: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(image index, position index) of every image that covers a position, ordered by image
    then position; `margin_px` per image or one for all.

    Candidates first: positions sorted by RA (with copies shifted by ±360° for the wrap), each
    image's RA window (its half-diagonal over cos Dec, all RAs near a pole) cut out by binary
    search, so the pairs tested grow with the overlaps, not with images × positions."""
    ra = np.asarray(ra, dtype=float) % 360.0
    dec = np.asarray(dec, dtype=float)
    empty = (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp))
    if not len(images) or not len(ra):
        return empty
    n = len(images)
    cell = np.array([float(im["cellsize_arcsec"] or 0.0) / 3600.0 for im in images])
    ra0 = np.array([np.nan if im["ra_deg"] is None else float(im["ra_deg"]) for im in images])
    dec0 = np.array([np.nan if im["dec_deg"] is None else float(im["dec_deg"]) for im in images])
    width = np.array([float(im["width"] or 0) for im in images])
    height = np.array([float(im["height"] or 0) for im in images])
    margin = np.broadcast_to(np.asarray(margin_px, dtype=float), (n,))
    usable = (cell > 0) & np.isfinite(ra0) & np.isfinite(dec0)
    # Half the diagonal, degrees: no covered position is farther from the centre than this.
    reach = 0.5 * np.hypot(width, height) * cell * 1.01
    top = np.abs(np.where(usable, dec0, 0.0)) + reach
    with np.errstate(divide="ignore", invalid="ignore"):
        window = np.where(top < 89.0, reach / np.cos(np.radians(np.minimum(top, 89.0))), 180.0)
    window = np.minimum(window, 180.0)
    order = np.argsort(ra, kind="stable")
    sorted_ra = ra[order]
    ext_ra = np.concatenate([sorted_ra - 360.0, sorted_ra, sorted_ra + 360.0])
    ext_idx = np.concatenate([order, order, order])
    centre = np.where(usable, ra0 % 360.0, 0.0)
    # Half-open windows [centre - w, centre + w): at w = 180 each position is in it once.
    starts = np.searchsorted(ext_ra, centre - window, side="left")
    ends = np.searchsorted(ext_ra, centre + window, side="left")
    counts = np.where(usable, ends - starts, 0)
    total = int(counts.sum())
    if total == 0:
        return empty
    img = np.repeat(np.arange(n), counts)
    offsets = np.cumsum(counts) - counts
    pos = np.repeat(starts, counts) + (np.arange(total) - np.repeat(offsets, counts))
    src = ext_idx[pos]
    ok = _inside(
        np.radians(ra0[img]),
        np.radians(dec0[img]),
        cell[img],
        0.5 * width[img] - margin[img],
        0.5 * height[img] - margin[img],
        ra[src],
        dec[src],
    )
    img, src = img[ok], src[ok]
    keep = np.lexsort((src, img))
    return img[keep], src[keep]
