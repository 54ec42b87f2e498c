"""The header of a correlator subband file, read with h5py only.

A UVH5 file keeps its metadata in the `Header` group and the visibilities in `Data`; only
`Header` is touched, and of the per-baseline-time arrays only the ends are read (the first and
last `time_array` elements, the first of `phase_center_*`), so the cost does not grow with the
size of the observation. Every failure is one typed, one-line error naming the file
(`resources.errors.HDF5ReadError` subclasses, or `FileNameError` for a name that does not
parse), and `read_headers` turns them into `FailedFile` records so that one bad file never
stops the others.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import multiprocessing.context
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5f, h5g, h5p, h5s

from resources.errors import (
    ContimgError,
    CorruptHDF5Error,
    FileNameError,
    HDF5FileAccessError,
    HDF5HeaderError,
    HDF5ReadError,
    NotHDF5Error,
)
from resources.hdf5.records import FailedFile, SubbandHeader
from resources.models.hdf5 import Hdf5Name, parse_hdf5_name

#: Julian date of the MJD epoch: UVH5 `time_array` is in JD (UTC).
JD_MJD_OFFSET = 2400000.5
#: The HDF5 format signature; h5py looks for it at 0, 512, 1024, ... (a user block).
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Header datasets without which a file cannot be placed in time and frequency. `Nblts` and
#: `Nfreqs` are the lengths of `time_array` (Nblts,) and `freq_array` (..., Nfreqs) by the
#: UVH5 definition, so they are taken from those shapes: each dataset opened costs ~40 us of
#: libhdf5 work, and a day has 4,608 files.
REQUIRED = ("time_array", "freq_array", "Ntimes")
#: Catalog frames whose latitude is a declination (an `unprojected` altaz entry's is not).
_SKY_FRAMES = {"icrs", "fk5", "fk4", "gcrs"}


def one_line(text: object) -> str:
    """h5py's messages can span lines; a failed-files table wants one line per file."""
    return " ".join(str(text).split())


def _has_signature(path: str) -> bool:
    """True when the HDF5 signature sits at 0 or a power-of-two user-block offset."""
    try:
        with open(path, "rb") as handle:
            offset = 0
            while True:
                handle.seek(offset)
                chunk = handle.read(len(HDF5_SIGNATURE))
                if len(chunk) < len(HDF5_SIGNATURE):
                    return False
                if chunk == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False


# h5py's low-level API: the high-level File/Group/Dataset objects cost ~50 us per lookup,
# which was half the time of a header (docs/upstream.md). A strong close degree closes the
# file as soon as its id is closed, whatever dataset ids are still referenced.
_FAPL = h5p.create(h5p.FILE_ACCESS)
_FAPL.set_fclose_degree(h5f.CLOSE_STRONG)


def _dataset(loc: h5g.GroupID, name: str) -> h5d.DatasetID | None:
    try:
        return h5d.open(loc, name.encode())
    except (KeyError, ValueError):  # h5py's "object doesn't exist" (the class varies by call)
        return None


def _read(dataset: h5d.DatasetID) -> np.ndarray:
    """The whole of a (small) dataset; an empty (null dataspace) one reads as an empty array."""
    shape = dataset.shape
    if shape is None:
        return np.empty(0)
    out = np.empty(shape, dtype=dataset.dtype)
    dataset.read(h5s.ALL, h5s.ALL, out)
    return out


def _ends(dataset: h5d.DatasetID, path: str, key: str) -> tuple[float, float]:
    """First and last elements of a 1-D header array, without reading the rest of it."""
    shape = dataset.shape
    if shape is None or len(shape) != 1 or shape[0] == 0:
        raise HDF5HeaderError(path, f"Header/{key} has shape {shape}, expected (N>0,)")
    last = shape[0] - 1
    space = dataset.get_space()
    space.select_elements(np.array([[0], [last]], dtype=np.uint64))
    out = np.empty(2, dtype=dataset.dtype)
    dataset.read(h5s.create_simple((2,)), space, out)
    return float(out[0]), float(out[1])


def _first(loc: h5g.GroupID, name: str) -> np.ndarray | None:
    """First element of a header array (or the scalar itself); None when it is absent."""
    dataset = _dataset(loc, name)
    if dataset is None:
        return None
    shape = dataset.shape
    if shape is None or (len(shape) and shape[0] == 0):
        return None
    if not shape:
        return _read(dataset)
    space = dataset.get_space()
    space.select_elements(np.zeros((1, len(shape)), dtype=np.uint64))
    out = np.empty(1, dtype=dataset.dtype)
    dataset.read(h5s.create_simple((1,)), space, out)
    return out


def _text(value: Any) -> str:
    item = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
    return item.decode() if isinstance(item, bytes) else str(item)


def _finite_deg(radians: Any) -> float | None:
    try:
        value = float(np.asarray(radians, dtype=float).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return math.degrees(value) if math.isfinite(value) else None


def _catalog_entry(header: h5g.GroupID) -> h5g.GroupID | None:
    """The catalog entry the first baseline-time is phased to; None if there is no catalog.

    A catalog of one entry (the usual case) is that entry, without reading the id array.
    pyuvdata 3 names entries by their id; older writers named them otherwise and stored a
    `cat_id`, so a name that is not the id is looked up among the entries (the rare case,
    done with the high-level API).
    """
    try:
        catalog = h5g.open(header, b"phase_center_catalog")
    except (KeyError, ValueError):  # h5g.open says "doesn't exist" with a ValueError
        return None
    if catalog.get_num_objs() == 1:  # the usual case: no need to read the id array
        try:
            return h5g.open(catalog, catalog.get_objname_by_idx(0))
        except (KeyError, ValueError):
            return None
    ids = _first(header, "phase_center_id_array")
    wanted = int(ids.reshape(-1)[0]) if ids is not None else None
    if wanted is not None:
        try:
            return h5g.open(catalog, str(wanted).encode())
        except (KeyError, ValueError):
            pass  # named otherwise: search below
    entries = h5py.Group(catalog)
    names = sorted(entries)
    for entry in names:
        item = entries[entry]
        if (
            isinstance(item, h5py.Group)
            and wanted is not None
            and "cat_id" in item
            and int(item["cat_id"][()]) == wanted
        ):
            return item.id
    first = entries[names[0]] if names else None
    return first.id if isinstance(first, h5py.Group) else None


def _phase_centre(header: h5g.GroupID) -> tuple[float | None, float | None]:
    """(RA, Dec) in degrees, from whichever convention the writer used; (None, None) if none.

    In order: the UVH5 >= 1.0 phase-centre catalog entry (the only one, or the one the first
    baseline-time points at)
    when it is a sky frame (an `unprojected` drift entry's latitude is an altitude), the
    apparent position of the first baseline-time (`phase_center_app_ra/dec`, written for drift
    scans too), the pre-catalog `phase_center_ra/dec` keys, and `extra_keywords/phase_center_dec`
    (older DSA-110 writers). The Dec is not required: a file without one is still grouped.
    """
    entry = _catalog_entry(header)
    if entry is not None:
        frame = _first(entry, "cat_frame")
        if frame is not None and _text(frame).lower() in _SKY_FRAMES:
            lat = _first(entry, "cat_lat")
            if lat is not None:
                lon = _first(entry, "cat_lon")
                return (_finite_deg(lon) if lon is not None else None), _finite_deg(lat)
    for ra_key, dec_key in (
        ("phase_center_app_ra", "phase_center_app_dec"),
        ("phase_center_ra", "phase_center_dec"),
        (None, "extra_keywords/phase_center_dec"),
    ):
        dec = _first(header, dec_key)
        if dec is not None:
            ra = _first(header, ra_key) if ra_key else None
            return (_finite_deg(ra) if ra is not None else None), _finite_deg(dec)
    return None, None


def _from_open_file(
    fid: h5f.FileID, path: str, name: Hdf5Name, stat: os.stat_result
) -> SubbandHeader:
    try:
        header = h5g.open(fid, b"Header")
    except (KeyError, ValueError) as exc:
        raise HDF5HeaderError(path, "no Header group: not a UVH5 file") from exc
    found = {key: _dataset(header, key) for key in REQUIRED}
    missing = [key for key, dataset in found.items() if dataset is None]
    if len(missing) == len(REQUIRED):
        raise HDF5HeaderError(path, "no UVH5 Header datasets: not a correlator UVH5 file")
    if missing:
        raise HDF5HeaderError(path, f"header datasets missing: {', '.join(missing)}")
    datasets = {key: dataset for key, dataset in found.items() if dataset is not None}
    start_jd, end_jd = _ends(datasets["time_array"], path, "time_array")
    if not (math.isfinite(start_jd) and math.isfinite(end_jd)):
        raise HDF5HeaderError(path, "Header/time_array holds non-finite times")
    # freq_array is (Nfreqs,) since UVH5 1.0, (Nspws, Nfreqs) before; it is small either way.
    values = _read(datasets["freq_array"]).astype(float).reshape(-1)
    if values.size == 0:
        raise HDF5HeaderError(path, "Header/freq_array is empty")
    freq_shape = datasets["freq_array"].shape or (0,)
    time_shape = datasets["time_array"].shape or (0,)
    ra, dec = _phase_centre(header)
    return SubbandHeader(
        path=path,
        name=name,
        start_mjd=min(start_jd, end_jd) - JD_MJD_OFFSET,
        end_mjd=max(start_jd, end_jd) - JD_MJD_OFFSET,
        freq_min_hz=float(values.min()),
        freq_max_hz=float(values.max()),
        n_freqs=int(freq_shape[-1]),
        n_times=int(_read(datasets["Ntimes"]).reshape(-1)[0]),
        n_blts=int(time_shape[0]),
        ra_deg=ra,
        dec_deg=dec,
        size_bytes=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )


def read_header(path: str | Path, *, stat: os.stat_result | None = None) -> SubbandHeader:
    """The header of one subband file; a typed one-line error naming the file otherwise.

    `stat` may be passed by a caller that has already stat'ed the file (a directory scan), so
    the size and mtime recorded are the ones it compared against the database.
    """
    text = str(path)
    name = parse_hdf5_name(text)  # FileNameError before any I/O: the name decides the group
    try:
        info = stat if stat is not None else os.stat(text)
    except OSError as exc:
        raise HDF5FileAccessError(text, f"cannot stat: {one_line(exc.strerror or exc)}") from exc
    try:
        fid = h5f.open(os.fsencode(text), h5f.ACC_RDONLY, _FAPL)
    except FileNotFoundError as exc:
        raise HDF5FileAccessError(text, "the file vanished before it was read") from exc
    except PermissionError as exc:
        raise HDF5FileAccessError(text, f"cannot open: {one_line(exc)}") from exc
    except OSError as exc:
        if info.st_size == 0:
            raise CorruptHDF5Error(text, "the file is empty (0 bytes)") from exc
        if not _has_signature(text):
            raise NotHDF5Error(text, "not an HDF5 file (no HDF5 signature)") from exc
        raise CorruptHDF5Error(text, f"truncated or corrupt HDF5: {one_line(exc)}") from exc
    try:
        return _from_open_file(fid, text, name, info)
    except ContimgError:
        raise
    except (OSError, RuntimeError) as exc:  # h5py raises these for damaged objects and chunks
        raise CorruptHDF5Error(text, f"corrupt HDF5 header: {one_line(exc)}") from exc
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise HDF5HeaderError(text, f"malformed UVH5 header: {one_line(exc)}") from exc
    finally:
        fid.close()


def failed_file(path: str | Path, error: ContimgError) -> FailedFile:
    """The record of a file that could not be read, dated by its name or else its mtime."""
    text = str(path)
    try:
        info: os.stat_result | None = os.stat(text)
    except OSError:
        info = None
    try:
        obs_date: dt.date | None = parse_hdf5_name(text).timestamp.date()
    except FileNameError:
        obs_date = (
            dt.datetime.fromtimestamp(info.st_mtime, tz=dt.UTC).date() if info is not None else None
        )
    return FailedFile(
        path=text,
        filename=Path(text).name,
        error_class=type(error).__name__,
        error=one_line(error),
        obs_date=obs_date,
        size_bytes=info.st_size if info is not None else None,
        mtime_ns=info.st_mtime_ns if info is not None else None,
    )


#: Below this many files a process pool costs more than it saves (start-up ~20-50 ms).
PARALLEL_MIN_FILES = 512


def _read_chunk(
    paths: list[str], stats: dict[str, os.stat_result] | None
) -> tuple[list[SubbandHeader], list[FailedFile]]:
    headers: list[SubbandHeader] = []
    failures: list[FailedFile] = []
    for text in paths:
        try:
            headers.append(read_header(text, stat=stats.get(text) if stats else None))
        except (FileNameError, HDF5ReadError) as exc:
            failures.append(failed_file(text, exc))
    return headers, failures


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork when this process has one thread (cheap, nothing re-imported); forkserver when it
    has more (a sensor or a step: forking a threaded process can copy a held lock)."""
    method = "fork" if threading.active_count() == 1 else "forkserver"
    return multiprocessing.get_context(method)


def default_workers() -> int:
    """One worker per CPU this process may use (a header read is CPU-bound in libhdf5)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def read_headers(
    paths: Iterable[str | Path],
    *,
    stats: dict[str, os.stat_result] | None = None,
    workers: int | None = None,
) -> tuple[list[SubbandHeader], list[FailedFile]]:
    """Headers of many files, in the order given, and the files that failed (typed errors).

    A header costs ~0.4 ms, nearly all of it inside libhdf5, which h5py serialises behind one
    global lock: threads cannot help, processes can. With `workers` > 1 (default: one per CPU)
    and at least `PARALLEL_MIN_FILES` files, contiguous chunks are read in a process pool;
    fewer files, or `workers=1`, are read here.
    """
    texts = [str(p) for p in paths]
    count = default_workers() if workers is None else max(workers, 1)
    if count == 1 or len(texts) < PARALLEL_MIN_FILES:
        return _read_chunk(texts, stats)
    size = -(-len(texts) // count)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    headers: list[SubbandHeader] = []
    failures: list[FailedFile] = []
    with ProcessPoolExecutor(max_workers=len(chunks), mp_context=_pool_context()) as pool:
        parts = [
            pool.submit(
                _read_chunk, chunk, {p: stats[p] for p in chunk if p in stats} if stats else None
            )
            for chunk in chunks
        ]
        for part in parts:
            good, bad = part.result()
            headers += good
            failures += bad
    return headers, failures
