"""Pixel access for QA and thumbnails: one 2-D plane, physical units, NaN for blanks; and
`map_planes`, which reads each image's plane once for several consumers, on threads or (for
work that holds the GIL) on a pool of worker processes.

A radio cube (RA, DEC, FREQ, STOKES) is reduced deliberately to ONE plane: the first channel and
Stokes I when the Stokes axis holds I (otherwise its first plane). Continuum QA grades the total
intensity image; summing polarisations or channels would mix quantities that QA must not mix.

Uncompressed files are opened memory-mapped and only the chosen plane's bytes are read
(`ImageHDU.section`). Tile-compressed images decompress only the tiles of that plane. gzip files
are decompressed by astropy; by default the file is first validated with `structure.scan`
(which streams it end to end), so a corrupt gzip raises instead of yielding garbage pixels.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from resources.errors import (
    BadHeaderError,
    DecompressionError,
    FITSFileAccessError,
    FITSParsingError,
    NoImageError,
    TruncatedFITSError,
    UnsupportedLayoutError,
)
from resources.fits.parser import astropy_section
from resources.fits.structure import scan

T = TypeVar("T")
R = TypeVar("R")


def _stokes_value(header: fits.Header, axis: int, k: int) -> float | None:
    """World value of pixel k (0-based) on a linear STOKES axis."""
    try:
        crval = float(header.get(f"CRVAL{axis}", 1.0))
        cdelt = float(header.get(f"CDELT{axis}", 1.0))
        crpix = float(header.get(f"CRPIX{axis}", 1.0))
    except (TypeError, ValueError, VerifyError):
        return None
    return crval + (k + 1 - crpix) * cdelt


def plane_index(header: fits.Header, naxis: tuple[int, ...]) -> tuple[int, ...]:
    """numpy index (outermost axis first) selecting the plane to use: see the module docstring."""
    index: list[int] = []
    for axis in range(len(naxis), 2, -1):  # FITS axis numbers, outermost first
        choice = 0
        if str(header.get(f"CTYPE{axis}", "")).strip().upper() == "STOKES":
            for k in range(naxis[axis - 1]):
                value = _stokes_value(header, axis, k)
                if value is not None and round(value) == 1:
                    choice = k
                    break
        index.append(choice)
    return tuple(index)


_RECENT = threading.local()


def recent_header(path: str | os.PathLike[str], hdu_index: int) -> fits.Header | None:
    """The header of the plane this thread read last with `read_plane`, if it is (path, HDU).

    A consumer of `map_planes` runs on the thread that read its plane: the source extraction
    takes its WCS from here instead of opening the file a second time (2.3 ms per image)."""
    key = (os.path.abspath(os.fspath(path)), hdu_index)
    recent = getattr(_RECENT, "value", None)
    return recent[1] if recent is not None and recent[0] == key else None


def read_plane(
    path: str | os.PathLike[str], hdu_index: int, *, validate: bool = True
) -> np.ndarray:
    """The 2-D image plane (height x width) of HDU `hdu_index`, BSCALE/BZERO applied, BLANK
    pixels as NaN. dtype float32 for BITPIX 8/16/-32, float64 for 32/64/-64."""
    spath = os.path.abspath(os.fspath(path))
    if validate:
        layout = scan(spath, fingerprint=False)
        if not 0 <= hdu_index < len(layout.hdus) or not layout.hdus[hdu_index].has_image:
            raise NoImageError(spath, f"HDU {hdu_index} does not hold image data")
    notes: list[str] = []
    try:
        with astropy_section(notes):
            hdul = fits.open(spath, memmap=True, do_not_scale_image_data=True, lazy_load_hdus=True)
        try:
            try:
                hdu = hdul[hdu_index]
            except IndexError:
                raise NoImageError(spath, f"the file has no HDU {hdu_index}") from None
            plane = _plane(spath, hdu)
            _RECENT.value = ((spath, hdu_index), hdu.header)
            return plane
        finally:
            hdul.close()
    except (EOFError, zlib.error) as exc:
        raise DecompressionError(spath, f"cannot decompress the image: {exc}") from exc
    except OSError as exc:
        raise FITSFileAccessError(spath, f"cannot read pixels: {exc}") from exc
    except (ValueError, TypeError, KeyError, VerifyError) as exc:
        raise BadHeaderError(spath, f"HDU {hdu_index}: cannot read pixels: {exc}") from exc


def _plane(spath: str, hdu: fits.hdu.base._BaseHDU) -> np.ndarray:
    header = hdu.header
    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        raise NoImageError(spath, f"HDU is a {type(hdu).__name__}, not an image")
    naxis = tuple(int(header.get(f"NAXIS{i}", 0)) for i in range(1, int(header["NAXIS"]) + 1))
    if len(naxis) < 2 or any(n <= 0 for n in naxis):
        raise UnsupportedLayoutError(spath, f"image axes {naxis} do not form a 2-D plane")
    index = (*plane_index(header, naxis), slice(None), slice(None))
    bitpix = int(header["BITPIX"])
    out_dtype = np.float32 if bitpix in (8, 16, -32) else np.float64
    # Opened with do_not_scale_image_data: for tile-compressed images astropy still undoes the
    # tile quantisation (ZSCALE/ZZERO, ZBLANK), and BSCALE/BZERO/BLANK are applied below for both.
    try:
        raw = np.asarray(hdu.section[index])
    except (ValueError, IndexError) as exc:
        raise TruncatedFITSError(spath, f"the image data cannot be read: {exc}") from exc
    plane = raw.astype(out_dtype, copy=True)
    if bitpix > 0 and "BLANK" in header:
        plane[raw == int(header["BLANK"])] = np.nan
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    if bscale != 1.0:
        plane *= out_dtype(bscale)
    if bzero != 0.0:
        plane += out_dtype(bzero)
    return plane


# --- one read of each plane for several consumers ------------------------------------------

#: What gets a plane: (the item, the plane, None) or (the item, None, why it could not be read).
PlaneConsumer = Callable[[T, "np.ndarray | None", "str | None"], R]


def pixel_threads() -> int:
    """Threads of a pixel pass: CONTIMG_PIXEL_THREADS, else one per CPU this process may use.

    Threads, not processes: the pixel work (numpy partitions and reductions, PIL's resampling
    and zlib) runs without the GIL, so two threads did a 1024² plane's QA and thumbnail in half
    the time of one on a 2-core machine, with no pool to start (docs/performance.md).
    """
    from resources.settings import env_int

    configured = env_int("CONTIMG_PIXEL_THREADS")
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class PlaneTimes:
    """Seconds spent in a pass (summed over threads): reading planes and in each consumer."""

    read_s: float = 0.0
    consumers_s: list[float] = field(default_factory=list)
    planes: int = 0
    unreadable: int = 0


def pixel_pool() -> str:
    """CONTIMG_PIXEL_POOL: `auto` (the default: processes for a pass that asks for them,
    threads otherwise), `threads` or `processes`."""
    from resources.settings import get

    return str(get("CONTIMG_PIXEL_POOL"))


def map_planes(
    items: Sequence[T],
    where: Callable[[T], tuple[str, int]],
    consumers: Sequence[PlaneConsumer],
    *,
    threads: int | None = None,
    holds_gil: bool = False,
) -> tuple[list[tuple], PlaneTimes]:
    """Read each item's plane once and hand it to every consumer; results in item order.

    `where(item)` gives (path, HDU index). A plane that cannot be read (a typed FITS error or
    an OSError) is handed over as None with the reason, so each consumer records the failure
    its own way and the other items go on. At most `threads` planes are in memory at once:
    memory is bounded by threads x (plane + what the consumers allocate), not by len(items).

    Threads when the consumers' work releases the GIL (numpy reductions, Pillow, zlib). A pass
    whose consumers hold it (`holds_gil`: source fitting, many small numpy calls) gained
    nothing from a second thread, so with CONTIMG_PIXEL_POOL=auto it runs on `threads` worker
    processes (`_process_pool`; `where`, the consumers and the items must then pickle, and
    the results come back pickled). A worker that dies leaves the whole pass to threads: the
    consumers write their files by rename, so doing an item twice is harmless.
    """
    workers = max(1, min(threads or pixel_threads(), len(items)))
    mode = pixel_pool()
    processes = workers > 1 and (mode == "processes" or (mode == "auto" and holds_gil))
    if processes and _may_start_workers():
        try:
            return _map_on_processes(items, where, consumers, workers)
        except BrokenProcessPool:
            _drop_pool()
    return _map_on_threads(items, where, consumers, workers)


def _one(
    item: T, where: Callable[[T], tuple[str, int]], consumers: Sequence[PlaneConsumer]
) -> tuple[tuple, list[float], bool]:
    """An item's plane read once and given to each consumer: (results, seconds, read ok)."""
    started = time.perf_counter()
    plane: np.ndarray | None = None
    why: str | None = None
    path, hdu = where(item)
    try:
        plane = read_plane(path, hdu)
    except (FITSParsingError, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}"
    spent = [time.perf_counter() - started]
    out = []
    for consume in consumers:
        began = time.perf_counter()
        out.append(consume(item, plane, why))
        spent.append(time.perf_counter() - began)
    return tuple(out), spent, plane is not None


def _add_times(times: PlaneTimes, spent: list[float], ok: bool) -> None:
    times.read_s += spent[0]
    for k, seconds in enumerate(spent[1:]):
        times.consumers_s[k] += seconds
    times.planes += ok
    times.unreadable += not ok


def _map_on_threads(
    items: Sequence[T],
    where: Callable[[T], tuple[str, int]],
    consumers: Sequence[PlaneConsumer],
    workers: int,
) -> tuple[list[tuple], PlaneTimes]:
    times = PlaneTimes(consumers_s=[0.0] * len(consumers))
    lock = threading.Lock()

    def one(item: T) -> tuple:
        out, spent, ok = _one(item, where, consumers)
        with lock:
            _add_times(times, spent, ok)
        return out

    if workers == 1:
        return [one(item) for item in items], times
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pixels") as pool:
        return list(pool.map(one, items)), times


def _chunk_in_worker(
    env: dict[str, str],
    where: Callable[[T], tuple[str, int]],
    consumers: Sequence[PlaneConsumer],
    chunk: list[T],
) -> list[tuple[tuple, list[float], bool]]:
    # The pool outlives the pass that started it: the consumers read their settings (where
    # reports go, ...) from the environment of the pass, not of the forkserver's start.
    if os.environ != env:
        os.environ.clear()
        os.environ.update(env)
    return [_one(item, where, consumers) for item in chunk]


#: The worker processes of this process's pixel passes: started once (forkserver: a clean
#: interpreter forked from a server that preloaded the pixel modules, not a copy of a process
#: with Dagster's threads), kept for the next pass, sized by the first pass that needs them.
_POOL: dict[int, ProcessPoolExecutor] = {}
_POOL_LOCK = threading.Lock()
_PRELOAD = ["numpy", "astropy.io.fits", "resources.fits.pixels"]


def _process_pool(workers: int, modules: Sequence[str]) -> ProcessPoolExecutor:
    with _POOL_LOCK:
        pool = _POOL.get(workers)
        if pool is None:
            ctx = multiprocessing.get_context("forkserver")
            # The consumers' modules too, so that no worker imports them on its first item.
            ctx.set_forkserver_preload([*_PRELOAD, *sorted(set(modules))])
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            _POOL[workers] = pool
        return pool


#: Why this process runs every pass on threads whatever CONTIMG_PIXEL_POOL says (None: it may
#: start worker processes); set by `keep_passes_on_threads`.
_THREADS_ONLY: str | None = None


def keep_passes_on_threads(reason: str) -> None:
    """This process runs its passes on threads from now on (a Celery pool process: Celery's
    processes are the workers, one step each, and a pool of our own in each of them would
    oversubscribe the cores)."""
    global _THREADS_ONLY
    _THREADS_ONLY = reason


def _may_start_workers() -> bool:
    """Not in a multiprocessing child (a step process of Dagster's multiprocess executor, a
    daemonic worker): such a process joins its children when it ends, before the hook that
    stops a pool's workers, and would wait for them forever. Not where `keep_passes_on_threads`
    was called. Those passes run on threads."""
    return (
        _THREADS_ONLY is None
        and multiprocessing.parent_process() is None
        and not multiprocessing.current_process().daemon
    )


def _modules_of(consumers: Sequence[PlaneConsumer]) -> list[str]:
    found = {getattr(c, "__module__", None) for c in consumers}
    return sorted(m for m in found if m)


def warm_pool(threads: int | None, modules: Sequence[str]) -> None:
    """Start, in the background, the worker processes a coming pass that holds the GIL will
    use (its consumers defined in `modules`): the forkserver's imports (~1 s) then overlap the
    step's work before the pass (the catalogue) instead of delaying the pass. Does nothing where
    such a pass would run on threads."""
    workers = max(1, threads or pixel_threads())
    if workers < 2 or pixel_pool() == "threads" or not _may_start_workers():
        return

    def start() -> None:
        try:
            pool = _process_pool(workers, modules)
            for future in [pool.submit(os.getpid) for _ in range(workers)]:
                future.result()
        except (OSError, BrokenProcessPool):  # the pass finds no pool and starts or falls back
            _drop_pool()

    threading.Thread(target=start, name="pixel-pool-warm-up", daemon=True).start()


def _drop_pool() -> None:
    with _POOL_LOCK:
        for pool in _POOL.values():
            pool.shutdown(wait=False, cancel_futures=True)
        _POOL.clear()


def _map_on_processes(
    items: Sequence[T],
    where: Callable[[T], tuple[str, int]],
    consumers: Sequence[PlaneConsumer],
    workers: int,
) -> tuple[list[tuple], PlaneTimes]:
    times = PlaneTimes(consumers_s=[0.0] * len(consumers))
    pool = _process_pool(workers, _modules_of(consumers))
    # Chunks of a few items: the consumers are pickled once per chunk, and the last chunks
    # are small enough that no worker waits long for the other.
    size = max(1, min(8, len(items) // (workers * 4)))
    chunks = [list(items[k : k + size]) for k in range(0, len(items), size)]
    env = dict(os.environ)
    futures = [pool.submit(_chunk_in_worker, env, where, consumers, chunk) for chunk in chunks]
    results: list[tuple] = []
    for future in futures:
        for out, spent, ok in future.result():
            _add_times(times, spent, ok)
            results.append(out)
    return results, times
