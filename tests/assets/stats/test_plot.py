"""The PIL rms plot: round ticks, a log axis for wide ranges, every grade's colour drawn."""

from __future__ import annotations

import datetime as dt
import io

from PIL import Image

from assets.stats.daily import GRADE_COLOURS, render_rms_plot
from assets.stats.plot import _hex, _log_ticks, _nice_ticks, _time_ticks

START = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)


def test_ticks_are_round_and_cover_the_range() -> None:
    assert _nice_ticks(1.9, 12.3) == [2, 4, 6, 8, 10, 12]
    assert _nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert _log_ticks(1.8, 300) == [2, 5, 10, 20, 50, 100, 200]
    assert _log_ticks(0.5, 5000) == [1, 10, 100, 1000]
    day = _time_ticks(START.timestamp(), (START + dt.timedelta(hours=24)).timestamp())
    assert [t - day[0] for t in day] == [k * 6 * 3600 for k in range(5)]


def _colours(png: bytes) -> set[tuple[int, int, int]]:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {rgb for _, rgb in image.getcolors(maxcolors=1 << 20)}


def test_each_grade_is_drawn_in_its_colour_and_only_those_present() -> None:
    points = [
        (START + dt.timedelta(minutes=5 * k), 0.002 + 1e-5 * k, grade)
        for k, grade in enumerate(["good", "warn", "good", None])
    ]
    colours = _colours(render_rms_plot(points))
    assert {_hex(GRADE_COLOURS[g]) for g in ("good", "warn")} <= colours
    assert _hex(GRADE_COLOURS["fail"]) not in colours
    assert (127, 127, 127) in colours  # ungraded


def test_a_wide_rms_range_gets_a_log_axis_and_a_different_picture() -> None:
    narrow = [(START + dt.timedelta(minutes=5 * k), 0.002, "good") for k in range(10)]
    wide = narrow + [(START + dt.timedelta(hours=2), 0.5, "fail")]
    assert render_rms_plot(wide) != render_rms_plot(narrow)
