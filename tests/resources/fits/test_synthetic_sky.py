"""`generate_sample_data(sky=True)`: the truth list agrees with the written pixels, the sky is
the seed's, and the layout without `sky` is unchanged.

The beam here is built from the files' own BMAJ/BMIN/BPA with astropy's Gaussian2D (not the
generator's `_gauss`), and positions go through the files' own WCS: a wrong position, flux,
orientation or pointing in the generator shows as an amplitude far from the truth.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling.models import Gaussian2D
from astropy.wcs import WCS

from resources.fits.sky import FLUX_FILE, TRUTH_FILE, read_truth
from resources.fits.synthetic import FIELD_DECS, generate_sample_data
from resources.settings import incoming_patterns

SIZE = 256
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _write(out: Path, seed: int = 11, days: int = 3, per_day: int = 2) -> None:
    generate_sample_data(out, days=days, per_day=per_day, size=SIZE, seed=seed, sky=True)


def _plane(path: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.data is not None)
        return np.asarray(hdu.data, dtype=float)[0, 0], hdu.header


def _beam_amplitude(plane: np.ndarray, header: fits.Header, ra: float, dec: float) -> float:
    """Least-squares amplitude of the header's beam centred at (ra, dec), over ±3 sigma_major."""
    x, y = WCS(header, naxis=2).all_world2pix([ra], [dec], 0)
    cx, cy = float(x[0]), float(y[0])
    cell = abs(header["CDELT2"]) * 3600.0
    smaj = header["BMAJ"] * 3600.0 * FWHM_TO_SIGMA / cell
    smin = header["BMIN"] * 3600.0 * FWHM_TO_SIGMA / cell
    # BPA east of north, east = -x: the major axis points along (-sin BPA, cos BPA).
    beam = Gaussian2D(1.0, cx, cy, smaj, smin, theta=math.radians(90.0 + header["BPA"]))
    half = math.ceil(3 * smaj)
    ys, xs = np.mgrid[
        round(cy) - half : round(cy) + half + 1, round(cx) - half : round(cx) + half + 1
    ]
    g = beam(xs, ys)
    return float(np.sum(plane[ys, xs] * g) / np.sum(g * g))


def _noise(plane: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(plane - np.median(plane))))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "in"  # tmp_path also holds the test's data dir


def test_truth_fluxes_are_in_the_pixels(out: Path) -> None:
    _write(out)
    truth, fluxes = read_truth(out)
    images = sorted(p for p in out.iterdir() if not p.name.startswith(("broken", "sky")))
    assert sorted(p.name for p in images) == sorted(fluxes)  # one flux row set per good image
    assert {p.suffix for p in images} >= {".fits", ".gz", ".fz"}  # through each compression
    kinds = {t.kind for t in truth}
    assert kinds == {"steady", "variable", "transient"}
    checked = 0
    for path in images:
        plane, header = _plane(path)
        sigma = _noise(plane)
        for t in truth:
            amp = _beam_amplitude(plane, header, t.ra_deg, t.dec_deg) * 1e3
            expected = fluxes[path.name][t.id]
            assert abs(amp - expected) < 5 * sigma * 1e3 + 0.01 * expected, (path.name, t, amp)
            checked += 1
    assert checked == len(images) * len(truth)


def test_truth_list_describes_every_kind(out: Path) -> None:
    _write(out)
    truth, fluxes = read_truth(out)
    per_source = {t.id: [f[t.id] for f in fluxes.values()] for t in truth}
    plane, header = _plane(next(out.glob("*_dec*.fits")))
    sigma_mjy = _noise(plane) * 1e3
    for t in truth:
        values = per_source[t.id]
        assert t.mean_flux_mjy == pytest.approx(np.mean(values), abs=1e-3)
        assert (t.min_flux_mjy, t.max_flux_mjy) == pytest.approx((min(values), max(values)))
        if t.kind == "steady":
            assert max(values) == min(values)
        elif t.kind == "variable":  # 50 % modulation: max / min of 2 (step) to 3 (sine)
            assert max(values) >= 1.9 * min(values) > 0
        else:  # a transient: nothing at first, then a source
            assert values[0] == 0.0 and max(values) > 20 * sigma_mjy
    steady = [t for t in truth if t.kind == "steady"]
    bright = [t for t in steady if t.mean_flux_mjy > 10 * sigma_mjy]
    faint = [t for t in steady if t.mean_flux_mjy < 8 * sigma_mjy]
    assert len(bright) >= len(steady) // 2 and faint  # most detected, a few near threshold
    # inside the field, more than forced photometry's 3 BMAJ from its edges
    wcs = WCS(header, naxis=2)
    x, y = wcs.all_world2pix([t.ra_deg for t in truth], [t.dec_deg for t in truth], 0)
    edge = 3 * header["BMAJ"] / header["CDELT2"]
    assert np.all((x > edge) & (x < SIZE - 1 - edge) & (y > edge) & (y < SIZE - 1 - edge))


def test_one_field_for_every_image(out: Path) -> None:
    _write(out)
    pointings = set()
    for path in out.iterdir():
        if path.name.startswith(("broken", "sky")):
            continue
        _, header = _plane(path)
        pointings.add((header["CRVAL1"], header["CRVAL2"]))
    assert len(pointings) == 1 and next(iter(pointings))[1] == FIELD_DECS[0]


def test_deterministic_with_the_seed(tmp_path: Path) -> None:
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        _write(tmp_path / name, seed=seed, days=1)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "c" / TRUTH_FILE).read_bytes() != (tmp_path / "a" / TRUTH_FILE).read_bytes()
    # The sky is the seed's alone: more days change the light curves' timing, not the sources.
    _write(tmp_path / "d", seed=4, days=3)
    a, _ = read_truth(tmp_path / "a")
    d, _ = read_truth(tmp_path / "d")
    assert [(t.id, t.ra_deg, t.dec_deg, t.kind) for t in a] == [
        (t.id, t.ra_deg, t.dec_deg, t.kind) for t in d
    ]


def test_truth_files_are_not_ingested(out: Path) -> None:
    _write(out, days=1)
    for name in (TRUTH_FILE, FLUX_FILE):
        assert (out / name).is_file()
        assert not any(fnmatch.fnmatch(name, p) for p in incoming_patterns())


def test_without_sky_the_layout_is_unchanged(out: Path) -> None:
    """The ingest and QA tests rely on it: random sources, one declination strip a day."""
    files = generate_sample_data(out, days=2, per_day=1, size=64, broken=False)
    assert not (out / TRUTH_FILE).exists() and not (out / FLUX_FILE).exists()
    decs = [_plane(f.path)[1]["CRVAL2"] for f in files]
    assert decs == list(FIELD_DECS[:2])
    assert [f.obs_date for f in files] == [dt.date(2025, 10, 1), dt.date(2025, 10, 2)]
