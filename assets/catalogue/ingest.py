"""Turning the queued files of one observation day into `images` rows (no Dagster here).

Order of work for a day, each step idempotent so that a run killed at any moment can simply be
run again:

1. take back rows of dead workers (same host: the process is gone; elsewhere: the stale limit);
2. put the day's `failed` rows back to `pending` (a re-run after a fix retries them);
3. claim pending rows in batches, parse them concurrently (FITS service, bounded thread pool),
   upsert the `images` rows in one transaction per batch, register the image products (those of
   an image whose content changed go back to staging until its new QA), then mark the queue
   rows completed/failed (a row whose file changed meanwhile stays pending and is claimed
   again);
4. re-parse `completed` files whose `images` row is missing (e.g. deleted by an operator).

The images are written before the queue rows are closed: a crash in between leaves rows
`in_progress`, which step 1 of the next run releases; the upsert (unique path) makes the repeat
harmless. Nothing is ever lost and nothing is duplicated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from assets.partitions import partitions_start
from assets.publishing import publish as publishing
from resources.database import Databases
from resources.errors import IngestStateError
from resources.fits.metadata import ImageMetadata
from resources.fits_service import FitsMetadataService, ParseOutcome
from resources.ingest_scan import ScanResult, incoming_patterns, scan_incoming
from resources.ingest_workers import release_dead_claims, worker_id
from resources.metrics import IMAGES_PROCESSED
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import catalogued_paths, fingerprints, upsert_images
from resources.settings import env_float, env_int, incoming_dirs


@dataclass(frozen=True)
class FileFailure:
    path: str
    error_class: str
    message: str


@dataclass
class IngestReport:
    obs_dates: list[dt.date] = field(default_factory=list)
    files: int = 0
    parsed: int = 0
    already_done: int = 0
    released: int = 0
    failures: list[FileFailure] = field(default_factory=list)
    scan_summary: str = ""

    def summary(self) -> str:
        return (
            f"{self.files} files processed: {self.parsed} catalogued, {len(self.failures)} failed "
            f"({self.already_done} already catalogued, {self.released} taken back from dead "
            "workers)"
        )

    @classmethod
    def merge(cls, reports: Sequence[IngestReport]) -> IngestReport:
        out = cls()
        for r in reports:
            out.obs_dates += r.obs_dates
            out.files += r.files
            out.parsed += r.parsed
            out.already_done += r.already_done
            out.released += r.released
            out.failures += r.failures
            out.scan_summary = out.scan_summary or r.scan_summary
        return out


def refresh_index(dbs: Databases, service: FitsMetadataService) -> ScanResult:
    """Register new/changed files of the incoming directories (headers of known files unread)."""
    return scan_incoming(
        dbs.engine("ingest"),
        incoming_dirs(),
        patterns=incoming_patterns(),
        max_header_reads=env_int("CONTIMG_SCAN_MAX_HEADER_READS_PER_RUN"),
        time_budget_s=env_float("CONTIMG_SCAN_TIME_BUDGET_S"),
        mtime_fallback=service.obs_date_fallback == "mtime",
        partitions_start=partitions_start(),
    )


def ingest_day(
    dbs: Databases,
    service: FitsMetadataService,
    day: dt.date,
    *,
    run_id: str,
    scan: bool = True,
    batch_size: int | None = None,
) -> IngestReport:
    report = IngestReport(obs_dates=[day])
    report.already_done = ingest_queue.counts(dbs.engine("ingest"), obs_date=day)["completed"]
    if scan:
        report.scan_summary = refresh_index(dbs, service).summary()
    ingest = dbs.engine("ingest")
    report.released = release_dead_claims(ingest, day)
    stale = dt.timedelta(minutes=env_int("CONTIMG_INGEST_STALE_MINUTES"))
    report.released += ingest_queue.requeue_stale(ingest, stale)
    ingest_queue.retry_failed(ingest, obs_date=day)
    batch = batch_size or env_int("CONTIMG_INGEST_BATCH")
    worker = worker_id(run_id)
    while True:
        rows = ingest_queue.claim(ingest, obs_date=day, limit=batch, worker=worker)
        if not rows:
            break
        outcomes = service.parse_many([r.path for r in rows], require_date=True)
        _store(dbs, outcomes, report, close_queue=True)
    _repair_missing_images(dbs, service, day, report)
    return report


def _store(
    dbs: Databases, outcomes: list[ParseOutcome], report: IngestReport, *, close_queue: bool
) -> None:
    good: list[ImageMetadata] = [o.metadata for o in outcomes if o.metadata is not None]
    bad = [o for o in outcomes if o.error is not None]
    report.files += len(outcomes)
    if good:
        with dbs.begin("products") as conn:
            before = fingerprints(conn, [m.path for m in good])
            upsert_images(conn, good)
        changed = [m.path for m in good if before.get(m.path) not in (None, m.fingerprint)]
        publishing.withdraw_changed(dbs.engine("data_registry"), changed)
        publishing.register(
            dbs.engine("data_registry"),
            [
                publishing.ProductRef("image", m.path, m.obs_date, m.path)
                for m in good
                if m.obs_date is not None
            ],
        )
    superseded: set[str] = set()
    if close_queue:
        with dbs.begin("ingest") as conn:
            for meta in good:
                _close(conn, meta.path, superseded, ingest_queue.mark_completed)
            for outcome in bad:
                _close(
                    conn,
                    outcome.path,
                    superseded,
                    ingest_queue.mark_failed,
                    type(outcome.error).__name__,
                    str(outcome.error),
                )
    for outcome in bad:
        assert outcome.error is not None
        if outcome.path not in superseded:  # a verdict on content that is gone is no failure
            report.failures.append(
                FileFailure(outcome.path, type(outcome.error).__name__, str(outcome.error))
            )
    report.parsed += len(good)
    IMAGES_PROCESSED.labels(asset="fits_metadata", outcome="ok").inc(len(good))
    IMAGES_PROCESSED.labels(asset="fits_metadata", outcome="failed").inc(len(bad))


def _close(
    conn: Connection,
    path: str,
    superseded: set[str],
    mark: Callable[..., ingest_queue.QueueRow],
    *args: str,
) -> None:
    """Close one claimed row, unless the file changed while we held it.

    A scan (the sensor, another run) that sees a new size/mtime puts the row back to `pending`;
    then this result describes the old content, the transition is refused, and the row is left
    pending for the claim loop to process again. The refusal is a conditional UPDATE that
    matched nothing, not an SQL error, so the batch's transaction stays usable.
    """
    try:
        mark(conn, path, *args)
    except IngestStateError:
        superseded.add(path)


def _repair_missing_images(
    dbs: Databases, service: FitsMetadataService, day: dt.date, report: IngestReport
) -> None:
    with dbs.connect("ingest") as conn:
        completed = ingest_queue.completed_paths(conn, day)
    if not completed:
        return
    with dbs.connect("products") as conn:
        present = catalogued_paths(conn, completed)
    missing = sorted(completed - present)
    if missing:
        _store(dbs, service.parse_many(missing, require_date=True), report, close_queue=False)
