"""Everything that reads or writes the products database: images, QA, thumbnails, daily stats.

One module per logical database, so that "where is the SQL for X?" has one answer. Sections:

- assets: upserts, a day's images with their product fingerprints, the fingerprints/paths the
  ingest asset compares against;
- QA grades (docs/qa.md: good / warn / fail): one image's QA row, images per grade (also the
  exporter's `contimg_images_by_grade` gauge);
- per-day statistics (`daily_stats`);
- catalogue questions (`contimg images list/show`): `ImageFilter`, `list_images`, `get_image`.
  docs/catalogue.md describes the filters and the indexes they use;
- measurement sets (docs/upstream.md): the index and its failures, the image → MS links and
  each MS's stage, `contimg ms list/show`;
- sources (docs/sources.md): extraction records and blind measurements, the association's
  undo and write-back, forced measurements, light curves, per-source statistics, and the
  `contimg sources` queries.

Cone geometry (no SQL) lives in `resources.repositories.sky`, the dialect-aware upsert in
`resources.repositories.upsert`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, case, func, insert, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from resources.errors import ConfigurationError, InvalidQueryError
from resources.fits.metadata import ImageMetadata
from resources.models._common import as_utc, utcnow
from resources.models.products import (
    QA_GRADES,
    DailyStats,
    Image,
    ImageQA,
    Measurement,
    MeasurementSet,
    MsFailure,
    Source,
    SourceExtraction,
    SourceRelation,
    Thumbnail,
)
from resources.repositories.sky import (
    Cone,
    check_dec,
    check_ra,
    cone_bounds,
    in_cone,
    separation_deg,
)
from resources.repositories.upsert import upsert_rows

IMAGES = Image.__table__
QA = ImageQA.__table__
THUMBS = Thumbnail.__table__
DAILY = DailyStats.__table__
EXTRACTIONS = SourceExtraction.__table__
MEASUREMENTS = Measurement.__table__
SOURCES = Source.__table__
RELATIONS = SourceRelation.__table__
MS_INDEX = MeasurementSet.__table__
MS_FAILURES = MsFailure.__table__


def image_row(meta: ImageMetadata) -> dict[str, Any]:
    """The `images` row of one metadata record (every field a real column)."""
    row = meta.to_json_dict()
    row["date_obs"] = meta.date_obs
    row["obs_date"] = meta.obs_date
    row["updated_at"] = utcnow()
    return row


def upsert_images(conn: Connection, metas: Sequence[ImageMetadata]) -> dict[str, int]:
    """Insert or refresh the rows of these files; return their ids by path."""
    # created_at is left to its column default: set on insert, never touched by the update.
    rows = [image_row(m) for m in metas]
    upsert_rows(conn, IMAGES, rows, key=["path"])
    return image_ids(conn, [m.path for m in metas])


def image_ids(conn: Connection, paths: Iterable[str]) -> dict[str, int]:
    wanted = list(paths)
    out: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(select(IMAGES.c.path, IMAGES.c.id).where(IMAGES.c.path.in_(chunk)))
        out.update({path: image_id for path, image_id in rows})
    return out


@dataclass(frozen=True)
class ImageForProducts:
    """What the thumbnail and QA assets need to know about one catalogued image."""

    id: int
    path: str
    obs_date: dt.date
    date_obs: dt.datetime | None
    hdu_index: int
    fingerprint: str
    dec_deg: float | None
    beam_major_arcsec: float | None
    beam_minor_arcsec: float | None
    beam_pa_deg: float | None
    qa_fingerprint: str | None
    qa_thresholds: dict[str, Any] | None
    thumb_fingerprint: str | None
    thumb_path: str | None
    ra_deg: float | None = None
    mjd_obs: float | None = None
    cellsize_arcsec: float | None = None
    width: int = 0
    height: int = 0
    grade: str | None = None
    src_fingerprint: str | None = None

    def plane_location(self) -> tuple[str, int]:
        """(path, HDU index) of its image plane: the `where` of `resources.fits.pixels.map_planes`."""
        return self.path, self.hdu_index


def images_of_day(conn: Connection, obs_date: dt.date) -> list[ImageForProducts]:
    """Every image of one observation day with the fingerprints of its existing products."""
    stmt = (
        select(
            IMAGES.c.id,
            IMAGES.c.path,
            IMAGES.c.obs_date,
            IMAGES.c.date_obs,
            IMAGES.c.hdu_index,
            IMAGES.c.fingerprint,
            IMAGES.c.dec_deg,
            IMAGES.c.beam_major_arcsec,
            IMAGES.c.beam_minor_arcsec,
            IMAGES.c.beam_pa_deg,
            QA.c.source_fingerprint.label("qa_fingerprint"),
            QA.c.thresholds.label("qa_thresholds"),
            THUMBS.c.source_fingerprint.label("thumb_fingerprint"),
            THUMBS.c.path.label("thumb_path"),
            IMAGES.c.ra_deg,
            IMAGES.c.mjd_obs,
            IMAGES.c.cellsize_arcsec,
            IMAGES.c.width,
            IMAGES.c.height,
            QA.c.grade,
            EXTRACTIONS.c.source_fingerprint.label("src_fingerprint"),
        )
        .select_from(
            IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id)
            .outerjoin(THUMBS, THUMBS.c.image_id == IMAGES.c.id)
            .outerjoin(EXTRACTIONS, EXTRACTIONS.c.image_id == IMAGES.c.id)
        )
        .where(IMAGES.c.obs_date == obs_date)
        .order_by(IMAGES.c.date_obs, IMAGES.c.path)
    )
    return [ImageForProducts(**row) for row in conn.execute(stmt).mappings()]


def upsert_qa(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    upsert_rows(conn, QA, list(rows), key=["image_id"])


def upsert_thumbnails(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    upsert_rows(conn, THUMBS, list(rows), key=["image_id"])


def _has_beam() -> ColumnElement[bool]:
    """Whether the image's header gave both beam axes (the beam check's definition)."""
    both = IMAGES.c.beam_major_arcsec.is_not(None) & IMAGES.c.beam_minor_arcsec.is_not(None)
    return both.label("has_beam")


@dataclass(frozen=True)
class ImageQADetail:
    """One image of a day with its QA verdict and thumbnail, for the UI's per-image views.

    `grade` is None when the image has no QA row, `qa_current` False when the QA row describes
    older content of the file (the image changed since it was graded).
    """

    image_id: int
    path: str
    date_obs: dt.datetime | None
    dec_deg: float | None
    hdu_index: int
    has_beam: bool
    grade: str | None
    qa_current: bool
    reasons: list[str]
    rms_jy: float | None
    peak_jy: float | None
    dynamic_range: float | None
    thumb_path: str | None


def qa_details_of_day(conn: Connection, obs_date: dt.date) -> list[ImageQADetail]:
    """Every image of the day with grade, reasons, rms, peak and thumbnail path (time order)."""
    stmt = (
        select(
            IMAGES.c.id.label("image_id"),
            IMAGES.c.path,
            IMAGES.c.date_obs,
            IMAGES.c.dec_deg,
            IMAGES.c.hdu_index,
            _has_beam(),
            IMAGES.c.fingerprint,
            QA.c.grade,
            QA.c.source_fingerprint.label("qa_fingerprint"),
            QA.c.reasons,
            QA.c.rms_jy,
            QA.c.peak_jy,
            QA.c.dynamic_range,
            THUMBS.c.path.label("thumb_path"),
        )
        .select_from(
            IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id).outerjoin(
                THUMBS, THUMBS.c.image_id == IMAGES.c.id
            )
        )
        .where(IMAGES.c.obs_date == obs_date)
        .order_by(IMAGES.c.date_obs, IMAGES.c.path)
    )
    out = []
    for row in conn.execute(stmt).mappings():
        values = dict(row)
        fingerprint, qa_fingerprint = values.pop("fingerprint"), values.pop("qa_fingerprint")
        values["has_beam"] = bool(values["has_beam"])
        values["qa_current"] = values["grade"] is not None and qa_fingerprint == fingerprint
        values["reasons"] = list(values["reasons"] or [])
        out.append(ImageQADetail(**values))
    return out


#: The products tables whose rows belong to one observation day (through `images.obs_date`).
_DAY_TABLES = {
    "images": IMAGES,
    "image_qa": QA,
    "thumbnails": THUMBS,
    "daily_stats": DAILY,
    "measurements": MEASUREMENTS,
    "source_extractions": EXTRACTIONS,
    "sources": SOURCES,
}


def row_counts(conn: Connection, table: str, obs_date: dt.date) -> tuple[int, int]:
    """(rows of the whole table, rows of this observation day) of one products table.

    What the assets report as `dagster/row_count` and `dagster/partition_row_count`.
    """
    if table not in _DAY_TABLES:
        raise InvalidQueryError("table", f"unknown products table {table!r}")
    target = _DAY_TABLES[table]
    total = int(conn.execute(select(func.count()).select_from(target)).scalar_one())
    if target is DAILY:
        of_day = select(func.count()).select_from(DAILY).where(DAILY.c.obs_date == obs_date)
    elif target is SOURCES:  # a sky source belongs to the day of its first detection
        of_day = (
            select(func.count()).select_from(SOURCES).where(SOURCES.c.first_obs_date == obs_date)
        )
    elif target is IMAGES:
        of_day = select(func.count()).select_from(IMAGES).where(IMAGES.c.obs_date == obs_date)
    else:
        of_day = (
            select(func.count())
            .select_from(target.join(IMAGES, IMAGES.c.id == target.c.image_id))
            .where(IMAGES.c.obs_date == obs_date)
        )
    return total, int(conn.execute(of_day).scalar_one())


def count_images(conn: Connection, obs_date: dt.date | None = None) -> int:
    stmt = select(func.count()).select_from(IMAGES)
    if obs_date is not None:
        stmt = stmt.where(IMAGES.c.obs_date == obs_date)
    return int(conn.execute(stmt).scalar_one())


def upsert_daily_stats(conn: Connection, row: dict[str, Any]) -> None:
    upsert_rows(conn, DAILY, [{**row, "updated_at": utcnow()}], key=["obs_date"])


def fingerprints(conn: Connection, paths: Sequence[str]) -> dict[str, str]:
    """Content fingerprints of the images already catalogued among `paths`.

    The ingest asset compares them with the new parse to find images whose content changed
    (their published products must be withdrawn until the new QA).
    """
    out: dict[str, str] = {}
    for start in range(0, len(paths), 500):
        chunk = list(paths[start : start + 500])
        rows = conn.execute(
            select(IMAGES.c.path, IMAGES.c.fingerprint).where(IMAGES.c.path.in_(chunk))
        )
        out.update({path: fingerprint for path, fingerprint in rows})
    return out


def catalogued_paths(conn: Connection, paths: Iterable[str]) -> set[str]:
    """Those of `paths` that have an `images` row (the ingest asset re-parses the others)."""
    return set(conn.execute(select(IMAGES.c.path).where(IMAGES.c.path.in_(list(paths)))).scalars())


def newest_observation(conn: Connection) -> dt.datetime | str | None:
    """The latest `date_obs` in the catalogue (a string on SQLite without type information)."""
    return conn.execute(select(func.max(IMAGES.c.date_obs))).scalar()


# --- QA grades ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QARecord:
    """The QA row of one image, reasons included."""

    image_id: int
    grade: str
    rms_jy: float | None
    peak_jy: float | None
    dynamic_range: float | None
    nan_fraction: float | None
    n_pixels: int | None
    beam_ok: bool | None
    reasons: list[str]
    thresholds: dict[str, Any]
    computed_at: dt.datetime | None
    source_fingerprint: str | None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> QARecord:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["reasons"] = list(values["reasons"] or [])
        values["thresholds"] = dict(values["thresholds"] or {})
        values["beam_ok"] = None if values["beam_ok"] is None else bool(values["beam_ok"])
        if values["computed_at"] is not None:
            values["computed_at"] = as_utc(values["computed_at"])
        return cls(**values)

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["computed_at"] = self.computed_at.isoformat() if self.computed_at else None
        return out


def qa_for_image(conn: Connection, image_id: int) -> QARecord | None:
    row = conn.execute(select(QA).where(QA.c.image_id == image_id)).mappings().first()
    return QARecord.from_mapping(row) if row is not None else None


def grade_counts(
    conn: Connection, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> dict[str, int]:
    """Images per grade over observation days (inclusive), `ungraded` for images without QA."""
    stmt = (
        select(QA.c.grade, func.count())
        .select_from(IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id))
        .group_by(QA.c.grade)
    )
    if date_from is not None:
        stmt = stmt.where(IMAGES.c.obs_date >= date_from)
    if date_to is not None:
        stmt = stmt.where(IMAGES.c.obs_date <= date_to)
    out = {**dict.fromkeys(QA_GRADES, 0), "ungraded": 0}
    for grade, n in conn.execute(stmt):
        out[grade if grade is not None else "ungraded"] = int(n)
    return out


# --- per-day statistics (daily_stats) -------------------------------------------------------------


@dataclass(frozen=True)
class DailyStatsRow:
    obs_date: dt.date
    n_images: int
    n_good: int
    n_warn: int
    n_fail: int
    n_failed_parses: int
    rms_median_jy: float | None
    rms_p95_jy: float | None
    dr_median: float | None
    images_per_dec_strip: dict[str, int]
    updated_at: dt.datetime | None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> DailyStatsRow:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["images_per_dec_strip"] = dict(values["images_per_dec_strip"] or {})
        if values["updated_at"] is not None:
            values["updated_at"] = as_utc(values["updated_at"])
        return cls(**values)

    @property
    def n_ungraded(self) -> int:
        return max(0, self.n_images - self.n_good - self.n_warn - self.n_fail)

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["obs_date"] = self.obs_date.isoformat()
        out["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return out


def daily_stats(
    conn: Connection, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> list[DailyStatsRow]:
    """The statistics rows of observation days date_from..date_to (inclusive), oldest first."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise InvalidQueryError("date range", f"from {date_from} is after to {date_to}")
    stmt = select(DAILY).order_by(DAILY.c.obs_date)
    if date_from is not None:
        stmt = stmt.where(DAILY.c.obs_date >= date_from)
    if date_to is not None:
        stmt = stmt.where(DAILY.c.obs_date <= date_to)
    return [DailyStatsRow.from_mapping(row) for row in conn.execute(stmt).mappings()]


# --- catalogue queries (contimg images list/show) ------------------------------------------------

SORT_KEYS: tuple[str, ...] = (
    "date",
    "path",
    "ra",
    "dec",
    "grade",
    "rms",
    "dr",
    "freq",
    "telescope",
    "id",
)
#: The pseudo-grade of an image that has no QA row yet.
UNGRADED = "ungraded"
GRADE_CHOICES: tuple[str, ...] = (*QA_GRADES, UNGRADED)


@dataclass(frozen=True)
class ImageFilter:
    """What `list_images` selects. Every field is optional; all given ones must hold (AND).

    Dates are UTC observation days (`images.obs_date`, the partition key): `date` alone, or
    `date_from`..`date_to` inclusive (either end open). The RA/Dec box is inclusive; a box with
    `ra_min > ra_max` wraps through RA 0 (e.g. 350..10). `cone` is exact (great circle).
    `path_glob` is a case-sensitive shell glob over the full path: `*` any run of characters
    (including `/`), `?` one character, `[abc]` / `[!abc]` one character of / not of a set.
    """

    date: dt.date | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    ra_min: float | None = None
    ra_max: float | None = None
    dec_min: float | None = None
    dec_max: float | None = None
    cone: Cone | None = None
    grades: tuple[str, ...] = ()
    telescope: str | None = None
    path_glob: str | None = None
    sort: str = "date"
    descending: bool = False
    limit: int | None = None
    offset: int = 0

    def validate(self) -> ImageFilter:
        """Raise InvalidQueryError naming the first bad field; return self when all are fine."""
        if self.date is not None and (self.date_from is not None or self.date_to is not None):
            raise InvalidQueryError("date", "give either one date or a from/to range, not both")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise InvalidQueryError(
                "date range", f"from {self.date_from} is after to {self.date_to}"
            )
        for name in ("ra_min", "ra_max"):
            value = getattr(self, name)
            if value is not None:
                check_ra(value, name)
        for name in ("dec_min", "dec_max"):
            value = getattr(self, name)
            if value is not None:
                check_dec(value, name)
        if self.dec_min is not None and self.dec_max is not None and self.dec_min > self.dec_max:
            raise InvalidQueryError(
                "dec range", f"dec_min {self.dec_min} is above dec_max {self.dec_max}"
            )
        if self.cone is not None:
            self.cone.validate()
        for grade in self.grades:
            if grade not in GRADE_CHOICES:
                raise InvalidQueryError(
                    "grade", f"{grade!r} is not one of {', '.join(GRADE_CHOICES)}"
                )
        if self.sort not in SORT_KEYS:
            raise InvalidQueryError("sort", f"{self.sort!r} is not one of {', '.join(SORT_KEYS)}")
        if self.limit is not None and self.limit < 0:
            raise InvalidQueryError("limit", f"{self.limit} is negative")
        if self.offset < 0:
            raise InvalidQueryError("offset", f"{self.offset} is negative")
        if self.path_glob is not None:
            glob_to_regex(self.path_glob)  # raises on an unterminated [ set
        return self


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Timestamps as aware UTC on both backends (SQLite hands back naive UTC values)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class ImageSummary:
    """One line of `contimg images list`: the image, its QA grade and its thumbnail path."""

    id: int
    path: str
    obs_date: dt.date | None
    date_obs: dt.datetime | None
    mjd_obs: float | None
    ra_deg: float | None
    dec_deg: float | None
    freq_hz: float | None
    width: int
    height: int
    beam_major_arcsec: float | None
    beam_minor_arcsec: float | None
    telescope: str | None
    object: str | None
    grade: str | None
    rms_jy: float | None
    dynamic_range: float | None
    thumbnail_path: str | None

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["obs_date"] = _iso(self.obs_date)
        out["date_obs"] = _iso(self.date_obs)
        return out

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> ImageSummary:
        """Inverse of to_json_dict (what a consumer of `images list --json` gets back)."""
        values = dict(data)
        if values.get("obs_date"):
            values["obs_date"] = dt.date.fromisoformat(values["obs_date"])
        if values.get("date_obs"):
            values["date_obs"] = dt.datetime.fromisoformat(values["date_obs"])
        return cls(**values)


SUMMARY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ImageSummary))

_SUMMARY_COLUMNS = (
    IMAGES.c.id,
    IMAGES.c.path,
    IMAGES.c.obs_date,
    IMAGES.c.date_obs,
    IMAGES.c.mjd_obs,
    IMAGES.c.ra_deg,
    IMAGES.c.dec_deg,
    IMAGES.c.freq_hz,
    IMAGES.c.width,
    IMAGES.c.height,
    IMAGES.c.beam_major_arcsec,
    IMAGES.c.beam_minor_arcsec,
    IMAGES.c.telescope,
    IMAGES.c.object,
    QA.c.grade,
    QA.c.rms_jy,
    QA.c.dynamic_range,
    THUMBS.c.path.label("thumbnail_path"),
)

_SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "date": IMAGES.c.date_obs,
    "path": IMAGES.c.path,
    "ra": IMAGES.c.ra_deg,
    "dec": IMAGES.c.dec_deg,
    "grade": QA.c.grade,
    "rms": QA.c.rms_jy,
    "dr": QA.c.dynamic_range,
    "freq": IMAGES.c.freq_hz,
    "telescope": IMAGES.c.telescope,
    "id": IMAGES.c.id,
}


def glob_to_regex(pattern: str) -> str:
    """A shell glob as an anchored POSIX regular expression (PostgreSQL's `~` operator)."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1 if i < n and pattern[i] in "!^" else i)
            if end < 0 or end == i:
                raise InvalidQueryError(
                    "path glob", f"{pattern!r}: unterminated or empty [...] set"
                )
            body = pattern[i:end]
            i = end + 1
            negate = body[0] in "!^"
            if negate:
                body = body[1:]
                if not body:
                    raise InvalidQueryError("path glob", f"{pattern!r}: empty [!...] set")
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^" if negate else "") + body + "]")
        elif ch.isalnum() or ch in "/_-: ":
            out.append(ch)
        else:
            out.append("\\" + ch)
    out.append("$")
    return "".join(out)


def glob_to_sqlite(pattern: str) -> str:
    """A shell glob in SQLite GLOB syntax (`[!...]` becomes `[^...]`); checked like the regex."""
    glob_to_regex(pattern)
    return pattern.replace("[!", "[^")


def _path_glob_clause(dialect: str, pattern: str) -> ColumnElement[bool]:
    # Both operators are case-sensitive and match the whole path, so the two backends agree
    # (LIKE would not: it is case-insensitive on SQLite and case-sensitive on PostgreSQL).
    if dialect == "sqlite":
        return IMAGES.c.path.op("GLOB", is_comparison=True)(glob_to_sqlite(pattern))
    if dialect == "postgresql":
        return IMAGES.c.path.regexp_match(glob_to_regex(pattern))
    raise ConfigurationError("database", f"path globs are not implemented for {dialect}")


def _ra_range(lo: float, hi: float) -> ColumnElement[bool]:
    return and_(IMAGES.c.ra_deg >= lo, IMAGES.c.ra_deg <= hi)


def image_conditions(
    flt: ImageFilter, dialect: str, *, prefilter: bool = True
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter (the cone only as its index-friendly prefilter)."""
    where: list[ColumnElement[bool]] = []
    if flt.date is not None:
        where.append(IMAGES.c.obs_date == flt.date)
    if flt.date_from is not None:
        where.append(IMAGES.c.obs_date >= flt.date_from)
    if flt.date_to is not None:
        where.append(IMAGES.c.obs_date <= flt.date_to)
    if flt.dec_min is not None:
        where.append(IMAGES.c.dec_deg >= flt.dec_min)
    if flt.dec_max is not None:
        where.append(IMAGES.c.dec_deg <= flt.dec_max)
    if flt.ra_min is not None and flt.ra_max is not None:
        if flt.ra_min <= flt.ra_max:
            where.append(_ra_range(flt.ra_min, flt.ra_max))
        else:  # wraps through 0: 350..10 is [350, 360) plus [0, 10]
            where.append(or_(IMAGES.c.ra_deg >= flt.ra_min, IMAGES.c.ra_deg <= flt.ra_max))
    elif flt.ra_min is not None:
        where.append(IMAGES.c.ra_deg >= flt.ra_min)
    elif flt.ra_max is not None:
        where.append(IMAGES.c.ra_deg <= flt.ra_max)
    if flt.cone is not None:
        where.append(IMAGES.c.ra_deg.is_not(None))
        if prefilter:
            bounds = cone_bounds(flt.cone)
            where.append(IMAGES.c.dec_deg.between(bounds.dec_min, bounds.dec_max))
            if bounds.ra_ranges is not None:
                where.append(or_(*(_ra_range(lo, hi) for lo, hi in bounds.ra_ranges)))
    if flt.grades:
        named = [g for g in flt.grades if g != UNGRADED]
        clauses: list[ColumnElement[bool]] = []
        if named:
            clauses.append(QA.c.grade.in_(named))
        if UNGRADED in flt.grades:
            clauses.append(QA.c.id.is_(None))
        where.append(or_(*clauses))
    if flt.telescope is not None:
        where.append(func.upper(IMAGES.c.telescope) == flt.telescope.upper())
    if flt.path_glob is not None:
        where.append(_path_glob_clause(dialect, flt.path_glob))
    return where


_IMAGE_COLUMNS = tuple(c for c in _SUMMARY_COLUMNS if c.table is IMAGES)
_QA_SORTS = frozenset({"grade", "rms", "dr"})


def _needs_qa_join(flt: ImageFilter) -> bool:
    return bool(flt.grades) or flt.sort in _QA_SORTS


def images_select(flt: ImageFilter, dialect: str, *, prefilter: bool = True) -> Select[Any]:
    """The SELECT behind list_images (no LIMIT when a cone needs the exact test afterwards).

    image_qa is joined only when the filter or the sort needs it; otherwise the QA columns and
    the thumbnail path are fetched afterwards by primary key for just the rows returned
    (`_attach_products`). Joining always made PostgreSQL hash-join the whole image_qa and
    thumbnails tables for a one-day listing (seq scans of every row, ~80 ms at 100k images).
    """
    key = _SORT_COLUMNS[flt.sort]
    order = key.desc() if flt.descending else key.asc()
    tiebreak = IMAGES.c.id.desc() if flt.descending else IMAGES.c.id.asc()
    if _needs_qa_join(flt):
        columns = (*_IMAGE_COLUMNS, QA.c.grade, QA.c.rms_jy, QA.c.dynamic_range)
        source = IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id)
    else:
        columns, source = _IMAGE_COLUMNS, IMAGES
    stmt = (
        select(*columns)
        .select_from(source)
        .where(*image_conditions(flt, dialect, prefilter=prefilter))
        # NULLS LAST in both directions: SQLite and PostgreSQL disagree on the default.
        .order_by(order.nulls_last(), tiebreak)
    )
    if flt.cone is None:
        if flt.limit is not None:
            stmt = stmt.limit(flt.limit)
        if flt.offset:
            stmt = stmt.offset(flt.offset)
    return stmt


def _id_list(ids: list[int]) -> BindParameter[Any]:
    # Integers read from the database, rendered inline by SQLAlchemy (not string-built here).
    return bindparam(None, ids, expanding=True, literal_execute=True, type_=Integer)


def _attach_products(
    conn: Connection,
    rows: list[dict[str, Any]],
    *,
    qa: bool,
    id_source: Select[Any] | None = None,
) -> list[ImageSummary]:
    """Add QA columns (unless already joined) and the thumbnail path, by image id.

    With `id_source` (the listing's own SELECT, exact in SQL) one query fetches them for
    `id IN (that select)`; otherwise (cone results, filtered here) the ids go inline in chunks.
    Long lists of bound parameters cost more on the client than the queries themselves.
    """
    qa_by_id: dict[int, tuple[Any, Any, Any]] = {}
    thumb_by_id: dict[int, str] = {}
    if rows:
        if id_source is not None:
            wanted = [IMAGES.c.id.in_(id_source.with_only_columns(IMAGES.c.id))]
        else:
            ids = [int(row["id"]) for row in rows]
            wanted = [
                or_(*(IMAGES.c.id.in_(_id_list(ids[i : i + 500])) for i in range(0, len(ids), 500)))
            ]
        stmt = (
            select(IMAGES.c.id, QA.c.grade, QA.c.rms_jy, QA.c.dynamic_range, THUMBS.c.path)
            .select_from(
                IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id).outerjoin(
                    THUMBS, THUMBS.c.image_id == IMAGES.c.id
                )
            )
            .where(*wanted)
        )
        for image_id, grade, rms, dr, thumb in conn.execute(stmt).all():
            qa_by_id[image_id] = (grade, rms, dr)
            if thumb is not None:
                thumb_by_id[image_id] = thumb
    out: list[ImageSummary] = []
    for row in rows:
        if qa:
            row["grade"], row["rms_jy"], row["dynamic_range"] = qa_by_id.get(
                row["id"], (None, None, None)
            )
        row["thumbnail_path"] = thumb_by_id.get(row["id"])
        row["date_obs"] = _utc(row["date_obs"])
        out.append(ImageSummary(**row))
    return out


def list_images(
    conn: Connection, flt: ImageFilter | None = None, *, prefilter: bool = True
) -> list[ImageSummary]:
    """Images matching `flt`, sorted, with QA grade and thumbnail path.

    A cone is answered by the indexed prefilter in SQL and the exact great-circle test here;
    offset and limit then apply to the exact matches, streamed in sort order so that a small
    limit stops early. `prefilter=False` skips the Dec band / RA windows (benchmark baseline).
    """
    flt = (flt or ImageFilter()).validate()
    stmt = images_select(flt, conn.dialect.name, prefilter=prefilter)
    result = conn.execute(stmt).mappings()
    joined = _needs_qa_join(flt)
    if flt.cone is None:
        return _attach_products(
            conn,
            [dict(row) for row in result.all()],
            qa=not joined,
            # With image_qa joined (grade filters and sorts) the planner handled the re-used
            # select badly; those listings are short (limit), so their ids go inline.
            id_source=None if joined else stmt,
        )
    matches: list[dict[str, Any]] = []
    skipped = 0
    for row in result:
        if not in_cone(flt.cone, row["ra_deg"], row["dec_deg"]):
            continue
        if skipped < flt.offset:
            skipped += 1
            continue
        matches.append(dict(row))
        if flt.limit is not None and len(matches) >= flt.limit:
            break
    result.close()
    return _attach_products(conn, matches, qa=not joined)


@dataclass(frozen=True)
class ThumbnailRecord:
    path: str
    width: int
    height: int
    source_fingerprint: str | None
    created_at: dt.datetime | None


@dataclass(frozen=True)
class ImageDetail:
    """Everything the products database knows about one image (`contimg images show`)."""

    image: dict[str, Any]  # every `images` column; dates as date/datetime (UTC)
    qa: QARecord | None
    thumbnail: ThumbnailRecord | None

    @property
    def id(self) -> int:
        return int(self.image["id"])

    @property
    def path(self) -> str:
        return str(self.image["path"])

    def to_json_dict(self) -> dict[str, Any]:
        image = {
            k: (_iso(v) if isinstance(v, dt.date | dt.datetime) else v)
            for k, v in self.image.items()
        }
        qa = self.qa.to_json_dict() if self.qa is not None else None
        thumb = None
        if self.thumbnail is not None:
            thumb = asdict(self.thumbnail)
            thumb["created_at"] = _iso(self.thumbnail.created_at)
        return {"image": image, "qa": qa, "thumbnail": thumb}


def get_image(conn: Connection, path_or_id: str | int) -> ImageDetail | None:
    """One image by path, or by id (an int, or a string of digits that is no image's path)."""
    row = None
    if isinstance(path_or_id, str):
        row = conn.execute(select(IMAGES).where(IMAGES.c.path == path_or_id)).mappings().first()
    if row is None:
        text = str(path_or_id)
        if not text.isdigit():
            return None
        row = conn.execute(select(IMAGES).where(IMAGES.c.id == int(text))).mappings().first()
        if row is None:
            return None
    image = dict(row)
    for name in ("date_obs", "created_at", "updated_at"):
        image[name] = _utc(image[name])
    thumb_row = (
        conn.execute(select(THUMBS).where(THUMBS.c.image_id == image["id"])).mappings().first()
    )
    thumb = None
    if thumb_row is not None:
        thumb = ThumbnailRecord(
            path=thumb_row["path"],
            width=thumb_row["width"],
            height=thumb_row["height"],
            source_fingerprint=thumb_row["source_fingerprint"],
            created_at=_utc(thumb_row["created_at"]),
        )
    return ImageDetail(image=image, qa=qa_for_image(conn, image["id"]), thumbnail=thumb)


# --- sources (docs/sources.md) -------------------------------------------------------------


def lock_sources(conn: Connection) -> None:
    """Serialise the writers of the sky-source catalogue until the transaction ends.

    Two days associated at once (two runs, two Celery workers) would both see a source missing
    and both create it. PostgreSQL: a transaction-scoped advisory lock. SQLite: a write as the
    transaction's first statement takes the file's write lock, waiting up to the busy timeout;
    a read first would take a snapshot that a concurrent writer could make stale.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(SOURCES_LOCK_KEY)))
    else:
        conn.execute(SOURCES.update().where(SOURCES.c.id < 0).values(n_rel=SOURCES.c.n_rel))


#: The advisory-lock key of the sky-source catalogue ("contimg-src" as an integer).
SOURCES_LOCK_KEY = 0x636F6E74696D67


def replace_blind_measurements(
    conn: Connection,
    extractions: Sequence[dict[str, Any]],
    measurements: Mapping[int, Sequence[dict[str, Any]]],
) -> set[int]:
    """Store new extractions of these images: their `source_extractions` rows and blind
    measurements replace the previous ones. Returns the sky sources that lost a measurement
    (the caller releases them: `release_sources`)."""
    image_ids_ = [int(e["image_id"]) for e in extractions]
    released: set[int] = set()
    for start in range(0, len(image_ids_), 500):
        chunk = image_ids_[start : start + 500]
        blind = and_(MEASUREMENTS.c.image_id.in_(chunk), MEASUREMENTS.c.forced.is_(False))
        released.update(
            sid
            for (sid,) in conn.execute(
                select(MEASUREMENTS.c.source_id).where(blind, MEASUREMENTS.c.source_id.is_not(None))
            )
        )
        conn.execute(MEASUREMENTS.delete().where(blind))
    upsert_rows(conn, EXTRACTIONS, list(extractions), key=["image_id"])
    rows = [row for image_id in image_ids_ for row in measurements.get(image_id, ())]
    for start in range(0, len(rows), 1000):
        conn.execute(MEASUREMENTS.insert(), rows[start : start + 1000])
    return released


def extraction_rows_of_day(conn: Connection, obs_date: dt.date) -> list[dict[str, Any]]:
    """The day's images with their grade and extraction record (the extraction check)."""
    stmt = (
        select(
            IMAGES.c.id.label("image_id"),
            IMAGES.c.path,
            QA.c.grade,
            EXTRACTIONS.c.n_sources,
            EXTRACTIONS.c.error,
            EXTRACTIONS.c.source_fingerprint,
            IMAGES.c.fingerprint,
        )
        .select_from(
            IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id).outerjoin(
                EXTRACTIONS, EXTRACTIONS.c.image_id == IMAGES.c.id
            )
        )
        .where(IMAGES.c.obs_date == obs_date)
        .order_by(IMAGES.c.date_obs, IMAGES.c.path)
    )
    return [dict(row) for row in conn.execute(stmt).mappings()]


def blind_measurements_of_day(conn: Connection, obs_date: dt.date) -> list[dict[str, Any]]:
    """The day's blind measurements with their image's time and beam, in time order."""
    stmt = (
        select(
            MEASUREMENTS.c.id,
            MEASUREMENTS.c.image_id,
            MEASUREMENTS.c.ra,
            MEASUREMENTS.c.dec,
            MEASUREMENTS.c.uncertainty_ew,
            MEASUREMENTS.c.uncertainty_ns,
            MEASUREMENTS.c.mjd,
            MEASUREMENTS.c.flux_peak,
            IMAGES.c.beam_major_arcsec,
        )
        .select_from(MEASUREMENTS.join(IMAGES, IMAGES.c.id == MEASUREMENTS.c.image_id))
        .where(MEASUREMENTS.c.obs_date == obs_date, MEASUREMENTS.c.forced.is_(False))
        .order_by(MEASUREMENTS.c.mjd, MEASUREMENTS.c.image_id, MEASUREMENTS.c.id)
    )
    return [dict(row) for row in conn.execute(stmt).mappings()]


def undo_day_association(conn: Connection, obs_date: dt.date) -> set[int]:
    """Take the day's association back: its forced measurements and relations deleted, its
    blind measurements unassociated. Returns the sky sources that lost a measurement."""
    day_images = select(IMAGES.c.id).where(IMAGES.c.obs_date == obs_date).scalar_subquery()
    released = {
        sid
        for (sid,) in conn.execute(
            select(MEASUREMENTS.c.source_id)
            .where(MEASUREMENTS.c.obs_date == obs_date, MEASUREMENTS.c.source_id.is_not(None))
            .distinct()
        )
    }
    related = select(RELATIONS.c.source_id, RELATIONS.c.related_id).where(
        RELATIONS.c.obs_date == obs_date
    )
    for a, b in conn.execute(related):
        released.update((a, b))
    conn.execute(RELATIONS.delete().where(RELATIONS.c.obs_date == obs_date))
    conn.execute(
        MEASUREMENTS.delete().where(
            MEASUREMENTS.c.forced.is_(True), MEASUREMENTS.c.image_id.in_(day_images)
        )
    )
    conn.execute(
        MEASUREMENTS.update()
        .where(MEASUREMENTS.c.obs_date == obs_date, MEASUREMENTS.c.forced.is_(False))
        .values(source_id=None, association=None, d2d=None, dr=None, in_stats=False)
    )
    return released


def release_sources(conn: Connection, ids: Iterable[int]) -> tuple[set[int], set[int]]:
    """Sources that lost measurements: those without a blind detection left are deleted (their
    forced measurements go with them), the others get their position sums back from what is
    left and lose their statistics' running state (`var`: the next update recomputes them from
    the whole light curve). Returns (kept, deleted)."""
    wanted = sorted(set(ids))
    kept: set[int] = set()
    deleted: set[int] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(
            select(
                MEASUREMENTS.c.source_id,
                MEASUREMENTS.c.ra,
                MEASUREMENTS.c.dec,
                MEASUREMENTS.c.uncertainty_ew,
                MEASUREMENTS.c.uncertainty_ns,
            )
            .where(MEASUREMENTS.c.source_id.in_(chunk), MEASUREMENTS.c.forced.is_(False))
            .order_by(MEASUREMENTS.c.source_id, MEASUREMENTS.c.mjd, MEASUREMENTS.c.id)
        ).all()
        by_source: dict[int, list[Any]] = {}
        for row in rows:
            by_source.setdefault(row.source_id, []).append(row)
        gone = [sid for sid in chunk if sid not in by_source]
        if gone:
            conn.execute(SOURCES.delete().where(SOURCES.c.id.in_(gone)))
            deleted.update(gone)
        states = conn.execute(
            select(SOURCES.c.id, SOURCES.c.state).where(SOURCES.c.id.in_(list(by_source)))
        ).all()
        for sid, state in states:
            pos = position_sums(by_source[sid])
            conn.execute(
                SOURCES.update()
                .where(SOURCES.c.id == sid)
                .values(
                    state={**{k: v for k, v in (state or {}).items() if k != "var"}, "pos": pos},
                    **position_columns(pos),
                )
            )
            kept.add(sid)
    return kept, deleted


def position_sums(rows: Sequence[Any]) -> dict[str, float]:
    """The weighted position sums (`sources.state["pos"]`) of a source's blind measurements,
    added in time order as the association adds them."""
    ra0 = float(rows[0].ra)
    w_ew = s_ew = w_ns = s_ns = 0.0
    for r in rows:
        a, b = 1.0 / float(r.uncertainty_ew) ** 2, 1.0 / float(r.uncertainty_ns) ** 2
        w_ew += a
        s_ew += a * (((float(r.ra) - ra0) + 180.0) % 360.0 - 180.0)
        w_ns += b
        s_ns += b * float(r.dec)
    return {"ra0": ra0, "w_ew": w_ew, "s_ew": s_ew, "w_ns": w_ns, "s_ns": s_ns}


def position_columns(pos: Mapping[str, float]) -> dict[str, float]:
    """wavg_ra, wavg_dec and their uncertainties (degrees) from the position sums."""
    return {
        "wavg_ra": (pos["ra0"] + pos["s_ew"] / pos["w_ew"]) % 360.0,
        "wavg_dec": pos["s_ns"] / pos["w_ns"],
        "wavg_uncertainty_ew": pos["w_ew"] ** -0.5,
        "wavg_uncertainty_ns": pos["w_ns"] ** -0.5,
    }


def sources_in_dec_band(
    conn: Connection,
    lo: float,
    hi: float,
    *,
    ra_ranges: Sequence[tuple[float, float]] | None = None,
) -> list[tuple[int, dict]]:
    """(id, position sums) of the sky sources with wavg_dec in [lo, hi] (and wavg_ra in one of
    `ra_ranges`, when given: a day that covers a few fields of the band reads their sources,
    not the band's), by id, through the (wavg_dec, wavg_ra) index."""
    stmt = select(SOURCES.c.id, SOURCES.c.state).where(
        SOURCES.c.wavg_dec >= lo, SOURCES.c.wavg_dec <= hi
    )
    if ra_ranges is not None:
        stmt = stmt.where(
            or_(*(and_(SOURCES.c.wavg_ra >= a, SOURCES.c.wavg_ra <= b) for a, b in ra_ranges))
        )
    rows = conn.execute(stmt.order_by(SOURCES.c.id))
    return [(sid, (state or {}).get("pos", {})) for sid, state in rows]


def insert_sources(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """New sky sources, in order; returns their ids in the same order, in one batch.

    The caller holds the sources lock (`lock_sources`), so no other writer inserts meanwhile.
    PostgreSQL: one INSERT ... RETURNING whose rows SQLAlchemy sorts back into parameter order.
    SQLite (where SQLAlchemy would fall back to a statement per row for that order): one
    executemany, then the ids above the previous largest, ascending - SQLite gives each new row
    a rowid larger than every one before it, so ascending ids are insertion order."""
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        stmt = insert(SOURCES).returning(SOURCES.c.id, sort_by_parameter_order=True)
        return [int(sid) for (sid,) in conn.execute(stmt, list(rows))]
    before = conn.execute(select(func.coalesce(func.max(SOURCES.c.id), 0))).scalar_one()
    conn.execute(insert(SOURCES), list(rows))
    ids = [
        int(sid)
        for sid in conn.execute(
            select(SOURCES.c.id).where(SOURCES.c.id > before).order_by(SOURCES.c.id)
        ).scalars()
    ]
    if len(ids) != len(rows):  # another writer without the lock: never in this code
        raise RuntimeError(f"inserted {len(rows)} sources but found {len(ids)} new ids")
    return ids


def update_source_positions(conn: Connection, updates: Sequence[dict[str, Any]]) -> None:
    """The position sums and columns of existing sources (`id`, `pos`), in id order: one read
    of their states and one batched UPDATE per thousand, not two statements per source."""
    if not updates:
        return
    ordered = sorted(updates, key=lambda r: r["id"])
    states = source_states(conn, [row["id"] for row in ordered])
    params = [
        {"sid": row["id"], "new_state": {**states.get(row["id"], {}), "pos": row["pos"]}}
        | position_columns(row["pos"])
        for row in ordered
    ]
    columns = list(position_columns(ordered[0]["pos"]))
    stmt = (
        SOURCES.update()
        .where(SOURCES.c.id == bindparam("sid"))
        .values(state=bindparam("new_state"), **{name: bindparam(name) for name in columns})
    )
    for start in range(0, len(params), 1000):
        conn.execute(stmt, params[start : start + 1000])


def set_associations(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each measurement's source and association (`mid`, source_id, association, d2d, dr)."""
    if not rows:
        return
    stmt = (
        MEASUREMENTS.update()
        .where(MEASUREMENTS.c.id == bindparam("mid"))
        .values(
            source_id=bindparam("source_id"),
            association=bindparam("association"),
            d2d=bindparam("d2d"),
            dr=bindparam("dr"),
        )
    )
    for start in range(0, len(rows), 1000):
        conn.execute(stmt, list(rows[start : start + 1000]))


def insert_relations(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        upsert_rows(conn, RELATIONS, list(rows), key=["source_id", "related_id"])


_IMAGE_FOOTPRINT_COLUMNS = (
    "id",
    "path",
    "hdu_index",
    "obs_date",
    "mjd_obs",
    "ra_deg",
    "dec_deg",
    "width",
    "height",
    "cellsize_arcsec",
    "beam_major_arcsec",
    "beam_minor_arcsec",
    "beam_pa_deg",
)


def _footprint_select() -> Select[Any]:
    return (
        select(*(IMAGES.c[name] for name in _IMAGE_FOOTPRINT_COLUMNS), QA.c.grade, QA.c.rms_jy)
        .select_from(IMAGES.join(QA, QA.c.image_id == IMAGES.c.id))
        .where(QA.c.grade != "fail")
        .order_by(IMAGES.c.mjd_obs, IMAGES.c.id)
    )


def graded_images_of_day(conn: Connection, obs_date: dt.date) -> list[dict[str, Any]]:
    """The day's images not graded `fail`, with what a forced fit needs to open them and to
    say whether they could have seen a source (centre, size, cell, beam, rms)."""
    stmt = _footprint_select().where(IMAGES.c.obs_date == obs_date)
    return [dict(row) for row in conn.execute(stmt).mappings()]


def graded_images_in_band(
    conn: Connection,
    dec_min: float,
    dec_max: float,
    *,
    ra_ranges: Sequence[tuple[float, float]] | None = None,
    exclude_date: dt.date | None = None,
    before_mjd: float | None = None,
) -> list[dict[str, Any]]:
    """Graded images (not `fail`) whose centre is in [dec_min, dec_max] (and in one of the
    `ra_ranges`, when given), through the (dec_deg, ra_deg) index: the candidates of a whole
    set of positions in one query; the caller tests the footprints
    (`assets.sources.coverage`)."""
    stmt = _footprint_select().where(IMAGES.c.dec_deg >= dec_min, IMAGES.c.dec_deg <= dec_max)
    if ra_ranges is not None:
        stmt = stmt.where(or_(*(_ra_range(lo, hi) for lo, hi in ra_ranges)))
    if exclude_date is not None:
        stmt = stmt.where(IMAGES.c.obs_date != exclude_date)
    if before_mjd is not None:
        stmt = stmt.where(IMAGES.c.mjd_obs < before_mjd)
    return [dict(row) for row in conn.execute(stmt).mappings()]


def blind_shapes(conn: Connection, image_ids_: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The blind detections of these images with their fitted shapes (ra, dec in degrees;
    flux_peak in mJy/beam; bmaj, bmin in arcsec; pa in degrees), per image id: what forced
    photometry subtracts before it fits next to them."""
    out: dict[int, list[dict[str, Any]]] = {int(i): [] for i in image_ids_}
    if not out:
        return out
    m = MEASUREMENTS
    stmt = select(m.c.image_id, m.c.ra, m.c.dec, m.c.flux_peak, m.c.bmaj, m.c.bmin, m.c.pa).where(
        m.c.image_id.in_(list(out)), m.c.forced.is_(False)
    )
    for row in conn.execute(stmt).mappings():
        out[int(row["image_id"])].append(dict(row))
    return out


def measured_pairs(conn: Connection, image_ids_: Sequence[int]) -> set[tuple[int, int]]:
    """(image_id, source_id) of every measurement on these images."""
    out: set[tuple[int, int]] = set()
    for start in range(0, len(image_ids_), 500):
        chunk = list(image_ids_[start : start + 500])
        out.update(
            (i, s)
            for i, s in conn.execute(
                select(MEASUREMENTS.c.image_id, MEASUREMENTS.c.source_id).where(
                    MEASUREMENTS.c.image_id.in_(chunk), MEASUREMENTS.c.source_id.is_not(None)
                )
            )
        )
    return out


def existing_sources(conn: Connection, ids: Iterable[int]) -> set[int]:
    wanted = sorted(set(ids))
    out: set[int] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        out.update(conn.execute(select(SOURCES.c.id).where(SOURCES.c.id.in_(chunk))).scalars())
    return out


def insert_measurements(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 1000):
        conn.execute(MEASUREMENTS.insert(), list(rows[start : start + 1000]))


def sources_of_day(conn: Connection, obs_date: dt.date) -> set[int]:
    """The sky sources with a measurement (blind or forced) on the day's images."""
    day_images = select(IMAGES.c.id).where(IMAGES.c.obs_date == obs_date).scalar_subquery()
    return set(
        conn.execute(
            select(MEASUREMENTS.c.source_id)
            .where(MEASUREMENTS.c.image_id.in_(day_images), MEASUREMENTS.c.source_id.is_not(None))
            .distinct()
        ).scalars()
    )


LIGHT_CURVE_COLUMNS = (
    "source_id",
    "id",
    "image_id",
    "obs_date",
    "mjd",
    "forced",
    "flux_peak",
    "flux_peak_err",
    "flux_int",
    "flux_int_err",
    "local_rms",
    "snr",
    "ra",
    "dec",
)


def light_curves(conn: Connection, ids: Iterable[int], *, not_counted: bool = False) -> list[Any]:
    """Every measurement of these sources (only those their statistics have not counted yet,
    with `not_counted`), by source and time (`LIGHT_CURVE_COLUMNS`)."""
    wanted = sorted(set(ids))
    cols = [MEASUREMENTS.c[name] for name in LIGHT_CURVE_COLUMNS]
    out: list[Any] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        where = [MEASUREMENTS.c.source_id.in_(chunk)]
        if not_counted:
            where.append(MEASUREMENTS.c.in_stats.is_(False))
        out.extend(
            conn.execute(
                select(*cols)
                .where(*where)
                .order_by(MEASUREMENTS.c.source_id, MEASUREMENTS.c.mjd, MEASUREMENTS.c.id)
            ).all()
        )
    return out


def source_states(conn: Connection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """`sources.state` of these sources (id -> state)."""
    wanted = sorted(set(ids))
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        stmt = select(SOURCES.c.id, SOURCES.c.state).where(SOURCES.c.id.in_(chunk))
        out.update((sid, dict(state or {})) for sid, state in conn.execute(stmt))
    return out


def mark_counted(conn: Connection, measurement_ids: Iterable[int]) -> None:
    """These measurements are now in their sources' running statistics."""
    wanted = sorted(set(measurement_ids))
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        conn.execute(
            MEASUREMENTS.update().where(MEASUREMENTS.c.id.in_(chunk)).values(in_stats=True)
        )


def update_source_stats(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Flux statistics and variability of sources (`sid` plus columns), in id order."""
    if not rows:
        return
    names = [k for k in rows[0] if k != "sid"]
    stmt = (
        SOURCES.update()
        .where(SOURCES.c.id == bindparam("sid"))
        .values({name: bindparam(name) for name in names})
    )
    ordered = sorted(rows, key=lambda r: r["sid"])
    for start in range(0, len(ordered), 1000):
        conn.execute(stmt, ordered[start : start + 1000])


def source_rows(conn: Connection, ids: Iterable[int]) -> list[dict[str, Any]]:
    wanted = sorted(set(ids))
    out: list[dict[str, Any]] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        out.extend(
            dict(r) for r in conn.execute(select(SOURCES).where(SOURCES.c.id.in_(chunk))).mappings()
        )
    return out


def new_sources_of_day(conn: Connection, obs_date: dt.date) -> list[int]:
    """Sky sources first detected on this day (created by its association)."""
    return list(
        conn.execute(
            select(SOURCES.c.id).where(SOURCES.c.first_obs_date == obs_date).order_by(SOURCES.c.id)
        ).scalars()
    )


def day_candidates(
    conn: Connection,
    obs_date: dt.date,
    *,
    eta_min: float,
    v_min: float,
    m_min: float,
    limit: int,
) -> tuple[int, int, list[dict[str, Any]]]:
    """(sources measured on the day, how many pass the cuts, the top `limit` of them by η):
    η ≥ eta_min, V ≥ v_min and a significant two-epoch pair with |m| ≥ m_min."""
    day_images = select(IMAGES.c.id).where(IMAGES.c.obs_date == obs_date).scalar_subquery()
    of_day = (
        select(MEASUREMENTS.c.source_id)
        .where(MEASUREMENTS.c.image_id.in_(day_images), MEASUREMENTS.c.source_id.is_not(None))
        .distinct()
        .scalar_subquery()
    )
    cuts = and_(
        SOURCES.c.id.in_(of_day),
        SOURCES.c.eta_int >= eta_min,
        SOURCES.c.v_int >= v_min,
        SOURCES.c.m_abs_significant_max_int >= m_min,
    )
    total = int(
        conn.execute(
            select(func.count()).select_from(SOURCES).where(SOURCES.c.id.in_(of_day))
        ).scalar_one()
    )
    passing = int(conn.execute(select(func.count()).select_from(SOURCES).where(cuts)).scalar_one())
    top = conn.execute(
        select(SOURCES).where(cuts).order_by(SOURCES.c.eta_int.desc(), SOURCES.c.id).limit(limit)
    ).mappings()
    return total, passing, [dict(r) for r in top]


def eta_v_of_day(conn: Connection, obs_date: dt.date) -> list[tuple[float, float, int]]:
    """(η, V, id) of the sky sources measured on the day's images (the η–V plot)."""
    day_images = select(IMAGES.c.id).where(IMAGES.c.obs_date == obs_date).scalar_subquery()
    of_day = (
        select(MEASUREMENTS.c.source_id)
        .where(MEASUREMENTS.c.image_id.in_(day_images), MEASUREMENTS.c.source_id.is_not(None))
        .distinct()
        .scalar_subquery()
    )
    rows = conn.execute(
        select(SOURCES.c.eta_int, SOURCES.c.v_int, SOURCES.c.id).where(
            SOURCES.c.id.in_(of_day), SOURCES.c.eta_int.is_not(None), SOURCES.c.v_int.is_not(None)
        )
    )
    return [(float(e), float(v), int(i)) for e, v, i in rows]


# --- `contimg sources` (read-only) ------------------------------------------------------------

#: The columns of a sky source as `contimg sources` prints them (VAST's `source` table names):
#: every column of `sources` but the association's running sums (`state`) and `updated_at`.
SOURCE_FIELDS: tuple[str, ...] = (
    "id",
    "name",
    "wavg_ra",
    "wavg_dec",
    "wavg_uncertainty_ew",
    "wavg_uncertainty_ns",
    "avg_flux_int",
    "avg_flux_peak",
    "max_flux_peak",
    "min_flux_peak",
    "max_flux_int",
    "min_flux_int",
    "min_snr",
    "max_snr",
    "n_meas",
    "n_meas_forced",
    "n_rel",
    "v_int",
    "eta_int",
    "v_peak",
    "eta_peak",
    "vs_abs_significant_max_int",
    "m_abs_significant_max_int",
    "vs_abs_significant_max_peak",
    "m_abs_significant_max_peak",
    "new",
    "new_high_sigma",
    "first_obs_date",
    "first_mjd",
    "last_mjd",
)

#: One measurement of a light curve: the measurement's own columns (VAST's `measurement`
#: names; fluxes mJy, positions deg) and `image_path`, the file it was measured on.
LIGHT_CURVE_FIELDS: tuple[str, ...] = (
    "source_id",
    "id",
    "image_id",
    "image_path",
    "obs_date",
    "mjd",
    "forced",
    "flux_int",
    "flux_int_err",
    "flux_peak",
    "flux_peak_err",
    "local_rms",
    "snr",
    "association",
    "ra",
    "dec",
)

#: `--sort` keys: the η and V of the integrated flux and the mean integrated flux, largest
#: first (unknown values last); `id` ascending.
SOURCE_SORT_KEYS: tuple[str, ...] = ("eta", "v", "flux", "id")
_SOURCE_SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "eta": SOURCES.c.eta_int,
    "v": SOURCES.c.v_int,
    "flux": SOURCES.c.avg_flux_int,
}

_SOURCE_COLUMNS = tuple(SOURCES.c[name] for name in SOURCE_FIELDS)


@dataclass(frozen=True)
class SourceFilter:
    """What `contimg sources list` selects; every given condition must hold."""

    cone: Cone | None = None
    min_eta: float | None = None  # eta_int >= min_eta
    min_v: float | None = None  # v_int >= min_v
    new_only: bool = False
    first_obs_date: dt.date | None = None
    sort: str = "eta"
    limit: int | None = 50

    def validate(self) -> SourceFilter:
        if self.cone is not None:
            self.cone.validate()
        for name, value in (("min_eta", self.min_eta), ("min_v", self.min_v)):
            if value is not None and not math.isfinite(value):
                raise InvalidQueryError(name, f"{value!r}; expected a finite number")
        if self.sort not in SOURCE_SORT_KEYS:
            raise InvalidQueryError("sort", f"{self.sort!r}; one of {', '.join(SOURCE_SORT_KEYS)}")
        if self.limit is not None and self.limit < 0:
            raise InvalidQueryError("limit", f"{self.limit!r}; expected >= 0")
        return self


def _source_box(cone: Cone) -> list[ColumnElement[bool]]:
    """The index-friendly prefilter of a cone over (wavg_dec, wavg_ra): Dec band, RA window(s)."""
    bounds = cone_bounds(cone)
    where: list[ColumnElement[bool]] = [SOURCES.c.wavg_dec.between(bounds.dec_min, bounds.dec_max)]
    if bounds.ra_ranges is not None:  # two ranges across RA 0/360; none with a pole inside
        where.append(
            or_(
                *(
                    and_(SOURCES.c.wavg_ra >= lo, SOURCES.c.wavg_ra <= hi)
                    for lo, hi in bounds.ra_ranges
                )
            )
        )
    return where


def source_conditions(flt: SourceFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a filter (the cone only as its prefilter)."""
    where: list[ColumnElement[bool]] = []
    if flt.min_eta is not None:
        where.append(SOURCES.c.eta_int >= flt.min_eta)
    if flt.min_v is not None:
        where.append(SOURCES.c.v_int >= flt.min_v)
    if flt.new_only:
        where.append(SOURCES.c.new.is_(true()))
    if flt.first_obs_date is not None:
        where.append(SOURCES.c.first_obs_date == flt.first_obs_date)
    if flt.cone is not None:
        where.extend(_source_box(flt.cone))
    return where


def sources_select(flt: SourceFilter) -> Select[Any]:
    """The sorted SELECT of `list_sources` (no LIMIT: the caller stops reading)."""
    if flt.sort == "id":
        order: list[Any] = [SOURCES.c.id.asc()]
    else:
        # NULLS LAST: SQLite and PostgreSQL disagree on where NULLs of a DESC order go.
        order = [_SOURCE_SORT_COLUMNS[flt.sort].desc().nulls_last(), SOURCES.c.id.asc()]
    return select(*_SOURCE_COLUMNS).where(*source_conditions(flt)).order_by(*order)


def _source_record(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["new"] = bool(out["new"])
    return out


def list_sources(
    conn: Connection, flt: SourceFilter | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """(the sources matching `flt`, in sort order, at most `flt.limit`; whether more match).

    `limit + 1` rows are read, so "more" costs one row; a cone's rows are tested exactly here
    as they stream (the SQL prefilter is a box), so the limit counts exact matches only.
    """
    flt = (flt or SourceFilter()).validate()
    stmt = sources_select(flt)
    if flt.cone is None and flt.limit is not None:
        stmt = stmt.limit(flt.limit + 1)
    out: list[dict[str, Any]] = []
    result = conn.execute(stmt).mappings()
    try:
        for row in result:
            if flt.cone is not None and not in_cone(flt.cone, row["wavg_ra"], row["wavg_dec"]):
                continue
            if flt.limit is not None and len(out) >= flt.limit:
                return out, True
            out.append(_source_record(row))
    finally:
        result.close()
    return out, False


def get_source(conn: Connection, source_id: int) -> dict[str, Any] | None:
    """One sky source by id (`SOURCE_FIELDS`), or None."""
    row = conn.execute(select(*_SOURCE_COLUMNS).where(SOURCES.c.id == source_id)).mappings().first()
    return _source_record(row) if row is not None else None


def light_curves_with_images(
    conn: Connection, ids: Iterable[int]
) -> dict[int, list[dict[str, Any]]]:
    """source id -> its measurements (blind and forced) in time order, `LIGHT_CURVE_FIELDS`.

    Every id asked for is a key, with an empty list when it has no measurement.
    """
    wanted = sorted(set(ids))
    out: dict[int, list[dict[str, Any]]] = {sid: [] for sid in wanted}
    columns = [
        IMAGES.c.path.label("image_path") if name == "image_path" else MEASUREMENTS.c[name]
        for name in LIGHT_CURVE_FIELDS
    ]
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        stmt = (
            select(*columns)
            .select_from(MEASUREMENTS.join(IMAGES, IMAGES.c.id == MEASUREMENTS.c.image_id))
            .where(MEASUREMENTS.c.source_id.in_(chunk))
            .order_by(
                MEASUREMENTS.c.source_id,
                MEASUREMENTS.c.mjd.asc().nulls_last(),
                MEASUREMENTS.c.id,
            )
        )
        for row in conn.execute(stmt).mappings():
            record = dict(row)
            record["forced"] = bool(record["forced"])
            out[record["source_id"]].append(record)
    return out


def sources_near(
    conn: Connection, ra_deg: float, dec_deg: float, radius_deg: float
) -> list[tuple[float, dict[str, Any]]]:
    """(separation in degrees, source) of every source within `radius_deg` of the position,
    nearest first (ties by id): the (wavg_dec, wavg_ra) box, then the exact distance."""
    cone = Cone(ra_deg, dec_deg, radius_deg)
    cone.validate()
    stmt = select(*_SOURCE_COLUMNS).where(*_source_box(cone))
    out: list[tuple[float, dict[str, Any]]] = []
    for row in conn.execute(stmt).mappings():
        if in_cone(cone, row["wavg_ra"], row["wavg_dec"]):
            sep = separation_deg(ra_deg, dec_deg, row["wavg_ra"], row["wavg_dec"])
            out.append((sep, _source_record(row)))
    out.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    return out


# --- measurement sets (docs/upstream.md, "Measurement sets") ------------------------------------

#: The `ms_index` columns a reading of an MS fills (`resources.ms.reader.MsSummary` field names).
MS_SUMMARY_COLUMNS: tuple[str, ...] = (
    "path", "field_name", "start_mjd", "end_mjd", "mid_mjd", "obs_date", "ra_deg", "dec_deg",
    "n_channels", "n_spw", "n_rows", "ref_freq_hz", "hdf5_group", "has_corrected_data",
    "size_bytes", "mtime_ns",
)  # fmt: skip


@dataclass(frozen=True)
class MsRecord:
    """One indexed measurement set, as `contimg ms list/show` and the lineage print it."""

    id: int
    path: str
    obs_date: dt.date | None
    start_mjd: float | None
    end_mjd: float | None
    mid_mjd: float | None
    field_name: str | None
    ra_deg: float | None
    dec_deg: float | None
    n_spw: int | None
    n_channels: int | None
    n_rows: int | None
    ref_freq_hz: float | None
    hdf5_group: str | None
    has_corrected_data: bool
    calibrated: bool
    cal_set_name: str | None
    stage: str
    size_bytes: int | None
    n_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["obs_date"] = _iso(self.obs_date)
        return out


@dataclass(frozen=True)
class MsFailureRow:
    """A `*.ms` directory that could not be read, with the typed error's class and message."""

    path: str
    obs_date: dt.date | None
    error_class: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "obs_date": _iso(self.obs_date)}


def known_ms(conn: Connection, paths: Sequence[str]) -> dict[str, int | None]:
    """`table.dat` mtime (ns) of each path already read, indexed or failed: an MS whose
    mtime is unchanged is not opened again."""
    known: dict[str, int | None] = {}
    for start in range(0, len(paths), 500):
        chunk = list(paths[start : start + 500])
        for table in (MS_FAILURES, MS_INDEX):  # an index row wins over a stale failure
            stmt = select(table.c.path, table.c.mtime_ns).where(table.c.path.in_(chunk))
            known.update({path: mtime for path, mtime in conn.execute(stmt)})
    return known


def upsert_ms(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Index these readings (one per path) and clear their failures, in the caller's
    transaction. The stage follows from what was read: `calibrated` when CORRECTED_DATA is
    there or calibration was recorded, `imaged` once an image links to it
    (`refresh_ms_stages`)."""
    if not rows:
        return
    values = [{c: row[c] for c in MS_SUMMARY_COLUMNS} for row in rows]
    upsert_rows(conn, MS_INDEX, values, key=["path"])
    paths = [v["path"] for v in values]
    conn.execute(MS_FAILURES.delete().where(MS_FAILURES.c.path.in_(paths)))
    refresh_ms_stages(conn, paths=paths)


def record_ms_failures(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record unreadable MS directories (path, obs_date, mtime_ns, error_class, error).

    An MS indexed before keeps its row (its last good reading, and the images linked to it):
    a directory being rewritten fails for a moment, and the next good reading clears the
    failure."""
    if not rows:
        return
    keys = ("path", "obs_date", "mtime_ns", "error_class", "error")
    values = [{**{k: row[k] for k in keys}, "updated_at": utcnow()} for row in rows]
    upsert_rows(conn, MS_FAILURES, values, key=["path"])


def refresh_ms_stages(
    conn: Connection, *, paths: Sequence[str] | None = None, ids: Sequence[int] | None = None
) -> None:
    """Recompute `stage` (and `calibrated`) of these MSs from what the database knows:
    `imaged` when an image refers to it, else `calibrated` when it has CORRECTED_DATA or a
    calibration set was recorded for it, else `converted`."""
    has_image = select(IMAGES.c.id).where(IMAGES.c.ms_id == MS_INDEX.c.id).limit(1).exists()
    calibrated = or_(MS_INDEX.c.has_corrected_data, MS_INDEX.c.cal_set_name.is_not(None))
    stmt = MS_INDEX.update().values(
        calibrated=calibrated,
        stage=case((has_image, "imaged"), (calibrated, "calibrated"), else_="converted"),
    )
    if paths is not None:
        stmt = stmt.where(MS_INDEX.c.path.in_(list(paths)))
    if ids is not None:
        stmt = stmt.where(MS_INDEX.c.id.in_(list(ids)))
    conn.execute(stmt)


def calibration_label(set_names: Iterable[str]) -> str | None:
    """`cal_set_name` of an MS to which tables of these sets were applied: the set names,
    sorted and comma-separated; None for none."""
    return ",".join(sorted(set(set_names))) or None


def set_ms_calibration(conn: Connection, path: str, set_names: Iterable[str]) -> bool:
    """Record the calibration sets applied to the MS at `path` (none: no calibration); False
    when the MS is not indexed (the calibration registry still holds the record)."""
    set_name = calibration_label(set_names)
    result = conn.execute(
        MS_INDEX.update().where(MS_INDEX.c.path == path).values(cal_set_name=set_name)
    )
    refresh_ms_stages(conn, paths=[path])
    return bool(result.rowcount)


def ms_name_stem(path: str) -> str:
    """The name an image made from this MS starts with: the directory name without `.ms`."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.removesuffix(".ms")


def _made_from(image_name: str, stem: str) -> bool:
    """An image file is named after its MS: the stem, then the end or a separator."""
    if not image_name.startswith(stem) or not stem:
        return False
    rest = image_name[len(stem) :]
    return rest == "" or not rest[0].isalnum()


def link_images_to_ms(conn: Connection, days: Iterable[dt.date]) -> int:
    """Point the images of these days at the MS each was made from; returns the links changed.

    The rule (docs/upstream.md, "Lineage"): an image's file name starts with the name of its MS
    without `.ms` (`2026-01-01T00:05:00.ms` → `2026-01-01T00:05:00_dec+16.3.fits`), followed by
    a non-alphanumeric character; the longest such name wins. MSs of the day before and after
    are considered too (an observation that crosses midnight). Stages are refreshed for every
    MS that gained or lost an image.
    """
    days = sorted(set(days))
    if not days:
        return 0
    near = sorted({d + dt.timedelta(days=k) for d in days for k in (-1, 0, 1)})
    ms_rows = conn.execute(
        select(MS_INDEX.c.id, MS_INDEX.c.path).where(MS_INDEX.c.obs_date.in_(near))
    ).all()
    stems = sorted(((ms_name_stem(p), i) for i, p in ms_rows), key=lambda x: -len(x[0]))
    images = conn.execute(
        select(IMAGES.c.id, IMAGES.c.path, IMAGES.c.ms_id).where(IMAGES.c.obs_date.in_(days))
    ).all()
    changes: list[dict[str, Any]] = []
    touched: set[int] = set()
    for image_id, path, current in images:
        name = path.rsplit("/", 1)[-1]
        ms_id = next((i for stem, i in stems if _made_from(name, stem)), None)
        if ms_id is None or ms_id == current:
            continue  # an image whose MS is not (yet) indexed keeps any link it has
        changes.append({"b_id": image_id, "b_ms": ms_id})
        touched.update(i for i in (ms_id, current) if i is not None)
    if changes:
        conn.execute(
            IMAGES.update().where(IMAGES.c.id == bindparam("b_id")).values(ms_id=bindparam("b_ms")),
            changes,
        )
        refresh_ms_stages(conn, ids=sorted(touched))
    return len(changes)


def _ms_select() -> Select[Any]:
    n_images = (
        select(func.count()).select_from(IMAGES).where(IMAGES.c.ms_id == MS_INDEX.c.id)
    ).scalar_subquery()
    names = [c for c in fields(MsRecord) if c.name != "n_images"]
    return select(*(MS_INDEX.c[f.name] for f in names), n_images.label("n_images"))


def _ms_record(row: Mapping[str, Any]) -> MsRecord:
    values = dict(row)
    values["has_corrected_data"] = bool(values["has_corrected_data"])
    values["calibrated"] = bool(values["calibrated"])
    return MsRecord(**values)


def list_ms(
    conn: Connection, *, obs_date: dt.date | None = None, stage: str | None = None
) -> list[MsRecord]:
    """Indexed MSs in time order, of one day and/or one stage."""
    stmt = _ms_select()
    if obs_date is not None:
        stmt = stmt.where(MS_INDEX.c.obs_date == obs_date)
    if stage is not None:
        stmt = stmt.where(MS_INDEX.c.stage == stage)
    stmt = stmt.order_by(MS_INDEX.c.start_mjd, MS_INDEX.c.path)
    return [_ms_record(r) for r in conn.execute(stmt).mappings()]


def get_ms(conn: Connection, path_or_id: str | int) -> MsRecord | None:
    """One MS by path (a trailing slash ignored) or by id."""
    if isinstance(path_or_id, int):
        where = MS_INDEX.c.id == path_or_id
    else:
        where = MS_INDEX.c.path == str(path_or_id).rstrip("/")
    row = conn.execute(_ms_select().where(where)).mappings().first()
    return _ms_record(row) if row is not None else None


def ms_failures(conn: Connection, obs_date: dt.date | None = None) -> list[MsFailureRow]:
    """Unreadable MS directories (of one day), by path."""
    stmt = select(
        MS_FAILURES.c.path, MS_FAILURES.c.obs_date, MS_FAILURES.c.error_class, MS_FAILURES.c.error
    ).order_by(MS_FAILURES.c.path)
    if obs_date is not None:
        stmt = stmt.where(MS_FAILURES.c.obs_date == obs_date)
    return [MsFailureRow(**r) for r in conn.execute(stmt).mappings()]


def images_of_ms(conn: Connection, ms_id: int) -> list[str]:
    """Paths of the images made from one MS."""
    stmt = select(IMAGES.c.path).where(IMAGES.c.ms_id == ms_id).order_by(IMAGES.c.path)
    return list(conn.execute(stmt).scalars())


def ms_lineage_of_day(conn: Connection, obs_date: dt.date) -> list[dict[str, Any]]:
    """Each image of a day with its MS (path, stage, group, calibration set) or None."""
    stmt = (
        select(
            IMAGES.c.id.label("image_id"),
            IMAGES.c.path.label("image_path"),
            MS_INDEX.c.path.label("ms_path"),
            MS_INDEX.c.stage,
            MS_INDEX.c.hdf5_group,
            MS_INDEX.c.cal_set_name,
        )
        .select_from(IMAGES.outerjoin(MS_INDEX, MS_INDEX.c.id == IMAGES.c.ms_id))
        .where(IMAGES.c.obs_date == obs_date)
        .order_by(IMAGES.c.date_obs, IMAGES.c.path)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def ms_counts(conn: Connection) -> dict[str, int]:
    """Indexed MSs per stage, and failures (`ms_failures`)."""
    stmt = select(MS_INDEX.c.stage, func.count()).group_by(MS_INDEX.c.stage)
    counts = {stage: int(n) for stage, n in conn.execute(stmt)}
    counts["failed"] = int(conn.execute(select(func.count()).select_from(MS_FAILURES)).scalar_one())
    return counts
