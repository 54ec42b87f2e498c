"""Publication copies, verified against the registry: a published, QA-passed file never changes
under its record, and no temporary file of a publisher stays in the publish directory."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from assets.catalogue.ingest import ingest_day
from assets.publishing import files
from assets.publishing import publish as publish_module
from assets.publishing.publish import product_fingerprint, publish_dir
from assets.qa.grading import grade_day
from assets.qa.statistics import QAThresholds
from assets.thumbnails.day import thumbnails_day
from resources.database import Databases
from resources.fits.synthetic import ImageSpec, write_image
from resources.fits_service import FitsMetadataService
from resources.repositories.data_registry import REGISTRY
from tests.fixtures_pipeline import SAMPLE_START, Expected, write_samples
from tests.pipeline_defs.scale_support import REPO
from tests.processes import child_at, kill9

DAY = SAMPLE_START


@pytest.fixture
def expected(data_dir: Path, dbs: Databases, service: FitsMetadataService) -> Expected:
    exp = Expected(write_samples(data_dir / "incoming", days=1, per_day=4, broken=False))
    ingest_day(dbs, service, DAY, run_id="ingest")
    return exp


def _registry(dbs: Databases) -> list[dict]:
    with dbs.connect("data_registry") as conn:
        return [dict(r) for r in conn.execute(select(REGISTRY)).mappings()]


def _published(dbs: Databases) -> list[dict]:
    return [p for p in _registry(dbs) if p["status"] == "published"]


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file()]


def _publish_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _assert_published_match_records(dbs: Databases) -> None:
    """Every published row's file exists and is the content its record names."""
    rows = _published(dbs)
    assert rows
    for row in rows:
        path = Path(row["published_path"])
        fp = product_fingerprint(row["product_type"], path)
        assert fp == row["extra"]["published_fingerprint"], row["product_id"]
        if row["product_type"] == "image":
            assert fp == row["extra"]["qa_fingerprint"]
        else:
            assert fp == row["extra"]["fingerprint"]
    assert sorted(Path(r["published_path"]) for r in rows) == _publish_files(publish_dir())


def _reimage(path: str, seed: int) -> None:
    """A re-imaged observation written in place (same path, same inode, new content)."""
    spec = ImageSpec(
        date_obs=dt.datetime(2025, 10, 1, 2, 1, tzinfo=dt.UTC), dec_deg=16.3, size=64, seed=seed
    )
    with open(path, "r+b") as fh:  # in place: the inode a hard link would share
        tmp = Path(path).with_suffix(".new.fits")
        write_image(tmp, spec)
        data = tmp.read_bytes()
        tmp.unlink()
        fh.seek(0)
        fh.write(data)
        fh.truncate()
    # Settled (discovery skips files still being written): the mtime of a finished re-image.
    stamp = spec.date_obs.timestamp() + seed
    os.utime(path, (stamp, stamp))


def test_published_bytes_survive_an_in_place_overwrite_and_the_next_run_republishes(
    dbs: Databases, expected: Expected, service: FitsMetadataService
) -> None:
    grade_day(dbs, DAY, QAThresholds())
    thumbnails_day(dbs, DAY, size=32)
    before = {r["product_id"]: r for r in _published(dbs)}
    images = {r["extra"]["image_path"]: r for r in before.values() if r["product_type"] == "image"}
    assert len(images) == len(expected.catalogued(DAY))  # every sample image passes QA here
    _assert_published_match_records(dbs)
    assert _temps(publish_dir()) == []
    target = min(images)
    published = Path(images[target]["published_path"])
    old_bytes = published.read_bytes()
    assert os.stat(published).st_ino != os.stat(target).st_ino  # a copy, not a link

    _reimage(target, seed=77)
    assert Path(target).read_bytes() != old_bytes
    # Until the next run nothing is re-checked: the published file is still what passed QA.
    assert published.read_bytes() == old_bytes
    assert {r["product_id"]: r for r in _published(dbs)} == before
    _assert_published_match_records(dbs)

    # The next run: ingest sees the change and withdraws, QA re-grades, publication copies anew.
    ingest_day(dbs, service, DAY, run_id="after-reimage")
    withdrawn = [r for r in _registry(dbs) if r["extra"]["image_path"] == target]
    assert {(r["status"], r["qa_status"]) for r in withdrawn} == {("staging", "pending")}
    # Withdrawn with the record: the publish directory holds exactly what is published.
    assert not published.exists() and all(r["published_path"] is None for r in withdrawn)
    _assert_published_match_records(dbs)
    report = grade_day(dbs, DAY, QAThresholds())
    assert report.graded == 1 and report.grades["good"] == 1
    thumbnails_day(dbs, DAY, size=32)
    after = {r["product_id"]: r for r in _published(dbs)}
    assert set(after) == set(before)  # one row per product, nothing lost or duplicated
    assert published.read_bytes() == Path(target).read_bytes() != old_bytes
    _assert_published_match_records(dbs)
    assert _temps(publish_dir()) == []


def test_source_changed_between_qa_and_copy_is_not_published(
    dbs: Databases, expected: Expected, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA passed content A; the file is B when the copy is made: B is not published under A."""
    target = min(expected.catalogued(DAY))
    real_publish_ready = publish_module.publish_ready

    def overwrite_then_publish(engine, images):  # type: ignore[no-untyped-def]
        _reimage(target, seed=78)
        return real_publish_ready(engine, images)

    monkeypatch.setattr(publish_module, "publish_ready", overwrite_then_publish)
    grade_day(dbs, DAY, QAThresholds())
    rows = {r["product_type"]: r for r in _registry(dbs) if r["extra"]["image_path"] == target}
    assert rows["image"]["status"] == "staging" and rows["image"]["published_path"] is None
    assert "changed since it was recorded" in rows["image"]["reason"]
    assert rows["qa"]["status"] == "published"  # the report is of what QA read
    assert _temps(publish_dir()) == []
    _assert_published_match_records(dbs)


def test_crash_between_copy_and_rename_leaves_nothing_and_the_rerun_publishes(
    dbs: Databases, expected: Expected, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def failing_replace(src, dst):  # type: ignore[no-untyped-def]
        if str(dst).startswith(str(publish_dir())):
            raise OSError(5, "Input/output error (injected)", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    report = grade_day(dbs, DAY, QAThresholds())
    assert report.published == 0 and report.left_in_staging == 2 * report.graded
    rows = _registry(dbs)
    assert {r["status"] for r in rows} == {"staging"}
    assert all("injected" in r["reason"] for r in rows)
    assert _temps(publish_dir()) == [] and _publish_files(publish_dir()) == []

    monkeypatch.setattr(os, "replace", real_replace)
    thumbnails_day(dbs, DAY, size=32)  # the next run publishes everything that passed
    assert len(_published(dbs)) == 3 * len(expected.catalogued(DAY)) == len(_registry(dbs))
    assert {r["attempts"] for r in _registry(dbs) if r["product_type"] != "thumbnail"} == {2}
    _assert_published_match_records(dbs)
    assert _temps(publish_dir()) == []


_KILLED_PUBLISHER = """
import datetime as dt, os, sys
from assets.publishing.publish import copy_verified
real = os.replace
def blocked(src, dst):
    print("copied", src, flush=True)
    sys.stdin.read()
    real(src, dst)
os.replace = blocked
copy_verified("image", sys.argv[1], sys.argv[2])
"""


def test_publisher_killed_before_rename_is_swept_by_the_next_run(
    dbs: Databases, expected: Expected
) -> None:
    grade_day(dbs, DAY, QAThresholds())
    rows = {r["extra"]["image_path"]: r for r in _published(dbs) if r["product_type"] == "image"}
    source = min(rows)
    dest = Path(rows[source]["published_path"])
    good = dest.read_bytes()
    args = [sys.executable, "-c", _KILLED_PUBLISHER, source, str(dest)]
    with child_at(args, "copied ", cwd=REPO) as (proc, line):
        kill9(proc)
    left = _temps(publish_dir())
    assert [p.name for p in left] == [Path(line.split()[1]).name]
    assert files.MARKER in left[0].name and f".{proc.pid}." in left[0].name
    assert dest.read_bytes() == good  # the published file was never touched

    thumbnails_day(dbs, DAY, size=32)  # the next run of the day sweeps, then publishes
    assert _temps(publish_dir()) == []
    assert len(_published(dbs)) == 3 * len(expected.catalogued(DAY)) == len(_registry(dbs))
    _assert_published_match_records(dbs)
