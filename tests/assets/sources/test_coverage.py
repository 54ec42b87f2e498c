"""Which images cover which positions: the batched search equals the per-image footprint test,
across RA 0/360 and near the poles; the union prefilter never drops a covered image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assets.sources.coverage import covering_pairs, footprint_mask
from resources.repositories.sky import cones_bounds, separation_deg


def _images(rng: np.random.Generator, n: int, dec_range: tuple[float, float]) -> list[dict]:
    out = []
    for k in range(n):
        out.append(
            {
                "id": k,
                "ra_deg": float(rng.uniform(0, 360)) if k % 7 else float(rng.uniform(359, 360)),
                "dec_deg": float(rng.uniform(*dec_range)),
                "width": int(rng.integers(64, 1024)),
                "height": int(rng.integers(64, 1024)),
                "cellsize_arcsec": float(rng.uniform(4, 12)),
            }
        )
    out.append({"id": n, "ra_deg": None, "dec_deg": 10.0, "width": 10, "height": 10,
                "cellsize_arcsec": 5.0})  # fmt: skip
    out.append({"id": n + 1, "ra_deg": 1.0, "dec_deg": 10.0, "width": 10, "height": 10,
                "cellsize_arcsec": 0.0})  # fmt: skip
    return out


def _positions_near(
    rng: np.random.Generator, images: list[dict], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions scattered about the image centres (many inside, many just outside)."""
    ra, dec = [], []
    usable = [im for im in images if im["ra_deg"] is not None]
    for _ in range(n):
        im = usable[int(rng.integers(len(usable)))]
        reach = im["width"] * im["cellsize_arcsec"] / 3600.0
        d = float(np.clip(im["dec_deg"] + rng.uniform(-reach, reach), -89.9, 89.9))
        a = im["ra_deg"] + rng.uniform(-reach, reach) / max(math.cos(math.radians(d)), 0.05)
        ra.append(a % 360.0)
        dec.append(d)
    return np.array(ra), np.array(dec)


@pytest.mark.parametrize("dec_range", [(-30.0, 30.0), (60.0, 89.0), (-89.5, -70.0)])
@pytest.mark.parametrize("margin", [0.0, 5.0])
def test_covering_pairs_equal_the_footprint_test_of_every_pair(
    dec_range: tuple[float, float], margin: float
) -> None:
    rng = np.random.default_rng(int(abs(dec_range[0]) * 10 + margin))
    images = _images(rng, 60, dec_range)
    ra, dec = _positions_near(rng, images, 400)
    img, src = covering_pairs(images, ra, dec, margin)
    expected = [
        (i, j)
        for i, im in enumerate(images)
        for j in np.flatnonzero(footprint_mask(im, ra, dec, margin))
    ]
    assert len(expected) > 100  # the case has something to find
    assert list(zip(img.tolist(), src.tolist(), strict=True)) == expected


def test_covering_pairs_take_a_margin_per_image_and_nothing_from_nothing() -> None:
    images = [
        {
            "id": 0,
            "ra_deg": 0.0,
            "dec_deg": 0.0,
            "width": 100,
            "height": 100,
            "cellsize_arcsec": 36.0,
        },
        {
            "id": 1,
            "ra_deg": 0.0,
            "dec_deg": 0.0,
            "width": 100,
            "height": 100,
            "cellsize_arcsec": 36.0,
        },
    ]
    # 0.45 deg east of the centre: 45 px of a half-width of 50
    ra, dec = np.array([0.45]), np.array([0.0])
    img, src = covering_pairs(images, ra, dec, np.array([0.0, 10.0]))
    assert img.tolist() == [0] and src.tolist() == [0]
    assert covering_pairs([], ra, dec)[0].size == 0
    assert covering_pairs(images, np.zeros(0), np.zeros(0))[0].size == 0


@pytest.mark.parametrize("dec", [0.0, 45.0, 80.0, -85.0])
def test_cones_bounds_hold_every_point_of_every_cone(dec: float) -> None:
    rng = np.random.default_rng(int(abs(dec)) + 100)
    radius = 2.0
    for spread in (1.0, 20.0, 200.0, 359.0):
        ras = (350.0 + rng.uniform(0, spread, 30)) % 360.0
        decs = np.clip(dec + rng.uniform(-3, 3, 30), -89.0, 89.0)
        bounds = cones_bounds(ras, decs, radius)
        for a, d in zip(ras, decs, strict=True):
            for _ in range(20):  # points on and inside the cone's edge
                bearing = rng.uniform(0, 2 * math.pi)
                r = radius * math.sqrt(rng.uniform(0.9, 1.0))
                pd = d + r * math.cos(bearing)
                if abs(pd) >= 90:
                    continue
                pa = (a + r * math.sin(bearing) / math.cos(math.radians(pd))) % 360.0
                if separation_deg(a, d, pa, pd) > radius:
                    continue
                assert bounds.dec_min <= pd <= bounds.dec_max
                if bounds.ra_ranges is not None:
                    assert any(lo <= pa <= hi for lo, hi in bounds.ra_ranges), (spread, pa)
        if spread <= 20.0 and abs(dec) < 60:
            assert bounds.ra_ranges is not None  # a narrow set keeps a narrow window
            width = sum(hi - lo for lo, hi in bounds.ra_ranges)
            assert width < spread + 2 * radius / math.cos(math.radians(abs(dec) + 5)) + 1


def test_cones_bounds_reject_mismatched_input() -> None:
    with pytest.raises(ValueError, match="as many"):
        cones_bounds([1.0], [], 1.0)
