"""Naming, registering and publishing data products (images, thumbnails, QA reports).

Every product gets a `data_registry` row in `staging` when it is made. When the image's QA
passes (grade `good`: see resources/repositories/data_registry.py for the grade -> qa_status map), all its
products are published: copied (a reflink where the file system can) into the publish directory
(CONTIMG_PUBLISH_DIR, default <data dir>/published) under `<type>/<obs date>/<file name>`
(images: `image/<obs date>/<path digest>/<file name>`, see `published_path`), and
the row moves staging -> publishing -> published with that path.

Copies, never hard links: a hard link shares the incoming file's inode, so an observation
re-imaged in place changed a published, QA-passed file at once, under a record still saying
`published`/`passed`. The copy goes to a temporary name in the publish folder
(`files.temp_path`), is fsynced, and its fingerprint (`product_fingerprint`: the FITS
fingerprint of the ingest for images, in the scheme of the recorded value, SHA-256 for
thumbnails and QA reports) must equal the one the registry recorded for what QA judged (extra
`qa_fingerprint` / `fingerprint`) before it is renamed into place; a mismatch (the source
changed since QA) leaves the product in staging with the reason, and the next ingest re-grades
and publishes the new content. Products of images whose QA did
not pass stay in staging with the reason. Thumbnails and QA are separate assets that may run in
either order, so both call `publish_ready`: whichever runs last publishes what is ready.

This module owns the file operations and the naming; every read and write of the registry is a
function of `resources.repositories.data_registry`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from assets.publishing import files
from resources.errors import FITSParsingError
from resources.fits.structure import fingerprint_scheme, scan
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


def product_fingerprint(
    product_type: str, path: str | os.PathLike[str], *, like: str | None = None
) -> str:
    """The fingerprint the registry records for a product file.

    Images: the same function ingest uses (`resources.fits.structure.scan`), so the value equals
    `products.images.fingerprint` of the content QA graded; computed in the scheme of `like`
    (a recorded value) when that is known, so that a value recorded before the switch to xxh3
    (bare sha256) is verified as what it is instead of failing every publication once. Ingest
    keeps such a value as long as the content is unchanged (`content_changes`), so QA records
    it too. Thumbnails and QA reports: SHA-256 of the bytes, unchanged: they are small (the hash
    costs well under a millisecond) and a new scheme would only make their records mismatch.
    """
    if product_type == "image":
        try:
            return scan(path, scheme=fingerprint_scheme(like)).fingerprint
        except FITSParsingError as exc:
            raise OSError(f"cannot fingerprint {path}: {exc}") from exc
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def bytes_fingerprint(data: bytes) -> str:
    """`product_fingerprint` of a thumbnail or QA report from the bytes written."""
    return hashlib.sha256(data).hexdigest()


class SourceChangedError(OSError):
    """The staged file is not the content the registry recorded: it changed since QA."""


_FICLONE = 0x40049409  # linux/fs.h: share the extents (btrfs, XFS with reflink)


def _copy_file(source: str, dest: Path) -> None:
    """Copy `source` to the new file `dest`: reflink if possible, else copy_file_range, else a
    plain copy (shutil.copyfile); fsync before returning."""
    with open(source, "rb") as src, open(dest, "xb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:
            size = os.fstat(src.fileno()).st_size
            copied = 0
            try:
                while copied < size:
                    n = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
                    if n == 0:
                        break
                    copied += n
            except OSError:
                src.seek(0)
                dst.seek(0)
                dst.truncate()
                shutil.copyfileobj(src, dst, 1 << 20)
            else:
                if copied < size:  # the source shrank while copying: copy what is there now
                    shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    shutil.copystat(source, dest)


def copy_verified(
    product_type: str, source: str | None, dest: str, expected: str | None = None
) -> str:
    """Publish `source` at `dest` as an independent copy whose fingerprint is `expected`.

    The copy is written to a `files.temp_path` name beside `dest`, fsynced, fingerprinted and
    only then renamed over `dest` (an earlier copy of the product is replaced whole). Without a
    recorded fingerprint the source's own, taken before copying, is what the copy must match.
    Raises SourceChangedError (an OSError: the registry puts the product back in staging with
    the reason) when the copy is not that content; the temporary file never stays. Returns the
    fingerprint of the published copy.
    """
    if source is None:
        raise FileNotFoundError("product has no staged file")
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    if expected is None:
        expected = product_fingerprint(product_type, source)
    tmp = files.temp_path(target)
    try:
        _copy_file(source, tmp)
        got = product_fingerprint(product_type, tmp, like=expected)
        if got != expected:
            raise SourceChangedError(
                f"{source} changed since it was recorded (fingerprint {got[:12]}..., recorded "
                f"{expected[:12]}...); not published: the next ingest re-grades it"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    files.fsync_dir(target.parent)
    return got


def recorded_fingerprint(row: data_registry.ProductRow) -> str | None:
    """What the published copy of this product must be: the fingerprint recorded when the file
    was made (thumbnails, QA reports) or, for an image, the one its QA verdict is about."""
    extra = row.extra or {}
    return extra.get("fingerprint") or extra.get("qa_fingerprint")


def sweep_publish_temps(day: dt.date) -> files.SweepReport:
    """Remove what killed publishers left in the publish folders of `day` (files.sweep_stale)."""
    folders = [publish_dir() / ptype / day.isoformat() for ptype in PRODUCT_TYPES]
    return files.sweep_stale(folders, recursive=True)


@dataclass(frozen=True)
class ProductRef:
    product_type: str
    image_path: str
    obs_date: dt.date
    stage_path: str
    #: `product_fingerprint` of the staged file as made (None: recorded later, by QA).
    fingerprint: str | None = None


def register(engine: Engine, refs: list[ProductRef], *, restage: bool = False) -> None:
    """Record products in staging (one transaction); safe when two runs do it at once.

    A product inherits the QA verdict already known for its image (carried on the image's own
    product), so a thumbnail made after QA is publishable at once. Products are written in
    product-id order, so two concurrent registrations of one day lock rows in the same order.
    """
    rows = []
    for ref in refs:
        extra = {"image_path": ref.image_path, "obs_date": ref.obs_date.isoformat()}
        if ref.fingerprint is not None:
            extra["fingerprint"] = ref.fingerprint
        rows.append((product_id(ref.product_type, ref.image_path), ref, extra))
    with engine.begin() as conn:
        for pid, ref, extra in sorted(rows, key=lambda item: item[0]):
            data_registry.register_product(
                conn,
                product_type=ref.product_type,
                product_id=pid,
                stage_path=ref.stage_path,
                extra=extra,
                restage=restage,
                inherit_qa_from=product_id("image", ref.image_path),
            )


def set_qa_statuses(engine: Engine, verdicts: list[tuple[str, str, str | None]]) -> None:
    """Carry each image's QA verdict to every product of that image that exists, with the
    fingerprint of the content graded (what a published copy of the image must match); one
    transaction for all: items are (image path, qa_status, fingerprint)."""
    data_registry.set_qa_statuses(
        engine,
        [
            ([product_id(t, path) for t in PRODUCT_TYPES], status, fp)
            for path, status, fp in verdicts
        ],
    )


def withdraw_changed(engine: Engine, image_paths: list[str]) -> int:
    """The content of these images changed: their QA verdict no longer holds.

    Every product of each image goes back to `staging` with qa_status `pending` (and a reason),
    so that neither the stale products nor a thumbnail made before the new QA are published on
    the old verdict; the next QA run publishes again what passes. Their published copies are
    removed with the record: the publish directory holds exactly what the registry says is
    published (a consumer never picks up a verdict that no longer holds). Rows being published
    right now (`publishing`) are left to their publisher. Returns the number of files removed.
    """
    if not image_paths:
        return 0
    ids = [product_id(t, p) for p in image_paths for t in PRODUCT_TYPES]
    previous = data_registry.withdraw_products(
        engine, ids, "the image changed; waiting for its new QA"
    )
    for path in previous:
        Path(path).unlink(missing_ok=True)
    return len(previous)


@dataclass(frozen=True)
class PublishSummary:
    published: int
    left_in_staging: int
    reasons: dict[str, str]


#: Copies made at once. Their fsyncs overlap: on this project's 2-core VM four threads wrote
#: 4 MB files at ~1.4 GB/s against ~0.28 GB/s one at a time (docs/performance.md).
PUBLISH_THREADS = 4


def publish_ready(engine: Engine, images: list[tuple[str, dt.date]]) -> PublishSummary:
    """Publish every staged product of these images whose QA passed; leave the rest, with why.

    One batch whatever the number of images: one read of the staged rows, one conditional
    UPDATE taking those that passed (`take_for_publication`), the verified copies made by
    `PUBLISH_THREADS` threads, one transaction recording the outcomes. The per-product guarantees
    of `copy_verified` and of the registry's QA gate are unchanged.
    """
    dates: dict[str, dt.date] = {}
    for image_path, obs_date in images:
        for ptype in PRODUCT_TYPES:
            dates[product_id(ptype, image_path)] = obs_date
    # Rows a killed publisher left in `publishing` are taken again once stale.
    staged = {
        row.product_id: row
        for row in data_registry.staged_products(
            engine, list(dates), stale_publishing=data_registry.PUBLISHING_STALE_AFTER
        )
    }
    taken = data_registry.take_for_publication(engine, list(staged))
    held = data_registry.hold_reasons(engine, [pid for pid in staged if pid not in taken])
    jobs = []
    for pid, source in sorted(taken.items()):
        row = staged[pid]
        dest = published_path(row.product_type, dates[pid], row.stage_path or row.product_id)
        jobs.append((row, source, dest, recorded_fingerprint(row)))

    def publish_one(job: tuple) -> tuple[str | None, str | None]:
        row, source, dest, expected = job
        try:
            return copy_verified(row.product_type, source, dest, expected), None
        except OSError as exc:
            return None, f"publish failed: {exc}"

    outcomes: list[tuple[str | None, str | None]] = []
    if jobs:
        workers = min(PUBLISH_THREADS, len(jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
            outcomes = list(pool.map(publish_one, jobs))
    copies: list[data_registry.PublishedCopy] = []
    failed: dict[str, str] = {}
    for (row, _, dest, _), (fingerprint, error) in zip(jobs, outcomes, strict=True):
        if error is not None:
            failed[row.product_id] = error
        else:
            copies.append(data_registry.PublishedCopy(row.product_id, dest, fingerprint))
    data_registry.finish_publication(engine, copies, failed)
    previous = {row.product_id: row.published_path for row, *_ in jobs}
    for copy in copies:
        _drop_previous(previous[copy.product_id], copy.published_path)
    reasons = {pid: r.reason for pid, r in held.items() if r.reason} | failed
    return PublishSummary(len(copies), len(staged) - len(copies), reasons)


def _drop_previous(previous: str | None, current: str) -> None:
    """A product republished under another name (e.g. a QA report named after the image id by
    earlier versions) must not leave its old published file behind."""
    if not previous or os.path.abspath(previous) == os.path.abspath(current):
        return
    old = Path(previous)
    if publish_dir().resolve() in old.resolve().parents:
        old.unlink(missing_ok=True)
