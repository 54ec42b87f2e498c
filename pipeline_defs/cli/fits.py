"""`contimg fits inspect FILE... [--json]` and `contimg fits invalidate-cache PATTERN`.

Output contract of `inspect --json` (docs/fits-service.md): one JSON object per file per line,
`{"path", "ok": true, "metadata": {...}}` or `{"path", "ok": false, "error": "<ExceptionClass>",
"message": "..."}`, in the order the files were given; exit 0 when every file parsed, 1 otherwise;
never a traceback.

The metadata service (the parser, the SQLite cache) is imported when a command runs, not when
this module is: `contimg fits inspect --help` stays as quick as click itself. `inspect` itself
imports neither astropy nor numpy for the usual images (the parser's plain path,
resources/fits/parser.py) nor prometheus_client (its metric values would die with the process),
and spreads many files over the machine's cores with a process pool (`inspect_all`):
docs/performance.md, "fits inspect".
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from pipeline_defs.cli.output import exit_with, fail
from resources.errors import ContimgError, FITSParsingError

if TYPE_CHECKING:
    from resources.fits_service import FitsMetadataService


#: Files per worker process below which a process pool costs more than it saves: starting a
#: worker (fork) and shipping its records back cost a few ms, a file ~0.3 ms on the plain path.
FILES_PER_PROCESS = 48


def _service(use_cache: bool, workers: int, *, quiet: bool = False) -> FitsMetadataService:
    """The parser, with the shared cache only if its file exists: inspecting a file anywhere
    (outside the project, say) must not leave a data directory with a new cache behind.

    No Prometheus metrics: this process keeps them in memory and exits (`pipeline_defs.cli`),
    so nobody could read them, and prometheus_client costs ~40 ms to import. `quiet`: a worker
    process, whose parent has already said that the cache is unavailable."""
    from resources.fits.cache import default_cache_path
    from resources.fits_service import FitsMetadataService

    use_cache = use_cache and default_cache_path().is_file()
    try:
        return FitsMetadataService(use_cache=use_cache, max_workers=workers, record_metrics=False)
    except (sqlite3.Error, OSError) as exc:
        if not quiet:
            click.echo(f"warning: FITS cache unavailable ({exc}); parsing without it", err=True)
        return FitsMetadataService(use_cache=False, max_workers=workers, record_metrics=False)


def process_count(files: int, workers: int, cores: int | None = None) -> int:
    """How many processes `inspect_all` uses: one per core (at most `workers`), and only as many
    as have FILES_PER_PROCESS files each; 1 means this process alone (also where processes
    cannot be forked: starting interpreters instead would cost more than it saves)."""
    from multiprocessing import get_all_start_methods  # 13 ms: not for `inspect --help`

    if "fork" not in get_all_start_methods():
        return 1
    if cores is None:
        affinity = getattr(os, "sched_getaffinity", None)  # Linux: the cores this process may use
        cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return max(1, min(workers, cores, files // FILES_PER_PROCESS))


_worker_service: FitsMetadataService | None = None


def _start_worker(use_cache: bool) -> None:
    """Process-pool initializer: each worker opens its own service (and cache connection)."""
    global _worker_service
    _worker_service = _service(use_cache, 1, quiet=True)


def _inspect_in_worker(path: str) -> dict[str, Any]:
    assert _worker_service is not None, "the pool's initializer opens the service"
    return inspect_one(_worker_service, path)


def inspect_all(files: Sequence[str], *, use_cache: bool, workers: int) -> list[dict[str, Any]]:
    """One record per file, in the order given, whichever way the work is spread.

    Many files: a pool of forked processes, one per core, each with its own service, in
    contiguous chunks (the plain parser is pure Python and holds the GIL, so threads cannot use
    a second core). Few files, one core or `--workers 1`: this process, with `workers` threads
    (they still overlap the decompression of .fits.gz files). A pool that cannot start or
    loses a worker leaves its files to this process: a broken pool never loses a record.
    """
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    processes = process_count(len(files), workers)
    service = _service(use_cache, workers)  # the cache warning, once, from this process
    if processes > 1:
        service.close()  # no SQLite connection may cross a fork
        try:
            with ProcessPoolExecutor(
                max_workers=processes,
                mp_context=get_context("fork"),
                initializer=_start_worker,
                initargs=(use_cache and service.cache is not None,),
            ) as pool:
                chunk = -(-len(files) // (processes * 4))
                return list(pool.map(_inspect_in_worker, files, chunksize=chunk))
        except (BrokenProcessPool, OSError) as exc:
            click.echo(f"warning: worker processes failed ({exc}); parsing here", err=True)
        service = _service(use_cache, workers, quiet=True)
    try:
        if min(workers, len(files)) <= 1:
            return [inspect_one(service, p) for p in files]
        with ThreadPoolExecutor(max_workers=min(workers, len(files))) as threads:
            return list(threads.map(lambda p: inspect_one(service, p), files))
    finally:
        service.close()


def inspect_one(service: FitsMetadataService, path: str) -> dict[str, Any]:
    """The JSON line for one file; every failure becomes an ok:false record."""
    try:
        meta = service.parse(path)
    except FITSParsingError as exc:
        return {"path": exc.path, "ok": False, "error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001
        # The contract is "never a traceback": an unforeseen failure (a bug in astropy or here)
        # is recorded for this file, by class and message, and the other files go on.
        from resources.secrets import mask_text

        return {
            "path": path,
            "ok": False,
            "error": type(exc).__name__,
            "message": mask_text(f"{path}: unexpected {type(exc).__name__}: {exc}"),
        }
    return {"path": meta.path, "ok": True, "metadata": meta.to_json_dict()}


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "unknown"
    return f"{value:{spec}}{unit}"


def human(record: dict[str, Any]) -> str:
    if not record["ok"]:
        return f"{record['path']}\n  FAILED     {record['error']}: {record['message']}"
    m = record["metadata"]
    axes = "x".join(str(n) for n in m["naxis"])
    mhz = [m[k] / 1e6 if m[k] is not None else None for k in ("freq_hz", "bandwidth_hz")]
    arcsec = "arcsec"
    observed = m["date_obs"] or "unknown"
    if m["date_obs"]:
        observed += f" (MJD {m['mjd_obs']:.6f}), partition {m['obs_date']}"
    lines = [
        record["path"],
        (
            f"  image      HDU {m['hdu_index']}, {m['width']} x {m['height']} px "
            f"(axes {axes}), BITPIX {m['bitpix']}, {m['size_bytes']:,} bytes"
        ),
        (
            f"  centre     RA {_fmt(m['ra_deg'], '.6f', ' deg')}, "
            f"Dec {_fmt(m['dec_deg'], '+.6f', ' deg')} (ICRS)"
        ),
        f"  cell       {_fmt(m['cellsize_arcsec'], '.3f', ' ' + arcsec)}",
        (
            f"  frequency  {_fmt(mhz[0], '.3f', ' MHz')}, bandwidth {_fmt(mhz[1], '.3f', ' MHz')}"
            f", Stokes {m['stokes'] or 'unknown'}"
        ),
        (
            f"  beam       {_fmt(m['beam_major_arcsec'], '.2f')} x "
            f"{_fmt(m['beam_minor_arcsec'], '.2f', ' ' + arcsec)}, "
            f"PA {_fmt(m['beam_pa_deg'], '.1f', ' deg')}"
        ),
        f"  observed   {observed}",
        (
            f"  telescope  {m['telescope'] or '-'}; object {m['object'] or '-'}; "
            f"unit {m['bunit'] or '-'}"
        ),
        f"  hash       {m['fingerprint'] or '(not computed)'}",
    ]
    lines += [f"  warning    {w}" for w in m["warnings"]]
    return "\n".join(lines)


@click.group("fits")
def fits_group() -> None:
    """Inspect FITS images and manage the shared metadata cache."""


@fits_group.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file per line.")
@click.option("--no-cache", is_flag=True, help="Parse every file even if its metadata is cached.")
@click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Files parsed in parallel (processes, one per core, when there are many files).",
)
def inspect_command(files: tuple[str, ...], as_json: bool, no_cache: bool, workers: int) -> None:
    """Validate FITS files and print their metadata; exit 1 if any file fails.

    FILES are FITS files (or directories, reported as failures). The shared metadata cache
    (CONTIMG_FITS_CACHE_PATH) is used when it exists; this command never creates it.
    """
    try:
        records = inspect_all(files, use_cache=not no_cache, workers=workers)
    except ContimgError as exc:
        fail(exc)
    for record in records:
        click.echo(json.dumps(record) if as_json else human(record))
    failed = sum(not r["ok"] for r in records)
    if not as_json:
        click.echo(f"{len(records)} file(s): {len(records) - failed} ok, {failed} failed")
    exit_with(1 if failed else 0)


@fits_group.command("invalidate-cache")
@click.argument("pattern")
def invalidate_cache_command(pattern: str) -> None:
    """Forget cached metadata of files whose absolute path matches PATTERN (glob; '*' = all)."""
    from resources.fits_service import FitsMetadataService

    try:
        service = FitsMetadataService()
        try:
            removed = service.invalidate(pattern)
            path = service.cache.path if service.cache else "-"
        finally:
            service.close()
    except (ContimgError, sqlite3.Error, OSError) as exc:
        fail(exc)
    click.echo(f"invalidated {removed} cached entr{'y' if removed == 1 else 'ies'} in {path}")


COMMANDS: list[click.Command] = [fits_group]
