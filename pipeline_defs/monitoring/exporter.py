"""The `/metrics` exposition of contimg: what `contimg metrics serve` and `metrics dump` print.

One scrape combines three sources:

1. the multiprocess metric files under PROMETHEUS_MULTIPROC_DIR (every run, step, sensor and
   CLI process writes its own; see resources/metrics_bootstrap.py), summed by prometheus_client;
   before reading them, the `live*` gauge files of processes that no longer exist are removed (a
   step killed with SIGKILL cannot clean up after itself);
2. gauges read from the databases at scrape time (up, schema at head, images by grade, ingest
   queue by state, newest observation, age of the newest active calibration set), each database probed in its own thread with a short
   timeout, so a database that hangs reports `contimg_db_up 0` instead of hanging the scrape;
   the counts are the repositories' own queries (`products.grade_counts`, `ingest.counts`), so
   the gauges and `contimg` agree by construction;
3. gauges read from the Dagster instance at scrape time (runs by status for this code location's
   jobs, queued runs, newest materialization per asset, latest asset-check results), also under
   a timeout. Job, asset and check names come from `pipeline_defs.defs`, imported on first use.

The scrape-time gauges (2 and 3) are cached for `cache_seconds` (CONTIMG_METRICS_CACHE_SECONDS when
built from the environment): Prometheus, a second Prometheus and a curl may scrape at once, and each
scrape must not cost five database probes and a pass over the Dagster event log. Scrapes
arriving while one renders wait for the next rendering and share it (`Exporter.render`), so a
burst of scrapes costs two renderings, not one per scrape.

Settings (CONTIMG_METRICS_*, read when the exporter is built): docs/configuration.md ("Metrics
and health").
"""

from __future__ import annotations

import datetime as dt
import functools
import glob
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from resources import metrics
from resources.engines import sqlite_path
from resources.errors import ContimgError
from resources.metrics_bootstrap import configured_multiprocess_dir, multiprocess_mode_active
from resources.processes import pid_alive
from resources.settings import DATABASE_NAMES, PoolSettings, env_bool, env_float

if TYPE_CHECKING:
    import dagster as dg

    from resources.database import Databases, HealthResult

log = logging.getLogger(__name__)

T = TypeVar("T")

_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


@dataclass(frozen=True)
class ExporterSettings:
    """What one exporter reads and how long it may wait for each source."""

    multiprocess_dir: Path | None
    db_timeout: float = 2.0
    dagster_timeout: float = 5.0
    include_dagster: bool = True
    reap_dead_pids: bool = True
    databases: tuple[str, ...] = DATABASE_NAMES
    #: 0: every scrape probes afresh (what a one-off `metrics dump` and the tests want).
    cache_seconds: float = 0.0

    @classmethod
    def from_env(cls) -> ExporterSettings:
        return cls(
            multiprocess_dir=configured_multiprocess_dir(),
            db_timeout=env_float("CONTIMG_METRICS_DB_TIMEOUT"),
            dagster_timeout=env_float("CONTIMG_METRICS_DAGSTER_TIMEOUT"),
            include_dagster=env_bool("CONTIMG_METRICS_DAGSTER"),
            reap_dead_pids=env_bool("CONTIMG_METRICS_REAP_DEAD_PIDS"),
            cache_seconds=env_float("CONTIMG_METRICS_CACHE_SECONDS"),
        )


class _Cached(Generic[T]):
    """The last value of a slow read and when it was taken (monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.value: T | None = None
        self.taken: float | None = None

    def fresh(self) -> bool:
        return self.taken is not None and time.monotonic() - self.taken < self.seconds

    def store(self, value: T) -> T:
        self.value, self.taken = value, time.monotonic()
        return value


# --- running a read under a deadline ---------------------------------------------------------


class _Deadlined(Generic[T]):
    """Run `fn` in a daemon thread; the caller waits at most `timeout` seconds for it.

    Daemon, because a read that never returns must not keep `metrics serve` from exiting. The
    caller keeps the object while the thread is alive so that a hung source gets no second
    thread at the next scrape (threads cannot pile up behind a hung server).
    """

    def __init__(self, name: str, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.value: T | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.value = self.fn()
        except Exception as exc:  # noqa: BLE001
            # Runs in a worker thread: an error would otherwise vanish into threading.excepthook
            # and be reported as a timeout. It is recorded here and logged by the scraping thread,
            # which reports the source as down.
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)


# --- 1. multiprocess files -------------------------------------------------------------------


def reap_dead_processes(directory: Path) -> list[int]:
    """Remove the `live*` gauge files of pids that no longer exist; return those pids.

    Only meaningful when the exporter shares the writers' pid namespace (same host or container).
    A pid reused by an unrelated process keeps its stale files until that process exits too.
    """
    reaped = []
    for path in glob.glob(str(directory / "gauge_live*_*.db")):
        match = _LIVE_FILE.match(os.path.basename(path))
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not pid_alive(pid):
            try:
                prom_multiprocess.mark_process_dead(pid, str(directory))
            except FileNotFoundError:
                pass  # removed by the process's own exit hook, or a concurrent reaper
            except OSError as exc:
                # A read-only directory (docs/ops/metrics.md): the stale gauge stays in the
                # exposition; the scrape goes on.
                log.debug("metrics: cannot reap pid %d in %s: %s", pid, directory, exc)
                continue
            reaped.append(pid)
    return sorted(set(reaped))


class ProcessMetricsCollector(Collector):
    """Metrics written by the pipeline's processes, without the families the scrape owns."""

    def __init__(
        self, directory: Path | None, *, exclude: Iterable[str], reap_dead_pids: bool
    ) -> None:
        self.directory = directory
        self.exclude = frozenset(exclude)
        self.reap_dead_pids = reap_dead_pids

    def collect(self) -> Iterator[Metric]:
        if self.directory is None:
            # Single-process mode: this process's own metric objects.
            source: Iterable[Metric] = REGISTRY.collect()
        else:
            if not self.directory.is_dir():
                return
            if self.reap_dead_pids:
                reap_dead_processes(self.directory)
            files = glob.glob(str(self.directory / "*.db"))
            source = prom_multiprocess.MultiProcessCollector.merge(files, accumulate=True)
        for family in source:
            if family.name not in self.exclude:
                yield family


# --- 2. databases ----------------------------------------------------------------------------


@dataclass
class DatabaseFacts:
    """What one probe learned about one database beyond `SELECT 1`."""

    at_head: bool = False
    images_by_grade: dict[str, int] | None = None
    ingest_by_state: dict[str, int] | None = None
    newest_observation: float | None = None
    #: Unix time at which the newest active calibration table was registered.
    newest_active_caltable: float | None = None
    notes: list[str] = field(default_factory=list)


@functools.cache
def _head_revision(name: str) -> str | None:
    # Reading the revision files at every scrape would be wasted work: heads change only with a
    # deployment, which restarts the exporter.
    from migrations import runner

    return runner.head_revision(name)


def schema_at_head(name: str, conn: Connection) -> bool:
    """True when the revision in `alembic_version_<name>` is the head of the database's history."""
    from migrations import runner

    return runner.current_revision(conn, name) == _head_revision(name)


def _unix(value: dt.datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite without type information on an aggregate
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # stored as UTC (DateTime(timezone=True))
    return value.timestamp()


def _products_facts(conn: Connection, facts: DatabaseFacts) -> None:
    from resources.models.products import Image, ImageQA
    from resources.repositories import products

    tables = inspect(conn)
    if not (tables.has_table(Image.__tablename__) and tables.has_table(ImageQA.__tablename__)):
        facts.notes.append("products tables missing (not migrated)")
        return
    facts.images_by_grade = products.grade_counts(conn)
    facts.newest_observation = _unix(products.newest_observation(conn))


def _ingest_facts(conn: Connection, facts: DatabaseFacts) -> None:
    from resources.models.ingest import IngestQueueEntry
    from resources.repositories import ingest

    if not inspect(conn).has_table(IngestQueueEntry.__tablename__):
        facts.notes.append("ingest_queue missing (not migrated)")
        return
    facts.ingest_by_state = ingest.counts(conn)


def _cal_registry_facts(conn: Connection, facts: DatabaseFacts) -> None:
    from resources.models.cal_registry import Caltable
    from resources.repositories import cal_registry

    if not inspect(conn).has_table(Caltable.__tablename__):
        facts.notes.append("caltables missing (not migrated)")
        return
    facts.newest_active_caltable = _unix(cal_registry.newest_active_created_at(conn))


_FACTS_BY_DATABASE: dict[str, Callable[[Connection, DatabaseFacts], None]] = {
    "products": _products_facts,
    "ingest": _ingest_facts,
    "cal_registry": _cal_registry_facts,
}


def probe_facts(name: str, conn: Connection) -> Mapping[str, Any]:
    """Health-probe extension: runs on the probe's connection, inside the probe's timeout."""
    facts = DatabaseFacts()
    try:
        facts.at_head = schema_at_head(name, conn)
    except (sa_exc.SQLAlchemyError, ContimgError, ImportError, AttributeError) as exc:
        # Not migrated yet, or the migrations package is older than this exporter.
        facts.notes.append(f"revision unknown: {type(exc).__name__}")
    reader = _FACTS_BY_DATABASE.get(name)
    if reader is not None:
        reader(conn, facts)
    return {"facts": facts}


class DatabaseCollector(Collector):
    """Scrape-time gauges from the five logical databases, each probe under its own timeout."""

    def __init__(
        self,
        settings: ExporterSettings,
        databases_factory: Callable[[], Databases] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._databases_factory = databases_factory or self._default_databases
        # Ages are computed at each scrape (a cached probe still yields a current age).
        self._clock = clock
        self._databases: Databases | None = None
        self._lock = threading.Lock()
        self._cache: _Cached[dict[str, tuple[HealthResult | None, str | None]]] = _Cached(
            settings.cache_seconds
        )
        self.last_duration: float | None = None

    def _default_databases(self) -> Databases:
        from resources.database import Databases

        # A tiny pool of its own: a hung probe holds at most one connection per database, and a
        # second probe behind it times out on the pool instead of opening more connections.
        timeout = max(0.5, self.settings.db_timeout)
        return Databases(
            settings=PoolSettings(
                pool_size=1,
                max_overflow=0,
                pool_timeout=timeout,
                pool_recycle=PoolSettings.pool_recycle,
                pool_pre_ping=True,
                connect_timeout=timeout,
                health_timeout=timeout,
            )
        )

    def _probe(self) -> dict[str, tuple[HealthResult | None, str | None]]:
        if self._databases is None:
            self._databases = self._databases_factory()
        dbs = self._databases
        results: dict[str, tuple[HealthResult | None, str | None]] = {}
        reachable = []
        for name in self.settings.databases:
            path = sqlite_path(dbs.url(name))
            if path is not None and not path.exists():
                # Probing would create an empty file: a scrape must not have side effects.
                results[name] = (None, f"SQLite file {path} does not exist yet")
            else:
                reachable.append(name)
        if reachable:
            health = dbs.health_all(
                timeout=self.settings.db_timeout, probe=probe_facts, names=tuple(reachable)
            )
            for name, result in health.items():
                results[name] = (result, None)
        return results

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        with self._lock:
            if self._cache.fresh() and self._cache.value is not None:
                results = self._cache.value
            else:
                try:
                    results = self._probe()
                except ContimgError as exc:
                    # A bad URL in the environment: every database is reported down, with the
                    # reason.
                    log.warning("metrics: cannot probe the databases: %s", exc)
                    results = {name: (None, str(exc)) for name in self.settings.databases}
                self._cache.store(results)
        up = metrics.SCRAPE_DB_UP.family()
        at_head = metrics.SCRAPE_DB_SCHEMA_AT_HEAD.family()
        latency = metrics.SCRAPE_DB_PROBE_LATENCY_SECONDS.family()
        grades = metrics.SCRAPE_IMAGES_BY_GRADE.family()
        queue = metrics.SCRAPE_INGEST_QUEUE_DEPTH.family()
        newest = metrics.SCRAPE_NEWEST_OBSERVATION.family()
        caltable_age = metrics.SCRAPE_CALTABLE_NEWEST_ACTIVE_AGE_HOURS.family()
        for name in self.settings.databases:
            result, reason = results.get(name, (None, "not probed"))
            ok = result is not None and result.ok
            if not ok:
                detail = reason or (result.error_message if result else None) or "unknown"
                log.info("metrics: database %s is down: %s", name, detail)
            facts = result.extra.get("facts") if ok and result is not None else None
            if ok and result is not None and result.probe_error:
                log.warning("metrics: database %s: %s", name, result.probe_error)
            up.add_metric([name], 1.0 if ok else 0.0)
            at_head.add_metric(
                [name], 1.0 if isinstance(facts, DatabaseFacts) and facts.at_head else 0.0
            )
            if ok and result is not None and result.latency_s is not None:
                latency.add_metric([name], result.latency_s)
            if not isinstance(facts, DatabaseFacts):
                continue
            for grade, count in (facts.images_by_grade or {}).items():
                grades.add_metric([grade], float(count))
            for state, count in (facts.ingest_by_state or {}).items():
                queue.add_metric([state], float(count))
            if facts.newest_observation is not None:
                newest.add_metric([], facts.newest_observation)
            if facts.newest_active_caltable is not None:
                age_s = max(0.0, self._clock() - facts.newest_active_caltable)
                caltable_age.add_metric([], age_s / 3600.0)
        yield from (up, at_head, latency, grades, queue, newest, caltable_age)
        self.last_duration = time.perf_counter() - started


# --- 3. the Dagster instance -----------------------------------------------------------------


@dataclass(frozen=True)
class DagsterCatalog:
    """Names of this code location's jobs, assets and asset checks."""

    jobs: tuple[str, ...]
    assets: tuple[dg.AssetKey, ...]
    checks: tuple[dg.AssetCheckKey, ...]
    partition_order: Mapping[dg.AssetKey, Callable[[str], Any]]

    @classmethod
    def from_definitions(cls, defs: dg.Definitions) -> DagsterCatalog:
        graph = defs.resolve_asset_graph()
        assets = tuple(sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()))
        checks = tuple(sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()))
        order: dict[dg.AssetKey, Callable[[str], Any]] = {}
        for key in assets:
            partitions_def = graph.get(key).partitions_def
            if partitions_def is not None and hasattr(
                partitions_def, "time_window_for_partition_key"
            ):
                order[key] = _time_window_sort_key(partitions_def)
        jobs = tuple(sorted(job.name for job in defs.resolve_all_job_defs()))
        return cls(jobs=jobs, assets=assets, checks=checks, partition_order=order)


def _time_window_sort_key(partitions_def: Any) -> Callable[[str], Any]:
    def key(partition: str) -> Any:
        return partitions_def.time_window_for_partition_key(partition).start.timestamp()

    return key


#: Partitions per asset check in `contimg_dagster_asset_check_passed`: one series per day for the
#: newest week of evaluated days, so a failed day stays visible (and alerting) after later days
#: pass, while the number of series stays bounded (days older than that: the Dagster UI).
CHECK_PARTITIONS_EXPORTED = 7


@dataclass
class DagsterFacts:
    runs: dict[tuple[str, str], int]
    queued_runs: int
    last_materialization: dict[str, float]
    # asset, check, partition, passed: one entry per evaluated partition (newest few per check)
    checks: list[tuple[str, str, str, bool]]


def read_dagster_facts(instance: dg.DagsterInstance, catalog: DagsterCatalog) -> DagsterFacts:
    """Everything the Dagster gauges need, in one pass over the instance's storage."""
    import dagster as dg
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    runs: dict[tuple[str, str], int] = {}
    for job in catalog.jobs:
        for status in dg.DagsterRunStatus:
            runs[(job, status.value)] = instance.get_runs_count(
                dg.RunsFilter(job_name=job, statuses=[status])
            )
    queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    last: dict[str, float] = {}
    if catalog.assets:
        events = instance.get_latest_materialization_events(list(catalog.assets))
        for key, event in events.items():
            if event is not None:
                last[key.to_user_string()] = float(event.timestamp)
    checks: list[tuple[str, str, str, bool]] = []
    completed = {
        AssetCheckExecutionRecordStatus.SUCCEEDED: True,
        AssetCheckExecutionRecordStatus.FAILED: False,
    }
    if catalog.checks:
        infos = instance.event_log_storage.get_asset_check_partition_info(list(catalog.checks))
        # Per check, the latest result of each evaluated partition, newest partitions first.
        evaluated: dict[dg.AssetCheckKey, list[tuple[Any, str, bool]]] = {}
        for info in infos:
            passed = completed.get(info.latest_execution_status)
            if passed is None:
                continue  # planned, not evaluated yet
            partition = info.partition_key or ""
            order = catalog.partition_order.get(info.check_key.asset_key)
            rank = order(partition) if order and partition else partition
            evaluated.setdefault(info.check_key, []).append((rank, partition, passed))
        for key, results in sorted(evaluated.items(), key=lambda item: item[0].to_user_string()):
            newest = sorted(results, key=lambda r: r[0], reverse=True)[:CHECK_PARTITIONS_EXPORTED]
            for _rank, partition, passed in newest:
                checks.append((key.asset_key.to_user_string(), key.name, partition, passed))
    return DagsterFacts(runs=runs, queued_runs=queued, last_materialization=last, checks=checks)


class DagsterCollector(Collector):
    """Scrape-time gauges from the Dagster instance, for this code location's definitions."""

    def __init__(
        self,
        timeout: float,
        *,
        instance_factory: Callable[[], dg.DagsterInstance] | None = None,
        catalog_factory: Callable[[], DagsterCatalog],
        clock: Callable[[], float] = time.time,
        cache_seconds: float = 0.0,
    ) -> None:
        self.timeout = timeout
        self._cache: _Cached[DagsterFacts | None] = _Cached(cache_seconds)
        self._instance_factory = instance_factory or _default_instance
        self._catalog_factory = catalog_factory
        self._clock = clock
        self._instance: dg.DagsterInstance | None = None
        self._catalog: DagsterCatalog | None = None
        self._inflight: _Deadlined[DagsterFacts] | None = None
        self._lock = threading.Lock()
        self.last_duration: float | None = None

    def _read(self) -> DagsterFacts:
        # Catalog and instance are built once per exporter process: definitions change only with
        # a deployment, which restarts the exporter too.
        if self._catalog is None:
            self._catalog = self._catalog_factory()
        if self._instance is None:
            self._instance = self._instance_factory()
        return read_dagster_facts(self._instance, self._catalog)

    def _facts(self) -> DagsterFacts | None:
        with self._lock:
            if self._inflight is not None and not self._inflight.done.is_set():
                log.warning("metrics: the previous Dagster instance read is still running")
                return None
            call = _Deadlined("contimg-metrics-dagster", self._read)
            self._inflight = call
        if not call.wait(self.timeout):
            log.warning("metrics: no answer from the Dagster instance within %g s", self.timeout)
            return None
        if call.error is not None:
            log.warning(
                "metrics: cannot read the Dagster instance: %s: %s",
                type(call.error).__name__,
                call.error,
            )
            return None
        return call.value

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        # A failed read is cached too: an instance that is down is not asked again at once.
        facts = self._cache.value if self._cache.fresh() else self._cache.store(self._facts())
        up = metrics.SCRAPE_DAGSTER_INSTANCE_UP.family()
        up.add_metric([], 1.0 if facts is not None else 0.0)
        yield up
        if facts is not None:
            yield from self._families(facts)
        self.last_duration = time.perf_counter() - started

    def _families(self, facts: DagsterFacts) -> Iterator[GaugeMetricFamily]:
        runs = metrics.SCRAPE_DAGSTER_RUNS.family()
        for (job, status), count in sorted(facts.runs.items()):
            runs.add_metric([job, status], float(count))
        queued = metrics.SCRAPE_DAGSTER_QUEUED_RUNS.family()
        queued.add_metric([], float(facts.queued_runs))
        last = metrics.SCRAPE_ASSET_LAST_MATERIALIZATION.family()
        age = metrics.SCRAPE_ASSET_MATERIALIZATION_AGE.family()
        now = self._clock()
        for asset, timestamp in sorted(facts.last_materialization.items()):
            last.add_metric([asset], timestamp)
            age.add_metric([asset], max(0.0, now - timestamp))
        checks = metrics.SCRAPE_ASSET_CHECK_PASSED.family()
        for asset, check, partition, passed in facts.checks:
            checks.add_metric([asset, check, partition], 1.0 if passed else 0.0)
        yield from (runs, queued, last, age, checks)


def _default_instance() -> dg.DagsterInstance:
    import dagster as dg

    return dg.DagsterInstance.get()


# --- the exposition --------------------------------------------------------------------------


class CollectDurationCollector(Collector):
    """How long each scrape-time collector took; registered last, so it sees this scrape's times.

    One family for all collectors: a family name may appear only once in an exposition.
    """

    def __init__(self, collectors: Mapping[str, DatabaseCollector | DagsterCollector]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        family = metrics.SCRAPE_COLLECTOR_DURATION_SECONDS.family()
        for name, collector in self.collectors.items():
            if collector.last_duration is not None:
                family.add_metric([name], collector.last_duration)
        yield family


def scrape_owned_names() -> frozenset[str]:
    """Families the scrape computes itself; process-written values of these are dropped."""
    return frozenset(gauge.name for gauge in metrics.SCRAPE_GAUGES)


@dataclass
class Exporter:
    """A registry holding the three collectors; `render()` is one scrape."""

    settings: ExporterSettings
    registry: CollectorRegistry
    collectors: Sequence[Collector]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last: tuple[float, bytes] | None = None

    def render(self) -> bytes:
        """One exposition, at least as fresh as the moment of the call.

        One rendering at a time (the collectors keep per-source state, and reaping dead pids'
        files must not race). A caller that waited for the lock takes the rendering that
        started after it arrived, if there is one, instead of starting another: concurrent
        scrapes share one rendering.
        """
        arrived = time.monotonic()
        with self._lock:
            if self._last is not None and self._last[0] >= arrived:
                return self._last[1]
            started = time.monotonic()
            body = generate_latest(self.registry)
            self._last = (started, body)
            return body


def build_exporter(
    settings: ExporterSettings | None = None,
    *,
    databases_factory: Callable[[], Databases] | None = None,
    dagster_collector: DagsterCollector | None = None,
    catalog_factory: Callable[[], DagsterCatalog] | None = None,
) -> Exporter:
    """The exporter for this process's configuration (or the given settings).

    The Dagster gauges need the code location's catalog: the caller (the CLI, above this layer)
    hands in `catalog_factory`; without one they are left out.
    """
    settings = settings or ExporterSettings.from_env()
    if settings.multiprocess_dir is None and multiprocess_mode_active():
        settings = ExporterSettings(
            multiprocess_dir=configured_multiprocess_dir(),
            db_timeout=settings.db_timeout,
            dagster_timeout=settings.dagster_timeout,
            include_dagster=settings.include_dagster,
            reap_dead_pids=settings.reap_dead_pids,
            databases=settings.databases,
            cache_seconds=settings.cache_seconds,
        )
    registry = CollectorRegistry(auto_describe=False)
    timed: dict[str, DatabaseCollector | DagsterCollector] = {
        "database": DatabaseCollector(settings, databases_factory)
    }
    if dagster_collector is not None:
        timed["dagster"] = dagster_collector
    elif settings.include_dagster and catalog_factory is not None:
        timed["dagster"] = DagsterCollector(
            settings.dagster_timeout,
            catalog_factory=catalog_factory,
            cache_seconds=settings.cache_seconds,
        )
    collectors: list[Collector] = [
        ProcessMetricsCollector(
            settings.multiprocess_dir,
            exclude=scrape_owned_names(),
            reap_dead_pids=settings.reap_dead_pids,
        ),
        *timed.values(),
        CollectDurationCollector(timed),
    ]
    for collector in collectors:
        registry.register(collector)
    return Exporter(settings=settings, registry=registry, collectors=collectors)


def render_metrics(
    settings: ExporterSettings | None = None,
    *,
    catalog_factory: Callable[[], DagsterCatalog] | None = None,
) -> str:
    """One exposition in the Prometheus text format (what `contimg metrics dump` prints)."""
    return build_exporter(settings, catalog_factory=catalog_factory).render().decode("utf-8")
