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

from sqlalchemy import func, select, update
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


def register_product(
    bind: Bind,
    *,
    product_type: str,
    product_id: str,
    stage_path: str,
    qa_status: str = "pending",
    extra: dict[str, Any] | None = None,
    restage: bool = False,
) -> ProductRow:
    """Create or refresh a product in staging.

    A product still in staging gets its stage path, qa_status and extra refreshed. A product
    already publishing/published is left alone unless `restage=True` (a re-run after a fix),
    which puts it back in staging; its previous published path stays recorded until the next
    publication replaces it.
    """
    _check_qa(qa_status)
    now = utcnow()
    with transaction(bind) as conn:
        existing = (
            conn.execute(select(REGISTRY).where(REGISTRY.c.product_id == product_id))
            .mappings()
            .first()
        )
        # What staging sets, whether the product is new or comes back to staging.
        staged = {
            "product_type": product_type,
            "status": "staging",
            "stage_path": stage_path,
            "qa_status": qa_status,
            "updated_at": now,
        }
        if existing is None:
            statement = REGISTRY.insert().values(
                **staged, product_id=product_id, attempts=0, extra=extra, created_at=now
            )
        elif existing["status"] != "staging" and not restage:
            return ProductRow.from_mapping(existing)
        else:
            statement = (
                update(REGISTRY)
                .where(REGISTRY.c.id == existing["id"])
                .values(
                    **staged,
                    extra=extra if extra is not None else existing["extra"],
                    reason=None,
                )
            )
        row = conn.execute(statement.returning(*REGISTRY.c)).mappings().one()
        return ProductRow.from_mapping(row)


def set_qa_status(bind: Bind, product_id: str, qa_status: str) -> ProductRow:
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
    return ProductRow.from_mapping(row)


def publish_if_passed(
    bind: Bind,
    product_id: str,
    published_path: str,
    *,
    publish: Callable[[str | None, str], None] | None = None,
) -> PublishResult:
    """QA gate: publish a staged product only when its qa_status is `passed`.

    passed: staging -> publishing (attempts + 1) -> `publish(stage_path, published_path)` if
    given (e.g. copy the file) -> published with the path and time. A publish callable raising
    OSError puts the product back in staging with the error as reason and returns
    published=False. Any other qa_status: stays in staging with a reason.
    With an Engine, each state change commits on its own, so other processes see
    `publishing` while the file is being moved.
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
        if row["status"] != "staging":
            return PublishResult(
                product_id, False, row["status"], row["published_path"], f"already {row['status']}"
            )
        if row["qa_status"] != "passed":
            reason = f"qa_status is {row['qa_status']!r}; only 'passed' products are published"
            conn.execute(
                update(REGISTRY)
                .where(REGISTRY.c.id == row["id"])
                .values(reason=reason, updated_at=utcnow())
            )
            return PublishResult(product_id, False, "staging", row["published_path"], reason)
        taken = conn.execute(
            update(REGISTRY)
            .where(REGISTRY.c.id == row["id"], REGISTRY.c.status == "staging")
            .values(status="publishing", attempts=REGISTRY.c.attempts + 1, updated_at=utcnow())
        ).rowcount
        if not taken:
            return PublishResult(
                product_id, False, "publishing", None, "taken by another publisher"
            )
        stage_path = row["stage_path"]
    if publish is not None:
        try:
            publish(stage_path, published_path)
        except OSError as exc:
            reason = f"publish failed: {exc}"
            with transaction(bind) as conn:
                conn.execute(
                    update(REGISTRY)
                    .where(REGISTRY.c.product_id == product_id)
                    .values(status="staging", reason=reason, updated_at=utcnow())
                )
            return PublishResult(product_id, False, "staging", None, reason)
    now = utcnow()
    with transaction(bind) as conn:
        conn.execute(
            update(REGISTRY)
            .where(REGISTRY.c.product_id == product_id, REGISTRY.c.status == "publishing")
            .values(
                status="published",
                published_path=published_path,
                published_at=now,
                reason=None,
                updated_at=now,
            )
        )
    return PublishResult(product_id, True, "published", published_path, None)


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


def withdraw_products(bind: Bind, product_ids: Sequence[str], reason: str) -> int:
    """Put these products back in `staging` with qa_status `pending` and `reason`.

    Only rows in staging or published are touched: a row being published right now
    (`publishing`) is left to its publisher. Returns the number of rows withdrawn.
    """
    with transaction(bind) as conn:
        result = conn.execute(
            update(REGISTRY)
            .where(
                REGISTRY.c.product_id.in_(list(product_ids)),
                REGISTRY.c.status.in_(("staging", "published")),
            )
            .values(status="staging", qa_status="pending", reason=reason, updated_at=utcnow())
        )
    return int(result.rowcount or 0)


def staged_products(bind: Bind, product_ids: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """(product_id, product_type, stage_path) of those of `product_ids` still in staging."""
    with transaction(bind) as conn:
        rows = conn.execute(
            select(REGISTRY.c.product_id, REGISTRY.c.product_type, REGISTRY.c.stage_path).where(
                REGISTRY.c.product_id.in_(list(product_ids)), REGISTRY.c.status == "staging"
            )
        ).all()
    return [(pid, ptype, stage_path) for pid, ptype, stage_path in rows]
