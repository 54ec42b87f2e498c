"""Data products and their publication: staging -> publishing -> published behind a QA gate.

Plain functions over SQLAlchemy Core; each takes a Connection (caller's transaction) or an
Engine (own transactions). Only a product whose `qa_status` is `passed` is published; any other
status leaves it in staging with a `reason` a person can read. The move to `publishing` is a
conditional UPDATE, so two publishers never both publish one product.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from resources.engines import Bind, transaction
from resources.errors import ConfigurationError, DatabaseError
from resources.models._common import utcnow
from resources.models.data_registry import QA_STATUSES, DataProduct

REGISTRY = DataProduct.__table__
QA_STATUS_FROM_GRADE: dict[str, str] = {"good": "passed", "warn": "warn", "fail": "failed"}


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
        if existing is None:
            row = (
                conn.execute(
                    REGISTRY.insert()
                    .values(
                        product_type=product_type,
                        product_id=product_id,
                        status="staging",
                        stage_path=stage_path,
                        qa_status=qa_status,
                        attempts=0,
                        extra=extra,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*REGISTRY.c)
                )
                .mappings()
                .one()
            )
            return ProductRow.from_mapping(row)
        if existing["status"] != "staging" and not restage:
            return ProductRow.from_mapping(existing)
        row = (
            conn.execute(
                update(REGISTRY)
                .where(REGISTRY.c.id == existing["id"])
                .values(
                    product_type=product_type,
                    status="staging",
                    stage_path=stage_path,
                    qa_status=qa_status,
                    extra=extra if extra is not None else existing["extra"],
                    reason=None,
                    updated_at=now,
                )
                .returning(*REGISTRY.c)
            )
            .mappings()
            .one()
        )
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
