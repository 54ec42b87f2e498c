"""Thumbnails, QA and publication of one observation day, on real databases and sample files."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from assets.catalogue.ingest import ingest_day
from assets.publishing.publish import publish_dir
from assets.qa.grading import grade_day
from assets.qa.statistics import QAThresholds
from assets.thumbnails.day import sheet_of, thumbnails_day
from resources.database import Databases
from resources.fits.synthetic import ImageSpec, write_image
from resources.fits_service import FitsMetadataService
from resources.repositories.data_registry import REGISTRY
from resources.repositories.products import IMAGES, QA, THUMBS
from resources.settings import thumbnail_dir
from tests.fixtures_pipeline import SAMPLE_START, Expected, write_samples

DAY = SAMPLE_START
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def expected(data_dir: Path, dbs: Databases, service: FitsMetadataService) -> Expected:
    """Day 1 of the sample set, ingested."""
    exp = Expected(write_samples(data_dir / "incoming", days=1, per_day=4))
    ingest_day(dbs, service, DAY, run_id="ingest")
    return exp


def _rows(dbs: Databases, table, *columns):  # type: ignore[no-untyped-def]
    with dbs.connect("products") as conn:
        return conn.execute(select(*columns).select_from(table)).all()


def _ids(dbs: Databases) -> dict[str, int]:
    return {path: i for i, path in _rows(dbs, IMAGES, IMAGES.c.id, IMAGES.c.path)}


def _registry(dbs: Databases) -> list[dict]:
    with dbs.connect("data_registry") as conn:
        return [dict(r) for r in conn.execute(select(REGISTRY)).mappings()]


def test_thumbnails_written_recorded_idempotent_and_refreshed(
    dbs: Databases, expected: Expected, service: FitsMetadataService
) -> None:
    report = thumbnails_day(dbs, DAY, size=48)
    ids = _ids(dbs)
    assert len(ids) == len(expected.catalogued(DAY))
    assert report.rendered == report.written == len(ids) and report.skipped == []
    assert report.folder == thumbnail_dir() / DAY.isoformat()
    rows = _rows(dbs, THUMBS, THUMBS.c.image_id, THUMBS.c.path, THUMBS.c.width, THUMBS.c.height)
    assert sorted(r.image_id for r in rows) == sorted(ids.values())  # one row per image
    for row in rows:
        path = Path(row.path)
        assert path.parent == report.folder and path.is_file()
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC)
        with PILImage.open(io.BytesIO(data)) as im:
            assert im.size == (row.width, row.height) and max(im.size) == 48
    assert not any(
        list(Path(p).parent.glob("*.png")) for p in expected.catalogued(DAY)
    )  # not inputs
    sheet = sheet_of(report)
    assert sheet.startswith(PNG_MAGIC)
    mtimes = {r.path: os.stat(r.path).st_mtime_ns for r in rows}

    again = thumbnails_day(dbs, DAY, size=48)
    assert (again.rendered, again.written, again.unchanged) == (0, 0, len(ids))
    assert {r.path: os.stat(r.path).st_mtime_ns for r in rows} == mtimes
    assert len(again.sample) == len(ids)  # the contact sheet still shows the day

    # the source changes (new content, same path): re-ingested, its thumbnail regenerated
    changed = min(p for p in expected.catalogued(DAY) if "broken" not in p)
    write_image(
        Path(changed),
        ImageSpec(date_obs=dt.datetime(2025, 10, 1, 2, 1, tzinfo=dt.UTC), dec_deg=16.3, size=64,
                  seed=999, noise_jy=5e-3),
    )  # fmt: skip
    ingest_day(dbs, service, DAY, run_id="after-change")
    third = thumbnails_day(dbs, DAY, size=48)
    assert (third.rendered, third.written) == (1, 1)
    assert third.unchanged == len(ids) - 1
    thumb = next(r.path for r in rows if r.image_id == ids[changed])
    assert os.stat(thumb).st_mtime_ns != mtimes[thumb]
    assert _ids(dbs) == ids  # same image rows, refreshed in place


def _make_unreadable(path: str) -> None:
    """Cut the pixels off a catalogued image: its header still parses, its data cannot."""
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size - 2880)


@pytest.mark.parametrize("order", ["thumbnails_first", "qa_first"])
def test_qa_registry_and_publication_in_either_order(
    order: str, dbs: Databases, expected: Expected
) -> None:
    good_paths = sorted(p for p in expected.catalogued(DAY) if "broken" not in p)
    unreadable = good_paths[-1]
    _make_unreadable(unreadable)
    nan_beam = str(expected.by_kind("nan_beam").path)
    thresholds = QAThresholds()
    if order == "thumbnails_first":
        thumbs = thumbnails_day(dbs, DAY, size=32)
        qa = grade_day(dbs, DAY, thresholds)
    else:
        qa = grade_day(dbs, DAY, thresholds)
        thumbs = thumbnails_day(dbs, DAY, size=32)
    ids = _ids(dbs)
    # QA: a row per image, the unreadable one failed with the read error as reason
    qa_rows = {
        r.image_id: r for r in _rows(dbs, QA, QA.c.image_id, QA.c.grade, QA.c.reasons, QA.c.rms_jy)
    }
    assert set(qa_rows) == set(ids.values())
    bad = qa_rows[ids[unreadable]]
    assert bad.grade == "fail" and bad.rms_jy is None
    assert bad.reasons[0].startswith("pixels unreadable: ")
    assert qa.unreadable == [(unreadable, bad.reasons[0])]
    assert qa_rows[ids[nan_beam]].grade == "warn"
    assert any("beam" in why for why in qa_rows[ids[nan_beam]].reasons)
    assert [p for p, _ in thumbs.skipped] == [unreadable]
    grade_of = {path: qa_rows[i].grade for path, i in ids.items()}
    assert "good" in grade_of.values()

    # registry: image and qa products for every image, thumbnails for each rendered one
    products = _registry(dbs)
    by_type: dict[str, dict[str, dict]] = {}
    for p in products:
        by_type.setdefault(p["product_type"], {})[p["extra"]["image_path"]] = p
    assert set(by_type["image"]) == set(ids)
    assert set(by_type["qa"]) == set(ids)
    assert set(by_type["thumbnail"]) == set(ids) - {unreadable}
    assert len(products) == 3 * len(ids) - 1
    for ptype, of_image in by_type.items():
        for image_path, product in of_image.items():
            if grade_of[image_path] == "good":
                assert product["status"] == "published", (ptype, image_path)
                assert product["qa_status"] == "passed"
                published = Path(product["published_path"])
                assert published.is_file() and publish_dir() in published.parents
                assert published.read_bytes() == Path(product["stage_path"]).read_bytes()
            else:
                assert product["status"] == "staging", (ptype, image_path)
                assert product["published_path"] is None
                assert "only 'passed' products are published" in product["reason"]
    n_good = sum(1 for g in grade_of.values() if g == "good")
    assert sum(1 for p in products if p["status"] == "published") == 3 * n_good


def test_qa_is_idempotent_and_regrades_on_new_thresholds(
    dbs: Databases, expected: Expected
) -> None:
    first = grade_day(dbs, DAY, QAThresholds())
    assert first.graded == len(expected.catalogued(DAY))
    again = grade_day(dbs, DAY, QAThresholds())
    assert (again.graded, again.skipped_unchanged) == (0, first.graded)
    published_before = [p for p in _registry(dbs) if p["status"] == "published"]
    assert published_before
    # absurd thresholds: everything fails, and the products go back to staging
    strict = grade_day(dbs, DAY, QAThresholds(fail_dynamic_range=1e9, warn_dynamic_range=1e9))
    assert strict.graded == first.graded and strict.grades["fail"] == first.graded
    qa_products = [p for p in _registry(dbs) if p["product_type"] == "qa"]
    assert {p["status"] for p in qa_products} == {"staging"}
    assert {p["qa_status"] for p in _registry(dbs)} == {"failed"}


def test_same_file_name_in_two_directories_published_apart(
    data_dir: Path, dbs: Databases, service: FitsMetadataService
) -> None:
    """Per-field folders often reuse file names: the published copies must not overwrite."""
    incoming = data_dir / "incoming"
    paths = []
    for i, field in enumerate(("fieldA", "fieldB")):
        spec = ImageSpec(
            date_obs=dt.datetime(2025, 10, 1, 3, i, tzinfo=dt.UTC), dec_deg=54.6, size=64, seed=i
        )
        paths.append(str(write_image(incoming / field / "image.fits", spec)))
    ingest_day(dbs, service, DAY, run_id="two-dirs")
    grade_day(dbs, DAY, QAThresholds())
    thumbnails_day(dbs, DAY, size=32)
    images = [p for p in _registry(dbs) if p["product_type"] == "image"]
    assert len(images) == 2
    published = {p["stage_path"]: p["published_path"] for p in images if p["published_path"]}
    assert len(published) == 2, "both images should pass QA in this test"
    assert len(set(published.values())) == 2
    for stage, dest in published.items():
        assert Path(dest).read_bytes() == Path(stage).read_bytes()


@pytest.mark.parametrize("order", ["thumbnails_first", "qa_first"])
def test_changed_image_is_regraded_before_its_products_stay_published(
    order: str, dbs: Databases, expected: Expected, service: FitsMetadataService
) -> None:
    """A file replaced by one that fails QA must not keep (or newly get) published products."""
    grade_day(dbs, DAY, QAThresholds())
    thumbnails_day(dbs, DAY, size=32)
    target = min(p for p in expected.catalogued(DAY) if "broken" not in p)
    products = [p for p in _registry(dbs) if p["extra"]["image_path"] == target]
    assert {p["status"] for p in products} == {"published"}
    # replaced by pure noise (no sources): dynamic range ~4, graded fail
    write_image(
        Path(target),
        ImageSpec(date_obs=dt.datetime(2025, 10, 1, 2, 1, tzinfo=dt.UTC), dec_deg=16.3, size=64,
                  seed=4, n_sources=0),
    )  # fmt: skip
    ingest_day(dbs, service, DAY, run_id="after-change")
    between = [p for p in _registry(dbs) if p["extra"]["image_path"] == target]
    assert {(p["status"], p["qa_status"]) for p in between} == {("staging", "pending")}
    if order == "thumbnails_first":
        thumbnails_day(dbs, DAY, size=32)
        report = grade_day(dbs, DAY, QAThresholds())
    else:
        report = grade_day(dbs, DAY, QAThresholds())
        thumbnails_day(dbs, DAY, size=32)
    assert report.graded == 1 and report.grades["fail"] == 1
    after = [p for p in _registry(dbs) if p["extra"]["image_path"] == target]
    assert len(after) == 3
    assert {(p["status"], p["qa_status"]) for p in after} == {("staging", "failed")}
    others = [p for p in _registry(dbs) if p["extra"]["image_path"] != target]
    assert "published" in {p["status"] for p in others}  # the rest of the day is untouched
