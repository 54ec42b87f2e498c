"""Spherical geometry for catalogue searches: cone bounds that an index can use, exact distances.

A cone (centre, radius) is searched in two stages. First an index-friendly prefilter: a
declination band [dec - r, dec + r] and one or two right-ascension ranges. Two ranges when the RA
window crosses 0/360 (a single `BETWEEN` would select the complement); no RA restriction at all
when the cone contains a pole (every RA is then within reach). Then the exact great-circle
distance on the few candidate rows. The RA half-width of a small circle is
asin(sin r / cos dec), not r / cos dec: the latter is only its small-angle limit and is too narrow
near the poles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from resources.errors import InvalidQueryError

# Widens every prefilter bound so that rounding can never drop a row the exact test accepts.
_MARGIN_DEG = 1e-9


@dataclass(frozen=True)
class Cone:
    """A search cone: ICRS centre and radius, degrees."""

    ra_deg: float
    dec_deg: float
    radius_deg: float

    def validate(self) -> None:
        check_ra(self.ra_deg, "cone RA")
        check_dec(self.dec_deg, "cone Dec")
        if not math.isfinite(self.radius_deg) or self.radius_deg < 0:
            raise InvalidQueryError(
                "cone radius", f"{self.radius_deg!r} degrees; expected a finite number >= 0"
            )
        if self.radius_deg > 180:
            raise InvalidQueryError("cone radius", f"{self.radius_deg!r} degrees; at most 180")


@dataclass(frozen=True)
class ConeBounds:
    """The prefilter of one cone: a Dec band and RA ranges (None: every RA)."""

    dec_min: float
    dec_max: float
    ra_ranges: tuple[tuple[float, float], ...] | None


def check_ra(value: float, name: str = "RA") -> float:
    if not math.isfinite(value) or not 0.0 <= value < 360.0:
        raise InvalidQueryError(name, f"{value!r} degrees is outside [0, 360)")
    return value


def check_dec(value: float, name: str = "Dec") -> float:
    if not math.isfinite(value) or not -90.0 <= value <= 90.0:
        raise InvalidQueryError(name, f"{value!r} degrees is outside [-90, 90]")
    return value


def cone_bounds(cone: Cone) -> ConeBounds:
    """Declination band and RA window(s) that contain every point of the cone."""
    r = cone.radius_deg
    dec_min = max(-90.0, cone.dec_deg - r - _MARGIN_DEG)
    dec_max = min(90.0, cone.dec_deg + r + _MARGIN_DEG)
    if cone.dec_deg + r >= 90.0 or cone.dec_deg - r <= -90.0:
        return ConeBounds(dec_min, dec_max, None)  # a pole is inside: all RAs qualify
    ratio = math.sin(math.radians(r)) / math.cos(math.radians(cone.dec_deg))
    if ratio >= 1.0:
        return ConeBounds(dec_min, dec_max, None)
    half = math.degrees(math.asin(ratio)) + _MARGIN_DEG
    lo, hi = cone.ra_deg - half, cone.ra_deg + half
    if lo < 0.0:
        return ConeBounds(dec_min, dec_max, ((lo + 360.0, 360.0), (0.0, hi)))
    if hi >= 360.0:
        return ConeBounds(dec_min, dec_max, ((lo, 360.0), (0.0, hi - 360.0)))
    return ConeBounds(dec_min, dec_max, ((lo, hi),))


def cones_bounds(ra: Sequence[float], dec: Sequence[float], radius_deg: float) -> ConeBounds:
    """One prefilter holding many cones of one radius (their union, possibly a little wider):
    the images that could cover any of a day's new sources found in one query, not one each.

    The Dec band spans every cone's band; the RA window is the shortest arc holding every
    centre (the circle minus its largest empty gap), widened by the widest cone's half-width;
    no RA restriction when a cone holds a pole or the window would go all the way round."""
    if len(ra) != len(dec) or not len(ra):
        raise ValueError("cones_bounds needs as many RAs as Decs, at least one")
    each = [
        cone_bounds(Cone(float(a) % 360.0, float(d), radius_deg))
        for a, d in zip(ra, dec, strict=True)
    ]
    dec_min = min(b.dec_min for b in each)
    dec_max = max(b.dec_max for b in each)
    if any(b.ra_ranges is None for b in each):
        return ConeBounds(dec_min, dec_max, None)
    half = max(sum(hi - lo for lo, hi in b.ra_ranges or ()) for b in each) / 2.0
    centres = sorted(float(a) % 360.0 for a in ra)
    gaps = [centres[k + 1] - centres[k] for k in range(len(centres) - 1)]
    gaps.append(centres[0] + 360.0 - centres[-1])  # the gap across 0/360
    widest = max(range(len(gaps)), key=gaps.__getitem__)
    start = centres[(widest + 1) % len(centres)]
    lo, hi = start - half, start + (360.0 - gaps[widest]) + half
    if hi - lo >= 360.0:
        return ConeBounds(dec_min, dec_max, None)
    if lo < 0.0:
        return ConeBounds(dec_min, dec_max, ((lo + 360.0, 360.0), (0.0, hi)))
    if hi >= 360.0:
        return ConeBounds(dec_min, dec_max, ((lo, 360.0), (0.0, hi - 360.0)))
    return ConeBounds(dec_min, dec_max, ((lo, hi),))


def separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (Vincenty's form: accurate at 0 and 180 degrees)."""
    a1, d1, a2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    dra = a2 - a1
    sin_d1, cos_d1 = math.sin(d1), math.cos(d1)
    sin_d2, cos_d2 = math.sin(d2), math.cos(d2)
    num1 = cos_d2 * math.sin(dra)
    num2 = cos_d1 * sin_d2 - sin_d1 * cos_d2 * math.cos(dra)
    den = sin_d1 * sin_d2 + cos_d1 * cos_d2 * math.cos(dra)
    return math.degrees(math.atan2(math.hypot(num1, num2), den))


def in_cone(cone: Cone, ra_deg: float | None, dec_deg: float | None) -> bool:
    if ra_deg is None or dec_deg is None:
        return False
    distance = separation_deg(cone.ra_deg, cone.dec_deg, ra_deg, dec_deg)
    return distance <= cone.radius_deg + 1e-12
