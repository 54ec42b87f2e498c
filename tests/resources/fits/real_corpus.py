"""The real-FITS corpus (docs/fits-corpus.md): test data that public packages install.

Nothing is copied into this repository: the files are found inside the installed packages
(located with `importlib.util.find_spec`, without importing them, so e.g. sunpy's frames are not
registered with astropy in the test process). Everything that names a file is here, in one
place: which packages, which of their files, their licence, and for every file this pipeline
refuses, the error class and why that refusal is right. A file not listed in `REFUSED` must be
catalogued, so a package upgrade that adds files cannot slip any past the test.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

# What a FITS file is called in these packages (plus the odd names listed per source).
FITS_SUFFIXES = (".fits", ".fits.gz", ".fit.gz", ".fts.gz", ".fz", ".fits.Z")


@dataclass(frozen=True)
class Source:
    """One package's FITS test data: every file under `under` with a FITS name, plus `extra`."""

    package: str  # import name = distribution name here
    version: str  # the installed version the corpus was recorded with (pyproject pins it)
    licence: str  # SPDX expression of the distribution's metadata (License-Expression)
    under: tuple[str, ...]  # folders inside the package, searched recursively
    extra: tuple[str, ...] = ()  # FITS files with other names

    def root(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise LookupError(f"package {self.package} is not installed (pip install -e '.[dev]')")
        return Path(next(iter(spec.submodule_search_locations)))

    def installed_version(self) -> str:
        return importlib.metadata.version(self.package)

    def installed_licence(self) -> str:
        meta = importlib.metadata.metadata(self.package)
        return str(meta.get("License-Expression") or meta.get("License") or "")


_ASTROPY_DATA = (
    "io/fits/tests/data",
    "io/fits/hdu/compressed/tests/data",
    "io/votable/tests/data",
    "modeling/tests/data",
    "nddata/tests/data",
    "wcs/tests/data",
    "wcs/wcsapi/tests/data",
)

SOURCES: tuple[Source, ...] = (
    Source("astropy", "8.0.2", "BSD-3-Clause", _ASTROPY_DATA),
    Source(
        "sunpy",
        "7.0.5",
        "BSD-3-Clause",
        ("data/test",),
        extra=("data/test/gzip_fits_test.file",),  # a gzipped FITS file without a FITS name
    ),
    Source("regions", "0.12", "BSD-3-Clause", ("io/fits/tests/data", "shapes/tests/data")),
    Source(
        "numpy",
        "2.4.6",
        "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0",
        ("_core/tests/data",),
    ),
)

_TABLE = "NoImageError", "tables only (the primary HDU is empty)"
_EMPTY = "NoImageError", "header only: no HDU has data (NAXIS = 0)"

#: "package/relative path" -> (error class, why refusing it is right).
REFUSED: dict[str, tuple[str, str]] = {
    # astropy: io.fits
    "astropy/io/fits/tests/data/arange.fits": (
        "UnsupportedLayoutError",
        (
            "a 11x10x7 integer cube whose 3rd axis has no CTYPE: not a FREQ/STOKES cube "
            "(policy; astropy reads it as a 3-D array)"
        ),
    ),
    "astropy/io/fits/tests/data/ascii.fits": ("NoImageError", "ASCII table only"),
    "astropy/io/fits/tests/data/ascii_i4-i20.fits": ("NoImageError", "ASCII table only"),
    "astropy/io/fits/tests/data/btable.fits": _TABLE,
    "astropy/io/fits/tests/data/chandra_time.fits": _TABLE,
    "astropy/io/fits/tests/data/compressed_float_bzero.fits": (
        "UnsupportedLayoutError",
        "its only image is a tile-compressed 1-D vector of 3 values",
    ),
    "astropy/io/fits/tests/data/group.fits": ("NoImageError", "random groups (visibilities)"),
    "astropy/io/fits/tests/data/history_header.fits": _EMPTY,
    "astropy/io/fits/tests/data/invalid/group_invalid.fits": (
        "NoImageError",
        "random-groups header with NAXIS1 = 0 and no groups",
    ),
    "astropy/io/fits/tests/data/logical_null.fits": _TABLE,
    "astropy/io/fits/tests/data/lzw.fits.Z": (
        "DecompressionError",
        "Unix LZW (.Z) compression; astropy cannot open it either",
    ),
    "astropy/io/fits/tests/data/memtest.fits": _TABLE,
    "astropy/io/fits/tests/data/random_groups.fits": (
        "NoImageError",
        "random groups (visibilities)",
    ),
    "astropy/io/fits/tests/data/stddata.fits": _TABLE,
    "astropy/io/fits/tests/data/table.fits": _TABLE,
    "astropy/io/fits/tests/data/tb.fits": _TABLE,
    "astropy/io/fits/tests/data/tdim.fits": _TABLE,
    "astropy/io/fits/tests/data/theap-gap.fits": _TABLE,
    "astropy/io/fits/tests/data/variable_length_table.fits": _TABLE,
    "astropy/io/fits/tests/data/verify.fits": _EMPTY,
    "astropy/io/fits/tests/data/vla_logical_all_zero.fits": _TABLE,
    "astropy/io/fits/tests/data/vla_logical_null.fits": _TABLE,
    "astropy/io/fits/tests/data/vla_logical_pre_fix.fits": _TABLE,
    "astropy/io/fits/tests/data/zerowidth.fits": (
        "NoImageError",
        "a primary HDU with a zero-length axis, then tables",
    ),
    "astropy/io/votable/tests/data/tb.fits": _TABLE,
    "astropy/modeling/tests/data/idcompspec.fits": (
        "NotFITSError",
        "an IRAF text database named .fits; astropy cannot open it either",
    ),
    # astropy: wcs
    "astropy/wcs/tests/data/dist.fits": (
        "NoImageError",
        "only a 1-D D2IMARR distortion lookup table (for another file's image)",
    ),
    "astropy/wcs/tests/data/ie6d07ujq_wcs.fits": (
        "NoImageError",
        "only two D2IMARR distortion lookup tables (for another file's image)",
    ),
    "astropy/wcs/tests/data/header_with_time.fits": _EMPTY,
    "astropy/wcs/tests/data/header_with_time_wcslib71.fits": _EMPTY,
    "astropy/wcs/tests/data/sip.fits": _EMPTY,
    "astropy/wcs/tests/data/sip2.fits": _EMPTY,
    "astropy/wcs/tests/data/validate.fits": ("NoImageError", "three HDUs, none with data"),
    "astropy/wcs/wcsapi/tests/data/example_4d_tab.fits": (
        "NoImageError",
        "empty primary; the -TAB coordinate table only",
    ),
    # sunpy
    "sunpy/data/test/eve_l1_esp_2011046_00_truncated.fits": _TABLE,
    "sunpy/data/test/gbm.fits": _TABLE,
    "sunpy/data/test/go1520110607.fits": _TABLE,
    "sunpy/data/test/go1520120601.fits.gz": _TABLE,
    "sunpy/data/test/hsi_obssumm_20120601_018_truncated.fits.gz": _TABLE,
    "sunpy/data/test/lyra_20150101-000000_lev3_std_truncated.fits.gz": _TABLE,
    "sunpy/data/test/not_actually_fits.fits": (
        "NotFITSError",
        "a text file named .fits; astropy cannot open it either",
    ),
    "sunpy/data/test/test_ana.fz": (
        "NotFITSError",
        "ANA-compressed (Rice) solar image, not tile-compressed FITS; astropy cannot open it",
    ),
    # regions, numpy
    "regions/io/fits/tests/data/regions_nowcs.fits": _TABLE,
    "regions/io/fits/tests/data/regions_wcs.fits": _TABLE,
    "numpy/_core/tests/data/recarray_from_file.fits": _TABLE,
}

#: Refused although astropy opens an image with two axes longer than 1: deliberate policy.
POLICY_REFUSALS = frozenset({"astropy/io/fits/tests/data/arange.fits"})


@dataclass(frozen=True)
class CorpusFile:
    key: str  # "package/relative path": stable across machines and venvs
    path: Path
    source: Source


def corpus_files() -> list[CorpusFile]:
    """Every corpus file, sorted by key."""
    found: dict[str, CorpusFile] = {}
    for source in SOURCES:
        root = source.root()
        paths = [root / rel for rel in source.extra]
        for folder in source.under:
            paths += [
                p
                for p in (root / folder).rglob("*")
                if p.is_file() and p.name.endswith(FITS_SUFFIXES)
            ]
        for path in paths:
            key = f"{source.package}/{path.relative_to(root).as_posix()}"
            found[key] = CorpusFile(key, path, source)
    return [found[k] for k in sorted(found)]
