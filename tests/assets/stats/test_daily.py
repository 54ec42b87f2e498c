"""Daily statistics: exact counts and percentiles on known inputs, strips, empty days, the plot."""

from __future__ import annotations

import datetime as dt
import io
import math
import warnings
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pytest
from PIL import Image

from assets.stats.daily import DayImage, dec_strip, render_rms_plot, summarize_day


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _day(seed: int = 0, n: int = 57) -> list[DayImage]:
    rng = np.random.default_rng(seed)
    grades = rng.choice(["good", "warn", "fail"], n, p=[0.6, 0.3, 0.1])
    rms = rng.lognormal(np.log(0.002), 0.5, n)
    rms[::11] = np.nan  # some images without a finite rms
    drs = rng.uniform(5, 2000, n)
    decs = rng.uniform(-30, 89.9, n)
    start = dt.datetime(2025, 10, 5, tzinfo=dt.UTC)
    return [
        DayImage(
            grade=str(g),
            rms=float(r),
            dynamic_range=float(d),
            dec_deg=float(c),
            date_obs=start + dt.timedelta(minutes=5 * i),
        )
        for i, (g, r, d, c) in enumerate(zip(grades, rms, drs, decs, strict=True))
    ]


def test_known_day_gives_exact_counts_and_numpy_percentiles() -> None:
    rows = _day()
    stats = summarize_day(rows, failed_parses=3, obs_date=dt.date(2025, 10, 5))
    expected_counts = {g: sum(r.grade == g for r in rows) for g in ("good", "warn", "fail")}
    assert stats.counts == expected_counts | {"ungraded": 0}
    assert stats.n_images == 57 and stats.failed_parses == 3
    finite_rms = np.array([r.rms for r in rows])
    finite_rms = finite_rms[np.isfinite(finite_rms)]
    assert finite_rms.size == 57 - 6
    assert stats.rms_median == np.median(finite_rms)
    assert stats.rms_p95 == np.percentile(finite_rms, 95)
    assert stats.dynamic_range_median == np.median([r.dynamic_range for r in rows])
    assert stats.fail_fraction == expected_counts["fail"] / 57
    # Strips: recount independently with integer floor division.
    expected: dict[int, int] = {}
    for r in rows:
        lo = int(np.floor(r.dec_deg / 5.0)) * 5
        expected[lo] = expected.get(lo, 0) + 1
    assert list(stats.dec_strips.values()) == [expected[k] for k in sorted(expected)]
    assert sum(stats.dec_strips.values()) == 57 and stats.n_without_dec == 0
    assert stats.to_dict()["obs_date"] == "2025-10-05"


def test_hand_computed_small_day_and_mappings() -> None:
    rows = [
        {"grade": "good", "rms": 0.001, "dynamic_range": 400.0, "dec": 52.0},
        {"grade": "good", "rms": Decimal("0.003"), "dynamic_range": 200.0, "dec_deg": 54.99},
        {"grade": "warn", "rms": 0.002, "dynamic_range": None, "dec_deg": 55.0},
        {"grade": "fail", "rms": None, "dynamic_range": float("nan"), "dec_deg": -0.5},
        {"grade": None, "rms": float("inf"), "dynamic_range": 100.0, "dec_deg": None},
    ]
    stats = summarize_day(rows, failed_parses=1)
    assert stats.counts == {"good": 2, "warn": 1, "fail": 1, "ungraded": 1}
    assert stats.rms_median == pytest.approx(0.002)
    assert stats.rms_p95 == pytest.approx(0.002 + 0.9 * 0.001)  # linear between 2nd and 3rd
    assert stats.dynamic_range_median == 200.0
    assert stats.dec_strips == {"-05..+00": 1, "+50..+55": 2, "+55..+60": 1}
    assert stats.n_without_dec == 1


def test_empty_day_has_zero_counts_and_no_statistics() -> None:
    stats = summarize_day([], failed_parses=4)
    assert stats.n_images == 0
    assert stats.counts == {"good": 0, "warn": 0, "fail": 0, "ungraded": 0}
    assert stats.rms_median is None and stats.rms_p95 is None
    assert stats.dynamic_range_median is None and stats.dec_strips == {}
    assert stats.fail_fraction == 0.0 and stats.failed_parses == 4


@pytest.mark.parametrize(
    ("dec", "width", "label"),
    [
        (52.3, 5.0, "+50..+55"),
        (-0.5, 5.0, "-05..+00"),
        (0.0, 5.0, "+00..+05"),
        (-90.0, 5.0, "-90..-85"),
        (90.0, 5.0, "+85..+90"),
        (33.0, 2.5, "+32.5..+35.0"),
        (89.0, 7.0, "+84..+91"),
    ],
)
def test_dec_strip_labels(dec: float, width: float, label: str) -> None:
    found = dec_strip(dec, width)
    assert found is not None and found[1] == label


@pytest.mark.parametrize("dec", [90.01, -91.0, math.nan, math.inf])
def test_invalid_declinations_have_no_strip(dec: float) -> None:
    assert dec_strip(dec) is None


def test_strip_width_is_validated() -> None:
    with pytest.raises(ValueError, match="strip_width_deg"):
        summarize_day([], strip_width_deg=0.0)


def test_rms_plot_is_a_deterministic_png_of_the_requested_size() -> None:
    rows = _day(seed=1, n=200)
    points = [(r.date_obs, r.rms, r.grade) for r in rows]
    points.append((dt.datetime(2025, 10, 5, 23, 0), 0.004, None))  # naive time = UTC, ungraded
    png = render_rms_plot(points, title="2025-10-05")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size == (800, 360)
    assert "Software" not in image.info and b"tIME" not in png
    assert render_rms_plot(points, title="2025-10-05") == png
    assert render_rms_plot(points[:-5], title="2025-10-05") != png


def test_rms_plot_of_an_empty_or_all_nan_day() -> None:
    for points in ([], [(dt.datetime(2025, 10, 5, tzinfo=dt.UTC), float("nan"), "fail")]):
        image = Image.open(io.BytesIO(render_rms_plot(points, width_px=400, height_px=200)))
        assert image.size == (400, 200)
