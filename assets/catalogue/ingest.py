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

A step that fails with an exception (a database connection lost, a full disk, a termination)
does not wait for the next run: before the exception propagates, the batch it held is given
back (`_Claims.release`). Rows whose images and registry entries were committed become
`completed`, the others `pending`, so that `contimg queue` agrees with `products` the moment the
step has failed; the exception carries a note "released N claims ...", also logged. Only when the
ingest database itself is unreachable does the release fail (logged); step 1 of the next run on
this host, or the stale limit elsewhere, then does it.

Two runs of one day at once are safe: claims give each file to one run, every write is an upsert
or a conditional update, and the other run's work is simply not claimed again.

A file that vanished between its discovery and its processing (deleted, moved away) is
`missing`, not failed: counted apart, not retried, and queued again when it reappears.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from assets.partitions import partitions_start
from assets.publishing import publish as publishing
from resources.database import Databases
from resources.errors import ContimgError, FITSParsingError, IngestStateError
from resources.fits import structure
from resources.fits.metadata import ImageMetadata
from resources.fits_service import FitsMetadataService, ParseOutcome
from resources.ingest_scan import ScanResult, incoming_patterns, scan_incoming
from resources.ingest_workers import release_dead_claims, worker_id
from resources.metrics import IMAGES_PROCESSED
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import (
    catalogued_paths,
    fingerprints,
    link_images_to_ms,
    upsert_images,
)
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
    #: Files that vanished before they could be read (queue state `missing`).
    missing: list[str] = field(default_factory=list)
    scan_summary: str = ""
    #: Wall seconds of each phase: scan (index refresh), queue (claims, retries), parse, store.
    phases: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        gone = f", {len(self.missing)} missing (vanished)" if self.missing else ""
        return (
            f"{self.files} files processed: {self.parsed} catalogued, {len(self.failures)} failed"
            f"{gone} ({self.already_done} already catalogued, {self.released} taken back from "
            "dead workers)"
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
            out.missing += r.missing
            out.scan_summary = out.scan_summary or r.scan_summary
            for name, seconds in r.phases.items():
                out.phases[name] = out.phases.get(name, 0.0) + seconds
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


_log = logging.getLogger(__name__)


@dataclass
class _Claims:
    """The batch a worker holds right now, and which of it is already safely stored.

    `held` are the paths claimed and not yet closed in the queue; `stored` those whose images
    and registry entries are committed. When the step fails between claim and close, release()
    turns the held rows into what the other databases say: stored -> completed, rest -> pending.
    """

    worker: str
    held: list[str] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)

    def take(self, paths: Sequence[str]) -> None:
        self.held, self.stored = list(paths), set()

    def closed(self) -> None:
        self.held, self.stored = [], set()

    def release(self, engine: Engine, log: Callable[[str], None]) -> str | None:
        """Give the held rows back; return the message that says so (None: nothing held)."""
        if not self.held:
            return None
        done = [p for p in self.held if p in self.stored]
        rest = [p for p in self.held if p not in self.stored]
        try:
            completed = ingest_queue.release_claims(engine, self.worker, done, "completed")
            pending = ingest_queue.release_claims(engine, self.worker, rest, "pending")
        except (SQLAlchemyError, ContimgError) as exc:
            message = (
                f"could not release {len(self.held)} claims of the failed step "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); the "
                "next run on this host (or the stale limit elsewhere) takes them back"
            )
        else:
            message = (
                f"released {len(completed) + len(pending)} claims of the failed step: "
                f"{len(completed)} completed (their images were committed), {len(pending)} back "
                "to pending"
            )
        self.closed()
        log(message)
        return message


def ingest_day(
    dbs: Databases,
    service: FitsMetadataService,
    day: dt.date,
    *,
    run_id: str,
    scan: bool = True,
    batch_size: int | None = None,
    log: Callable[[str], None] | None = None,
    wait_for_others: bool = False,
) -> IngestReport:
    """Catalogue one observation day (the steps of the module docstring).

    `log` receives the one line that says which claims a failing step released (default: this
    module's logger); the asset passes its Dagster log so the line is in the run's log.

    With `wait_for_others`, files of the day that another live run has claimed (a sensor's run
    and a backfill of the same day at once) are waited for: the day's images, QA and checks
    that follow this step must see them. The wait ends when that run has stored them, or its
    claims come back (its process died, or they went stale: `CONTIMG_INGEST_STALE_MINUTES`),
    and then this run catalogues them itself.
    """
    report = IngestReport(obs_dates=[day])
    clock = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        report.phases[name] = report.phases.get(name, 0.0) + now - clock[0]
        clock[0] = now

    report.already_done = ingest_queue.counts(dbs.engine("ingest"), obs_date=day)["completed"]
    if scan:
        report.scan_summary = refresh_index(dbs, service).summary()
        phase("scan")
    ingest = dbs.engine("ingest")
    report.released = release_dead_claims(ingest, day)
    stale = dt.timedelta(minutes=env_int("CONTIMG_INGEST_STALE_MINUTES"))
    report.released += ingest_queue.requeue_stale(ingest, stale)
    ingest_queue.retry_failed(ingest, obs_date=day)
    batch = batch_size or env_int("CONTIMG_INGEST_BATCH")
    claims = _Claims(worker_id(run_id))
    pause = 0.02
    try:
        while True:
            rows = ingest_queue.claim(ingest, obs_date=day, limit=batch, worker=claims.worker)
            phase("queue")
            if not rows:
                others = _claimed_by_others(ingest, day, claims.worker) if wait_for_others else 0
                if not others:
                    break
                # Another run is cataloguing some of the day's files: wait for it, taking back
                # what a dead or stale claimer leaves (the next claim picks those up).
                if pause == 0.02:
                    (log or _log.warning)(
                        f"{day}: waiting for {others} file(s) another run is cataloguing"
                    )
                time.sleep(pause)
                pause = min(2 * pause, 1.0)
                report.released += release_dead_claims(ingest, day)
                report.released += ingest_queue.requeue_stale(ingest, stale)
                phase("wait_for_others")
                continue
            claims.take([r.path for r in rows])
            outcomes = service.parse_many([r.path for r in rows], require_date=True)
            phase("parse")
            _store(dbs, outcomes, report, close_queue=True, claims=claims)
            phase("store")
    finally:
        # A finally, not an except: whatever ends the step (a database error, a full disk, a
        # termination by Dagster) the batch is given back before the exception goes on.
        message = claims.release(ingest, log or _log.warning)
        failure = sys.exc_info()[1]
        if message is not None and failure is not None:
            failure.add_note(message)
    _repair_missing_images(dbs, service, day, report)
    phase("repair")
    return report


def _claimed_by_others(ingest: Engine, day: dt.date, worker: str) -> int:
    """How many rows of the day are in progress under another worker's claim."""
    with ingest.connect() as conn:
        return sum(by != worker for _, by in ingest_queue.in_progress_claims(conn, day))


def _vanished(outcome: ParseOutcome) -> bool:
    """A parse that failed because the file is no longer there (not a fault of the file)."""
    return outcome.error is not None and not os.path.lexists(outcome.path)


def _store(
    dbs: Databases,
    outcomes: list[ParseOutcome],
    report: IngestReport,
    *,
    close_queue: bool,
    claims: _Claims | None = None,
) -> None:
    good: list[ImageMetadata] = [o.metadata for o in outcomes if o.metadata is not None]
    gone = [o for o in outcomes if _vanished(o)]
    bad = [o for o in outcomes if o.error is not None and not _vanished(o)]
    report.files += len(outcomes)
    if good:
        with dbs.begin("products") as conn:
            before = fingerprints(conn, [m.path for m in good])
        # Outside the write transaction: an old-scheme fingerprint means reading the file again.
        # The claims give these files to this run alone, so the rows cannot change meanwhile.
        good, changed = content_changes(before, good)
        with dbs.begin("products") as conn:
            upsert_images(conn, good)
            link_images_to_ms(conn, {m.obs_date for m in good if m.obs_date is not None})
        publishing.withdraw_changed(dbs.engine("data_registry"), changed)
        publishing.register(
            dbs.engine("data_registry"),
            [
                publishing.ProductRef("image", m.path, m.obs_date, m.path)
                for m in good
                if m.obs_date is not None
            ],
        )
        if claims is not None:
            claims.stored.update(m.path for m in good)
    superseded: set[str] = set()
    # A vanished file's row is closed as `missing` even by the repair pass (completed ->
    # missing): otherwise every run would try to repair it again.
    with dbs.begin("ingest") as conn:
        for outcome in gone:
            _close(conn, outcome.path, superseded, ingest_queue.mark_missing)
    report.missing += [o.path for o in gone if o.path not in superseded]
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
    if claims is not None:
        claims.closed()
    for outcome in bad:
        assert outcome.error is not None
        if outcome.path not in superseded:  # a verdict on content that is gone is no failure
            report.failures.append(
                FileFailure(outcome.path, type(outcome.error).__name__, str(outcome.error))
            )
    report.parsed += len(good)
    IMAGES_PROCESSED.labels(asset="fits_metadata", outcome="ok").inc(len(good))
    IMAGES_PROCESSED.labels(asset="fits_metadata", outcome="failed").inc(len(bad))
    IMAGES_PROCESSED.labels(asset="fits_metadata", outcome="missing").inc(len(gone))


def content_changes(
    stored: Mapping[str, str], parsed: list[ImageMetadata]
) -> tuple[list[ImageMetadata], list[str]]:
    """Which parsed images have content other than their catalogued row says, and what to store.

    The fingerprints decide (`structure.compare_fingerprints`). When the stored value is of
    another scheme (a sha256 of before the switch to xxh3) their inequality means nothing: the
    file is read once more in the stored value's scheme. Equal: unchanged, and the stored value
    is kept in the row, so that QA, thumbnails and the registry, which recorded that same value,
    still agree with it (no re-grading, no withdrawal, no republication). Different, or the
    file no longer readable: changed. A stored value of no known scheme counts as changed, as
    any difference did before. Returns the metadata to upsert and the changed paths.
    """
    out: list[ImageMetadata] = []
    changed: list[str] = []
    for meta in parsed:
        old = stored.get(meta.path)
        verdict = structure.compare_fingerprints(old, meta.fingerprint)
        if verdict is None and old:
            scheme = structure.fingerprint_scheme(old)
            verdict = False
            if scheme is not None:
                try:
                    verdict = structure.fingerprint_file(meta.path, scheme) == old
                except (FITSParsingError, OSError):  # gone or rewritten since the parse
                    verdict = False
            if verdict:
                meta = replace(meta, fingerprint=old)
        if verdict is False:
            changed.append(meta.path)
        out.append(meta)
    return out, changed


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
