"""Association: which sky source each blind measurement belongs to (VAST's "advanced" method).

Measurements are associated image by image, in time order, against the sky sources of the
region (loaded from the database before, written back after: the state lives in the database,
not in one process). A measurement matches a source when both

- the de Ruiter radius (de Ruiter et al. 1977; TraP and VAST use it) is within `dr_limit`:
  dr² = (Δα cos δ̄)² / (σ_α,1² + σ_α,2²) + Δδ² / (σ_δ,1² + σ_δ,2²), with each measurement's
  position error plus a systematic astrometric error in quadrature (VAST's `ra_uncertainty` /
  `dec_uncertainty`), and the source's weighted-mean uncertainty;
- the separation is within `beamwidth_limit` × the image's BMAJ (VAST's beam-width limit).

Pairs are resolved greedily by increasing dr, so each measurement takes at most one source and
each source at most one measurement of one image:
- a source already taken by a closer measurement of the same image (one-to-many): the farther
  measurement starts a new source, *related* to the first (VAST creates new sources there too);
- a measurement already taken by a closer source (many-to-one): that source and the other are
  recorded as related (VAST would add the measurement to both; here each measurement belongs to
  exactly one source, so light curves never count one detection twice).
Unmatched measurements start new sources. After each image the matched sources' weighted
positions are updated, so the next image of the day matches against them.

Limits (docs/sources.md): two real sources closer than about `beamwidth_limit` × BMAJ can be
confused when one of them is not detected in an image; farther apart, associations are exact
(tests/assets/sources/test_association.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from resources.repositories.sky import cones_bounds

#: The association kinds stored with each measurement (`measurements.association`).
NEW, BASIC, ONE_TO_MANY, MANY_TO_ONE = "new", "basic", "one-to-many", "many-to-one"


@dataclass(frozen=True)
class AssociationConfig:
    """The matching limits; the defaults are the VAST pipeline's."""

    dr_limit: float = 5.68
    beamwidth_limit: float = 1.5
    systematic_arcsec: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return {
            "dr_limit": self.dr_limit,
            "beamwidth_limit": self.beamwidth_limit,
            "systematic_arcsec": self.systematic_arcsec,
        }


def wrap180(deg: np.ndarray | float) -> np.ndarray | float:
    """An RA difference in (-180, 180] degrees."""
    return (np.asarray(deg) + 180.0) % 360.0 - 180.0


@dataclass
class SkyCatalogue:
    """The sky sources of a region while a day is associated: growable arrays of positions and
    the weighted sums behind them. Row k is the database source `ids[k]` (None: new today)."""

    ids: list[int | None] = field(default_factory=list)
    ra0: np.ndarray = field(default_factory=lambda: np.empty(0))  # reference RA of the sums
    w_ew: np.ndarray = field(default_factory=lambda: np.empty(0))  # Σ 1/σ_ew² (deg⁻²)
    s_ew: np.ndarray = field(default_factory=lambda: np.empty(0))  # Σ w (α − α0)
    w_ns: np.ndarray = field(default_factory=lambda: np.empty(0))
    s_ns: np.ndarray = field(default_factory=lambda: np.empty(0))  # Σ w δ
    touched: set[int] = field(default_factory=set)  # rows whose sums changed today

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def ra(self) -> np.ndarray:
        return (self.ra0 + self.s_ew / self.w_ew) % 360.0

    @property
    def dec(self) -> np.ndarray:
        return self.s_ns / self.w_ns

    @property
    def unc_ew(self) -> np.ndarray:
        return 1.0 / np.sqrt(self.w_ew)

    @property
    def unc_ns(self) -> np.ndarray:
        return 1.0 / np.sqrt(self.w_ns)

    @classmethod
    def from_states(cls, ids: list[int], states: list[dict[str, float]]) -> SkyCatalogue:
        """The catalogue of stored sources (`sources.state["pos"]` of each)."""
        out = cls(ids=list(ids))
        out.ra0 = np.array([s["ra0"] for s in states], dtype=float)
        out.w_ew = np.array([s["w_ew"] for s in states], dtype=float)
        out.s_ew = np.array([s["s_ew"] for s in states], dtype=float)
        out.w_ns = np.array([s["w_ns"] for s in states], dtype=float)
        out.s_ns = np.array([s["s_ns"] for s in states], dtype=float)
        return out

    def state(self, k: int) -> dict[str, float]:
        """Row k's sums, as stored in `sources.state["pos"]`."""
        return {
            "ra0": float(self.ra0[k]),
            "w_ew": float(self.w_ew[k]),
            "s_ew": float(self.s_ew[k]),
            "w_ns": float(self.w_ns[k]),
            "s_ns": float(self.s_ns[k]),
        }

    def add(self, k: int, ra: float, dec: float, unc_ew: float, unc_ns: float) -> None:
        """One more measurement of row k."""
        w_ew, w_ns = 1.0 / unc_ew**2, 1.0 / unc_ns**2
        self.w_ew[k] += w_ew
        self.s_ew[k] += w_ew * float(wrap180(ra - self.ra0[k]))
        self.w_ns[k] += w_ns
        self.s_ns[k] += w_ns * dec
        self.touched.add(k)

    def append(self, ra: np.ndarray, dec: np.ndarray, unc_ew: np.ndarray, unc_ns: np.ndarray):
        """New sources from these measurements; returns their rows."""
        start = len(self.ids)
        n = len(ra)
        self.ids.extend([None] * n)
        w_ew, w_ns = 1.0 / unc_ew**2, 1.0 / unc_ns**2
        self.ra0 = np.concatenate([self.ra0, ra])
        self.w_ew = np.concatenate([self.w_ew, w_ew])
        self.s_ew = np.concatenate([self.s_ew, np.zeros(n)])
        self.w_ns = np.concatenate([self.w_ns, w_ns])
        self.s_ns = np.concatenate([self.s_ns, w_ns * dec])
        rows = np.arange(start, start + n)
        self.touched.update(int(k) for k in rows)
        return rows


@dataclass
class ImageMatch:
    """The association of one image's measurements: per measurement its catalogue row, kind,
    separation (arcsec) and de Ruiter radius; and the relations found (row, row, kind)."""

    rows: np.ndarray
    kinds: list[str]
    d2d_arcsec: np.ndarray
    dr: np.ndarray
    relations: list[tuple[int, int, str]]


def de_ruiter(
    ra1: np.ndarray,
    dec1: np.ndarray,
    ew1: np.ndarray,
    ns1: np.ndarray,
    ra2: np.ndarray,
    dec2: np.ndarray,
    ew2: np.ndarray,
    ns2: np.ndarray,
) -> np.ndarray:
    """de Ruiter radius of every pair (broadcast): positions and 1σ uncertainties in degrees."""
    dra = wrap180(ra1 - ra2) * np.cos(np.radians(0.5 * (dec1 + dec2)))
    ddec = dec1 - dec2
    return np.sqrt(dra**2 / (ew1**2 + ew2**2) + ddec**2 / (ns1**2 + ns2**2))


def separation_deg(ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray):
    """Great-circle separation (haversine, exact at small angles), degrees, broadcast."""
    r1, d1, r2, d2 = (np.radians(a) for a in (ra1, dec1, ra2, dec2))
    h = np.sin(0.5 * (d2 - d1)) ** 2 + np.cos(d1) * np.cos(d2) * np.sin(0.5 * (r2 - r1)) ** 2
    return np.degrees(2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def associate_image(
    catalogue: SkyCatalogue,
    ra: np.ndarray,
    dec: np.ndarray,
    unc_ew: np.ndarray,
    unc_ns: np.ndarray,
    *,
    bmaj_deg: float,
    config: AssociationConfig,
) -> ImageMatch:
    """Associate one image's measurements with `catalogue`, which is updated (matched sources'
    sums, new rows). Uncertainties include the systematic part already."""
    n = len(ra)
    rows = np.full(n, -1, dtype=np.int64)
    kinds = [NEW] * n
    d2d = np.full(n, np.nan)
    dr = np.full(n, np.nan)
    others: dict[int, list[int]] = {}  # measurement -> other sources it matched
    limit_deg = config.beamwidth_limit * bmaj_deg
    if n and len(catalogue):
        # Candidates: the box around the image's measurements (a Dec band and the RA window:
        # in a drift scan the whole catalogue shares the band), then exact tests on pairs.
        cat_ra, cat_dec = catalogue.ra, catalogue.dec
        box = cones_bounds(ra, dec, limit_deg)
        inside = (cat_dec >= box.dec_min) & (cat_dec <= box.dec_max)
        if box.ra_ranges is not None:
            in_ra = np.zeros(len(cat_ra), dtype=bool)
            for ra_lo, ra_hi in box.ra_ranges:
                in_ra |= (cat_ra >= ra_lo) & (cat_ra <= ra_hi)
            inside &= in_ra
        near = np.flatnonzero(inside)
        if len(near):
            sep = separation_deg(ra[:, None], dec[:, None], cat_ra[near], cat_dec[near])
            mi, cj = np.nonzero(sep <= limit_deg)
            k = near[cj]
            radius = de_ruiter(
                ra[mi],
                dec[mi],
                unc_ew[mi],
                unc_ns[mi],
                cat_ra[k],
                cat_dec[k],
                catalogue.unc_ew[k],
                catalogue.unc_ns[k],
            )
            ok = radius <= config.dr_limit
            mi, k, radius, seps = mi[ok], k[ok], radius[ok], sep[mi[ok], cj[ok]]
            taken: set[int] = set()
            for t in np.lexsort((k, mi, radius)):  # by dr; ties broken deterministically
                m, row = int(mi[t]), int(k[t])
                if rows[m] < 0 and row not in taken:
                    rows[m], kinds[m] = row, BASIC
                    d2d[m], dr[m] = seps[t] * 3600.0, radius[t]
                    taken.add(row)
                else:
                    others.setdefault(m, []).append(row)
    unmatched = np.flatnonzero(rows < 0)
    matched = np.flatnonzero(rows >= 0)
    for m in matched:  # the sums of matched sources (new rows start from their measurement)
        catalogue.add(int(rows[m]), float(ra[m]), float(dec[m]), unc_ew[m], unc_ns[m])
    if len(unmatched):
        rows[unmatched] = catalogue.append(
            ra[unmatched], dec[unmatched], unc_ew[unmatched], unc_ns[unmatched]
        )
    relations: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int]] = set()
    for m, also in sorted(others.items()):
        # New because every source it matched went to a closer measurement: one-to-many.
        # Matched, and other sources matched it too: many-to-one.
        kind = ONE_TO_MANY if kinds[m] == NEW else MANY_TO_ONE
        kinds[m] = kind
        for row in also:
            pair = (min(row, int(rows[m])), max(row, int(rows[m])))
            if row != rows[m] and pair not in seen:
                seen.add(pair)
                relations.append((row, int(rows[m]), kind))
    return ImageMatch(rows=rows, kinds=kinds, d2d_arcsec=d2d, dr=dr, relations=relations)


def measurement_uncertainties(
    ra_err_deg: np.ndarray, dec_err_deg: np.ndarray, config: AssociationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(uncertainty_ew, uncertainty_ns) in degrees: fit errors plus the systematic error."""
    sys_deg = config.systematic_arcsec / 3600.0
    ew = np.sqrt(np.nan_to_num(ra_err_deg, nan=0.0) ** 2 + sys_deg**2)
    ns = np.sqrt(np.nan_to_num(dec_err_deg, nan=0.0) ** 2 + sys_deg**2)
    return np.maximum(ew, 1e-9), np.maximum(ns, 1e-9)


def source_name(ra_deg: float, dec_deg: float) -> str:
    """IAU-style name from a position: J hhmmss.s ±ddmmss (truncated, as catalogues do)."""
    ra_h = (ra_deg % 360.0) / 15.0
    h = int(ra_h)
    m = int((ra_h - h) * 60.0)
    s = math.floor(((ra_h - h) * 60.0 - m) * 600.0) / 10.0
    sign = "+" if dec_deg >= 0 else "-"
    a = abs(dec_deg)
    d = int(a)
    dm = int((a - d) * 60.0)
    ds = int(((a - d) * 60.0 - dm) * 60.0)
    return f"J{h:02d}{m:02d}{s:04.1f}{sign}{d:02d}{dm:02d}{ds:02d}"
