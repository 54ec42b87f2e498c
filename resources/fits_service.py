"""The FITS metadata service: parse with the shared cache, many files at once.

`FitsMetadataService` is plain Python (CLI, benchmarks, tests, and the object the Dagster
resource `FITSService` of resources/dagster_resources.py hands to assets). `from_settings` fills
every argument left unset from its environment variable (docs/configuration.md).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resources.errors import ConfigurationError, FITSFileAccessError, FITSParsingError
from resources.fits.cache import DEFAULT_TTL_SECONDS, UNCOUNTED, CacheStats, FitsMetadataCache
from resources.fits.metadata import ImageMetadata
from resources.fits.parser import parse_fits, read_obs_date, require_obs_date
from resources.settings import SETTINGS, env_float, env_int, get

OBS_DATE_FALLBACKS = ("none", "mtime")
DEFAULT_MAX_WORKERS: int = SETTINGS["CONTIMG_FITS_MAX_WORKERS"].default


@dataclass(frozen=True)
class ParseOutcome:
    """The result for one file of `parse_many`: metadata or the typed error, never both."""

    path: str
    metadata: ImageMetadata | None = None
    error: FITSParsingError | None = None
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json_dict(self) -> dict[str, Any]:
        """The `fits inspect --json` line (docs/fits-service.md)."""
        if self.error is not None:
            return {
                "path": self.path,
                "ok": False,
                "error": type(self.error).__name__,
                "message": str(self.error),
            }
        assert self.metadata is not None
        return {"path": self.path, "ok": True, "metadata": self.metadata.to_json_dict()}


@dataclass(frozen=True)
class ServiceStats:
    cache: CacheStats | None
    parsed: int  # files actually parsed (cache misses) by this instance
    errors: int  # FITSParsingErrors raised by this instance


class FitsMetadataService:
    """Metadata extraction with the cross-process cache and a bounded thread pool."""

    def __init__(
        self,
        *,
        cache: FitsMetadataCache | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        use_cache: bool = True,
        max_workers: int = DEFAULT_MAX_WORKERS,
        obs_date_fallback: str = "none",
        compute_fingerprint: bool = True,
        clock: Callable[[], float] = time.time,
        record_metrics: bool = True,
    ) -> None:
        """`record_metrics=False`: count nothing in Prometheus (and never import it), for a
        process whose metric values nobody reads (`contimg fits inspect`)."""
        if obs_date_fallback not in OBS_DATE_FALLBACKS:
            raise ConfigurationError(
                "obs_date_fallback",
                f"expected one of {', '.join(OBS_DATE_FALLBACKS)}, got {obs_date_fallback!r}",
            )
        if max_workers < 1:
            raise ConfigurationError("max_workers", f"must be at least 1, got {max_workers}")
        if cache is None and use_cache:
            cache = FitsMetadataCache(
                cache_path, ttl_seconds=ttl_seconds, clock=clock, record_metrics=record_metrics
            )
        self._errors_metric: Any = UNCOUNTED
        self._seconds_metric: Any = UNCOUNTED
        if record_metrics:
            from resources.metrics import FITS_PARSE_ERRORS, FITS_PARSE_SECONDS

            self._errors_metric, self._seconds_metric = FITS_PARSE_ERRORS, FITS_PARSE_SECONDS
        self.cache = cache
        self.max_workers = max_workers
        self.obs_date_fallback = obs_date_fallback
        self.compute_fingerprint = compute_fingerprint
        self._lock = threading.Lock()
        self._parsed = 0
        self._errors = 0

    # -- single file ---------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        *,
        cache_path: str | None = None,
        ttl_seconds: float | None = None,
        max_workers: int | None = None,
        obs_date_fallback: str | None = None,
    ) -> FitsMetadataService:
        """A service from explicit values, each unset one read from its variable at call time
        (so one Definitions object serves every deployment)."""
        path = cache_path or get("CONTIMG_FITS_CACHE_PATH")
        fallback = obs_date_fallback or get("CONTIMG_OBS_DATE_FALLBACK")
        return cls(
            cache_path=Path(path) if path else None,
            ttl_seconds=ttl_seconds
            if ttl_seconds is not None
            else env_float("CONTIMG_FITS_CACHE_TTL_SECONDS"),
            max_workers=max_workers
            if max_workers is not None
            else env_int("CONTIMG_FITS_MAX_WORKERS"),
            obs_date_fallback=fallback.strip().lower(),
        )

    def parse(self, path: str | os.PathLike[str], *, require_date: bool = False) -> ImageMetadata:
        """Metadata of one file (cached). With `require_date`, a file without an observation
        time raises MissingObservationDateError unless the mtime fallback is enabled."""
        return self._parse(path, require_date=require_date)[0]

    def _parse(
        self, path: str | os.PathLike[str], *, require_date: bool
    ) -> tuple[ImageMetadata, bool]:
        spath = os.path.abspath(os.fspath(path))
        try:
            meta, cached = self._cached_or_parse(spath)
            if require_date:
                meta = require_obs_date(meta, mtime_fallback=self.obs_date_fallback == "mtime")
        except FITSParsingError as exc:
            self._errors_metric.labels(error_class=type(exc).__name__).inc()
            with self._lock:
                self._errors += 1
            raise
        return meta, cached

    def _cached_or_parse(self, spath: str) -> tuple[ImageMetadata, bool]:
        if self.cache is not None:
            try:
                st = os.stat(spath)
            except FileNotFoundError:
                raise FITSFileAccessError(spath, "file not found") from None
            except OSError as exc:
                raise FITSFileAccessError(spath, f"cannot stat: {exc.strerror or exc}") from exc
            hit = self.cache.get(
                spath, st.st_size, st.st_mtime_ns, need_fingerprint=self.compute_fingerprint
            )
            if hit is not None:
                return hit, True
        started = time.perf_counter()
        meta = parse_fits(spath, compute_fingerprint=self.compute_fingerprint)
        self._seconds_metric.observe(time.perf_counter() - started)
        with self._lock:
            self._parsed += 1
        if self.cache is not None:
            self.cache.put(meta)
        return meta, False

    def read_obs_date(self, path: str | os.PathLike[str]) -> dt.date | None:
        """Header-only observation date (no cache, no data read): for the ingest sensor."""
        return read_obs_date(path)

    # -- many files ----------------------------------------------------------------------

    def parse_many(
        self,
        paths: Iterable[str | os.PathLike[str]],
        max_workers: int | None = None,
        *,
        require_date: bool = False,
    ) -> list[ParseOutcome]:
        """One outcome per path, in input order; a broken file never loses the others."""
        todo = [os.fspath(p) for p in paths]
        workers = max(1, min(max_workers or self.max_workers, len(todo) or 1))

        def one(path: str) -> ParseOutcome:
            spath = os.path.abspath(path)
            try:
                meta, cached = self._parse(spath, require_date=require_date)
            except FITSParsingError as exc:
                return ParseOutcome(spath, error=exc)
            return ParseOutcome(spath, metadata=meta, from_cache=cached)

        if workers == 1:
            return [one(p) for p in todo]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fits-parse") as pool:
            return list(pool.map(one, todo))

    # -- cache administration ------------------------------------------------------------

    def invalidate(self, pattern: str) -> int:
        """Forget cached entries whose path matches the glob (all processes share the cache)."""
        return self.cache.invalidate(pattern) if self.cache is not None else 0

    def stats(self) -> ServiceStats:
        with self._lock:
            parsed, errors = self._parsed, self._errors
        return ServiceStats(self.cache.stats() if self.cache else None, parsed, errors)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
