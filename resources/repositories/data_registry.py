"""Everything that reads or writes the data_registry database: data products and their
publication, staging -> publishing -> published behind a QA gate.

Plain functions over SQLAlchemy Core; each takes a Connection (caller's transaction) or an
Engine (own transactions). Only a product whose `qa_status` is `passed` is published; any other
status leaves it in staging with a `reason` a person can read. The move to `publishing` is a
conditional UPDATE, so two publishers never both publish one product.

A product's id is `<type>:<first 24 hex of sha256(absolute image path)>` (`image_product_id`,
which `assets.publishing.publish.product_id` is), so the products of an image are found by
primary-key lookups, not by scanning the JSON `extra` column. The per-image reads and the
withdrawal below serve `assets/publishing/publish.py`, which keeps the file operations.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from resources.engines import Bind, transaction
from resources.errors import ConfigurationError, DatabaseError
from resources.models._common import utcnow
from resources.models.data_registry import QA_STATUSES, DataProduct

REGISTRY = DataProduct.__table__
QA_STATUS_FROM_GRADE: dict[str, str] = {"good": "passed", "warn": "warn", "fail": "failed"}
IMAGE_PRODUCT_TYPES: tuple[str, ...] = ("image", "thumbnail", "qa")


@dataclass(frozen=True)
class ProductRow:
    id: int
    product_type: str
    product_id: str
    status: str
    stage_path: str | None
    published_path: str | None
    qa_status: str
    attempts: int
    reason: str | None
    extra: dict[str, Any] | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    published_at: dt.datetime | None

    @classmethod
    def from_mapping(cls, row: RowMapping | Mapping[str, Any]) -> ProductRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PublishResult:
    product_id: str
    published: bool
    status: str
    published_path: str | None
    reason: str | None


def _check_qa(qa_status: str) -> str:
    if qa_status not in QA_STATUSES:
        raise ConfigurationError(
            "qa_status", f"{qa_status!r} is not one of {', '.join(QA_STATUSES)}"
        )
    return qa_status


def qa_status_from_grade(grade: str) -> str:
    """QA grade (good/warn/fail) -> registry qa_status (passed/warn/failed)."""
    try:
        return QA_STATUS_FROM_GRADE[grade]
    except KeyError as exc:
        raise ConfigurationError("grade", f"{grade!r} is not one of good, warn, fail") from exc


def get_product(bind: Bind, product_id: str) -> ProductRow | None:
    with transaction(bind) as conn:
        row = (
            conn.execute(select(REGISTRY).where(REGISTRY.c.product_id == product_id))
            .mappings()
            .first()
        )
    return ProductRow.from_mapping(row) if row is not None else None


def _insert(conn: Connection):  # type: ignore[no-untyped-def]
    """INSERT of the connection's dialect, which knows `ON CONFLICT DO NOTHING`."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(REGISTRY)
    if dialect == "sqlite":
        return sqlite.insert(REGISTRY)
    raise ConfigurationError(
        "database", f"the data registry supports PostgreSQL and SQLite, not {dialect}"
    )


def _merge_extra(conn: Connection, row_id: int, current: Any, extra: Mapping[str, Any]) -> Any:
    """`current` JSON extra updated with `extra`, written back; the caller holds the row's lock
    (its transaction updated the row first), so no concurrent writer loses its keys."""
    merged = {**(current or {}), **extra}
    if merged != current:
        conn.execute(update(REGISTRY).where(REGISTRY.c.id == row_id).values(extra=merged))
    return merged


def _qa_of(product_id: str) -> Any:
    """Scalar subquery: the qa_status recorded on `product_id` (NULL when it has no row)."""
    inner = REGISTRY.alias("known")
    return select(inner.c.qa_status).where(inner.c.product_id == product_id).scalar_subquery()


def register_product(
    bind: Bind,
    *,
    product_type: str,
    product_id: str,
    stage_path: str,
    qa_status: str = "pending",
    extra: dict[str, Any] | None = None,
    restage: bool = False,
    inherit_qa_from: str | None = None,
) -> ProductRow:
    """Create or refresh a product in staging; safe when several processes do it at once.

    A product still in staging gets its stage path, qa_status and extra refreshed (extra keys
    are merged: what QA recorded stays). A product already publishing/published is left alone
    unless `restage=True` (a re-run after a fix), which puts it back in staging; its previous
    published path stays recorded until the next publication replaces it. `inherit_qa_from`
    names a product whose recorded qa_status is taken instead of `qa_status` when it exists
    (read in the same statement, not before it).

    Every statement starts with a write (insert-or-nothing, then a conditional update), never
    with a read: two runs of one partition registering the same product cannot both insert
    (the unique `product_id` decides, the loser's insert does nothing), and on SQLite a
    transaction that began with a read could not take the write lock after a concurrent commit.
    """
    _check_qa(qa_status)
    now = utcnow()
    status_value: Any = qa_status
    if inherit_qa_from is not None:
        status_value = func.coalesce(_qa_of(inherit_qa_from), qa_status)
    with transaction(bind) as conn:
        staged = {
            "product_type": product_type,
            "status": "staging",
            "stage_path": stage_path,
            "qa_status": status_value,
            "updated_at": now,
        }
        created = (
            conn.execute(
                _insert(conn)
                .values(**staged, product_id=product_id, attempts=0, extra=extra, created_at=now)
                .on_conflict_do_nothing(index_elements=["product_id"])
                .returning(*REGISTRY.c)
            )
            .mappings()
            .first()
        )
        if created is not None:
            return ProductRow.from_mapping(created)
        refresh = update(REGISTRY).where(REGISTRY.c.product_id == product_id)
        if not restage:
            refresh = refresh.where(REGISTRY.c.status == "staging")
        row = (
            conn.execute(refresh.values(**staged, reason=None).returning(*REGISTRY.c))
            .mappings()
            .first()
        )
        if row is None:  # publishing/published and not restaged: left alone
            kept = (
                conn.execute(select(REGISTRY).where(REGISTRY.c.product_id == product_id))
                .mappings()
                .one()
            )
            return ProductRow.from_mapping(kept)
        values = dict(row)
        if extra is not None:
            values["extra"] = _merge_extra(conn, row["id"], row["extra"], extra)
        return ProductRow.from_mapping(values)


def set_qa_status(
    bind: Bind, product_id: str, qa_status: str, *, qa_fingerprint: str | None = None
) -> ProductRow:
    """Record a QA verdict; `qa_fingerprint` (kept in extra) names the content it is about, which
    publication checks the published copy against."""
    _check_qa(qa_status)
    with transaction(bind) as conn:
        row = (
            conn.execute(
                update(REGISTRY)
                .where(REGISTRY.c.product_id == product_id)
                .values(qa_status=qa_status, updated_at=utcnow())
                .returning(*REGISTRY.c)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise DatabaseError("data_registry", f"no product {product_id!r}")
        values = dict(row)
        if qa_fingerprint is not None:
            values["extra"] = _merge_extra(
                conn, row["id"], row["extra"], {"qa_fingerprint": qa_fingerprint}
            )
    return ProductRow.from_mapping(values)


def set_qa_statuses(bind: Bind, verdicts: Sequence[tuple[Sequence[str], str, str | None]]) -> int:
    """`set_qa_status` for those of the products that exist, for many images in one transaction
    (writes first): each item is (the product ids of one image, its qa_status, the fingerprint
    of the content graded). Returns the number of rows updated.

    Rows are updated one by one in product-id order, the order in which `register` and
    `finish_publication` write them too: two runs of one day doing these at once on PostgreSQL
    wait for each other instead of deadlocking (they did, with one UPDATE per image).
    """
    per_product: dict[str, tuple[str, str | None]] = {}
    for product_ids, qa_status, qa_fingerprint in verdicts:
        _check_qa(qa_status)
        for pid in product_ids:
            per_product[pid] = (qa_status, qa_fingerprint)
    updated = 0
    with transaction(bind) as conn:
        for pid, (qa_status, qa_fingerprint) in sorted(per_product.items()):
            row = (
                conn.execute(
                    update(REGISTRY)
                    .where(REGISTRY.c.product_id == pid)
                    .values(qa_status=qa_status, updated_at=utcnow())
                    .returning(REGISTRY.c.id, REGISTRY.c.extra)
                )
                .mappings()
                .first()
            )
            if row is None:
                continue
            updated += 1
            if qa_fingerprint is not None:
                _merge_extra(conn, row["id"], row["extra"], {"qa_fingerprint": qa_fingerprint})
    return updated


#: What a publish callable does: put the file at the published path; it may return the
#: fingerprint of the published copy, which is recorded (extra `published_fingerprint`).
Publisher = Callable[[str | None, str], str | None]


def publish_if_passed(
    bind: Bind,
    product_id: str,
    published_path: str,
    *,
    publish: Publisher | None = None,
) -> PublishResult:
    """QA gate: publish a staged product only when its qa_status is `passed`.

    passed: staging -> publishing (attempts + 1) -> `publish(stage_path, published_path)` if
    given (e.g. copy the file) -> published with the path and time (and the fingerprint the
    callable returned). A publish callable raising OSError puts the product back in staging
    with the error as reason and returns published=False. Any other qa_status: stays in staging
    with a reason. With an Engine, each state change commits on its own, so other processes see
    `publishing` while the file is being moved. The move to `publishing` is the first statement
    (a conditional UPDATE): of two concurrent publishers exactly one gets the product.
    """
    with transaction(bind) as conn:
        taken = (
            conn.execute(
                update(REGISTRY)
                .where(
                    REGISTRY.c.product_id == product_id,
                    REGISTRY.c.status == "staging",
                    REGISTRY.c.qa_status == "passed",
                )
                .values(status="publishing", attempts=REGISTRY.c.attempts + 1, updated_at=utcnow())
                .returning(REGISTRY.c.stage_path)
            )
            .mappings()
            .first()
        )
    if taken is None:
        return _not_published(bind, product_id)
    stage_path = taken["stage_path"]
    fingerprint: str | None = None
    if publish is not None:
        try:
            fingerprint = publish(stage_path, published_path)
        except OSError as exc:
            reason = f"publish failed: {exc}"
            finish_publication(bind, [], {product_id: reason})
            return PublishResult(product_id, False, "staging", None, reason)
    finish_publication(bind, [PublishedCopy(product_id, published_path, fingerprint)], {})
    return PublishResult(product_id, True, "published", published_path, None)


#: A product left in `publishing` longer than this was taken by a publisher that died (a batch
#: of copies takes seconds): `take_for_publication` takes it again.
PUBLISHING_STALE_AFTER = dt.timedelta(hours=1)


def take_for_publication(
    bind: Bind,
    product_ids: Sequence[str],
    *,
    stale_after: dt.timedelta = PUBLISHING_STALE_AFTER,
) -> dict[str, str | None]:
    """`publish_if_passed`'s first step for many products in one statement: every one of
    `product_ids` with qa_status `passed` in staging, or left in `publishing` for longer than
    `stale_after` by a publisher that was killed, moves to `publishing` (attempts + 1).

    Returns {product id: stage path} of those taken; of two concurrent publishers each product
    goes to exactly one (the conditional UPDATE). The caller finishes each taken product with
    `finish_publication`.
    """
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    now = utcnow()
    with transaction(bind) as conn:
        # Lock the rows in product-id order before the UPDATE (whose own order is the scan's),
        # as every other multi-row write here does: concurrent runs wait instead of deadlocking.
        # SQLite has no row locks (its write lock is the whole file): FOR UPDATE is left out.
        conn.execute(
            select(REGISTRY.c.id)
            .where(REGISTRY.c.product_id.in_(ids))
            .order_by(REGISTRY.c.product_id)
            .with_for_update()
        ).all()
        rows = conn.execute(
            update(REGISTRY)
            .where(
                REGISTRY.c.product_id.in_(ids),
                REGISTRY.c.qa_status == "passed",
                or_(
                    REGISTRY.c.status == "staging",
                    and_(
                        REGISTRY.c.status == "publishing",
                        REGISTRY.c.updated_at < now - stale_after,
                    ),
                ),
            )
            .values(status="publishing", attempts=REGISTRY.c.attempts + 1, updated_at=now)
            .returning(REGISTRY.c.product_id, REGISTRY.c.stage_path)
        ).all()
    return {row.product_id: row.stage_path for row in rows}


@dataclass(frozen=True)
class PublishedCopy:
    """A product whose file is in place: its published path and that copy's fingerprint."""

    product_id: str
    published_path: str
    fingerprint: str | None


def finish_publication(
    bind: Bind, published: Sequence[PublishedCopy], failed: Mapping[str, str]
) -> None:
    """Last step of a batch publication, one transaction: `published` products (still in
    `publishing`) become published with their path, time and copy fingerprint (extra
    `published_fingerprint`); `failed` ones go back to staging with the reason."""
    if not published and not failed:
        return
    now = utcnow()
    with transaction(bind) as conn:
        for copy in sorted(published, key=lambda c: c.product_id):
            row = (
                conn.execute(
                    update(REGISTRY)
                    .where(
                        REGISTRY.c.product_id == copy.product_id,
                        REGISTRY.c.status == "publishing",
                    )
                    .values(
                        status="published",
                        published_path=copy.published_path,
                        published_at=now,
                        reason=None,
                        updated_at=now,
                    )
                    .returning(REGISTRY.c.id, REGISTRY.c.extra)
                )
                .mappings()
                .first()
            )
            if row is not None and copy.fingerprint is not None:
                _merge_extra(
                    conn, row["id"], row["extra"], {"published_fingerprint": copy.fingerprint}
                )
        for product_id, reason in sorted(failed.items()):
            conn.execute(
                update(REGISTRY)
                .where(REGISTRY.c.product_id == product_id, REGISTRY.c.status == "publishing")
                .values(status="staging", reason=reason, updated_at=now)
            )


def hold_reasons(bind: Bind, product_ids: Sequence[str]) -> dict[str, PublishResult]:
    """Why each of `product_ids` was not taken for publication (`_not_published` for many):
    a QA hold is written as the product's reason, in one transaction after one read."""
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    with transaction(bind) as conn:
        rows = {
            row["product_id"]: row
            for row in conn.execute(select(REGISTRY).where(REGISTRY.c.product_id.in_(ids)))
            .mappings()
            .all()
        }
    missing = [pid for pid in ids if pid not in rows]
    if missing:
        raise DatabaseError(
            "data_registry",
            f"no product {missing[0]!r}",
            hint="register_product() it before publishing.",
        )
    out: dict[str, PublishResult] = {}
    held: dict[str, str] = {}
    for pid, row in rows.items():
        if row["status"] == "publishing":
            out[pid] = PublishResult(pid, False, "publishing", None, "taken by another publisher")
        elif row["status"] != "staging":
            out[pid] = PublishResult(
                pid, False, row["status"], row["published_path"], f"already {row['status']}"
            )
        else:
            reason = f"qa_status is {row['qa_status']!r}; only 'passed' products are published"
            held[pid] = reason
            out[pid] = PublishResult(pid, False, "staging", row["published_path"], reason)
    if held:
        # The read and the writes are separate transactions (see `_not_published`).
        with transaction(bind) as conn:
            now = utcnow()
            for pid, reason in sorted(held.items()):
                conn.execute(
                    update(REGISTRY)
                    .where(REGISTRY.c.product_id == pid, REGISTRY.c.status == "staging")
                    .values(reason=reason, updated_at=now)
                )
    return out


def _not_published(bind: Bind, product_id: str) -> PublishResult:
    """Why `product_id` was not taken for publication; a QA hold is written as its reason.

    The read and the write are separate transactions: on SQLite a transaction that read before
    another connection committed cannot write afterwards.
    """
    with transaction(bind) as conn:
        row = (
            conn.execute(select(REGISTRY).where(REGISTRY.c.product_id == product_id))
            .mappings()
            .first()
        )
    if row is None:
        raise DatabaseError(
            "data_registry",
            f"no product {product_id!r}",
            hint="register_product() it before publishing.",
        )
    if row["status"] == "publishing":
        return PublishResult(product_id, False, "publishing", None, "taken by another publisher")
    if row["status"] != "staging":
        return PublishResult(
            product_id, False, row["status"], row["published_path"], f"already {row['status']}"
        )
    reason = f"qa_status is {row['qa_status']!r}; only 'passed' products are published"
    with transaction(bind) as conn:
        conn.execute(
            update(REGISTRY)
            .where(REGISTRY.c.product_id == product_id, REGISTRY.c.status == "staging")
            .values(reason=reason, updated_at=utcnow())
        )
    return PublishResult(product_id, False, "staging", row["published_path"], reason)


# --- the products of one image (assets/publishing/publish.py, `contimg images show`) ----------


def image_product_id(product_type: str, image_path: str) -> str:
    """Stable id of an image's product: type plus a digest of the image's absolute path."""
    digest = hashlib.sha256(os.path.abspath(image_path).encode()).hexdigest()[:24]
    return f"{product_type}:{digest}"


def products_of_image(
    conn: Connection, image_path: str, types: Sequence[str] = IMAGE_PRODUCT_TYPES
) -> list[ProductRow]:
    """The registry rows of an image's products, in the order of `types` (missing ones absent)."""
    ids = [image_product_id(t, image_path) for t in types]
    rows = {
        row["product_id"]: ProductRow.from_mapping(row)
        for row in conn.execute(select(REGISTRY).where(REGISTRY.c.product_id.in_(ids))).mappings()
    }
    return [rows[pid] for pid in ids if pid in rows]


def status_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Products per (type, status)."""
    stmt = select(REGISTRY.c.product_type, REGISTRY.c.status, func.count()).group_by(
        REGISTRY.c.product_type, REGISTRY.c.status
    )
    return {(ptype, status): int(n) for ptype, status, n in conn.execute(stmt)}


def image_qa_status(bind: Bind, image_path: str) -> str | None:
    """The QA verdict already recorded on the image's own product (None: not registered).

    Products made later (a thumbnail after QA) inherit it, so they are publishable at once.
    """
    with transaction(bind) as conn:
        return conn.execute(
            select(REGISTRY.c.qa_status).where(
                REGISTRY.c.product_id == image_product_id("image", image_path)
            )
        ).scalar_one_or_none()


def existing_product_ids(bind: Bind, product_ids: Sequence[str]) -> list[str]:
    """Those of `product_ids` that have a registry row."""
    with transaction(bind) as conn:
        return list(
            conn.execute(
                select(REGISTRY.c.product_id).where(REGISTRY.c.product_id.in_(list(product_ids)))
            ).scalars()
        )


def withdraw_products(bind: Bind, product_ids: Sequence[str], reason: str) -> list[str]:
    """Put these products back in `staging` with qa_status `pending` and `reason`.

    Only rows in staging or published are touched: a row being published right now
    (`publishing`) is left to its publisher. A published row forgets its published path (the
    caller removes that file: the publish directory holds exactly what is published). Returns the
    published paths of the withdrawn rows that had one.
    """
    ids = list(product_ids)
    with transaction(bind) as conn:
        previous = [
            row.published_path
            for row in conn.execute(
                select(REGISTRY.c.published_path).where(
                    REGISTRY.c.product_id.in_(ids),
                    REGISTRY.c.status == "published",
                    REGISTRY.c.published_path.is_not(None),
                )
            )
        ]
        conn.execute(
            update(REGISTRY)
            .where(REGISTRY.c.product_id.in_(ids), REGISTRY.c.status.in_(("staging", "published")))
            .values(
                status="staging",
                qa_status="pending",
                reason=reason,
                published_path=None,
                updated_at=utcnow(),
            )
        )
    return [str(path) for path in previous]


def staged_products(
    bind: Bind, product_ids: Sequence[str], *, stale_publishing: dt.timedelta | None = None
) -> list[ProductRow]:
    """The rows of those of `product_ids` still in staging (with extra: the recorded
    fingerprints, and published_path: a previous publication); with `stale_publishing`, also
    those left in `publishing` for longer than that (`take_for_publication` retakes them)."""
    waiting = REGISTRY.c.status == "staging"
    if stale_publishing is not None:
        waiting = or_(
            waiting,
            and_(
                REGISTRY.c.status == "publishing",
                REGISTRY.c.updated_at < utcnow() - stale_publishing,
            ),
        )
    with transaction(bind) as conn:
        rows = conn.execute(
            select(REGISTRY).where(REGISTRY.c.product_id.in_(list(product_ids)), waiting)
        ).mappings()
        return [ProductRow.from_mapping(row) for row in rows]
