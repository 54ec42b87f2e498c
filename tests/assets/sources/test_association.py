"""The association of measurements with sky sources (assets/sources/association.py), on
positions made up in memory: where it must be exact, one-to-many, many-to-one, RA wrap."""

from __future__ import annotations

import numpy as np
import pytest

from assets.sources.association import (
    BASIC,
    MANY_TO_ONE,
    NEW,
    ONE_TO_MANY,
    AssociationConfig,
    SkyCatalogue,
    associate_image,
    de_ruiter,
    measurement_uncertainties,
    separation_deg,
    source_name,
)

BMAJ = 20.0 / 3600.0  # a 20" beam
CONFIG = AssociationConfig()


def _image(cat: SkyCatalogue, ra: list[float], dec: list[float], err_arcsec: float = 0.5):
    ra_a, dec_a = np.array(ra, dtype=float), np.array(dec, dtype=float)
    err = np.full(len(ra_a), err_arcsec / 3600.0)
    ew, ns = measurement_uncertainties(err, err, CONFIG)
    return associate_image(cat, ra_a, dec_a, ew, ns, bmaj_deg=BMAJ, config=CONFIG)


def test_sources_farther_apart_than_the_limit_keep_their_measurements_over_epochs() -> None:
    rng = np.random.default_rng(3)
    # 200 sources on a grid 2 beams (40") apart, jittered by 1" per epoch
    grid = np.arange(200)
    ra0 = 150.0 + (grid % 20) * 40.0 / 3600.0
    dec0 = 16.0 + (grid // 20) * 40.0 / 3600.0
    cat = SkyCatalogue()
    first = _image(cat, list(ra0), list(dec0))
    assert first.kinds == [NEW] * 200 and len(cat) == 200
    for _ in range(10):
        keep = rng.random(200) > 0.2  # some sources missed in each epoch
        jitter = rng.normal(0, 1.0 / 3600.0, (2, 200))
        ra = ra0 + jitter[0] / np.cos(np.radians(dec0))
        dec = dec0 + jitter[1]
        match = _image(cat, list(ra[keep]), list(dec[keep]))
        assert list(match.rows) == list(np.flatnonzero(keep))
        assert set(match.kinds) == {BASIC} and match.relations == []
    assert len(cat) == 200
    # the weighted positions converge on the truth (11 epochs of 1" jitter: ~0.3" error)
    err = separation_deg(cat.ra, cat.dec, ra0, dec0) * 3600.0
    assert float(np.median(err)) < 0.6


def test_far_measurement_starts_a_new_source() -> None:
    cat = SkyCatalogue()
    _image(cat, [10.0], [20.0])
    match = _image(cat, [10.0 + 2 * BMAJ], [20.0])  # 2 beams away: beyond 1.5 beams
    assert match.kinds == [NEW] and len(cat) == 2


def test_one_to_many_and_many_to_one_are_recorded() -> None:
    cat = SkyCatalogue()
    _image(cat, [10.0], [20.0])
    # two measurements near the one source: the closer takes it, the other starts a related one
    near, far = 1.0 / 3600.0, 3.0 / 3600.0
    split = _image(cat, [10.0, 10.0], [20.0 + near, 20.0 - far])
    assert split.kinds == [BASIC, ONE_TO_MANY]
    assert len(cat) == 2 and split.relations == [(0, 1, ONE_TO_MANY)]
    # one measurement between the two sources: it takes the closer, both are related
    merged = _image(cat, [10.0], [20.0 - 0.5 / 3600.0])
    assert merged.kinds == [MANY_TO_ONE] and merged.rows[0] == 0
    assert merged.relations == [(1, 0, MANY_TO_ONE)]


def test_ra_wrap_associates_across_zero() -> None:
    cat = SkyCatalogue()
    _image(cat, [359.9999], [-30.0])
    match = _image(cat, [0.0001], [-30.0])
    assert match.kinds == [BASIC]
    assert match.d2d_arcsec[0] == pytest.approx(0.72 * np.cos(np.radians(30.0)), rel=1e-3)
    assert cat.ra[0] == pytest.approx(0.0, abs=1e-4) or cat.ra[0] > 359.999


def test_de_ruiter_radius_scales_with_the_errors() -> None:
    one = np.array([1.0 / 3600.0])
    r = de_ruiter(
        np.array([10.0]),
        np.array([0.0]),
        one,
        one,
        np.array([10.0 + 3 / 3600.0]),
        np.array([0.0]),
        one,
        one,
    )
    assert r[0] == pytest.approx(3.0 / np.sqrt(2.0), rel=1e-6)


def test_source_names_are_iau_style() -> None:
    assert source_name(0.0, 0.0) == "J000000.0+000000"
    assert source_name(150.25, -16.5) == "J100100.0-163000"
    assert source_name(359.99999, 89.9999).startswith("J235959.9+895959")
