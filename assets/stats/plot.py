"""The day's rms plot (rms against observation time, one colour per QA grade), drawn with PIL.

Why not matplotlib: one figure cost ~90 ms and the import ~0.5 s, paid at every load of the code
location and once per day of a range run; a 365-day backfill spent more time drawing plots than
grading images (docs/performance.md). This draws the same content (points by grade, a legend
with counts, a time axis in UTC, linear or logarithmic rms axis, grid, title) in a few
milliseconds, deterministically: identical points give identical PNG bytes (no metadata chunk).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

#: Time steps for the x axis ticks, in seconds (the first that gives at most ~7 ticks).
_TIME_STEPS = (
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
)
_GRID = (226, 226, 226)
_AXIS = (60, 60, 60)
_TEXT = (20, 20, 20)


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _hex(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values (1, 2, 5 x 10^k apart) covering [lo, hi], at most about `most` of them."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades within [lo, hi]; with fewer than three, also 2 and 5 times them."""
    decades = [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    ticks = [d for d in decades if lo <= d <= hi]
    if len(ticks) < 3:
        ticks = sorted(d * m for d in decades for m in (1, 2, 5) if lo <= d * m <= hi)
    return ticks


def _label(value: float) -> str:
    return f"{value:g}"


def _time_ticks(t0: float, t1: float) -> list[float]:
    step = next((s for s in _TIME_STEPS if (t1 - t0) / s <= 7), _TIME_STEPS[-1])
    first = math.ceil(t0 / step) * step
    return [first + k * step for k in range(int((t1 - first) // step) + 1)]


def _time_label(seconds: float, step: float, previous: dt.date | None) -> tuple[str, dt.date]:
    when = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    if step >= 86400:
        return when.strftime("%m-%d"), when.date()
    text = when.strftime("%H:%M")
    if previous is None or when.date() != previous:
        text += when.strftime("\n%m-%d")
    return text, when.date()


def points_image(
    points: Sequence[tuple[dt.datetime, float, str]],
    *,
    grades: Sequence[str],
    colours: dict[str, str],
    title: str,
    width_px: int,
    height_px: int,
    empty_text: str,
    xlabel: str,
    ylabel: str,
) -> Image.Image:
    """The picture of (UTC time, value > or <= 0, grade) points; see the module docstring.
    `png_bytes` encodes it; a caller that also wants a palette preview quantizes the picture,
    not a decoded PNG."""
    image = Image.new("RGB", (width_px, height_px), "white")
    draw = ImageDraw.Draw(image)
    small, normal = _font(11), _font(13)
    left, right, top, bottom = 62, 118, 30, 46
    x0, x1, y0, y1 = left, width_px - right, top, height_px - bottom
    draw.text((width_px / 2, 6), title, fill=_TEXT, font=normal, anchor="ma")
    if x1 - x0 < 20 or y1 - y0 < 20:
        return image
    draw.rectangle((x0, y0, x1, y1), outline=_AXIS)
    draw.text(((x0 + x1) / 2, height_px - 14), xlabel, fill=_TEXT, font=small, anchor="ms")
    vertical = Image.new("RGB", (y1 - y0, 16), "white")
    ImageDraw.Draw(vertical).text(((y1 - y0) / 2, 8), ylabel, fill=_TEXT, font=small, anchor="mm")
    image.paste(vertical.rotate(90, expand=True), (4, y0))
    if not points:
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), empty_text, fill=_TEXT, font=small, anchor="mm")
        return image

    times = [p[0].timestamp() for p in points]
    t_lo, t_hi = min(times), max(times)
    if t_hi - t_lo < 60:
        t_lo, t_hi = t_lo - 1800, t_hi + 1800
    pad = (t_hi - t_lo) * 0.03
    t_lo, t_hi = t_lo - pad, t_hi + pad
    values = [p[1] for p in points]
    v_lo, v_hi = min(values), max(values)
    log = v_lo > 0 and v_hi / v_lo > 20

    def fy(v: float) -> float:
        if log:
            a, b = math.log10(v_lo) - 0.05, math.log10(v_hi) + 0.05
            return y1 - (math.log10(v) - a) / (b - a) * (y1 - y0)
        span = (v_hi - v_lo) or abs(v_hi) or 1.0
        a, b = v_lo - 0.08 * span, v_hi + 0.08 * span
        return y1 - (v - a) / (b - a) * (y1 - y0)

    def fx(t: float) -> float:
        return x0 + (t - t_lo) / (t_hi - t_lo) * (x1 - x0)

    if log:
        y_ticks = _log_ticks(v_lo * 10**-0.05, v_hi * 10**0.05)
    else:
        span = (v_hi - v_lo) or abs(v_hi) or 1.0
        y_ticks = _nice_ticks(v_lo - 0.08 * span, v_hi + 0.08 * span)
    for v in y_ticks:
        y = fy(v)
        if y0 <= y <= y1:
            draw.line((x0, y, x1, y), fill=_GRID)
            draw.line((x0 - 4, y, x0, y), fill=_AXIS)
            draw.text((x0 - 6, y), _label(v), fill=_TEXT, font=small, anchor="rm")
    x_ticks = _time_ticks(t_lo, t_hi)
    step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 3600
    day: dt.date | None = None
    for t in x_ticks:
        x = fx(t)
        draw.line((x, y0, x, y1), fill=_GRID)
        draw.line((x, y1, x, y1 + 4), fill=_AXIS)
        text, day = _time_label(t, step, day)
        draw.multiline_text((x, y1 + 6), text, fill=_TEXT, font=small, anchor="ma", align="center")
    draw.rectangle((x0, y0, x1, y1), outline=_AXIS)

    legend_y = y0
    for name in grades:
        chosen = [(t, v) for (_, v, g), t in zip(points, times, strict=True) if g == name]
        if not chosen:
            continue
        colour = _hex(colours.get(name, "#7f7f7f"))
        for t, v in chosen:
            x, y = fx(t), fy(v)
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        draw.ellipse((x1 + 10, legend_y + 2, x1 + 18, legend_y + 10), fill=colour)
        draw.text((x1 + 24, legend_y), f"{name} ({len(chosen)})", fill=_TEXT, font=small)
        legend_y += 16
    return image


def png_bytes(image: Image.Image) -> bytes:
    """The picture as a full-colour PNG (the file beside the day's previews)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()
