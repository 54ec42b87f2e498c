"""A day of the sources domain, Dagster-free: extraction in the day's pixel pass, then the
association, the forced photometry and the variability of what the day touched.

- Extraction (`extraction_consumer`, `record_extractions`): a consumer of the image products'
  single pass over the day's planes (`resources.fits.pixels.map_planes`), so each plane is read
  once for QA, thumbnail and sources. Images graded `fail` are not extracted. The blind
  measurements of an image are replaced when the file or the settings changed.
- Association (`associate_day`): the day's association is first taken back (forced
  measurements and relations deleted, blind measurements unassociated, sources left without a
  blind detection removed), then done again image by image in time order against the sky
  sources of the day's Dec band, all in one transaction under the catalogue's lock. A re-run
  of a day therefore replaces that day's measurements exactly.
- Forced photometry (`force_day`): every known source inside a day's image (away from its
  edges) and not detected there gets a forced measurement; every source first detected today
  gets one in the other days' images that cover it and lack one (backwards in time, as VAST).
- Variability (`variability_day`): the statistics of every source the day touched, from its
  stored light curve, and the new-source flag of sources first detected today.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from astropy.wcs import WCS, FITSFixedWarning

from assets.sources.association import (
    NEW,
    AssociationConfig,
    SkyCatalogue,
    associate_image,
    measurement_uncertainties,
    source_name,
)
from assets.sources.beam import Beam
from assets.sources.coverage import covering_pairs, footprint_mask
from assets.sources.extraction import (
    ExtractionConfig,
    PlaneSources,
    background_maps,
    extract_plane,
)
from assets.sources.forced import ForcedConfig, forced_fit, subtract_sources
from assets.sources.variability import VariabilityState
from resources.database import Databases
from resources.fits.pixels import map_planes, pixel_threads, recent_header
from resources.repositories import products as repo
from resources.repositories.products import ImageForProducts
from resources.repositories.sky import cones_bounds

if TYPE_CHECKING:
    from PIL import Image

MJY = 1000.0  # Jy → mJy: measurements are stored in VAST's units


# --- extraction ----------------------------------------------------------------------------


def settings_digest(config: ExtractionConfig) -> str:
    """A short digest of the extraction settings: changed settings mean a new extraction."""
    text = json.dumps(asdict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def extraction_fingerprint(image: ImageForProducts, config: ExtractionConfig) -> str:
    return f"{image.fingerprint}:{settings_digest(config)}"


def needs_extraction(
    image: ImageForProducts, config: ExtractionConfig, *, force: bool = False
) -> bool:
    return force or image.src_fingerprint != extraction_fingerprint(image, config)


def celestial_wcs(path: str, hdu: int) -> WCS:
    """The image's celestial WCS from its header: the one the pixel pass read on this thread,
    else read again (not the pixels). The header's defects were recorded when the image was
    catalogued: not warned about again here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        warnings.simplefilter("ignore", VerifyWarning)
        header = recent_header(path, hdu)  # the pixel pass just read it on this thread
        if header is None:
            header = fits.getheader(path, hdu)
        return WCS(header, naxis=2)


def beam_of(
    bmaj_arcsec: float | None,
    bmin_arcsec: float | None,
    bpa_deg: float | None,
    cell_arcsec: float,
) -> Beam | None:
    """An image's restoring beam in pixels (its catalogued BMAJ, BMIN, BPA), or None when its
    header has none."""
    values = (bmaj_arcsec, bmin_arcsec, cell_arcsec)
    if not all(v is not None and math.isfinite(v) and v > 0 for v in values):
        return None
    return Beam.from_arcsec(bmaj_arcsec, bmin_arcsec, bpa_deg or 0.0, cell_arcsec)


def cell_of(wcs: WCS) -> float:
    """Pixel size in degrees (the geometric mean of the two axes)."""
    sx, sy = (abs(float(s.to_value("deg"))) for s in wcs.proj_plane_pixel_scales())
    return math.sqrt(sx * sy)


@dataclass
class ExtractedImage:
    """One image's blind extraction: its measurement rows (VAST units), or why there are none."""

    image: ImageForProducts
    rows: list[dict[str, Any]] = field(default_factory=list)
    rms_median_mjy: float | None = None
    error: str | None = None
    seconds: float = 0.0


def measurement_rows(
    image: ImageForProducts, found: PlaneSources, wcs: WCS, cell_deg: float
) -> list[dict[str, Any]]:
    """The `measurements` rows of one image's detections (positions through its WCS)."""
    if not len(found):
        return []
    ra, dec = wcs.all_pix2world(found.x, found.y, 0)
    cell_arcsec = cell_deg * 3600.0
    ra_err = found.x_err * cell_deg
    dec_err = found.y_err * cell_deg
    ew, ns = measurement_uncertainties(ra_err, dec_err, AssociationConfig())
    rows = []
    for k in range(len(found)):
        rows.append(
            {
                "image_id": image.id,
                "source_id": None,
                "forced": False,
                "obs_date": image.obs_date,
                "mjd": image.mjd_obs,
                "ra": float(ra[k]) % 360.0,
                "dec": float(dec[k]),
                "ra_err": float(ra_err[k]),
                "dec_err": float(dec_err[k]),
                "uncertainty_ew": float(ew[k]),
                "uncertainty_ns": float(ns[k]),
                "flux_peak": float(found.flux_peak[k]) * MJY,
                "flux_peak_err": float(found.flux_peak_err[k]) * MJY,
                "flux_int": float(found.flux_int[k]) * MJY,
                "flux_int_err": float(found.flux_int_err[k]) * MJY,
                "local_rms": float(found.local_rms[k]) * MJY,
                "background": float(found.background[k]) * MJY,
                "bmaj": float(found.bmaj_px[k]) * cell_arcsec,
                "bmin": float(found.bmin_px[k]) * cell_arcsec,
                "pa": float(found.pa_deg[k]),
                "dc_bmaj": float(found.dc_bmaj_px[k]) * cell_arcsec,
                "dc_bmin": float(found.dc_bmin_px[k]) * cell_arcsec,
                "dc_pa": float(found.dc_pa_deg[k]),
                "snr": float(found.snr[k]),
                "flags": int(found.flags[k]),
                "x": float(found.x[k]),
                "y": float(found.y[k]),
            }
        )
    return rows


@dataclass(frozen=True)
class ExtractionConsumer:
    """The sources' part of the day's pixel pass: `wanted(image)` says whether to extract
    (asked after QA has graded the image in the same pass). A plain dataclass (with a `wanted`
    that pickles), so that a pass on worker processes can pickle it."""

    config: ExtractionConfig
    wanted: Callable[[ImageForProducts], bool]

    def __call__(
        self, image: ImageForProducts, plane: np.ndarray | None, why: str | None
    ) -> ExtractedImage | None:
        if not self.wanted(image):
            return None
        started = time.perf_counter()
        if plane is None:
            return ExtractedImage(image, error=why or "the plane could not be read")
        axes = (image.beam_major_arcsec, image.beam_minor_arcsec, image.beam_pa_deg)
        if beam_of(*axes, 1.0) is None:  # from the catalogue row: no header read for it
            return ExtractedImage(image, error="the header gives no restoring beam")
        try:
            wcs = celestial_wcs(image.path, image.hdu_index)
        except (OSError, ValueError, KeyError) as exc:
            return ExtractedImage(image, error=f"no celestial WCS: {exc}")
        cell_deg = cell_of(wcs)
        beam = beam_of(*axes, cell_deg * 3600.0)
        if beam is None:
            return ExtractedImage(image, error="the header gives no restoring beam")
        found = extract_plane(plane, beam, self.config)
        out = ExtractedImage(
            image,
            rows=measurement_rows(image, found, wcs, cell_deg),
            rms_median_mjy=float(found.rms_median) * MJY,
        )
        out.seconds = time.perf_counter() - started
        return out


def extraction_consumer(
    config: ExtractionConfig, wanted: Callable[[ImageForProducts], bool]
) -> ExtractionConsumer:
    return ExtractionConsumer(config, wanted)


@dataclass
class ExtractionReport:
    """What a day's extraction did (the `image_sources` metadata)."""

    images: int = 0
    extracted: int = 0
    unchanged: int = 0
    failed_grade: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    measurements: int = 0
    released_sources: int = 0
    seconds: float = 0.0


def record_extractions(
    dbs: Databases,
    day: dt.date,
    done: Sequence[ExtractedImage],
    failed_grade: Sequence[ImageForProducts],
    config: ExtractionConfig,
) -> ExtractionReport:
    """The day's new extractions in one transaction: extraction rows and blind measurements
    replaced; images newly graded `fail` lose theirs; sources left without them released."""
    report = ExtractionReport(extracted=len(done), failed_grade=len(failed_grade))
    settings = asdict(config)
    extractions: list[dict[str, Any]] = []
    measurements: dict[int, list[dict[str, Any]]] = {}
    for item in done:
        extractions.append(
            {
                "image_id": item.image.id,
                "source_fingerprint": extraction_fingerprint(item.image, config),
                "n_sources": len(item.rows),
                "rms_median_mjy": item.rms_median_mjy,
                "settings": settings,
                "error": item.error[:1024] if item.error else None,
                "extracted_at": dt.datetime.now(dt.UTC),
            }
        )
        measurements[item.image.id] = item.rows
        report.measurements += len(item.rows)
        if item.error:
            report.errors.append((item.image.path, item.error))
    for image in failed_grade:
        extractions.append(
            {
                "image_id": image.id,
                "source_fingerprint": extraction_fingerprint(image, config),
                "n_sources": 0,
                "rms_median_mjy": None,
                "settings": settings,
                "error": "not extracted: graded fail",
                "extracted_at": dt.datetime.now(dt.UTC),
            }
        )
    if not extractions:
        return report
    with dbs.begin("products") as conn:
        repo.lock_sources(conn)
        released = repo.replace_blind_measurements(conn, extractions, measurements)
        repo.release_sources(conn, released)
    report.released_sources = len(released)
    return report


# --- association ---------------------------------------------------------------------------


@dataclass
class AssociationReport:
    """What a day's association did (the `source_associations` metadata)."""

    images: int = 0
    measurements: int = 0
    new_sources: int = 0
    basic: int = 0
    one_to_many: int = 0
    many_to_one: int = 0
    relations: int = 0
    removed_sources: int = 0
    catalogue_sources: int = 0
    new_source_ids: list[int] = field(default_factory=list)
    touched_source_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0


def associate_day(dbs: Databases, day: dt.date, config: AssociationConfig) -> AssociationReport:
    """Take the day's association back and do it again (module docstring)."""
    started = time.perf_counter()
    report = AssociationReport()
    with dbs.begin("products") as conn:
        repo.lock_sources(conn)
        released = repo.undo_day_association(conn, day)
        kept, deleted = repo.release_sources(conn, released)
        report.removed_sources = len(deleted)
        rows = repo.blind_measurements_of_day(conn, day)
        report.measurements = len(rows)
        if rows:
            # The sources within reach of the day's measurements (two beams: the match limit
            # is 1.5): the Dec band and, when the day covers part of it, the RA window.
            margin = max(float(r["beam_major_arcsec"] or 0.0) for r in rows) / 3600.0 * 2
            box = cones_bounds([r["ra"] for r in rows], [r["dec"] for r in rows], margin)
            stored = repo.sources_in_dec_band(
                conn, box.dec_min, box.dec_max, ra_ranges=box.ra_ranges
            )
            catalogue = SkyCatalogue.from_states(
                [sid for sid, _ in stored], [pos for _, pos in stored]
            )
            report.catalogue_sources = len(catalogue)
            assigned, relations = _associate_rows(catalogue, rows, config, report)
            _write_association(conn, day, catalogue, rows, assigned, relations, report)
        report.touched_source_ids = sorted(set(report.touched_source_ids) | kept)
    report.seconds = time.perf_counter() - started
    return report


def _associate_rows(
    catalogue: SkyCatalogue,
    rows: Sequence[dict[str, Any]],
    config: AssociationConfig,
    report: AssociationReport,
) -> tuple[list[tuple[int, str, float, float]], list[tuple[int, int, str]]]:
    """Per measurement (catalogue row, kind, d2d, dr), and the relations, image by image."""
    assigned: list[tuple[int, str, float, float]] = []
    relations: list[tuple[int, int, str]] = []
    start = 0
    while start < len(rows):
        end = start
        image_id = rows[start]["image_id"]
        while end < len(rows) and rows[end]["image_id"] == image_id:
            end += 1
        chunk = rows[start:end]
        report.images += 1
        match = associate_image(
            catalogue,
            np.array([r["ra"] for r in chunk], dtype=float),
            np.array([r["dec"] for r in chunk], dtype=float),
            np.array([r["uncertainty_ew"] for r in chunk], dtype=float),
            np.array([r["uncertainty_ns"] for r in chunk], dtype=float),
            bmaj_deg=float(chunk[0]["beam_major_arcsec"] or 0.0) / 3600.0,
            config=config,
        )
        for k in range(len(chunk)):
            d2d = float(match.d2d_arcsec[k])
            radius = float(match.dr[k])
            assigned.append(
                (
                    int(match.rows[k]),
                    match.kinds[k],
                    0.0 if math.isnan(d2d) else d2d,
                    0.0 if math.isnan(radius) else radius,
                )
            )
        relations.extend(match.relations)
        start = end
    return assigned, relations


def _write_association(
    conn: Any,
    day: dt.date,
    catalogue: SkyCatalogue,
    rows: Sequence[dict[str, Any]],
    assigned: Sequence[tuple[int, str, float, float]],
    relations: Sequence[tuple[int, int, str]],
    report: AssociationReport,
) -> None:
    # New sources, in the order they were started (ids follow time order).
    first_of_row: dict[int, dict[str, Any]] = {}
    for row, (k, *_rest) in zip(rows, assigned, strict=True):
        if catalogue.ids[k] is None and k not in first_of_row:
            first_of_row[k] = row
    new_rows = sorted(first_of_row)
    new_values = []
    cat_ra, cat_dec = catalogue.ra, catalogue.dec  # computed once: each is a whole array
    for k in new_rows:
        pos = catalogue.state(k)
        new_values.append(
            {
                "name": source_name(float(cat_ra[k]), float(cat_dec[k])),
                "state": {"pos": pos},
                "first_obs_date": day,
                **repo.position_columns(pos),
            }
        )
    new_ids = repo.insert_sources(conn, new_values)
    for k, sid in zip(new_rows, new_ids, strict=True):
        catalogue.ids[k] = sid
    report.new_sources = len(new_ids)
    report.new_source_ids = list(new_ids)
    existing = [
        {"id": catalogue.ids[k], "pos": catalogue.state(k)}
        for k in sorted(catalogue.touched)
        if k not in first_of_row
    ]
    repo.update_source_positions(conn, existing)
    # Rows started today were updated in memory by later images too: write their final sums.
    repo.update_source_positions(
        conn, [{"id": catalogue.ids[k], "pos": catalogue.state(k)} for k in new_rows]
    )
    updates = []
    for row, (k, kind, d2d, dr) in zip(rows, assigned, strict=True):
        updates.append(
            {"mid": row["id"], "source_id": catalogue.ids[k], "association": kind, "d2d": d2d}
            | {"dr": dr}
        )
        if kind == NEW:
            pass
        elif kind == "basic":
            report.basic += 1
        elif kind == "one-to-many":
            report.one_to_many += 1
        else:
            report.many_to_one += 1
    repo.set_associations(conn, updates)
    pairs = {}
    for a, b, kind in relations:
        sa, sb = catalogue.ids[a], catalogue.ids[b]
        if sa is not None and sb is not None and sa != sb:
            pairs[(min(sa, sb), max(sa, sb))] = kind
    repo.insert_relations(
        conn,
        [
            {"source_id": a, "related_id": b, "kind": kind, "obs_date": day}
            for (a, b), kind in sorted(pairs.items())
        ],
    )
    report.relations = len(pairs)
    report.touched_source_ids = sorted({catalogue.ids[k] for k, *_ in assigned})


# --- forced photometry ---------------------------------------------------------------------


@dataclass
class ForcedReport:
    """What a day's forced photometry did (the `forced_photometry` metadata)."""

    images_read: int = 0
    forced_today: int = 0
    forced_backwards: int = 0
    skipped_edge: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    not_converged: int = 0
    touched_source_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Targets:
    image: dict[str, Any]
    source_ids: list[int] = field(default_factory=list)
    ra: list[float] = field(default_factory=list)
    dec: list[float] = field(default_factory=list)
    today: bool = True
    #: The image's blind detections (`repo.blind_shapes`): subtracted before the forced fits.
    blind: list[dict[str, Any]] = field(default_factory=list)

    def plane_location(self) -> tuple[str, int]:
        return self.image["path"], int(self.image["hdu_index"])


def _subtract_blind(
    sub: np.ndarray,
    wcs: WCS,
    cell_deg: float,
    beam: Beam,
    blind: list[dict[str, Any]],
    x: np.ndarray,
    y: np.ndarray,
) -> None:
    """The image's detected sources within 3 beam majors of a forced position, subtracted
    (their fitted peak and shape; the beam where the shape was not fitted)."""
    bx, by = wcs.all_world2pix(
        np.array([b["ra"] for b in blind]), np.array([b["dec"] for b in blind]), 0
    )
    cell = cell_deg * 3600.0
    beams = [
        beam_of(b["bmaj"], b["bmin"], b["pa"], cell) or beam for b in blind
    ]  # fmt: skip
    peak = np.array([b["flux_peak"] for b in blind], dtype=float) / MJY
    subtract_sources(
        sub, np.asarray(bx, float), np.asarray(by, float), peak, beams,
        np.asarray(x, float), np.asarray(y, float), 3.0 * beam.bmaj_px,
    )  # fmt: skip


def _forced_rows(
    targets: _Targets, plane: np.ndarray | None, why: str | None, config: ForcedConfig
) -> tuple[list[dict[str, Any]], int, int, str | None]:
    """(rows, skipped at the edge, not converged, error) of one image's forced fits."""
    if plane is None:
        return [], 0, 0, why or "the plane could not be read"
    image = targets.image
    try:
        wcs = celestial_wcs(image["path"], int(image["hdu_index"]))
    except (OSError, ValueError, KeyError) as exc:
        return [], 0, 0, f"no celestial WCS: {exc}"
    cell_deg = cell_of(wcs)
    axes = (image["beam_major_arcsec"], image["beam_minor_arcsec"], image["beam_pa_deg"])
    beam = beam_of(*axes, cell_deg * 3600.0)
    if beam is None:
        return [], 0, 0, "the header gives no restoring beam"
    # The extraction's background and rms maps, with its (default) box and filter.
    maps = background_maps(plane, ExtractionConfig().box_px, ExtractionConfig().filter_px)
    if maps is None:  # no finite pixel: every position is blank
        return [], len(targets.source_ids), 0, None
    sub, rms = maps.sub, maps.rms
    sub[~maps.finite] = np.nan  # forced_fit skips cutouts with blank pixels
    x, y = wcs.all_world2pix(np.array(targets.ra), np.array(targets.dec), 0)
    if targets.blind:
        _subtract_blind(sub, wcs, cell_deg, beam, targets.blind, x, y)
    result = forced_fit(sub, rms, np.asarray(x, float), np.asarray(y, float), beam, config)
    rows: list[dict[str, Any]] = []
    bad = 0
    for k, sid in enumerate(targets.source_ids):
        if bool(result.skipped[k]):
            continue
        flux = float(result.flux[k])
        err = float(result.flux_err[k])
        if not (math.isfinite(flux) and math.isfinite(err)):
            bad += 1
            continue
        rms_k = float(result.local_rms[k])
        rows.append(
            {
                "image_id": image["id"],
                "source_id": sid,
                "forced": True,
                "obs_date": image["obs_date"],
                "mjd": image["mjd_obs"],
                "ra": targets.ra[k],
                "dec": targets.dec[k],
                "flux_peak": flux * MJY,
                "flux_peak_err": err * MJY,
                "flux_int": flux * MJY,
                "flux_int_err": err * MJY,
                "local_rms": rms_k * MJY,
                "snr": flux / rms_k if rms_k > 0 else None,
                "chi_squared_fit": float(result.chi_squared[k]),
                "n_cluster": int(result.n_cluster[k]),
                "x": float(x[k]),
                "y": float(y[k]),
            }
        )
    return rows, int(np.count_nonzero(result.skipped)), bad, None


def force_day(
    dbs: Databases,
    day: dt.date,
    new_source_ids: Iterable[int],
    config: ForcedConfig,
    *,
    threads: int | None = None,
) -> ForcedReport:
    """Forced measurements of the day's images and, for today's new sources, of the other
    images that cover them (module docstring)."""
    started = time.perf_counter()
    report = ForcedReport()
    new_ids = set(new_source_ids)
    with dbs.connect("products") as conn:
        day_images = repo.graded_images_of_day(conn, day)
        if not day_images:
            return report
        half = max(_half_size_deg(im) for im in day_images)
        # Images without a centre cover nothing (footprint_mask): the box is of the others.
        centred = [
            im for im in day_images if im["dec_deg"] is not None and im["ra_deg"] is not None
        ]
        if not centred:
            return report
        box = cones_bounds(
            [float(im["ra_deg"]) for im in centred],
            [float(im["dec_deg"]) for im in centred],
            half * 1.5,
        )
        stored = repo.source_rows(
            conn,
            [
                sid
                for sid, _ in repo.sources_in_dec_band(
                    conn, box.dec_min, box.dec_max, ra_ranges=box.ra_ranges
                )
            ],
        )
        ids = np.array([s["id"] for s in stored], dtype=np.int64)
        ra = np.array([s["wavg_ra"] for s in stored], dtype=float)
        dec = np.array([s["wavg_dec"] for s in stored], dtype=float)
        work: list[_Targets] = []
        measured = repo.measured_pairs(conn, [im["id"] for im in day_images])
        for im in day_images:
            inside = np.flatnonzero(footprint_mask(im, ra, dec, _edge_px(im, config)))
            t = _Targets(im)
            for k in inside:
                if (im["id"], int(ids[k])) not in measured:
                    t.source_ids.append(int(ids[k]))
                    t.ra.append(float(ra[k]))
                    t.dec.append(float(dec[k]))
            if t.source_ids:
                work.append(t)
        # Backwards (and forwards, when days ran out of order): today's new sources in the
        # other days' images that cover them, all found with one query of the images' position
        # index and one footprint test of the overlapping pairs (`coverage`).
        others: dict[int, _Targets] = {}
        wanted = np.flatnonzero(np.isin(ids, np.fromiter(new_ids, dtype=np.int64)))
        if len(wanted):
            band = cones_bounds(ra[wanted], dec[wanted], half * 1.5)
            candidates = repo.graded_images_in_band(
                conn, band.dec_min, band.dec_max, ra_ranges=band.ra_ranges, exclude_date=day
            )
            margins = np.array([_edge_px(im, config) for im in candidates], dtype=float)
            for i, j in zip(
                *covering_pairs(candidates, ra[wanted], dec[wanted], margins), strict=True
            ):
                k = int(wanted[j])
                im = candidates[int(i)]
                t = others.setdefault(im["id"], _Targets(im, today=False))
                t.source_ids.append(int(ids[k]))
                t.ra.append(float(ra[k]))
                t.dec.append(float(dec[k]))
        if others:
            done = repo.measured_pairs(conn, sorted(others))
            for image_id in sorted(others):
                t = others[image_id]
                keep = [j for j, sid in enumerate(t.source_ids) if (image_id, sid) not in done]
                t.source_ids = [t.source_ids[j] for j in keep]
                t.ra = [t.ra[j] for j in keep]
                t.dec = [t.dec[j] for j in keep]
                if t.source_ids:
                    work.append(t)
        shapes = repo.blind_shapes(conn, [int(t.image["id"]) for t in work])
        for t in work:
            t.blind = shapes[int(t.image["id"])]
    results, _times = map_planes(
        work,
        _Targets.plane_location,
        [functools.partial(_forced_rows, config=config)],
        threads=threads or pixel_threads(),
        holds_gil=True,
    )
    rows: list[dict[str, Any]] = []
    for t, ((found, skipped, bad, error),) in zip(work, results, strict=True):
        report.images_read += 1
        report.skipped_edge += skipped
        report.not_converged += bad
        if error:
            report.unreadable.append((t.image["path"], error))
            continue
        if t.today:
            report.forced_today += len(found)
        else:
            report.forced_backwards += len(found)
        rows.extend(found)
    with dbs.begin("products") as conn:
        repo.lock_sources(conn)
        alive = repo.existing_sources(conn, {r["source_id"] for r in rows})
        kept = [r for r in rows if r["source_id"] in alive]
        repo.insert_measurements(conn, kept)
    report.touched_source_ids = sorted({r["source_id"] for r in kept})
    report.seconds = time.perf_counter() - started
    return report


def _half_size_deg(image: dict[str, Any]) -> float:
    """Half the larger side of an image, degrees."""
    side = max(float(image["width"]), float(image["height"]))
    return 0.5 * side * float(image["cellsize_arcsec"] or 0.0) / 3600.0


def _edge_px(image: dict[str, Any], config: ForcedConfig) -> float:
    cell = float(image["cellsize_arcsec"] or 0.0)
    bmaj = float(image["beam_major_arcsec"] or 0.0)
    return config.edge_beams * bmaj / cell if cell > 0 else 0.0


# --- variability ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VariabilityConfig:
    """Cuts of the candidates table and of the new-source flag (docs/sources.md)."""

    vs_min: float = 4.3  # Mooley et al. 2016: |Vs| >= 4.3 is a significant two-epoch change
    eta_min: float = 0.0
    v_min: float = 0.0
    m_min: float = 0.26  # Mooley et al. 2016: |m| >= 0.26 is a 30 % flux change
    new_min_sigma: float = 5.0
    candidates: int = 20


@dataclass
class VariabilityReport:
    """What a day's variability update did (the `source_variability` metadata)."""

    sources_updated: int = 0
    measurements_read: int = 0
    new_sources: int = 0
    candidates: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _by_source(rows: Sequence[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for row in rows:
        out.setdefault(row.source_id, []).append(row)
    return out


def variability_day(
    dbs: Databases,
    day: dt.date,
    touched: Iterable[int],
    new_source_ids: Iterable[int],
    config: VariabilityConfig,
) -> VariabilityReport:
    """Statistics of the sources the day touched (all measured on the day's images, plus those
    the association or forced photometry changed), and the new-source flag of today's new
    sources.

    Incremental: a source whose running state (`sources.state["var"]`) is there has the
    measurements it has not counted yet added to it - the day's, and the older images' forced
    ones of a new source - so the cost follows the day, not the history. A source without one
    (new, or one that lost measurements: `repo.release_sources` drops it) is computed from its
    whole light curve. Either way the result equals the whole light curve's
    (tests/assets/sources/test_variability.py)."""
    started = time.perf_counter()
    report = VariabilityReport()
    updated = 0
    with dbs.begin("products") as conn:
        repo.lock_sources(conn)
        ids = set(touched) | repo.sources_of_day(conn, day)
        states = repo.source_states(conn, ids)  # only the sources that still exist
        new_flags = _new_flags(conn, set(new_source_ids) & set(states), config)
        ordered = sorted(states)
        # In chunks of sources: memory is bounded by a chunk's light curves, also when every
        # source is computed from its whole history (the first update after a migration).
        for start in range(0, len(ordered), _VARIABILITY_CHUNK):
            chunk = {sid: states[sid] for sid in ordered[start : start + _VARIABILITY_CHUNK]}
            read, rows, counted = _update_chunk(conn, chunk, new_flags, config)
            report.measurements_read += read
            updated += len(rows)
            plain = [
                {k: v for k, v in r.items() if k not in ("new", "new_high_sigma")}
                for r in rows
                if r["new"] is None
            ]
            repo.update_source_stats(conn, plain)
            repo.update_source_stats(conn, [r for r in rows if r["new"] is not None])
            repo.mark_counted(conn, counted)
    report.sources_updated = updated
    report.new_sources = sum(1 for f in new_flags.values() if f[0])
    report.seconds = time.perf_counter() - started
    return report


_VARIABILITY_CHUNK = 500  # sources whose light curves are held at once


def _update_chunk(
    conn: Any,
    states: dict[int, dict[str, Any]],
    new_flags: dict[int, tuple[bool, float | None]],
    config: VariabilityConfig,
) -> tuple[int, list[dict[str, Any]], list[int]]:
    """(measurements read, `sources` rows to write, measurement ids now counted) of a chunk."""
    stale = [sid for sid, st in states.items() if not _current(st.get("var"), config)]
    fresh = set(states) - set(stale)
    whole = _by_source(repo.light_curves(conn, stale))
    added = _by_source(repo.light_curves(conn, fresh, not_counted=True))
    read = sum(map(len, whole.values())) + sum(map(len, added.values()))
    rows: list[dict[str, Any]] = []
    counted: list[int] = []
    for sid in sorted(states):
        if sid in whole:  # no running state: the whole light curve
            var, points = VariabilityState(vs_min=config.vs_min), whole[sid]
        elif sid in added or (sid in new_flags and sid in fresh):
            var, points = VariabilityState.from_dict(states[sid]["var"]), added.get(sid, [])
        else:
            continue  # nothing new for it
        for point in points:
            var.add(point)
        counted.extend(point.id for point in points)
        values = {"sid": sid, **var.columns(), "state": {**states[sid], "var": var.to_dict()}}
        new, sigma = new_flags.get(sid, (None, None))
        values["new"] = bool(new) if new is not None else None
        values["new_high_sigma"] = sigma
        rows.append(values)
    return read, rows, counted


def _current(var: dict[str, Any] | None, config: VariabilityConfig) -> bool:
    """A running state of this layout made with today's significance cut (a changed `vs_min`
    recomputes)."""
    return VariabilityState.usable(var, config.vs_min)


def _new_flags(
    conn: Any, new_ids: set[int], config: VariabilityConfig, radius_deg: float = 3.0
) -> dict[int, tuple[bool, float | None]]:
    """(new, significance) of sources first detected today: were they inside earlier images
    deep enough to have detected them? significance = first peak flux / the lowest rms of those
    earlier images (VAST's `new_high_sigma`, with the image rms for the local one)."""
    out: dict[int, tuple[bool, float | None]] = {}
    if not new_ids:
        return out
    curves = repo.light_curves(conn, new_ids)
    first: dict[int, Any] = {}
    for r in curves:
        if not r.forced and r.source_id not in first:
            first[r.source_id] = r
    if not first:
        return out
    # One query for the earlier images near any of them, one test of the overlapping pairs.
    timed = [(sid, r) for sid, r in first.items() if r.mjd is not None]
    best: dict[int, float] = {}
    if timed:
        ra = np.array([float(r.ra) for _, r in timed])
        dec = np.array([float(r.dec) for _, r in timed])
        band = cones_bounds(ra, dec, radius_deg)
        earlier = repo.graded_images_in_band(
            conn,
            band.dec_min,
            band.dec_max,
            ra_ranges=band.ra_ranges,
            before_mjd=max(float(r.mjd) for _, r in timed),
        )
        for i, j in zip(*covering_pairs(earlier, ra, dec, 0.0), strict=True):
            im = earlier[int(i)]
            sid, r = timed[int(j)]
            rms = im["rms_jy"]
            if not rms or im["mjd_obs"] is None or im["mjd_obs"] >= r.mjd:
                continue
            best[sid] = min(best.get(sid, math.inf), rms * MJY)
    for sid, r in first.items():
        if sid not in best:
            out[sid] = (False, None)
        else:
            sigma = float(r.flux_peak) / best[sid] if r.flux_peak is not None else 0.0
            out[sid] = (sigma >= config.new_min_sigma, sigma)
    return out


def new_sources_of_day(dbs: Databases, day: dt.date) -> list[int]:
    """Sources first detected on `day` (when the association did not run in this step)."""
    with dbs.connect("products") as conn:
        return repo.new_sources_of_day(conn, day)


def variability_verdict(
    dbs: Databases, day: dt.date, cuts: VariabilityConfig, limit: float
) -> tuple[bool, float, dict[str, Any]]:
    """(passed, share of the day's sources passing the candidate cuts, metadata with the top
    candidates) of the variable-share check."""
    with dbs.connect("products") as conn:
        total, passing, top = repo.day_candidates(
            conn,
            day,
            eta_min=cuts.eta_min,
            v_min=cuts.v_min,
            m_min=cuts.m_min,
            limit=cuts.candidates,
        )
    share = passing / total if total else 0.0
    return (
        share <= limit,
        share,
        {
            "sources_of_day": total,
            "candidates_passing_cuts": passing,
            "candidates": top,
        },
    )


def variability_pictures(
    dbs: Databases, day: dt.date, cuts: VariabilityConfig, candidates: Sequence[dict[str, Any]]
) -> dict[str, Image.Image]:
    """Pictures of the day: the η–V plane of its sources and the light curves of the top three
    candidates (name → picture, encoded by the caller: once as the file, once as the palette
    preview, without a PNG decoded in between)."""
    from assets.sources.plots import eta_v_image, light_curve_image

    top = {c["id"] for c in candidates}
    with dbs.connect("products") as conn:
        points = repo.eta_v_of_day(conn, day)
        curves = repo.light_curves(conn, [c["id"] for c in candidates[:3]])
    out = {
        "eta_v": eta_v_image(
            [(e, v, sid in top) for e, v, sid in points],
            eta_cut=cuts.eta_min,
            v_cut=cuts.v_min,
            title=f"η–V of the sources measured on {day.isoformat()}",
        )
    }
    for c in candidates[:3]:
        lc = [(r.mjd, r.flux_int, bool(r.forced)) for r in curves if r.source_id == c["id"]]
        lc = [p for p in lc if p[0] is not None and p[1] is not None]
        out[f"light_curve_{c['id']}"] = light_curve_image(
            lc, title=f"{c['name']} (id {c['id']}): flux_int"
        )
    return out
