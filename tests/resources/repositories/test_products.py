"""The products repository on both backends: `list_images` / `get_image`, each filter checked
against a Python reference computed from the unfiltered listing, and the daily statistics."""

from __future__ import annotations

import datetime as dt
import fnmatch
import random
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from resources.errors import InvalidQueryError
from resources.repositories.products import (
    IMAGES,
    ImageFilter,
    ImageSummary,
    daily_stats,
    get_image,
    glob_to_regex,
    list_images,
    upsert_daily_stats,
)
from resources.repositories.sky import Cone, cone_bounds, in_cone, separation_deg
from tests.resources.repositories.catalogue_data import migrated
from tests.resources.repositories.conftest import Catalogue

Pred = Callable[[ImageSummary], bool]


def everything(cat: Catalogue) -> list[ImageSummary]:
    with cat.engine.connect() as conn:
        rows = list_images(conn)
        n = conn.execute(select(func.count()).select_from(IMAGES)).scalar_one()
    assert len(rows) == n > 150
    return rows


def query(cat: Catalogue, flt: ImageFilter) -> list[ImageSummary]:
    with cat.engine.connect() as conn:
        return list_images(conn, flt)


def ids(rows: list[ImageSummary]) -> set[int]:
    return {r.id for r in rows}


def check(cat: Catalogue, flt: ImageFilter, pred: Pred) -> set[int]:
    expected = {r.id for r in everything(cat) if pred(r)}
    got = ids(query(cat, flt))
    assert got == expected
    return got


def test_date_boundaries_are_utc_days(catalogue: Catalogue) -> None:
    paths = {r.id: r.path for r in everything(catalogue)}
    day5 = {paths[i] for i in ids(query(catalogue, ImageFilter(date=dt.date(2025, 10, 5))))}
    day6 = {paths[i] for i in ids(query(catalogue, ImageFilter(date=dt.date(2025, 10, 6))))}
    assert any(p.endswith("boundary/late.fits") for p in day5)
    assert not any(p.endswith("boundary/midnight.fits") for p in day5)
    assert any(p.endswith("boundary/midnight.fits") for p in day6)
    assert not any(p.endswith("boundary/late.fits") for p in day6)
    check(
        catalogue,
        ImageFilter(date=dt.date(2025, 10, 5)),
        lambda r: r.obs_date == dt.date(2025, 10, 5),
    )


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (dt.date(2025, 10, 4), dt.date(2025, 10, 6)),
        (None, dt.date(2025, 10, 2)),
        (dt.date(2025, 10, 8), None),
    ],
)
def test_date_range_inclusive(
    catalogue: Catalogue, first: dt.date | None, last: dt.date | None
) -> None:
    got = check(
        catalogue,
        ImageFilter(date_from=first, date_to=last),
        lambda r: (
            r.obs_date is not None
            and (first is None or r.obs_date >= first)
            and (last is None or r.obs_date <= last)
        ),
    )
    assert got


def test_box_plain_and_wrapping(catalogue: Catalogue) -> None:
    plain = check(
        catalogue,
        ImageFilter(ra_min=10, ra_max=50, dec_min=0, dec_max=30),
        lambda r: r.ra_deg is not None and 10 <= r.ra_deg <= 50 and 0 <= r.dec_deg <= 30,
    )
    assert len(plain) >= 5
    wrap = check(
        catalogue,
        ImageFilter(ra_min=359.0, ra_max=1.0),
        lambda r: r.ra_deg is not None and (r.ra_deg >= 359.0 or r.ra_deg <= 1.0),
    )
    assert {
        catalogue.ids["/data/2025-10-05/wrap_a.fits"],
        catalogue.ids["/data/2025-10-05/wrap_b.fits"],
    } <= wrap
    assert catalogue.ids["/data/2025-10-05/far.fits"] not in wrap
    check(catalogue, ImageFilter(dec_min=80), lambda r: r.dec_deg is not None and r.dec_deg >= 80)


def test_cone_across_ra_zero(catalogue: Catalogue) -> None:
    got = ids(query(catalogue, ImageFilter(cone=Cone(0.05, 54.6, 0.5))))
    assert catalogue.ids["/data/2025-10-05/wrap_a.fits"] in got
    assert catalogue.ids["/data/2025-10-05/wrap_b.fits"] in got
    assert catalogue.ids["/data/2025-10-05/far.fits"] not in got
    got = ids(query(catalogue, ImageFilter(cone=Cone(359.95, 54.6, 0.5))))
    assert catalogue.ids["/data/2025-10-05/wrap_b.fits"] in got


def test_cone_near_the_poles(catalogue: Catalogue) -> None:
    # 0.5 deg from the pole on opposite meridians: 1 deg apart, both inside a 0.6 deg cone at
    # the pole and inside a 1.01 deg cone around either one.
    pole = ids(query(catalogue, ImageFilter(cone=Cone(123.0, 90.0, 0.6))))
    a, b = (
        catalogue.ids["/data/2025-10-04/pole_a.fits"],
        catalogue.ids["/data/2025-10-04/pole_b.fits"],
    )
    assert {a, b} <= pole
    assert {a, b} <= ids(query(catalogue, ImageFilter(cone=Cone(0.0, 89.5, 1.01))))
    assert b not in ids(query(catalogue, ImageFilter(cone=Cone(0.0, 89.5, 0.99))))
    south = catalogue.ids["/data/2025-10-07/south.fits"]
    assert south in ids(query(catalogue, ImageFilter(cone=Cone(225.0, -89.9, 0.35))))


def test_random_cones_match_brute_force(catalogue: Catalogue) -> None:
    rows = everything(catalogue)
    rng = random.Random(3)
    centres = [(rng.uniform(0, 360), rng.uniform(-90, 90), rng.uniform(0.5, 40)) for _ in range(25)]
    centres += [(359.9, 85.0, 8.0), (0.0, -87.0, 5.0), (180.0, 0.0, 90.0), (10.0, 60.0, 0.0)]
    for ra, dec, radius in centres:
        cone = Cone(ra, dec, radius)
        expected = {
            r.id
            for r in rows
            if r.ra_deg is not None and separation_deg(ra, dec, r.ra_deg, r.dec_deg) <= radius
        }
        assert ids(query(catalogue, ImageFilter(cone=cone))) == expected, cone
        with catalogue.engine.connect() as conn:
            unfiltered = list_images(conn, ImageFilter(cone=cone), prefilter=False)
        assert ids(unfiltered) == expected


def test_cone_bounds_cover_the_circle() -> None:
    rng = random.Random(5)
    for _ in range(300):
        cone = Cone(rng.uniform(0, 360), rng.uniform(-89, 89), rng.uniform(0.01, 30))
        bounds = cone_bounds(cone)
        for _ in range(20):  # points on the rim must pass the prefilter
            bearing = rng.uniform(0, 360)
            ra, dec = _offset(cone.ra_deg, cone.dec_deg, cone.radius_deg * 0.999999, bearing)
            assert bounds.dec_min <= dec <= bounds.dec_max
            if bounds.ra_ranges is not None:
                assert any(lo <= ra <= hi for lo, hi in bounds.ra_ranges), (cone, ra, dec)
            assert in_cone(cone, ra, dec)


def _offset(ra: float, dec: float, dist: float, bearing: float) -> tuple[float, float]:
    import math

    d, b = math.radians(dist), math.radians(bearing)
    d1, a1 = math.radians(dec), math.radians(ra)
    d2 = math.asin(math.sin(d1) * math.cos(d) + math.cos(d1) * math.sin(d) * math.cos(b))
    a2 = a1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(d1), math.cos(d) - math.sin(d1) * math.sin(d2)
    )
    return math.degrees(a2) % 360.0, math.degrees(d2)


def test_grade_filter(catalogue: Catalogue) -> None:
    check(catalogue, ImageFilter(grades=("fail",)), lambda r: r.grade == "fail")
    check(
        catalogue,
        ImageFilter(grades=("warn", "ungraded")),
        lambda r: r.grade == "warn" or r.grade is None,
    )


def test_telescope_is_case_insensitive(catalogue: Catalogue) -> None:
    got = check(catalogue, ImageFilter(telescope="vla"), lambda r: r.telescope == "VLA")
    assert got == {catalogue.ids["/data/other/vla.fits"]}


@pytest.mark.parametrize(
    "pattern",
    [
        "/data/odd/*",
        "/data/odd/a_b.fits",
        "/data/odd/a?b.fits",
        "*%*",
        "/data/odd/[[]x].fits",
        "/data/odd/[!a]*",
        "*.FITS",
        "*.fits",
        "/data/2025-10-0[45]/*",
    ],
)
def test_path_glob_is_the_same_on_both_backends(catalogue: Catalogue, pattern: str) -> None:
    got = check(
        catalogue,
        ImageFilter(path_glob=pattern),
        lambda r: fnmatch.fnmatchcase(r.path, pattern),
    )
    assert got


def test_glob_translation() -> None:
    assert glob_to_regex("/a/*.fits") == "^/a/.*\\.fits$"
    assert glob_to_regex("x[!ab]?") == "^x[^ab].$"
    with pytest.raises(InvalidQueryError, match="unterminated"):
        glob_to_regex("/a/[bc")


def test_sort_limit_offset(catalogue: Catalogue) -> None:
    rows = everything(catalogue)
    with_ra = [r for r in rows if r.ra_deg is not None]
    by_ra = sorted(with_ra, key=lambda r: (r.ra_deg, r.id))
    got = query(catalogue, ImageFilter(sort="ra", limit=10, offset=5))
    assert [r.id for r in got] == [r.id for r in by_ra[5:15]]
    desc = query(catalogue, ImageFilter(sort="ra", descending=True, limit=3))
    assert [r.id for r in desc] == [
        r.id for r in sorted(with_ra, key=lambda r: (-r.ra_deg, -r.id))[:3]
    ]
    # NULLs last in both directions, on both backends
    assert query(catalogue, ImageFilter(sort="ra"))[-1].ra_deg is None
    assert query(catalogue, ImageFilter(sort="ra", descending=True))[-1].ra_deg is None
    dates = [r.date_obs for r in query(catalogue, ImageFilter(sort="date", descending=True))]
    assert dates == sorted(dates, reverse=True)
    # offset/limit apply to the exact cone matches
    cone = Cone(0.0, 0.0, 180.0)
    all_cone = query(catalogue, ImageFilter(cone=cone, sort="path"))
    page = query(catalogue, ImageFilter(cone=cone, sort="path", limit=4, offset=3))
    assert [r.id for r in page] == [r.id for r in all_cone[3:7]]


def test_summary_has_grade_and_thumbnail(catalogue: Catalogue) -> None:
    rows = everything(catalogue)
    assert any(r.thumbnail_path for r in rows) and any(r.thumbnail_path is None for r in rows)
    for r in rows:
        if r.thumbnail_path:
            assert r.thumbnail_path == f"/thumbs/{r.id}.png"
        assert r.date_obs is None or r.date_obs.tzinfo is not None
    assert {r.grade for r in rows} == {"good", "warn", "fail", None}


def test_get_image_by_path_and_id(catalogue: Catalogue) -> None:
    path = "/data/2025-10-05/wrap_a.fits"
    with catalogue.engine.connect() as conn:
        by_path = get_image(conn, path)
        assert by_path is not None
        by_id = get_image(conn, str(by_path.id))
        by_int = get_image(conn, by_path.id)
        missing = get_image(conn, "/nope.fits")
        missing_id = get_image(conn, "999999")
    assert by_id == by_path == by_int
    assert missing is None and missing_id is None
    assert by_path.image["ra_deg"] == 359.9 and by_path.image["naxis"] == [64, 64, 1, 1]
    assert by_path.image["date_obs"] == dt.datetime(2025, 10, 5, 12, 0, tzinfo=dt.UTC)
    assert by_path.qa is not None and by_path.qa.grade in {"good", "warn", "fail"}
    data = by_path.to_json_dict()
    assert data["image"]["date_obs"] == "2025-10-05T12:00:00+00:00"


@pytest.mark.parametrize(
    ("flt", "parameter"),
    [
        (ImageFilter(ra_min=360.0), "ra_min"),
        (ImageFilter(ra_max=-0.1), "ra_max"),
        (ImageFilter(dec_min=-90.5), "dec_min"),
        (ImageFilter(dec_min=10, dec_max=5), "dec range"),
        (ImageFilter(cone=Cone(10, 10, -1)), "cone radius"),
        (ImageFilter(cone=Cone(360, 10, 1)), "cone RA"),
        (ImageFilter(grades=("great",)), "grade"),
        (ImageFilter(sort="size"), "sort"),
        (ImageFilter(date=dt.date(2025, 1, 1), date_from=dt.date(2025, 1, 1)), "date"),
        (ImageFilter(date_from=dt.date(2025, 1, 2), date_to=dt.date(2025, 1, 1)), "date range"),
        (ImageFilter(limit=-1), "limit"),
    ],
)
def test_bad_filters_raise_typed_errors(flt: ImageFilter, parameter: str) -> None:
    with pytest.raises(InvalidQueryError) as info:
        flt.validate()
    assert info.value.parameter == parameter


def test_daily_stats_range(url_for) -> None:  # type: ignore[no-untyped-def]
    engine = migrated("products", url_for("products"))
    days = [dt.date(2025, 10, 1) + dt.timedelta(days=k) for k in range(5)]
    with engine.begin() as conn:
        for k, day in enumerate(days):
            upsert_daily_stats(
                conn,
                {
                    "obs_date": day,
                    "n_images": 10 + k,
                    "n_good": 5,
                    "n_warn": 2,
                    "n_fail": 1,
                    "n_failed_parses": k,
                    "rms_median_jy": 1e-3,
                    "rms_p95_jy": 2e-3,
                    "dr_median": 300.0,
                    "images_per_dec_strip": {"+54.6": 10 + k},
                },
            )
    with engine.connect() as conn:
        assert [r.obs_date for r in daily_stats(conn)] == days
        got = daily_stats(conn, days[1], days[3])
        assert [r.obs_date for r in got] == days[1:4]
        assert got[0].n_ungraded == 3 and got[0].images_per_dec_strip == {"+54.6": 11}
        assert [r.obs_date for r in daily_stats(conn, date_from=days[3])] == days[3:]
        assert [r.obs_date for r in daily_stats(conn, date_to=days[0])] == days[:1]
        assert daily_stats(conn, dt.date(2026, 1, 1)) == []
        with pytest.raises(InvalidQueryError):
            daily_stats(conn, days[3], days[1])
    engine.dispose()
