"""`contimg fits inspect --json` over the real-FITS corpus (real_corpus.py, docs/fits-corpus.md),
checked file by file against astropy used directly.

Each file is either catalogued, and then every field astropy computes by itself must agree
(HDU, shape, BITPIX, centre within 0.1 arcsec of `WCS.pixel_to_world` of the central pixel as
the parser defines it, frequency, beam), or refused with the error class `REFUSED` states. No
file that astropy opens as an image with two axes longer than 1 may be refused, except the
deliberate `POLICY_REFUSALS`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame

from tests.resources.fits.real_corpus import (
    POLICY_REFUSALS,
    REFUSED,
    SOURCES,
    CorpusFile,
    corpus_files,
)

BIN = Path(sys.executable).parent
LOOKUP_EXTNAMES = {"WCSDVARR", "D2IMARR"}
CENTRE_TOLERANCE = 0.1 * u.arcsec


@dataclass
class AstropyView:
    """What astropy says about a file, computed without the parser."""

    opens: bool
    hdu: int | None = None  # first image HDU with two axes > 1, else first image HDU with data
    spans_plane: bool = False
    naxis: tuple[int, ...] = ()
    bitpix: int | None = None
    centre: SkyCoord | None = None
    sky: bool = False  # astropy knows the celestial frame (without sunpy's frames)
    freq_hz: float | None = None
    beam: tuple[float, float, float | None] | None = None
    ctypes: tuple[str, ...] = ()


def _image_hdus(hdul: fits.HDUList) -> list[tuple[int, Any]]:
    out = []
    for i, hdu in enumerate(hdul):
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            continue
        if isinstance(hdu, fits.ImageHDU) and str(hdu.name).upper() in LOOKUP_EXTNAMES:
            continue  # a distortion table of another HDU's WCS
        shape = hdu.shape
        if shape and all(n > 0 for n in shape):
            out.append((i, hdu))
    return out


def astropy_view(path: Path) -> AstropyView:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's notes about these old headers
        try:
            hdul = fits.open(path)
        except (OSError, ValueError, ModuleNotFoundError):
            return AstropyView(opens=False)
        with hdul:
            images = _image_hdus(hdul)
            if not images:
                return AstropyView(opens=True)
            planes = [(i, h) for i, h in images if sum(n > 1 for n in h.shape) >= 2]
            index, hdu = (planes or images)[0]
            header = hdu.header
            view = AstropyView(
                opens=True,
                hdu=index,
                spans_plane=bool(planes),
                naxis=tuple(reversed(hdu.shape)),
                bitpix=int(header["BITPIX"]),
            )
            if "BMAJ" in header and "BMIN" in header:
                bpa = header.get("BPA")
                view.beam = (header["BMAJ"] * 3600, header["BMIN"] * 3600, bpa)
            try:
                wcs = WCS(header, hdul)
            except (ValueError, KeyError, MemoryError):
                return view
            view.ctypes = tuple(wcs.wcs.ctype)
            # The parser's central pixel: 0-based N//2 on data axes, 0 on WCS-only axes.
            pix = [view.naxis[i] // 2 if i < len(view.naxis) else 0 for i in range(wcs.naxis)]
            if wcs.has_celestial:
                try:
                    wcs_to_celestial_frame(wcs)
                    view.sky = True
                except ValueError:
                    view.sky = False  # e.g. helioprojective: not a sky frame to astropy
            if view.sky:
                world = wcs.pixel_to_world(*pix)
                objects = world if isinstance(world, list) else [world]
                view.centre = next(o for o in objects if isinstance(o, SkyCoord)).icrs
            ctypes = [c.upper() for c in wcs.wcs.ctype]
            spec = next((i for i, c in enumerate(ctypes) if c.startswith("FREQ")), None)
            if spec is not None:
                mid = np.array([pix], dtype=float)
                n = view.naxis[spec] if spec < len(view.naxis) else 1
                mid[0, spec] = (n - 1) / 2
                value = wcs.all_pix2world(mid, 0)[0][spec]
                view.freq_hz = float((value * u.Unit(wcs.wcs.cunit[spec] or "Hz")).to(u.Hz).value)
            else:
                for key in ("RESTFRQ", "RESTFREQ"):
                    if isinstance(header.get(key), (int, float)) and header[key] > 0:
                        view.freq_hz = float(header[key])
                        break
            return view


@pytest.fixture(scope="module")
def inspected() -> tuple[list[CorpusFile], list[dict[str, Any]], int]:
    """One `contimg fits inspect --json` over the whole corpus, as a user runs it."""
    files = corpus_files()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["contimg", "fits", "inspect", "--json", "--no-cache", "--workers", "2",
         *(str(f.path) for f in files)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == len(files), proc.stderr
    return files, records, proc.returncode


def test_corpus_sources_are_installed_as_recorded() -> None:
    files = corpus_files()
    assert len(files) >= 40
    per_package = Counter(f.source.package for f in files)
    for source in SOURCES:
        assert per_package[source.package] > 0, source.package
        assert source.installed_version() == source.version, source.package
        assert source.installed_licence() == source.licence, source.package
    keys = {f.key for f in files}
    assert set(REFUSED) <= keys, sorted(set(REFUSED) - keys)  # no stale entries
    assert POLICY_REFUSALS <= set(REFUSED)


def test_every_corpus_file_is_catalogued_or_refused_for_its_stated_reason(inspected) -> None:
    files, records, returncode = inspected
    assert returncode == 1  # some files are refused, so the command says so
    wrongly_refused, mismatches = [], []
    for corpus_file, record in zip(files, records, strict=True):
        assert record["path"] == str(corpus_file.path)
        view = astropy_view(corpus_file.path)
        expected = REFUSED.get(corpus_file.key)
        if expected is not None:
            assert not record["ok"], f"{corpus_file.key}: catalogued, REFUSED says {expected}"
            assert record["error"] == expected[0], (corpus_file.key, record["message"])
            if view.spans_plane and corpus_file.key not in POLICY_REFUSALS:
                wrongly_refused.append(corpus_file.key)
            continue
        if not record["ok"]:
            mismatches.append(f"{corpus_file.key}: {record['error']}: {record['message']}")
            continue
        mismatches += compare(corpus_file.key, record["metadata"], view)
    assert wrongly_refused == []
    assert mismatches == []


def compare(key: str, meta: dict[str, Any], view: AstropyView) -> list[str]:
    """Each field astropy computes directly, against the parser's record; the differences."""
    bad: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            bad.append(f"{key}: {what}")

    check(view.opens and view.hdu is not None, "catalogued, but astropy finds no image in it")
    check(meta["hdu_index"] == view.hdu, f"hdu_index {meta['hdu_index']} != astropy {view.hdu}")
    check(tuple(meta["naxis"]) == view.naxis, f"naxis {meta['naxis']} != astropy {view.naxis}")
    check((meta["width"], meta["height"]) == view.naxis[:2], "width/height")
    check(meta["bitpix"] == view.bitpix, f"bitpix {meta['bitpix']} != {view.bitpix}")
    if view.centre is not None:
        if meta["ra_deg"] is None or meta["dec_deg"] is None:
            check(False, "centre missing, astropy has one")
        else:
            ours = SkyCoord(meta["ra_deg"] * u.deg, meta["dec_deg"] * u.deg, frame="icrs")
            sep = ours.separation(view.centre)
            check(sep < CENTRE_TOLERANCE, f"centre {sep.to(u.arcsec):.3f} from astropy's")
    else:
        check(meta["ra_deg"] is None and meta["dec_deg"] is None, "centre where astropy has none")
        check(meta["cellsize_arcsec"] is None, "cell size without a sky frame")
        frame_notes = [w for w in meta["warnings"] if "centre (RA/Dec)" in w]
        if view.ctypes and any(c.strip() for c in view.ctypes[:2]):
            name = view.ctypes[0].split("-")[0] if "-" in view.ctypes[0][1:5] else view.ctypes[0]
            check(any(name.strip("-") in w for w in frame_notes), f"no warning naming {name}")
        else:
            check(bool(frame_notes), "no warning about the missing centre")
    if view.freq_hz is None:
        check(meta["freq_hz"] is None, f"freq {meta['freq_hz']} where astropy has none")
    else:
        check(
            meta["freq_hz"] is not None and math.isclose(meta["freq_hz"], view.freq_hz,
                                                         rel_tol=1e-9),
            f"freq {meta['freq_hz']} != {view.freq_hz}",
        )  # fmt: skip
    if view.beam is not None:
        got = (meta["beam_major_arcsec"], meta["beam_minor_arcsec"], meta["beam_pa_deg"])
        check(
            all(a is not None and math.isclose(a, b, rel_tol=1e-9)
                for a, b in zip(got, view.beam, strict=True) if b is not None),
            f"beam {got} != {view.beam}",
        )  # fmt: skip
    return bad


def test_corpus_result_is_the_documented_one(inspected) -> None:
    """docs/fits-corpus.md states these numbers; change both together."""
    files, records, _ = inspected
    catalogued = [r for r in records if r["ok"]]
    refused = Counter(r["error"] for r in records if not r["ok"])
    with_centre = sum(r["metadata"]["ra_deg"] is not None for r in catalogued)
    counts = (len(files), len(catalogued), with_centre, dict(sorted(refused.items())))
    assert counts == (
        80,
        35,
        17,
        {"DecompressionError": 1, "NoImageError": 39, "NotFITSError": 3,
         "UnsupportedLayoutError": 2},
    )  # fmt: skip
