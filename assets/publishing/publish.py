"""Naming, registering and publishing data products (images, thumbnails, QA reports).

Every product gets a `data_registry` row in `staging` when it is made. When the image's QA
passes (grade `good`: see resources/repositories/data_registry.py for the grade -> qa_status map), all its
products are published: hard-linked (or copied across file systems) into the publish directory
(CONTIMG_PUBLISH_DIR, default <data dir>/published) under `<type>/<obs date>/<file name>`
(images: `image/<obs date>/<path digest>/<file name>`, see `published_path`), and
the row moves staging -> publishing -> published with that path. Products of images whose QA did
not pass stay in staging with the reason. Thumbnails and QA are separate assets that may run in
either order, so both call `publish_ready`: whichever runs last publishes what is ready.

This module owns the file operations and the naming; every read and write of the registry is a
function of `resources.repositories.data_registry`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from resources.repositories import data_registry
from resources.repositories.data_registry import image_product_id
from resources.settings import under_data_dir

PRODUCT_TYPES = data_registry.IMAGE_PRODUCT_TYPES


def publish_dir() -> Path:
    return under_data_dir("CONTIMG_PUBLISH_DIR", "published")


# Stable id of an image's product: type plus a digest of the image's absolute path. Defined with
# the registry queries so that the catalogue finds exactly what the assets registered.
product_id = image_product_id


def published_path(product_type: str, obs_date: dt.date, stage_path: str) -> str:
    """`<publish dir>/<type>/<obs date>/[<digest>/]<file name>`.

    Thumbnail and QA-report names are unique by construction, but input file names are unique
    only within their directory (per-field folders reuse them): an image is published under a
    short digest of its staged path, so two same-named images never replace each other.
    """
    folder = publish_dir() / product_type / obs_date.isoformat()
    if product_type == "image":
        folder /= hashlib.sha256(os.path.abspath(stage_path).encode()).hexdigest()[:12]
    return str(folder / Path(stage_path).name)


def link_or_copy(source: str | None, dest: str) -> None:
    """Put the product at its published path without doubling storage where possible."""
    if source is None:
        raise FileNotFoundError("product has no staged file")
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


@dataclass(frozen=True)
class ProductRef:
    product_type: str
    image_path: str
    obs_date: dt.date
    stage_path: str


def register(engine: Engine, refs: list[ProductRef], *, restage: bool = False) -> None:
    """Record products in staging (one transaction).

    A product inherits the QA verdict already known for its image (carried on the image's own
    product), so a thumbnail made after QA is publishable at once.
    """
    with engine.begin() as conn:
        for ref in refs:
            known = data_registry.image_qa_status(conn, ref.image_path)
            data_registry.register_product(
                conn,
                product_type=ref.product_type,
                product_id=product_id(ref.product_type, ref.image_path),
                stage_path=ref.stage_path,
                qa_status=known or "pending",
                extra={"image_path": ref.image_path, "obs_date": ref.obs_date.isoformat()},
                restage=restage,
            )


def set_qa_status(engine: Engine, image_path: str, qa_status: str) -> None:
    """Carry an image's QA verdict to every product of that image that exists."""
    ids = [product_id(t, image_path) for t in PRODUCT_TYPES]
    with engine.begin() as conn:
        for pid in data_registry.existing_product_ids(conn, ids):
            data_registry.set_qa_status(conn, pid, qa_status)


def withdraw_changed(engine: Engine, image_paths: list[str]) -> int:
    """The content of these images changed: their QA verdict no longer holds.

    Every product of each image goes back to `staging` with qa_status `pending` (and a reason),
    so that neither the stale products nor a thumbnail made before the new QA are published on
    the old verdict; the next QA run publishes again what passes. Rows being published right now
    (`publishing`) are left to their publisher. Returns the number of products withdrawn.
    """
    if not image_paths:
        return 0
    ids = [product_id(t, p) for p in image_paths for t in PRODUCT_TYPES]
    return data_registry.withdraw_products(engine, ids, "the image changed; waiting for its new QA")


@dataclass(frozen=True)
class PublishSummary:
    published: int
    left_in_staging: int
    reasons: dict[str, str]


def publish_ready(engine: Engine, images: list[tuple[str, dt.date]]) -> PublishSummary:
    """Publish every staged product of these images whose QA passed; leave the rest, with why."""
    published = 0
    staged = 0
    reasons: dict[str, str] = {}
    for image_path, obs_date in images:
        ids = [product_id(t, image_path) for t in PRODUCT_TYPES]
        for pid, ptype, stage_path in data_registry.staged_products(engine, ids):
            result = data_registry.publish_if_passed(
                engine,
                pid,
                published_path(ptype, obs_date, stage_path or pid),
                publish=link_or_copy,
            )
            if result.published:
                published += 1
            else:
                staged += 1
                if result.reason:
                    reasons[pid] = result.reason
    return PublishSummary(published, staged, reasons)
