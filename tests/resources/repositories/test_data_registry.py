"""The data_registry repository on a real database: the publication QA gate and the products of
one image."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from assets.publishing.publish import product_id
from resources.errors import ConfigurationError, DatabaseError
from resources.repositories import data_registry as reg
from tests.resources.repositories.catalogue_data import backend_engine, migrated


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Engine]:
    yield from backend_engine(request, data_dir, "data_registry")


def test_only_passed_products_are_published(engine: Engine, tmp_path: Path) -> None:
    row = reg.register_product(
        engine, product_type="image", product_id="img:1", stage_path="/stage/1.fits"
    )
    assert (row.status, row.qa_status, row.attempts) == ("staging", "pending", 0)
    held = reg.publish_if_passed(engine, "img:1", "/pub/1.fits")
    assert not held.published and held.status == "staging" and "pending" in (held.reason or "")
    stored = reg.get_product(engine, "img:1")
    assert stored is not None and stored.reason == held.reason and stored.published_path is None

    reg.set_qa_status(engine, "img:1", reg.qa_status_from_grade("warn"))
    assert not reg.publish_if_passed(engine, "img:1", "/pub/1.fits").published

    reg.set_qa_status(engine, "img:1", reg.qa_status_from_grade("good"))
    moves: list[tuple[str | None, str]] = []
    done = reg.publish_if_passed(
        engine, "img:1", "/pub/1.fits", publish=lambda src, dst: moves.append((src, dst))
    )
    assert done.published and done.published_path == "/pub/1.fits"
    assert moves == [("/stage/1.fits", "/pub/1.fits")]
    stored = reg.get_product(engine, "img:1")
    assert stored is not None and stored.status == "published" and stored.attempts == 1
    assert stored.published_at is not None and stored.reason is None
    assert reg.publish_if_passed(engine, "img:1", "/pub/other").reason == "already published"
    # re-registering a published product leaves it alone unless restaged
    same = reg.register_product(engine, product_type="image", product_id="img:1", stage_path="/s2")
    assert same.status == "published" and same.stage_path == "/stage/1.fits"
    again = reg.register_product(
        engine, product_type="image", product_id="img:1", stage_path="/s2", restage=True
    )
    assert again.status == "staging" and again.published_path == "/pub/1.fits"


def test_failed_publish_returns_to_staging(engine: Engine) -> None:
    reg.register_product(
        engine, product_type="thumbnail", product_id="th:1", stage_path="/s", qa_status="passed"
    )

    def broken(_src: str | None, dst: str) -> None:
        raise PermissionError(13, "Permission denied", dst)

    result = reg.publish_if_passed(engine, "th:1", "/ro/th.png", publish=broken)
    assert not result.published and "Permission denied" in (result.reason or "")
    stored = reg.get_product(engine, "th:1")
    assert stored is not None and stored.status == "staging" and stored.attempts == 1
    assert reg.publish_if_passed(engine, "th:1", "/pub/th.png").published


def test_bad_input_and_constraints(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="qa_status"):
        reg.register_product(
            engine, product_type="qa", product_id="q", stage_path="/s", qa_status="ok"
        )
    with pytest.raises(DatabaseError, match="no product"):
        reg.publish_if_passed(engine, "missing", "/p")
    reg.register_product(engine, product_type="qa", product_id="q", stage_path="/s")
    with pytest.raises(IntegrityError), engine.begin() as conn:  # published needs a path
        conn.execute(update(reg.REGISTRY).values(status="published"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(reg.REGISTRY).values(status="archived"))


def test_registry_products_of_image(url_for) -> None:  # type: ignore[no-untyped-def]
    engine = migrated("data_registry", url_for("data_registry"))
    image = "/data/2025-10-05/a.fits"
    pid = reg.image_product_id("thumbnail", image)
    assert pid.startswith("thumbnail:") and pid != reg.image_product_id("thumbnail", "/b.fits")
    assert pid == reg.image_product_id("thumbnail", "/data/2025-10-05/../2025-10-05/a.fits")
    for kind in ("thumbnail", "image"):
        reg.register_product(
            engine,
            product_type=kind,
            product_id=product_id(kind, image),
            stage_path=f"/stage/{kind}",
            qa_status="passed",
        )
    reg.publish_if_passed(engine, product_id("image", image), "/pub/a.fits")
    with engine.connect() as conn:
        got = reg.products_of_image(conn, image)
        assert [(p.product_type, p.status) for p in got] == [
            ("image", "published"),
            ("thumbnail", "staging"),
        ]
        assert reg.products_of_image(conn, "/other.fits") == []
        assert reg.status_counts(conn) == {
            ("image", "published"): 1,
            ("thumbnail", "staging"): 1,
        }
    engine.dispose()


def test_concurrent_registrations_and_publications_of_one_product(engine: Engine) -> None:
    """Two runs of one partition register (and try to publish) the same products at the same
    moment: both succeed, exactly one row per product, exactly one publication."""
    rounds, per_round = 20, 5
    published: list[str] = []

    def writer(barrier: threading.Barrier, ids: list[str]) -> list[str]:
        barrier.wait(10)
        with engine.begin() as conn:
            for pid in ids:
                reg.register_product(
                    conn,
                    product_type="thumbnail",
                    product_id=pid,
                    stage_path=f"/stage/{pid}",
                    qa_status="passed",
                    extra={"fingerprint": pid},
                )
        return [pid for pid in ids if reg.publish_if_passed(engine, pid, f"/pub/{pid}").published]

    with ThreadPoolExecutor(max_workers=2) as pool:
        for r in range(rounds):
            ids = [f"thumbnail:{r}:{i}" for i in range(per_round)]
            barrier = threading.Barrier(2)
            futures = [pool.submit(writer, barrier, ids) for _ in range(2)]
            for future in futures:  # re-raises what a writer raised: both must succeed
                published += future.result(timeout=60)
    with engine.connect() as conn:
        rows = conn.execute(
            select(reg.REGISTRY.c.product_id, func.count()).group_by(reg.REGISTRY.c.product_id)
        ).all()
        statuses = conn.execute(select(reg.REGISTRY.c.status, reg.REGISTRY.c.extra)).all()
    assert len(rows) == rounds * per_round and {n for _, n in rows} == {1}
    assert sorted(published) == sorted(pid for pid, _ in rows)  # each published exactly once
    assert {s for s, _ in statuses} == {"published"}
    assert all(extra["fingerprint"] for _, extra in statuses)


def test_register_merges_extra_and_inherits_the_images_verdict(engine: Engine) -> None:
    image, thumb = "image:x", "thumbnail:x"
    reg.register_product(engine, product_type="image", product_id=image, stage_path="/x.fits")
    reg.set_qa_status(engine, image, "passed", qa_fingerprint="abc")
    row = reg.register_product(
        engine,
        product_type="image",
        product_id=image,
        stage_path="/x.fits",
        extra={"image_path": "/x.fits"},
        inherit_qa_from=image,
    )
    assert row.qa_status == "passed"
    assert row.extra == {"qa_fingerprint": "abc", "image_path": "/x.fits"}
    made = reg.register_product(
        engine, product_type="thumbnail", product_id=thumb, stage_path="/t", inherit_qa_from=image
    )
    assert made.qa_status == "passed"
    none = reg.register_product(
        engine, product_type="qa", product_id="qa:y", stage_path="/q", inherit_qa_from="image:y"
    )
    assert none.qa_status == "pending"


def test_batch_publication_takes_each_product_once_and_records_outcomes(engine: Engine) -> None:
    """take_for_publication / hold_reasons / finish_publication: what publish_ready does for a
    whole day, with the guarantees of publish_if_passed per product."""
    for k, qa in enumerate(["passed", "passed", "passed", "warn"]):
        reg.register_product(
            engine,
            product_type="thumbnail",
            product_id=f"thumbnail:{k}",
            stage_path=f"/stage/{k}.png",
            qa_status=qa,
        )
    ids = [f"thumbnail:{k}" for k in range(4)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two publishers at once
        first, second = pool.map(lambda _: reg.take_for_publication(engine, ids), range(2))
    taken = {**first, **second}
    assert set(first).isdisjoint(second)  # each product went to one publisher
    assert taken == {f"thumbnail:{k}": f"/stage/{k}.png" for k in range(3)}
    held = reg.hold_reasons(engine, ids)
    assert {pid: r.status for pid, r in held.items()} == {
        **{f"thumbnail:{k}": "publishing" for k in range(3)},
        "thumbnail:3": "staging",
    }
    assert "only 'passed'" in (held["thumbnail:3"].reason or "")
    reg.finish_publication(
        engine,
        [reg.PublishedCopy(f"thumbnail:{k}", f"/pub/{k}.png", f"fp{k}") for k in range(2)],
        {"thumbnail:2": "publish failed: disk full"},
    )
    rows = {r.product_id: r for r in (reg.get_product(engine, pid) for pid in ids) if r is not None}
    assert [rows[f"thumbnail:{k}"].status for k in range(4)] == [
        "published",
        "published",
        "staging",
        "staging",
    ]
    assert rows["thumbnail:0"].published_path == "/pub/0.png"
    assert (rows["thumbnail:1"].extra or {})["published_fingerprint"] == "fp1"
    assert rows["thumbnail:2"].reason == "publish failed: disk full"
    assert rows["thumbnail:0"].attempts == 1
    with pytest.raises(DatabaseError, match="no product"):
        reg.hold_reasons(engine, ["thumbnail:nope"])


def test_a_product_left_publishing_by_a_killed_publisher_is_taken_again_once_stale(
    engine: Engine,
) -> None:
    reg.register_product(
        engine, product_type="qa", product_id="qa:1", stage_path="/s/1.json", qa_status="passed"
    )
    assert reg.take_for_publication(engine, ["qa:1"]) == {"qa:1": "/s/1.json"}
    # the publisher dies here: the row stays `publishing`
    assert reg.take_for_publication(engine, ["qa:1"]) == {}  # a live publisher's: left alone
    assert reg.staged_products(engine, ["qa:1"], stale_publishing=reg.PUBLISHING_STALE_AFTER) == []
    with engine.begin() as conn:  # an hour and more later
        conn.execute(
            update(reg.REGISTRY)
            .where(reg.REGISTRY.c.product_id == "qa:1")
            .values(updated_at=reg.utcnow() - reg.PUBLISHING_STALE_AFTER * 2)
        )
    rows = reg.staged_products(engine, ["qa:1"], stale_publishing=reg.PUBLISHING_STALE_AFTER)
    assert [r.status for r in rows] == ["publishing"]
    assert reg.staged_products(engine, ["qa:1"]) == []  # without the option: staging only
    assert reg.take_for_publication(engine, ["qa:1"]) == {"qa:1": "/s/1.json"}
    reg.finish_publication(engine, [reg.PublishedCopy("qa:1", "/p/1.json", None)], {})
    row = reg.get_product(engine, "qa:1")
    assert row is not None and row.status == "published" and row.attempts == 2
