"""One pass over a day: each plane read once for QA and thumbnail, the same products as the
separate functions, a bad plane recorded by both, every product published in one batch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from assets.catalogue.ingest import ingest_day
from assets.products.day import products_day
from assets.qa.statistics import QAThresholds
from resources.database import Databases
from resources.fits import pixels
from resources.fits_service import FitsMetadataService
from resources.repositories.data_registry import REGISTRY
from resources.repositories.products import QA, THUMBS, images_of_day
from tests.fixtures_pipeline import SAMPLE_START, Expected, write_samples

DAY = SAMPLE_START


@pytest.fixture
def expected(data_dir: Path, dbs: Databases, service: FitsMetadataService) -> Expected:
    exp = Expected(write_samples(data_dir / "incoming", days=1, per_day=6, size=64))
    ingest_day(dbs, service, DAY, run_id="ingest")
    return exp


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts `read_plane` calls per path, going through the real function."""
    counts: Counter = Counter()
    real = pixels.read_plane

    def counting(path, hdu_index, **kwargs):  # type: ignore[no-untyped-def]
        counts[str(path)] += 1
        return real(path, hdu_index, **kwargs)

    monkeypatch.setattr(pixels, "read_plane", counting)
    return counts


def _count(dbs: Databases, table) -> int:  # type: ignore[no-untyped-def]
    with dbs.connect("products") as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_each_plane_is_read_once_for_both_products(
    dbs: Databases, expected: Expected, reads: Counter
) -> None:
    done = products_day(dbs, DAY, qa=True, thumbnails=True, thresholds=QAThresholds(), threads=2)
    with dbs.connect("products") as conn:
        images = images_of_day(conn, DAY)
    assert len(images) == len(expected.catalogued(DAY)) > 0
    assert reads == Counter({im.path: 1 for im in images})
    assert done.planes_read == len(images)
    assert _count(dbs, QA) == len(images)
    assert done.qa is not None and done.thumbnails is not None
    assert done.qa.graded == len(images)
    # every image has a thumbnail, except those whose plane could not be read
    assert done.thumbnails.rendered + len(done.thumbnails.skipped) == len(images)
    assert _count(dbs, THUMBS) == done.thumbnails.rendered
    # published in one batch after both: each passed image's three products
    with dbs.connect("data_registry") as conn:
        published = conn.execute(
            select(REGISTRY.c.product_type, func.count())
            .where(REGISTRY.c.status == "published")
            .group_by(REGISTRY.c.product_type)
        ).all()
    good = done.qa.grades["good"]
    assert good > 0
    assert dict(published) == {"image": good, "qa": good, "thumbnail": good}
    assert done.qa.published == 3 * good
    meta = done.metadata()
    assert meta["pass_images"] == len(images) and meta["pass_images_per_s"] > 0
    assert set(meta["pass_phases_s"]) >= {"list", "pixels", "record_qa", "publish"}
    assert meta["pass_thread_seconds"]["qa"] > 0 and meta["pass_thread_seconds"]["thumbnail"] > 0


def test_a_second_pass_reads_nothing_and_a_subset_reads_only_what_it_needs(
    dbs: Databases, expected: Expected, reads: Counter
) -> None:
    products_day(dbs, DAY, qa=True, thumbnails=False, thresholds=QAThresholds(), threads=2)
    graded = sum(reads.values())
    assert graded == len(expected.catalogued(DAY))
    assert _count(dbs, THUMBS) == 0  # thumbnails not selected
    again = products_day(dbs, DAY, qa=True, thumbnails=False, thresholds=QAThresholds())
    assert sum(reads.values()) == graded and again.planes_read == 0
    thumbs = products_day(dbs, DAY, qa=False, thumbnails=True, thresholds=QAThresholds())
    assert thumbs.qa is None and thumbs.planes_read == graded
    assert sum(reads.values()) == 2 * graded
    both = products_day(dbs, DAY, qa=True, thumbnails=True, thresholds=QAThresholds())
    assert both.planes_read == 0 and sum(reads.values()) == 2 * graded


def test_one_thread_and_several_give_the_same_rows(
    dbs: Databases, expected: Expected, data_dir: Path
) -> None:
    products_day(dbs, DAY, qa=True, thumbnails=True, thresholds=QAThresholds(), threads=1)
    with dbs.connect("products") as conn:
        first = sorted(
            conn.execute(select(QA.c.image_id, QA.c.grade, QA.c.rms_jy, QA.c.peak_jy)).all()
        )
    products_day(
        dbs, DAY, qa=True, thumbnails=True, thresholds=QAThresholds(), threads=3, force=True
    )
    with dbs.connect("products") as conn:
        second = sorted(
            conn.execute(select(QA.c.image_id, QA.c.grade, QA.c.rms_jy, QA.c.peak_jy)).all()
        )
    assert first == second and len(first) == len(expected.catalogued(DAY))
