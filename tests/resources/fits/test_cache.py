"""The cross-process metadata cache and the service around it."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from resources.dagster_resources import FITSService
from resources.errors import ConfigurationError, MissingObservationDateError, TruncatedFITSError
from resources.fits.cache import default_cache_path, metadata_from_json
from resources.fits.parser import parse_fits
from resources.fits.synthetic import BROKEN_KINDS, ImageSpec
from resources.fits_service import FitsMetadataService
from resources.metrics import FITS_CACHE_HITS, FITS_CACHE_MISSES, FITS_PARSE_ERRORS
from tests.resources.fits.helpers import WHEN, dsa_image


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _counter(metric: Any) -> float:
    return metric._value.get()


def test_default_location_is_under_the_data_dir(data_dir: Path) -> None:
    assert default_cache_path() == data_dir / "cache" / "fits_metadata.sqlite3"
    service = FitsMetadataService()
    assert service.cache is not None and service.cache.path.exists()
    assert service.cache._connect().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_hit_miss_and_json_round_trip(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "a.fits", size=32)
    service = FitsMetadataService(cache_path=tmp_path / "c.sqlite3")
    hits, misses = _counter(FITS_CACHE_HITS), _counter(FITS_CACHE_MISSES)
    first = service.parse(path)
    second = service.parse(path)
    assert second == first == parse_fits(path)
    stats = service.stats()
    assert (stats.cache.hits, stats.cache.misses, stats.parsed) == (1, 1, 1)
    assert _counter(FITS_CACHE_HITS) - hits == 1 and _counter(FITS_CACHE_MISSES) - misses == 1
    assert metadata_from_json(first.to_json_dict()) == first


def test_modified_file_is_reparsed_whatever_the_ttl(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "a.fits", size=32)
    service = FitsMetadataService(cache_path=tmp_path / "c.sqlite3", ttl_seconds=1e9)
    before = service.parse(path)
    dsa_image(path, size=32, dec_deg=16.3)  # same size, new content and mtime
    os.utime(path, ns=(before.mtime_ns + 1, before.mtime_ns + 1))
    after = service.parse(path)
    assert after.dec_deg == pytest.approx(16.3) and after.fingerprint != before.fingerprint
    assert service.stats().parsed == 2


def test_ttl_expiry_with_injected_clock(tmp_path: Path) -> None:
    clock = Clock()
    path = dsa_image(tmp_path / "a.fits", size=32)
    service = FitsMetadataService(cache_path=tmp_path / "c.sqlite3", ttl_seconds=60, clock=clock)
    service.parse(path)
    clock.now += 59
    service.parse(path)
    assert service.stats().parsed == 1
    clock.now += 2
    service.parse(path)
    assert service.stats().parsed == 2
    assert service.cache.purge_expired() == 0  # just re-stored


def test_invalidation_by_pattern_is_seen_by_another_instance(tmp_path: Path) -> None:
    cache = tmp_path / "shared.sqlite3"
    a = FitsMetadataService(cache_path=cache)
    b = FitsMetadataService(cache_path=cache)
    paths = [dsa_image(tmp_path / d / f"{i}.fits", size=16, seed=i)
             for d in ("x", "y") for i in range(2)]  # fmt: skip
    a.parse_many(paths)
    assert all(o.from_cache for o in b.parse_many(paths))
    assert b.invalidate(str(tmp_path / "x" / "*")) == 2
    again = a.parse_many(paths)
    assert [o.from_cache for o in again] == [False, False, True, True]
    assert a.invalidate("*") == 4 and b.cache.entries() == 0


def test_relative_pattern_is_anchored_at_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = dsa_image(tmp_path / "in" / "a.fits", size=16)
    service = FitsMetadataService(cache_path=tmp_path / "c.sqlite3")
    service.parse(path)
    assert service.invalidate("other/*") == 0
    assert service.invalidate("in/*.fits") == 1


def test_errors_are_not_cached_and_are_counted(tmp_path: Path) -> None:
    kind = next(k for k in BROKEN_KINDS if k.name == "truncated")
    path = tmp_path / kind.filename
    kind.writer(path, ImageSpec(date_obs=WHEN, dec_deg=16.3, size=32))
    service = FitsMetadataService(cache_path=tmp_path / "c.sqlite3")
    errors = FITS_PARSE_ERRORS.labels(error_class="TruncatedFITSError")
    before = _counter(errors)
    for _ in range(2):
        with pytest.raises(TruncatedFITSError):
            service.parse(path)
    assert _counter(errors) - before == 2
    assert service.cache.entries() == 0 and service.stats().errors == 2


def test_parse_many_concurrent_equals_sequential_and_keeps_good_files(tmp_path: Path) -> None:
    good = [dsa_image(tmp_path / f"g{i}.fits", size=32, seed=i) for i in range(6)]
    bad = []
    for kind in BROKEN_KINDS[:4]:
        kind.writer(tmp_path / kind.filename, ImageSpec(date_obs=WHEN, dec_deg=16.3, size=32))
        bad.append(tmp_path / kind.filename)
    paths = [*good[:3], *bad, *good[3:]]
    seq = FitsMetadataService(use_cache=False).parse_many(paths, max_workers=1)
    par = FitsMetadataService(use_cache=False).parse_many(paths, max_workers=4)
    assert [o.path for o in par] == [str(p) for p in paths]
    assert [o.metadata for o in par] == [o.metadata for o in seq]
    assert [type(o.error) for o in par] == [type(o.error) for o in seq]
    assert sum(o.ok for o in par) == 6
    assert [o.to_json_dict()["error"] for o in par if not o.ok] == [
        k.inspect_error for k in BROKEN_KINDS[:4]
    ]


def test_require_date_and_mtime_fallback(tmp_path: Path) -> None:
    kind = next(k for k in BROKEN_KINDS if k.name == "missing_date_obs")
    path = tmp_path / kind.filename
    kind.writer(path, ImageSpec(date_obs=WHEN, dec_deg=16.3, size=16))
    strict = FitsMetadataService(cache_path=tmp_path / "c.sqlite3")
    assert strict.parse(path).date_obs is None
    [outcome] = strict.parse_many([path], require_date=True)
    assert isinstance(outcome.error, MissingObservationDateError)
    lenient = FitsMetadataService(cache_path=tmp_path / "c.sqlite3", obs_date_fallback="mtime")
    assert lenient.parse(path, require_date=True).obs_date is not None
    with pytest.raises(ConfigurationError):
        FitsMetadataService(obs_date_fallback="ctime")


def test_resource_reads_env_at_run_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    resource = FITSService()
    monkeypatch.setenv("CONTIMG_FITS_CACHE_PATH", str(tmp_path / "env.sqlite3"))
    monkeypatch.setenv("CONTIMG_FITS_CACHE_TTL_SECONDS", "120")
    monkeypatch.setenv("CONTIMG_FITS_MAX_WORKERS", "2")
    monkeypatch.setenv("CONTIMG_OBS_DATE_FALLBACK", "mtime")
    service = resource.build()
    assert service.cache.path == tmp_path / "env.sqlite3"
    assert service.cache.ttl_seconds == 120 and service.max_workers == 2
    assert service.obs_date_fallback == "mtime"
    explicit = FITSService(cache_ttl_seconds=5, max_workers=3, obs_date_fallback="none")
    built = explicit.build()
    assert (built.cache.ttl_seconds, built.max_workers, built.obs_date_fallback) == (5, 3, "none")
    monkeypatch.delenv("CONTIMG_FITS_CACHE_TTL_SECONDS")
    monkeypatch.delenv("CONTIMG_FITS_MAX_WORKERS")
    default = FITSService().build()
    assert (default.cache.ttl_seconds, default.max_workers) == (86400, 4)
    path = dsa_image(tmp_path / "a.fits", size=16)
    assert FITSService().build().parse(path).obs_date == WHEN.date()


def _open_fresh_caches(barrier: Any, paths: list[str], out: Any) -> None:
    """One process: open each fresh cache file together with the others (released by the
    barrier), report the errors."""
    from resources.fits.cache import FitsMetadataCache

    errors = []
    for path in paths:
        barrier.wait(60)
        try:
            FitsMetadataCache(path, record_metrics=False).close()
        except sqlite3.Error as exc:
            errors.append(f"{path}: {exc}")
    out.put(errors)


def test_processes_opening_a_fresh_cache_together_all_open_it(tmp_path: Path) -> None:
    """Step processes of one run open the cache at once; a fresh file is switched to WAL by one
    of them while the others wait (it failed "database is locked" in 2 of 60 opens)."""
    ctx = multiprocessing.get_context("spawn")
    paths = [str(tmp_path / f"round-{i}" / "cache.sqlite3") for i in range(20)]
    for path in paths:
        Path(path).parent.mkdir()
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_open_fresh_caches, args=(barrier, paths, out)) for _ in range(6)]
    for proc in procs:
        proc.start()
    errors = [e for _ in procs for e in out.get(timeout=120)]
    for proc in procs:
        proc.join(60)
    assert errors == []
    assert all(proc.exitcode == 0 for proc in procs)
    for path in paths:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM fits_metadata").fetchone()[0] == 0
