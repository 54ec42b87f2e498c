"""Queries of the data_registry database: the products of one image and their publication state.

A product's id is `<type>:<first 24 hex of sha256(absolute image path)>` (the scheme of
`assets.publishing.product_id`; a test keeps the two identical), so the products of an image are
found by primary-key lookups, not by scanning the JSON `extra` column.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from resources.data_registry import REGISTRY, ProductRow, get_product

IMAGE_PRODUCT_TYPES: tuple[str, ...] = ("image", "thumbnail", "qa")

__all__ = [
    "IMAGE_PRODUCT_TYPES",
    "ProductRow",
    "get_product",
    "image_product_id",
    "products_of_image",
    "status_counts",
]


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
