"""Synthetic DSA-110-like continuum images, good and deliberately broken (sample data, tests).

A DSA-110 image is a 4-D (RA, DEC, FREQ, STOKES) cube with two degenerate axes, SIN projection,
1.4 GHz centre, 187.5 MHz band, Jy/beam, Gaussian restoring beam. The array is a drift-scan
transit instrument: a field's RA is the local sidereal time at OVRO when it was imaged, and the
declination stays fixed for long stretches (+16.3, +54.6, +65.7 here). Everything is
deterministic given the seed, including the files' mtimes (set to the observation time).
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.io import fits

from resources.fits.sky import SkySource, TruthImage, draw_sky, write_truth
from resources.settings import SAMPLE_FIRST_DAY

FIELD_DECS: tuple[float, ...] = (16.3, 54.6, 65.7)
OVRO_LONGITUDE_DEG = -118.2834
CADENCE = dt.timedelta(minutes=5)
FIRST_IMAGE_UTC = dt.time(2, 0, 0)
FREQ_HZ = 1.4e9
BANDWIDTH_HZ = 187.5e6
_J2000_JD = 2451545.0


def local_sidereal_deg(when: dt.datetime, longitude_deg: float = OVRO_LONGITUDE_DEG) -> float:
    """Mean local sidereal time in degrees (IAU 1982 linear GMST; good to ~1 s, no IERS)."""
    jd = when.timestamp() / 86400.0 + 2440587.5
    gmst = 280.46061837 + 360.98564736629 * (jd - _J2000_JD)
    return (gmst + longitude_deg) % 360.0


@dataclass(frozen=True)
class ImageSpec:
    """What one synthetic image looks like."""

    date_obs: dt.datetime
    dec_deg: float
    ra_deg: float | None = None  # None: the transit RA (LST at OVRO) at date_obs
    size: int = 512
    cell_arcsec: float = 4.0
    bmaj_arcsec: float = 20.0
    bmin_arcsec: float = 12.0
    bpa_deg: float = 15.0
    noise_jy: float = 5e-4
    n_sources: int = 40
    seed: int = 0
    telescope: str = "DSA-110"
    # Point sources at sky positions: (RA deg, Dec deg, peak Jy/beam), through the header's WCS
    # (a known sky seen by several images, for the source tests and sample data).
    sky_sources: tuple[tuple[float, float, float], ...] = ()
    extra_cards: dict[str, object] = field(default_factory=dict)
    drop_cards: tuple[str, ...] = ()

    @property
    def ra(self) -> float:
        return self.ra_deg if self.ra_deg is not None else local_sidereal_deg(self.date_obs)


def _beam_kernel(shape: tuple[int, int], spec: ImageSpec) -> np.ndarray:
    """Peak-normalised Gaussian beam centred at pixel (0, 0) (wrap-around), for FFT use."""
    ny, nx = shape
    y = np.fft.fftfreq(ny, 1.0 / ny)[:, None]
    x = np.fft.fftfreq(nx, 1.0 / nx)[None, :]
    return _gauss(x, y, spec)


def _gauss(x: np.ndarray, y: np.ndarray, spec: ImageSpec) -> np.ndarray:
    fwhm_to_sigma = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    smaj = spec.bmaj_arcsec * fwhm_to_sigma / spec.cell_arcsec
    smin = spec.bmin_arcsec * fwhm_to_sigma / spec.cell_arcsec
    # BPA is east of north: the major axis turns from +y (north) towards -x (east on the sky,
    # RA increases to the left in an image with negative CDELT1).
    pa = math.radians(spec.bpa_deg)
    u = -x * math.sin(pa) + y * math.cos(pa)  # along the major axis
    v = x * math.cos(pa) + y * math.sin(pa)
    return np.exp(-0.5 * ((u / smaj) ** 2 + (v / smin) ** 2))


def make_pixels(spec: ImageSpec) -> np.ndarray:
    """Point sources convolved with the beam plus beam-correlated noise, Jy/beam, float32."""
    rng = np.random.default_rng(spec.seed)
    n = spec.size
    image = np.zeros((n, n), dtype=np.float64)
    kernel_half = math.ceil(4 * spec.bmaj_arcsec / spec.cell_arcsec)
    n_sources = spec.n_sources if n > 2 * kernel_half + 2 else 0  # too small for sources
    for _ in range(n_sources):
        flux = math.exp(rng.uniform(math.log(2e-3), math.log(0.5)))
        cx, cy = rng.uniform(kernel_half, n - kernel_half - 1, size=2)
        x0, y0 = int(cx) - kernel_half, int(cy) - kernel_half
        ys, xs = np.mgrid[y0 : y0 + 2 * kernel_half + 1, x0 : x0 + 2 * kernel_half + 1]
        image[ys, xs] += flux * _gauss(xs - cx, ys - cy, spec)
    if spec.sky_sources:
        _add_sky_sources(image, spec)
    white = rng.standard_normal((n, n))
    kernel = _beam_kernel((n, n), spec)
    noise = np.fft.irfft2(np.fft.rfft2(white) * np.fft.rfft2(kernel), s=(n, n))
    noise *= spec.noise_jy / float(np.std(noise))
    return (image + noise).astype(np.float32)


def _add_sky_sources(image: np.ndarray, spec: ImageSpec) -> None:
    """Add `spec.sky_sources` (beam-shaped, at their sky positions) to `image` in place."""
    from astropy.wcs import WCS

    wcs = WCS(make_header(spec), naxis=2)
    n = spec.size
    half = math.ceil(4 * spec.bmaj_arcsec / spec.cell_arcsec)
    ra = np.array([s[0] for s in spec.sky_sources], dtype=float)
    dec = np.array([s[1] for s in spec.sky_sources], dtype=float)
    xs, ys = wcs.all_world2pix(ra, dec, 0)
    for (_, _, flux), cx, cy in zip(spec.sky_sources, xs, ys, strict=True):
        if not (np.isfinite(cx) and np.isfinite(cy)) or not (-half < cx < n + half):
            continue
        if not -half < cy < n + half:
            continue
        x0, x1 = max(0, int(cx) - half), min(n, int(cx) + half + 1)
        y0, y1 = max(0, int(cy) - half), min(n, int(cy) + half + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        image[yy, xx] += flux * _gauss(xx - cx, yy - cy, spec)


def make_header(spec: ImageSpec) -> fits.Header:
    n = spec.size
    header = fits.Header()
    cards: list[tuple[str, object, str]] = [
        ("BSCALE", 1.0, "PHYSICAL = PIXEL*BSCALE + BZERO"),
        ("BZERO", 0.0, ""),
        ("BUNIT", "Jy/beam", "Brightness (pixel) unit"),
        ("BMAJ", spec.bmaj_arcsec / 3600.0, "[deg] restoring beam major axis (FWHM)"),
        ("BMIN", spec.bmin_arcsec / 3600.0, "[deg] restoring beam minor axis (FWHM)"),
        ("BPA", spec.bpa_deg, "[deg] restoring beam position angle"),
        ("BTYPE", "Intensity", ""),
        ("OBJECT", f"DSA110_dec{spec.dec_deg:+.1f}", ""),
        ("EQUINOX", 2000.0, ""),
        ("RADESYS", "ICRS", ""),
        ("LONPOLE", 180.0, ""),
        ("LATPOLE", spec.dec_deg, ""),
        ("CTYPE1", "RA---SIN", ""),
        ("CRVAL1", spec.ra, ""),
        ("CDELT1", -spec.cell_arcsec / 3600.0, ""),
        ("CRPIX1", n // 2 + 1.0, ""),
        ("CUNIT1", "deg", ""),
        ("CTYPE2", "DEC--SIN", ""),
        ("CRVAL2", spec.dec_deg, ""),
        ("CDELT2", spec.cell_arcsec / 3600.0, ""),
        ("CRPIX2", n // 2 + 1.0, ""),
        ("CUNIT2", "deg", ""),
        ("CTYPE3", "FREQ", ""),
        ("CRVAL3", FREQ_HZ, "band centre"),
        ("CDELT3", BANDWIDTH_HZ, "one channel spans the band (MFS image)"),
        ("CRPIX3", 1.0, ""),
        ("CUNIT3", "Hz", ""),
        ("CTYPE4", "STOKES", ""),
        ("CRVAL4", 1.0, "Stokes I"),
        ("CDELT4", 1.0, ""),
        ("CRPIX4", 1.0, ""),
        ("CUNIT4", "", ""),
        ("PV2_1", 0.0, ""),
        ("PV2_2", 0.0, ""),
        ("RESTFRQ", FREQ_HZ, "[Hz]"),
        ("SPECSYS", "TOPOCENT", ""),
        ("TELESCOP", spec.telescope, ""),
        ("INSTRUME", "DSA-110", ""),
        ("OBSERVER", "contimg sample-data", ""),
        ("TIMESYS", "UTC", ""),
        ("DATE-OBS", spec.date_obs.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "start of observation"),
        ("DATE", (spec.date_obs + dt.timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%S"), ""),
        ("ORIGIN", "contimg synthetic DSA-110 generator", ""),
    ]
    for key, value, comment in cards:
        if key not in spec.drop_cards:
            header[key] = (value, comment)
    for key, value in spec.extra_cards.items():
        header[key] = value
    return header


def make_hdu(spec: ImageSpec) -> fits.PrimaryHDU:
    data = make_pixels(spec)[np.newaxis, np.newaxis, :, :]
    return fits.PrimaryHDU(data=data, header=make_header(spec))


def _set_mtime(path: Path, when: dt.datetime) -> None:
    stamp = (when + dt.timedelta(minutes=20)).timestamp()
    os.utime(path, (stamp, stamp))


def write_image(path: Path, spec: ImageSpec, *, compression: str | None = None) -> Path:
    """Write one image: plain, `gzip` (.fits.gz) or `rice` (tile-compressed .fz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = make_hdu(spec)
    if compression == "gzip":
        raw = fits.HDUList([hdu])
        tmp = path.with_suffix(path.suffix + ".tmp")
        raw.writeto(tmp, overwrite=True)
        with open(tmp, "rb") as src, gzip.GzipFile(path, "wb", mtime=0) as dst:
            dst.write(src.read())
        tmp.unlink()
    elif compression == "rice":
        comp = fits.CompImageHDU(
            data=hdu.data, header=hdu.header, compression_type="RICE_1", quantize_level=16.0
        )
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(path, overwrite=True)
    else:
        hdu.writeto(path, overwrite=True)
    _set_mtime(path, spec.date_obs)
    return path


# --- broken files -------------------------------------------------------------------------


def _truncated(path: Path, spec: ImageSpec) -> None:
    write_image(path, spec)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)


def _gzip_corrupt(path: Path, spec: ImageSpec) -> None:
    write_image(path, spec, compression="gzip")
    data = bytearray(path.read_bytes())
    # Damage the deflate stream well after the header: astropy may still hand back an array.
    start = len(data) // 2
    for k in range(start, start + 64):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))


def _gzip_truncated(path: Path, spec: ImageSpec) -> None:
    write_image(path, spec, compression="gzip")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])


def _table(path: Path, spec: ImageSpec) -> None:
    cols = [
        fits.Column(name="RA", format="D", array=np.array([spec.ra])),
        fits.Column(name="DEC", format="D", array=np.array([spec.dec_deg])),
        fits.Column(name="FLUX", format="E", array=np.array([0.1])),
    ]
    table = fits.BinTableHDU.from_columns(cols)
    primary = fits.PrimaryHDU()
    primary.header["DATE-OBS"] = spec.date_obs.strftime("%Y-%m-%dT%H:%M:%S")
    primary.header["TELESCOP"] = spec.telescope
    fits.HDUList([primary, table]).writeto(path, overwrite=True)


def _not_fits(path: Path, spec: ImageSpec) -> None:
    path.write_text(f"this is a log file written at {spec.date_obs.isoformat()}\n" * 40)


def _huge_header(path: Path, spec: ImageSpec) -> None:
    """A header announcing ~8 TB of float64 pixels followed by one data block."""
    text = fits.Header(
        [("SIMPLE", True), ("BITPIX", -64), ("NAXIS", 4), ("NAXIS1", 1_000_000),
         ("NAXIS2", 1_000_000), ("NAXIS3", 1), ("NAXIS4", 1)]
    )  # fmt: skip
    for card in make_header(spec).cards:
        text.append(card)
    path.write_bytes(text.tostring().encode("ascii") + bytes(2880))


def _bad_header_bytes(path: Path, spec: ImageSpec) -> None:
    write_image(path, spec)
    data = bytearray(path.read_bytes())
    marker = b"OBSERVER= 'contimg sample-data"
    at = data.index(marker)
    data[at + 11 : at + 13] = "é".encode()  # UTF-8 bytes 0xc3 0xa9 inside the card
    path.write_bytes(bytes(data))


def _velocity_cube(path: Path, spec: ImageSpec) -> None:
    base = make_pixels(spec)
    header = make_header(spec)
    header["CTYPE3"] = "VELO-LSR"
    header["CRVAL3"] = 0.0
    header["CDELT3"] = 1000.0
    header["CUNIT3"] = "m/s"
    cube = np.stack([base] * 3)[np.newaxis]
    fits.PrimaryHDU(data=cube, header=header).writeto(path, overwrite=True)


def _no_date(path: Path, spec: ImageSpec) -> None:
    write_image(path, spec)
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["DATE-OBS"]


def _nan_beam(path: Path, spec: ImageSpec) -> None:
    write_image(path, spec)
    data = bytearray(path.read_bytes())
    for key in (b"BMAJ    =", b"BMIN    ="):
        at = data.index(key)
        data[at + 10 : at + 30] = f"{'NaN':>20}".encode("ascii")
    path.write_bytes(bytes(data))


@dataclass(frozen=True)
class BrokenKind:
    """A deliberately broken sample: how it is written and what contimg must say about it."""

    name: str
    filename: str
    writer: Callable[[Path, ImageSpec], None]
    inspect_error: str | None  # FITSParsingError subclass name from `fits inspect` (None: ok)
    ingest_error: str | None  # error recorded at ingest (None: ingested)
    warning: str | None = None  # substring of a warning expected when it parses


BROKEN_KINDS: tuple[BrokenKind, ...] = (
    BrokenKind("truncated", "broken_truncated.fits", _truncated, "TruncatedFITSError",
               "TruncatedFITSError"),
    BrokenKind("corrupt_gzip", "broken_corrupt.fits.gz", _gzip_corrupt, "DecompressionError",
               "DecompressionError"),
    BrokenKind("truncated_gzip", "broken_cut.fits.gz", _gzip_truncated, "DecompressionError",
               "DecompressionError"),
    BrokenKind("table", "broken_table.fits", _table, "NoImageError", "NoImageError"),
    BrokenKind("not_fits", "broken_not_fits.fits", _not_fits, "NotFITSError", "NotFITSError"),
    BrokenKind("huge_header", "broken_huge_header.fits", _huge_header, "TruncatedFITSError",
               "TruncatedFITSError"),
    BrokenKind("bad_header_bytes", "broken_header_bytes.fits", _bad_header_bytes,
               "BadHeaderError", "BadHeaderError"),
    BrokenKind("velocity_cube", "broken_velocity_cube.fits", _velocity_cube,
               "UnsupportedLayoutError", "UnsupportedLayoutError"),
    BrokenKind("missing_date_obs", "broken_no_date_obs.fits", _no_date, None,
               "MissingObservationDateError", "no observation time"),
    BrokenKind("nan_beam", "broken_nan_beam.fits", _nan_beam, None, None, "beam left empty"),
)  # fmt: skip


@dataclass(frozen=True)
class SampleFile:
    path: Path
    obs_date: dt.date | None  # the date in its header (None when it has none)
    kind: str  # "good" or a BrokenKind name
    inspect_error: str | None
    ingest_error: str | None
    warning: str | None = None


def _observation_times(start: dt.date, days: int, per_day: int) -> list[list[dt.datetime]]:
    out = []
    for d in range(days):
        day = start + dt.timedelta(days=d)
        first = dt.datetime.combine(day, FIRST_IMAGE_UTC, tzinfo=dt.UTC)
        out.append([first + k * CADENCE for k in range(per_day)])
    return out


@dataclass(frozen=True)
class SkyField:
    """The one field of `generate_sample_data(sky=True)`: its pointing and its known sky."""

    ra_deg: float
    dec_deg: float
    sources: tuple[SkySource, ...]

    def spec_fields(self, when: dt.datetime, first: dt.datetime) -> dict[str, object]:
        """The ImageSpec fields of the image taken at `when`: this pointing, this sky's fluxes
        then, and no random sources (they would be new, one-off sources in every image)."""
        return {
            "ra_deg": self.ra_deg,
            "dec_deg": self.dec_deg,
            "n_sources": 0,
            "sky_sources": tuple(
                (s.ra_deg, s.dec_deg, s.flux_at(when, first))
                for s in self.sources
                if s.flux_at(when, first) != 0.0
            ),
        }


def _sky_field(schedule: list[list[dt.datetime]], size: int, seed: int) -> SkyField:
    """The field of a `sky` run: pointed at the transit RA of its first image, on the first strip,
    with the sky `resources.fits.sky.draw_sky` draws for `seed` (its positions through the
    images' own WCS, so the truth and the pixels agree)."""
    from astropy.wcs import WCS

    first = schedule[0][0]
    base = ImageSpec(date_obs=first, dec_deg=FIELD_DECS[0], size=size)
    base = replace(base, ra_deg=base.ra)
    sources = draw_sky(
        seed,
        size=size,
        cell_arcsec=base.cell_arcsec,
        bmaj_arcsec=base.bmaj_arcsec,
        pix2world=WCS(make_header(base), naxis=2),
        times=schedule,
        noise_jy=base.noise_jy,
    )
    return SkyField(base.ra, base.dec_deg, tuple(sources))


def generate_sample_data(
    out_dir: Path,
    *,
    days: int = 3,
    start: dt.date = SAMPLE_FIRST_DAY,
    per_day: int = 12,
    size: int = 512,
    seed: int = 0,
    broken: bool = True,
    sky: bool = False,
) -> list[SampleFile]:
    """Write `days x per_day` good images (5-minute cadence from 02:00 UTC, declination cycling
    per day over FIELD_DECS, the last image of day 1 gzipped and of day 2 tile-compressed) and,
    with `broken`, one file per BrokenKind dated on the first day. Deterministic given `seed`.

    With `sky`, every good image shows the same field (FIELD_DECS[0], the transit RA of the first
    image) and its sources are the known sky of `resources.fits.sky` (steady, variable and a
    transient, their fluxes changing with time) instead of random ones, so that positions repeat
    and the source assets build light curves; the truth is written beside the images
    (`sky_truth.csv`, `sky_truth_fluxes.csv`). Without it, every image sees a different sky (the
    layout the ingest and QA tests rely on: one declination strip a day)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[SampleFile] = []
    schedule = _observation_times(start, days, per_day)
    sky_field = _sky_field(schedule, size, seed) if sky else None
    truth_images: list[TruthImage] = []
    for d, times in enumerate(schedule):
        dec = FIELD_DECS[d % len(FIELD_DECS)] if sky_field is None else sky_field.dec_deg
        for k, when in enumerate(times):
            compression = None
            suffix = ".fits"
            if k == len(times) - 1 and d == 1:
                compression, suffix = "gzip", ".fits.gz"
            elif k == len(times) - 1 and d == 2:
                compression, suffix = "rice", ".fz"
            spec = ImageSpec(
                date_obs=when, dec_deg=dec, size=size, seed=seed * 1_000_003 + d * 1000 + k
            )
            if sky_field is not None:
                spec = replace(spec, **sky_field.spec_fields(when, schedule[0][0]))
            name = f"{when.strftime('%Y-%m-%dT%H:%M:%S')}_dec{dec:+.1f}{suffix}"
            path = write_image(out_dir / name, spec, compression=compression)
            files.append(SampleFile(path, when.date(), "good", None, None))
            truth_images.append(TruthImage(name, when))
    if sky_field is not None:
        write_truth(out_dir, sky_field.sources, truth_images)
    if broken:
        base = dt.datetime.combine(start, dt.time(12, 0), tzinfo=dt.UTC)
        for i, kind in enumerate(BROKEN_KINDS):
            when = base + i * CADENCE
            spec = ImageSpec(
                date_obs=when, dec_deg=FIELD_DECS[0], size=min(size, 128), seed=seed + 7919 + i
            )
            path = out_dir / kind.filename
            kind.writer(path, spec)
            _set_mtime(path, when)
            has_date = kind.name not in ("missing_date_obs", "not_fits")
            files.append(
                SampleFile(
                    path,
                    when.date() if has_date else None,
                    kind.name,
                    kind.inspect_error,
                    kind.ingest_error,
                    kind.warning,
                )
            )
    return files
