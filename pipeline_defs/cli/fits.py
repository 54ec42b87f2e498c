"""`contimg fits inspect FILE... [--json]` and `contimg fits invalidate-cache PATTERN`.

Output contract of `inspect --json` (docs/fits-service.md): one JSON object per file per line,
`{"path", "ok": true, "metadata": {...}}` or `{"path", "ok": false, "error": "<ExceptionClass>",
"message": "..."}`, in the order the files were given; exit 0 when every file parsed, 1 otherwise;
never a traceback.

The metadata service (astropy, the SQLite cache) is imported when a command runs, not when this
module is: `contimg fits inspect --help` stays as quick as click itself.
"""

from __future__ import annotations

import json
import math
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import click

from pipeline_defs.cli.output import exit_with, fail
from resources.errors import ContimgError, FITSParsingError

if TYPE_CHECKING:
    from resources.fits_service import FitsMetadataService


def _service(use_cache: bool, workers: int) -> FitsMetadataService:
    """The parser, with the shared cache only if its file exists: inspecting a file anywhere
    (outside the project, say) must not leave a data directory with a new cache behind."""
    from resources.fits.cache import default_cache_path
    from resources.fits_service import FitsMetadataService

    use_cache = use_cache and default_cache_path().is_file()
    try:
        return FitsMetadataService(use_cache=use_cache, max_workers=workers)
    except (sqlite3.Error, OSError) as exc:
        click.echo(f"warning: FITS cache unavailable ({exc}); parsing without it", err=True)
        return FitsMetadataService(use_cache=False, max_workers=workers)


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
    help="Files parsed in parallel.",
)
def inspect_command(files: tuple[str, ...], as_json: bool, no_cache: bool, workers: int) -> None:
    """Validate FITS files and print their metadata; exit 1 if any file fails.

    FILES are FITS files (or directories, reported as failures). The shared metadata cache
    (CONTIMG_FITS_CACHE_PATH) is used when it exists; this command never creates it.
    """
    try:
        service = _service(not no_cache, workers)
    except ContimgError as exc:
        fail(exc)
    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(files))) as pool:
            records = list(pool.map(lambda p: inspect_one(service, p), files))
    finally:
        service.close()
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
