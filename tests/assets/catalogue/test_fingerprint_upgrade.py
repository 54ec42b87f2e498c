"""The switch of the FITS fingerprint from sha256 to xxh3 over a catalogue made before it.

The rule (docs/fits-service.md, "Fingerprint"): a stored value of another scheme is re-checked
in its own scheme (one more read of the file), never taken for a change of content. So an
unchanged image keeps its sha256 value and everything recorded with it stays as it is (no
withdrawal, no re-grading, no republication); a changed one is withdrawn and re-graded, as
always, and gets an xxh3 value; a product whose QA recorded a sha256 value is verified in
sha256 when it is published.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from assets.catalogue.ingest import content_changes, ingest_day
from assets.publishing import publish as publish_module
from assets.qa.grading import grade_day
from assets.qa.statistics import QAThresholds
from assets.thumbnails.day import thumbnails_day
from resources.database import Databases
from resources.fits import structure
from resources.fits.parser import parse_fits
from resources.fits.structure import fingerprint_scheme
from resources.fits_service import FitsMetadataService
from resources.repositories.data_registry import REGISTRY
from resources.repositories.products import IMAGES
from tests.fixtures_pipeline import SAMPLE_START, Expected, write_samples
from tests.resources.fits.helpers import dsa_image

DAY = SAMPLE_START


@pytest.fixture
def before_switch(
    data_dir: Path, dbs: Databases, service: FitsMetadataService, monkeypatch: pytest.MonkeyPatch
) -> Expected:
    """A day catalogued and published by the sha256 version; then the switch to xxh3."""
    monkeypatch.setattr(structure, "FINGERPRINT_SCHEME", structure.LEGACY_SCHEME)
    exp = Expected(write_samples(data_dir / "incoming", days=1, per_day=4, broken=False))
    ingest_day(dbs, service, DAY, run_id="sha256-era")
    grade_day(dbs, DAY, QAThresholds())
    thumbnails_day(dbs, DAY, size=32)
    assert set(_image_fingerprints(dbs).values()) <= _schemes("sha256", dbs)
    monkeypatch.setattr(structure, "FINGERPRINT_SCHEME", "xxh3")
    return exp


def _schemes(scheme: str, dbs: Databases) -> set[str]:
    return {v for v in _image_fingerprints(dbs).values() if fingerprint_scheme(v) == scheme}


def _image_fingerprints(dbs: Databases) -> dict[str, str]:
    with dbs.connect("products") as conn:
        return dict(conn.execute(select(IMAGES.c.path, IMAGES.c.fingerprint)).all())


def _registry(dbs: Databases) -> dict[str, dict]:
    with dbs.connect("data_registry") as conn:
        rows = conn.execute(select(REGISTRY)).mappings()
        return {r["product_id"]: dict(r) for r in rows}


def _touch(path: str, seconds: int = 5) -> None:
    """A new mtime, same bytes (a copy tool, a `touch`): the file is queued and parsed again."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def _rewrite(path: str) -> None:
    """New content in place, same size, a later (settled) mtime."""
    data = bytearray(Path(path).read_bytes())
    data[-100] ^= 0x01  # a pixel byte near the end
    st = os.stat(path)
    Path(path).write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 7 * 10**9))


def test_unchanged_images_parsed_again_keep_their_sha256_and_nothing_is_redone(
    dbs: Databases, service: FitsMetadataService, before_switch: Expected
) -> None:
    paths = sorted(before_switch.catalogued(DAY))
    fingerprints, registry = _image_fingerprints(dbs), _registry(dbs)
    assert {r["status"] for r in registry.values()} == {"published"}
    for path in paths:
        _touch(path)
    report = ingest_day(dbs, service, DAY, run_id="xxh3-era")
    assert report.parsed == len(paths)  # really parsed again, with xxh3
    assert _image_fingerprints(dbs) == fingerprints  # verified equal: the sha256 values stay
    assert _registry(dbs) == registry  # nothing withdrawn, nothing restaged
    qa = grade_day(dbs, DAY, QAThresholds())
    assert (qa.graded, qa.skipped_unchanged) == (0, len(paths))
    thumbs = thumbnails_day(dbs, DAY, size=32)
    assert (thumbs.rendered, thumbs.unchanged) == (0, len(paths))
    assert _registry(dbs) == registry  # nothing republished


def test_a_changed_image_is_withdrawn_regraded_and_republished_with_xxh3(
    dbs: Databases, service: FitsMetadataService, before_switch: Expected
) -> None:
    paths = sorted(before_switch.catalogued(DAY))
    target = paths[0]
    _rewrite(target)
    for path in paths[1:]:
        _touch(path)
    ingest_day(dbs, service, DAY, run_id="xxh3-era")
    after = _image_fingerprints(dbs)
    assert fingerprint_scheme(after[target]) == "xxh3"
    assert {fingerprint_scheme(after[p]) for p in paths[1:]} == {"sha256"}
    rows = _registry(dbs)
    mine = {r["status"] for r in rows.values() if r["extra"]["image_path"] == target}
    others = {r["status"] for r in rows.values() if r["extra"]["image_path"] != target}
    assert (mine, others) == ({"staging"}, {"published"})
    assert grade_day(dbs, DAY, QAThresholds()).graded == 1
    thumbnails_day(dbs, DAY, size=32)
    image = rows[publish_module.product_id("image", target)]["product_id"]
    row = _registry(dbs)[image]
    assert row["status"] == "published"
    assert row["extra"]["qa_fingerprint"] == row["extra"]["published_fingerprint"] == after[target]


def test_a_sha256_recorded_by_qa_is_verified_in_sha256_when_published(
    data_dir: Path, dbs: Databases, service: FitsMetadataService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA graded before the switch, publication after it: the copy is checked against the
    recorded sha256 (computed again in sha256), published, and a changed source still is not."""
    monkeypatch.setattr(structure, "FINGERPRINT_SCHEME", structure.LEGACY_SCHEME)
    exp = Expected(write_samples(data_dir / "incoming", days=1, per_day=4, broken=False))
    ingest_day(dbs, service, DAY, run_id="sha256-era")
    real_publish_ready = publish_module.publish_ready
    nothing = publish_module.PublishSummary(0, 0, {})
    monkeypatch.setattr(publish_module, "publish_ready", lambda engine, images: nothing)
    grade_day(dbs, DAY, QAThresholds())  # recorded, not published
    # Not monkeypatch.undo(): that would also undo the isolated data dir of the test.
    monkeypatch.setattr(publish_module, "publish_ready", real_publish_ready)
    monkeypatch.setattr(structure, "FINGERPRINT_SCHEME", "xxh3")
    paths = sorted(exp.catalogued(DAY))
    changed = paths[0]
    data = bytearray(Path(changed).read_bytes())
    data[-100] ^= 0x01
    Path(changed).write_bytes(bytes(data))  # after QA, before the copy
    thumbnails_day(dbs, DAY, size=32)  # publishes what is ready
    rows = _registry(dbs)
    for path in paths:
        row = rows[publish_module.product_id("image", path)]
        recorded = row["extra"]["qa_fingerprint"]
        assert fingerprint_scheme(recorded) == "sha256"
        if path == changed:
            assert row["status"] == "staging" and "changed since it was recorded" in row["reason"]
        else:
            assert row["status"] == "published", row["reason"]
            assert row["extra"]["published_fingerprint"] == recorded


def test_content_changes_rule(tmp_path: Path) -> None:
    a = parse_fits(dsa_image(tmp_path / "a.fits", size=16, seed=1))
    b = parse_fits(dsa_image(tmp_path / "b.fits", size=16, seed=2))
    legacy_a = structure.fingerprint_file(a.path, "sha256")
    legacy_b_other = structure.fingerprint_file(a.path, "sha256")  # b's row named a's content
    stored = {a.path: legacy_a, b.path: legacy_b_other}
    out, changed = content_changes(stored, [a, b])
    assert changed == [b.path]
    assert [m.fingerprint for m in out] == [legacy_a, b.fingerprint]  # verified value kept
    # Same scheme: plain comparison; no stored row: new, not changed; unknown value: changed.
    assert content_changes({a.path: a.fingerprint}, [a]) == ([a], [])
    assert content_changes({a.path: b.fingerprint}, [a])[1] == [a.path]
    assert content_changes({}, [a]) == ([a], [])
    assert content_changes({a.path: "garbage"}, [a])[1] == [a.path]
    # The file gone before it could be checked again: changed (the safe side).
    gone = dataclasses.replace(a, path=str(tmp_path / "gone.fits"))
    assert content_changes({gone.path: legacy_a}, [gone])[1] == [gone.path]
