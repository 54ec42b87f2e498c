"""Every kind of bad input -> its specific FITSParsingError, without big allocations."""

from __future__ import annotations

import datetime as dt
import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from resources.errors import (
    BadHeaderError,
    DecompressionError,
    FITSFileAccessError,
    FITSParsingError,
    NotFITSError,
    TruncatedFITSError,
)
from resources.fits.parser import parse_fits, read_obs_date
from resources.fits.structure import scan
from resources.fits.synthetic import BROKEN_KINDS, BrokenKind, ImageSpec
from tests.resources.fits.helpers import WHEN, dsa_image


@pytest.mark.parametrize("kind", [k for k in BROKEN_KINDS if k.inspect_error],
                         ids=lambda k: k.name)  # fmt: skip
def test_each_broken_sample_raises_its_class(tmp_path: Path, kind: BrokenKind) -> None:
    path = tmp_path / kind.filename
    kind.writer(path, ImageSpec(date_obs=WHEN, dec_deg=16.3, size=64))
    with pytest.raises(FITSParsingError) as info:
        parse_fits(path)
    assert type(info.value).__name__ == kind.inspect_error
    assert info.value.path == str(path)
    assert str(path) in str(info.value) and info.value.hint


def _card(text: str) -> bytes:
    return f"{text:<80}".encode("ascii")


def _raw_fits(cards: list[str], data: bytes = b"") -> bytes:
    header = b"".join(_card(c) for c in [*cards, "END"])
    header += b" " * (-len(header) % 2880)
    return header + data + b"\0" * (-len(data) % 2880)


def test_empty_and_text_files_are_not_fits(tmp_path: Path) -> None:
    (tmp_path / "empty.fits").write_bytes(b"")
    (tmp_path / "text.fits").write_text("hello\n" * 1000)
    for name in ("empty.fits", "text.fits"):
        with pytest.raises(NotFITSError):
            parse_fits(tmp_path / name)


def test_gzip_of_text_is_not_fits(tmp_path: Path) -> None:
    (tmp_path / "t.fits.gz").write_bytes(gzip.compress(b"not fits at all " * 500))
    with pytest.raises(NotFITSError, match="after gzip decompression"):
        parse_fits(tmp_path / "t.fits.gz")


def test_header_without_end_is_truncated(tmp_path: Path) -> None:
    body = b"".join(_card(c) for c in ["SIMPLE  =                    T", "BITPIX  =  8"])
    (tmp_path / "noend.fits").write_bytes(body + b" " * (2880 - len(body)))
    with pytest.raises(TruncatedFITSError, match="without an END card"):
        parse_fits(tmp_path / "noend.fits")


@pytest.mark.parametrize(
    ("cards", "match"),
    [
        (["SIMPLE  =                    T", "NAXIS   =                    0"], "BITPIX is missing"),
        (["SIMPLE  =                    T", "BITPIX  =                   12",
          "NAXIS   =                    0"], "BITPIX = 12"),
        (["SIMPLE  =                    T", "BITPIX  =                    8",
          "NAXIS   =                    2", "NAXIS1  =                   10"], "NAXIS2 is missing"),
        (["SIMPLE  =                    T", "BITPIX  =                    8",
          "NAXIS   =                    1", "NAXIS1  =                 'ab'"], "not an integer"),
        (["SIMPLE  =                    T", "BITPIX  =                    8",
          "NAXIS   =                    1", "NAXIS1  =                   -5"], "negative"),
    ],
)  # fmt: skip
def test_mandatory_cards(tmp_path: Path, cards: list[str], match: str) -> None:
    (tmp_path / "h.fits").write_bytes(_raw_fits(cards, b"\0" * 100))
    with pytest.raises(BadHeaderError, match=match):
        parse_fits(tmp_path / "h.fits")


def test_extension_missing_pcount_is_a_bad_header(tmp_path: Path) -> None:
    primary = _raw_fits(
        [
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    0",
            "EXTEND  =                    T",
        ]
    )
    ext = _raw_fits(["XTENSION= 'IMAGE   '", "BITPIX  =                    8",
                     "NAXIS   =                    2", "NAXIS1  =                    4",
                     "NAXIS2  =                    4", "GCOUNT  =                    1"],
                    b"\0" * 16)  # fmt: skip
    (tmp_path / "x.fits").write_bytes(primary + ext)
    with pytest.raises(BadHeaderError, match="HDU 1: mandatory card PCOUNT"):
        parse_fits(tmp_path / "x.fits")


@pytest.mark.parametrize("bad", [b"\xe9", b"\t", b"\x00"])
def test_illegal_header_bytes_name_the_card(tmp_path: Path, bad: bytes) -> None:
    path = dsa_image(tmp_path / "b.fits", size=16)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"TELESCOP=")
    raw[at + 12 : at + 13] = bad
    path.write_bytes(bytes(raw))
    with pytest.raises(BadHeaderError) as info:
        parse_fits(path)
    assert "'TELESCOP'" in str(info.value) and f"0x{bad[0]:02x}" in str(info.value)


def test_terabyte_header_costs_no_memory(tmp_path: Path) -> None:
    cards = ["SIMPLE  =                    T", "BITPIX  =                  -64",
             "NAXIS   =                    3", "NAXIS1  =              1000000",
             "NAXIS2  =              1000000", "NAXIS3  =              1000000",
             "DATE-OBS= '2025-10-05T03:25:00'"]  # fmt: skip
    path = tmp_path / "huge.fits"
    path.write_bytes(_raw_fits(cards, b"\0" * 2880))
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedFITSError, match="8,000,000,000,000,000,000 bytes"):
            parse_fits(path)
        assert read_obs_date(path) == dt.date(2025, 10, 5)  # header-only path: no check, no read
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_huge_gzip_header_is_streamed_not_allocated(tmp_path: Path) -> None:
    cards = ["SIMPLE  =                    T", "BITPIX  =                  -64",
             "NAXIS   =                    2", "NAXIS1  =              1000000",
             "NAXIS2  =              1000000"]  # fmt: skip
    path = tmp_path / "huge.fits.gz"
    path.write_bytes(gzip.compress(_raw_fits(cards, b"\0" * (3 * 1024 * 1024))))
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedFITSError):
            parse_fits(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024  # one 1 MiB chunk at a time, never the claimed 8 TB


def test_truncated_data_and_missing_padding(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "t.fits", size=64)
    full = path.read_bytes()
    data_end = len(full) - (-(64 * 64 * 4) % 2880)
    path.write_bytes(full[:data_end])  # all data present, padding missing: a warning only
    meta = parse_fits(path)
    assert any("not padded" in w for w in meta.warnings)
    path.write_bytes(full[: data_end - 1])
    with pytest.raises(TruncatedFITSError, match="only"):
        parse_fits(path)


def test_corrupt_gzip_is_an_error_even_if_astropy_reads_it(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "c.fits.gz", size=128, compression="gzip")
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # damage only the CRC32 trailer: the deflate data are intact
    path.write_bytes(bytes(raw))
    with fits.open(path) as hdul:  # astropy hands back an array without complaint
        assert np.isfinite(hdul[0].data).all()
    with pytest.raises(DecompressionError, match="CRC"):
        parse_fits(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "c.fits.gz", size=64, compression="gzip")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DecompressionError, match="truncated"):
        parse_fits(path)


def test_trailing_garbage_is_a_warning(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "g.fits", size=16)
    path.write_bytes(path.read_bytes() + b"garbage after the last HDU")
    meta = parse_fits(path)
    assert any("not a FITS extension" in w for w in meta.warnings)


def test_access_errors(tmp_path: Path) -> None:
    with pytest.raises(FITSFileAccessError, match="not found"):
        parse_fits(tmp_path / "missing.fits")
    with pytest.raises(FITSFileAccessError, match="directory"):
        parse_fits(tmp_path)
    with pytest.raises(FITSFileAccessError):
        read_obs_date(tmp_path / "missing.fits")


def test_scan_lists_hdus_of_a_tile_compressed_file(tmp_path: Path) -> None:
    layout = scan(dsa_image(tmp_path / "r.fz", size=32, compression="rice"))
    assert [h.kind for h in layout.hdus] == ["primary", "compressed_image"]
    assert layout.compression is None and layout.fingerprint.startswith("xxh3:")


def test_illegal_byte_message_names_card_number_and_column(tmp_path: Path) -> None:
    """The block-wide search reports what the per-card loop reported: the first bad byte's
    card (counted from 1 across blocks) and column."""
    path = dsa_image(tmp_path / "b.fits", size=16)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"TELESCOP=")
    raw[at + 12] = 0x07
    raw[at + 30] = 0xFF  # a second bad byte, later on the same card: not the one reported
    path.write_bytes(bytes(raw))
    with pytest.raises(BadHeaderError) as info:
        scan(path)
    card = at // 80 + 1
    expected = f"HDU 0, card {card} ('TELESCOP'): byte 0x07 at column 13 is not printable"
    assert expected in str(info.value)


def test_bytes_after_the_end_card_are_not_header_bytes(tmp_path: Path) -> None:
    """Only the cards up to END are checked: junk in the rest of END's block is the block's
    fill (some writers leave NULs there), not a header card."""
    path = dsa_image(tmp_path / "b.fits", size=16)
    raw = bytearray(path.read_bytes())
    end = raw.index(b"END" + b" " * 77)
    raw[end + 80 : end + 160] = b"\x00" * 80
    path.write_bytes(bytes(raw))
    assert parse_fits(path).ra_deg is not None
