"""The pictures of the sources domain, drawn with PIL as the stats plot is (no matplotlib at run
time, assets/stats/plot.py says why): the η–V plane of a day's sources and light curves.

The η–V plot is the VAST pipeline's standard view: each source at (η, V) on log axes, the
candidate cuts as lines, candidates in another colour. Light curves reuse the stats plot's
time axis (`points_image`): flux against UTC time, blind and forced measurements apart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from assets.stats.plot import png_bytes, points_image

_TEXT, _AXIS, _GRID = (30, 30, 30), (60, 60, 60), (226, 226, 226)
_PLAIN, _CANDIDATE, _CUT = (120, 120, 120), (214, 39, 40), (31, 119, 180)
MJD_UNIX_EPOCH = 40587.0


def _decades(lo: float, hi: float) -> list[float]:
    return [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def eta_v_image(
    points: Sequence[tuple[float, float, bool]],
    *,
    eta_cut: float,
    v_cut: float,
    title: str,
    width_px: int = 640,
    height_px: int = 420,
) -> Image.Image:
    """The picture of (η, V, is candidate) points on log axes, with the cuts; points with η or
    V ≤ 0 (a source seen once, or constant) cannot be placed and are left out."""
    image = Image.new("RGB", (width_px, height_px), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(11)
    x0, x1, y0, y1 = 62, width_px - 20, 30, height_px - 46
    draw.text((width_px / 2, 6), title, fill=_TEXT, font=ImageFont.load_default(13), anchor="ma")
    placed = [(e, v, c) for e, v, c in points if e > 0 and v > 0]
    draw.rectangle((x0, y0, x1, y1), outline=_AXIS)
    draw.text(
        ((x0 + x1) / 2, height_px - 14),
        "η (weighted reduced χ²)",
        fill=_TEXT,
        font=font,
        anchor="ms",
    )
    draw.text((8, (y0 + y1) / 2), "V", fill=_TEXT, font=font, anchor="lm")
    if not placed:
        draw.text(
            ((x0 + x1) / 2, (y0 + y1) / 2),
            "no sources with η, V > 0",
            fill=_TEXT,
            font=font,
            anchor="mm",
        )
        return image
    etas = [p[0] for p in placed] + ([eta_cut] if eta_cut > 0 else [])
    vs = [p[1] for p in placed] + ([v_cut] if v_cut > 0 else [])
    ex = (math.log10(min(etas)) - 0.2, math.log10(max(etas)) + 0.2)
    vy = (math.log10(min(vs)) - 0.2, math.log10(max(vs)) + 0.2)

    def fx(e: float) -> float:
        return x0 + (math.log10(e) - ex[0]) / (ex[1] - ex[0]) * (x1 - x0)

    def fy(v: float) -> float:
        return y1 - (math.log10(v) - vy[0]) / (vy[1] - vy[0]) * (y1 - y0)

    for e in _decades(10 ** ex[0], 10 ** ex[1]):
        if x0 <= fx(e) <= x1:
            draw.line((fx(e), y0, fx(e), y1), fill=_GRID)
            draw.text((fx(e), y1 + 6), f"{e:g}", fill=_TEXT, font=font, anchor="ma")
    for v in _decades(10 ** vy[0], 10 ** vy[1]):
        if y0 <= fy(v) <= y1:
            draw.line((x0, fy(v), x1, fy(v)), fill=_GRID)
            draw.text((x0 - 6, fy(v)), f"{v:g}", fill=_TEXT, font=font, anchor="rm")
    if eta_cut > 0:
        draw.line((fx(eta_cut), y0, fx(eta_cut), y1), fill=_CUT)
    if v_cut > 0:
        draw.line((x0, fy(v_cut), x1, fy(v_cut)), fill=_CUT)
    for candidate in (False, True):  # candidates drawn last, on top
        colour = _CANDIDATE if candidate else _PLAIN
        for e, v, c in placed:
            if c == candidate:
                x, y = fx(e), fy(v)
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    draw.rectangle((x0, y0, x1, y1), outline=_AXIS)
    return image


def light_curve_plot(
    points: Sequence[tuple[float, float, bool]], *, title: str, width_px: int = 640
) -> bytes:
    """PNG of a light curve: (MJD, flux mJy, forced) points against UTC time."""
    return png_bytes(light_curve_image(points, title=title, width_px=width_px))


def light_curve_image(
    points: Sequence[tuple[float, float, bool]], *, title: str, width_px: int = 640
) -> Image.Image:
    """The picture `light_curve_plot` encodes."""
    when = [
        (
            dt.datetime.fromtimestamp((mjd - MJD_UNIX_EPOCH) * 86400.0, dt.UTC),
            flux,
            "forced" if forced else "blind",
        )
        for mjd, flux, forced in points
    ]
    return points_image(
        when,
        grades=("blind", "forced"),
        colours={"blind": "#1f77b4", "forced": "#ff7f0e"},
        title=title,
        width_px=width_px,
        height_px=320,
        empty_text="no measurements",
        xlabel="UTC",
        ylabel="flux (mJy)",
    )
