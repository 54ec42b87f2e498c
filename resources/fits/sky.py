"""A known sky for the sample data: steady, variable and transient point sources, and its truth.

`contimg sample-data --sky` (and `contimg demo`) image one field again and again, so that the
source assets have something to associate and light curves to compute; this module decides what
that field holds and writes the truth the tests (and a curious user) compare the catalogue with.

Kinds of source (fluxes are true peak fluxes of unresolved sources, so mJy/beam = mJy):

- `steady`: a constant flux, most of them bright (SNR 20-400 at the default noise), a few near
  the 5-sigma detection threshold, so that forced photometry fills the gaps of their light curves;
- `variable`: a sinusoid of 50 % amplitude, one cycle over a day's images (`sine`), or a step down to half
  the flux at the first image of a middle day (`step`);
- `transient`: nothing until the first image of the last day (the middle image with one day),
  then a constant flux: the association's "new source" and the backwards forced photometry.

Everything is drawn from the seed alone (its own random stream, not the images' noise), so the
same seed gives the same sky whatever the number of days; the light curves' timing follows the
observation times.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from astropy.wcs import WCS

#: The truth files written beside the images (not matched by the ingest patterns, *.fits...).
TRUTH_FILE = "sky_truth.csv"
FLUX_FILE = "sky_truth_fluxes.csv"

TRUTH_FIELDS: tuple[str, ...] = (
    "id",
    "ra_deg",
    "dec_deg",
    "kind",
    "model",
    "mean_flux_mjy",
    "min_flux_mjy",
    "max_flux_mjy",
    "detail",
)
FLUX_FIELDS: tuple[str, ...] = ("image", "date_obs", "source_id", "flux_mjy")

#: A source's distance to the image edge, in pixels at least: forced photometry skips sources
#: within 3 x BMAJ of an edge (docs/sources.md), plus room for the beam.
EDGE_MARGIN_PX = 24
#: The smallest separation of two sources, in BMAJ: beyond ~1.5 x BMAJ the association is exact,
#: and at 4 x BMAJ the beams do not overlap enough to bias a fit.
MIN_SEPARATION_BMAJ = 4.0
#: Pixels of field per source: ~40 sources in the default 512-pixel image.
PIXELS_PER_SOURCE = 5500
MIN_SOURCES = 10  # 3 variable and transient, 2 faint, 5 bright steady: every kind, always
N_FAINT = 3
MODULATION = 0.5  # the variables' 50 % (sine amplitude; the step halves the flux)


@dataclass(frozen=True)
class SkySource:
    """One source of the sample sky and how its flux goes with time."""

    id: int
    ra_deg: float
    dec_deg: float
    kind: str  # steady, variable, transient
    model: str  # steady, sine, step, transient
    flux_jy: float  # steady: the flux; sine: the mean; step: before the step; transient: after
    phase_rad: float = 0.0  # sine
    switch: dt.datetime | None = None  # step, transient: from this time on (inclusive)
    period: dt.timedelta | None = None  # sine

    def flux_at(self, when: dt.datetime, first: dt.datetime) -> float:
        """The true flux (Jy) at `when`; `first` is the first observation of the run."""
        if self.model == "sine":
            assert self.period is not None
            t = (when - first) / self.period
            return self.flux_jy * (1.0 + MODULATION * math.sin(2 * math.pi * t + self.phase_rad))
        if self.model == "step":
            assert self.switch is not None
            return self.flux_jy * (MODULATION if when >= self.switch else 1.0)
        if self.model == "transient":
            assert self.switch is not None
            return self.flux_jy if when >= self.switch else 0.0
        return self.flux_jy

    def detail(self, first: dt.datetime) -> str:
        """A short human description of the light curve, for the truth file."""
        if self.model == "sine":
            assert self.period is not None
            hours = self.period.total_seconds() / 3600.0
            return f"1 + {MODULATION:g} sin(2 pi t / {hours:.3f} h + {self.phase_rad:.3f})"
        if self.model == "step":
            return f"x{MODULATION:g} from {self.switch:%Y-%m-%dT%H:%M:%S}"
        if self.model == "transient":
            return f"appears {self.switch:%Y-%m-%dT%H:%M:%S}"
        return "constant"


def _switch_time(times: Sequence[Sequence[dt.datetime]], which: str) -> dt.datetime:
    """When a step (the first image of the middle day) or a transient (of the last day) switches;
    with one day, its middle image (a later image at least, so that there is a before)."""
    days = [d for d in times if d]
    if len(days) == 1:
        day = days[0]
        if which == "step":
            return day[len(day) // 2]
        return day[min(len(day) - 1, max(1, (2 * len(day)) // 3))]
    return days[len(days) // 2][0] if which == "step" else days[-1][0]


def _sine_period(times: Sequence[Sequence[dt.datetime]]) -> dt.timedelta:
    """One day's images (with one more cadence) when a day has 3 or more: every day then
    samples the whole cycle, whatever the number of days; otherwise 3 days, so that daily
    samples still see three phases of it."""
    day = times[0]
    if len(day) >= 3:
        return (day[-1] - day[0]) * len(day) / (len(day) - 1)
    return dt.timedelta(days=3)


def draw_sky(
    seed: int,
    *,
    size: int,
    cell_arcsec: float,
    bmaj_arcsec: float,
    pix2world: WCS,
    times: Sequence[Sequence[dt.datetime]],
    noise_jy: float,
) -> list[SkySource]:
    """The sample sky of `seed` in an image of `size` pixels (`pix2world`: an astropy WCS of it).

    Positions uniform inside the field, `EDGE_MARGIN_PX` from its edges and at least
    `MIN_SEPARATION_BMAJ` beams apart (drawn by rejection: fewer sources when they do not fit).
    """
    rng = np.random.default_rng((seed, 0x5C1))  # its own stream: the noise does not move it
    margin = min(EDGE_MARGIN_PX, size // 4)
    side = size - 2 * margin
    wanted = max(MIN_SOURCES, (side * side) // PIXELS_PER_SOURCE) if side > 0 else 0
    min_sep = MIN_SEPARATION_BMAJ * bmaj_arcsec / cell_arcsec
    placed: list[tuple[float, float]] = []
    for _ in range(50 * wanted):
        if len(placed) == wanted:
            break
        x, y = rng.uniform(margin, size - 1 - margin, size=2)
        if all(math.hypot(x - px, y - py) >= min_sep for px, py in placed):
            placed.append((float(x), float(y)))
    if not placed:
        return []
    xs = np.array([p[0] for p in placed])
    ys = np.array([p[1] for p in placed])
    ra, dec = pix2world.all_pix2world(xs, ys, 0)
    period = _sine_period(times)
    sigma = noise_jy
    out: list[SkySource] = []
    for i, (r, d) in enumerate(zip(ra, dec, strict=True)):
        common = {"id": i + 1, "ra_deg": float(r) % 360.0, "dec_deg": float(d)}
        if i == 0:
            flux = _log_uniform(rng, 40 * sigma, 120 * sigma)
            phase = float(rng.uniform(0, 2 * math.pi))
            out.append(
                SkySource(
                    **common, kind="variable", model="sine", flux_jy=flux, phase_rad=phase,
                    period=period,
                )
            )  # fmt: skip
        elif i == 1:
            flux = _log_uniform(rng, 40 * sigma, 120 * sigma)
            switch = _switch_time(times, "step")
            out.append(
                SkySource(**common, kind="variable", model="step", flux_jy=flux, switch=switch)
            )
        elif i == 2:
            flux = _log_uniform(rng, 30 * sigma, 80 * sigma)
            switch = _switch_time(times, "transient")
            out.append(
                SkySource(
                    **common, kind="transient", model="transient", flux_jy=flux, switch=switch
                )
            )
        elif i < 3 + N_FAINT:
            flux = float(rng.uniform(4.5 * sigma, 6.5 * sigma))  # near the 5-sigma threshold
            out.append(SkySource(**common, kind="steady", model="steady", flux_jy=flux))
        else:
            flux = _log_uniform(rng, 20 * sigma, 400 * sigma)
            out.append(SkySource(**common, kind="steady", model="steady", flux_jy=flux))
    return out


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


@dataclass(frozen=True)
class TruthImage:
    """One image of the run as the truth file records it: its file name and time."""

    name: str
    date_obs: dt.datetime


def write_truth(
    out_dir: Path, sky: Sequence[SkySource], images: Sequence[TruthImage]
) -> tuple[Path, Path]:
    """Write `sky_truth.csv` (one row per source) and `sky_truth_fluxes.csv` (one row per image
    and source: the true flux in that image) into `out_dir`; return their paths."""
    first = min(i.date_obs for i in images)
    truth_path, flux_path = out_dir / TRUTH_FILE, out_dir / FLUX_FILE
    with open(truth_path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(TRUTH_FIELDS)
        for s in sky:
            fluxes = [s.flux_at(i.date_obs, first) * 1e3 for i in images]
            writer.writerow(
                [
                    s.id,
                    f"{s.ra_deg:.7f}",
                    f"{s.dec_deg:+.7f}",
                    s.kind,
                    s.model,
                    f"{sum(fluxes) / len(fluxes):.4f}",
                    f"{min(fluxes):.4f}",
                    f"{max(fluxes):.4f}",
                    s.detail(first),
                ]
            )
    with open(flux_path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FLUX_FIELDS)
        for image in images:
            for s in sky:
                flux = s.flux_at(image.date_obs, first) * 1e3
                writer.writerow([image.name, image.date_obs.isoformat(), s.id, f"{flux:.4f}"])
    return truth_path, flux_path


@dataclass(frozen=True)
class TruthRow:
    """A row of `sky_truth.csv`, read back."""

    id: int
    ra_deg: float
    dec_deg: float
    kind: str
    model: str
    mean_flux_mjy: float
    min_flux_mjy: float
    max_flux_mjy: float
    detail: str


def read_truth(out_dir: Path) -> tuple[list[TruthRow], dict[str, dict[int, float]]]:
    """(the sources of `sky_truth.csv`, {image file name: {source id: true flux mJy}})."""
    with open(out_dir / TRUTH_FILE, newline="") as fh:
        rows = [
            TruthRow(
                int(r["id"]),
                float(r["ra_deg"]),
                float(r["dec_deg"]),
                r["kind"],
                r["model"],
                float(r["mean_flux_mjy"]),
                float(r["min_flux_mjy"]),
                float(r["max_flux_mjy"]),
                r["detail"],
            )
            for r in csv.DictReader(fh)
        ]
    fluxes: dict[str, dict[int, float]] = {}
    with open(out_dir / FLUX_FILE, newline="") as fh:
        for r in csv.DictReader(fh):
            fluxes.setdefault(r["image"], {})[int(r["source_id"])] = float(r["flux_mjy"])
    return rows, fluxes
