"""Structural validation of a FITS file, done before astropy is allowed near the data.

astropy trusts the header: it will happily memory-map (or, for gzip, allocate) whatever
`NAXISn x |BITPIX|/8` says, and for a damaged gzip stream it may return garbage without
complaint. This module walks the file block by block with nothing but integer arithmetic:

* the first card must be `SIMPLE` (else `NotFITSError`), extensions start with `XTENSION`;
* every header byte must be printable ASCII (else `BadHeaderError` naming HDU, card and keyword);
* the mandatory cards (`BITPIX`, `NAXIS`, `NAXISn`, and `PCOUNT`/`GCOUNT` for extensions) must be
  present with integer values (else `BadHeaderError`);
* each data unit's size, `|BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn)`, is compared with
  the bytes actually present (else `TruncatedFITSError`) -- a header claiming terabytes costs a
  multiplication, never an allocation;
* gzip / bzip2 files are decompressed as a stream in 1 MiB chunks up to the end, so the
  decompressor checks the CRC and the length trailer (else `DecompressionError`), without ever
  holding more than one chunk.

It also computes the content fingerprint (see `FINGERPRINT_*`, `compare_fingerprints` and
docs/fits-service.md, "Fingerprint").
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import xxhash

from resources.errors import (
    BadHeaderError,
    DecompressionError,
    FITSFileAccessError,
    FITSParsingError,
    NotFITSError,
    TruncatedFITSError,
)

BLOCK = 2880
CARD = 80
CARDS_PER_BLOCK = BLOCK // CARD
CHUNK = 1 << 20
MAX_HEADER_BLOCKS = 2000  # 72,000 cards; beyond that the "header" is not one
VALID_BITPIX = (8, 16, 32, 64, -32, -64)

# Fingerprint: a change-detection hash of the stored bytes, self-describing ("<scheme>:<hex>").
# Files up to FINGERPRINT_FULL_LIMIT bytes and every gzip/bzip2 file (streamed end to end
# anyway) are hashed whole; larger plain files hash a domain tag, their size, every header and
# FINGERPRINT_SAMPLES evenly spaced 2880-byte blocks of each data unit (a change elsewhere in
# the data of such a file, size kept, is NOT seen: docs/fits-service.md, "Fingerprint").
# xxh3_128 is not cryptographic: it detects accidental change (re-imaging, a damaged copy), it
# does not authenticate content against someone forging a collision.
FINGERPRINT_SCHEME = "xxh3"
# The limit, measured (bench/fingerprint_bench.py, docs/fits-service.md): a 32 MiB file hashed
# whole with xxh3 costs no more than the old worst case (sha256 of 16 MiB), cold (~21 vs ~22 ms,
# the disk read dominates: ~0.6 ms/MiB) or from the page cache (~6 vs ~14 ms). Twice that
# would double the cold cost, so larger files keep the sampled scheme (< 1 ms at any size).
FINGERPRINT_FULL_LIMIT = 32 * 1024 * 1024
FINGERPRINT_SAMPLES = 8
# Values written before the switch: bare sha256 hex, same policy with a 16 MiB limit. Still
# computable (`scan(..., scheme=LEGACY_SCHEME)`) so that a stored legacy value can be verified
# instead of being taken for a change of content.
LEGACY_SCHEME = "sha256"
LEGACY_FULL_LIMIT = 16 * 1024 * 1024
_SAMPLED_TAGS = {"xxh3": b"contimg-fits-fp2", "sha256": b"contimg-fits-fp1"}
_XXH3_VALUE = re.compile(r"xxh3:[0-9a-f]{32}")
_SHA256_VALUE = re.compile(r"[0-9a-f]{64}")

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_LZW_MAGIC = b"\x1f\x9d"
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")
_COMMENTARY = frozenset({"", "COMMENT", "HISTORY", "CONTINUE"})
# Extensions holding distortion lookup tables (the FITS distortion paper's WCSDVARR, and the
# detector-to-image correction D2IMARR of HST): referenced by an image's CPDISja/D2IMDISa cards.
LOOKUP_EXTNAMES = frozenset({"WCSDVARR", "D2IMARR"})
# Record-valued keyword cards (FITS distortion paper): keyword DPj/DQi/D2IMj, value 'field: number'.
_RVKC_KEYWORD = re.compile(r"^(DP|DQ|D2IM)\d+$")
_RVKC_VALUE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*:\s*[-+0-9.EeDd]+\s*$")


@dataclass(frozen=True)
class Card:
    """One raw 80-character header card; `number` counts from 1 as FITS readers do."""

    number: int
    keyword: str
    text: str

    def value_text(self) -> str | None:
        """The value field (columns 11-80 without the comment), or None for a non-value card."""
        if self.text[8:10] != "= ":
            return None
        raw = self.text[10:].strip()
        if raw.startswith("'"):
            end = 1
            while end < len(raw):
                if raw[end] == "'":
                    if raw[end + 1 : end + 2] == "'":
                        end += 2
                        continue
                    break
                end += 1
            return raw[: end + 1]
        return raw.split("/", 1)[0].strip()


@dataclass(frozen=True)
class HDUInfo:
    """What the scan learnt about one HDU, from its header cards alone."""

    index: int
    kind: str  # primary | image | compressed_image | bintable | table | groups | other
    xtension: str | None
    header_offset: int  # offsets in the (decompressed) FITS byte stream
    data_offset: int
    data_size: int  # bytes of data without the padding to 2880
    bitpix: int
    naxis: tuple[int, ...]
    cards: tuple[Card, ...]

    @property
    def has_image(self) -> bool:
        if self.kind == "compressed_image":
            return True
        return (
            self.kind in ("primary", "image")
            and len(self.naxis) > 0
            and all(n > 0 for n in self.naxis)
        )

    @property
    def extname(self) -> str | None:
        card = _find(self.cards, "EXTNAME")
        raw = card.value_text() if card else None
        if not raw or not raw.startswith("'"):
            return None
        return parse_string_value(raw).strip().upper() or None

    @property
    def is_lookup_table(self) -> bool:
        """A distortion lookup array (`WCSDVARR`, `D2IMARR`) that another HDU's WCS points to:
        image-shaped data, but a correction table, never a picture of the sky."""
        return self.kind == "image" and self.extname in LOOKUP_EXTNAMES

    @property
    def image_axes(self) -> tuple[int, ...] | None:
        """The image's NAXISn: `ZNAXISn` for a tile-compressed image (None if those cards are
        unusable: the parser reports that), else the HDU's own axes."""
        if self.kind != "compressed_image":
            return self.naxis
        try:
            n = _plain_int(self.cards, "ZNAXIS")
            return tuple(_plain_int(self.cards, f"ZNAXIS{i}") for i in range(1, n + 1))
        except ValueError:
            return None

    @property
    def spans_a_plane(self) -> bool:
        """At least two axes longer than 1: a 2-D picture, not a spectrum, a vector or a pixel.

        The image HDU of a file is the first one for which this holds (a 1-D spectrum in the
        primary HDU before the image in an extension is common in instrument files)."""
        axes = self.image_axes
        return axes is not None and sum(n > 1 for n in axes) >= 2

    def header_string(self) -> str:
        return "".join(card.text for card in self.cards)


@dataclass(frozen=True)
class FileLayout:
    path: str
    size_bytes: int
    mtime_ns: int
    compression: str | None  # None, "gzip" or "bzip2"
    hdus: tuple[HDUInfo, ...]
    fingerprint: str  # "" when not computed
    warnings: tuple[str, ...]


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


def _new_hasher(scheme: str, prefix: bytes = b"") -> _Hasher:
    """A hasher that has already taken `prefix` as its first bytes (a domain tag).

    Dispatches on the scheme's literal name, not on FINGERPRINT_SCHEME: that constant says which
    scheme is current (a test sets it to simulate the version before the switch)."""
    if scheme == "xxh3":
        return xxhash.xxh3_128(prefix)
    if scheme == "sha256":
        return hashlib.sha256(prefix)
    raise ValueError(f"unknown fingerprint scheme {scheme!r}")


def _value(scheme: str, hasher: _Hasher) -> str:
    """The stored form: `xxh3:<32 hex>`; legacy sha256 values stay bare hex, as written then."""
    digest = hasher.hexdigest()
    return digest if scheme == "sha256" else f"{scheme}:{digest}"


def fingerprint_scheme(value: str | None) -> str | None:
    """The scheme a stored fingerprint was made with, or None (empty, not computed, unknown).

    A bare 64-digit hex value is a fingerprint of before the switch (sha256, no prefix)."""
    if not value:
        return None
    if _XXH3_VALUE.fullmatch(value):
        return "xxh3"
    if _SHA256_VALUE.fullmatch(value):
        return "sha256"
    return None


def compare_fingerprints(stored: str | None, fresh: str | None) -> bool | None:
    """True: same content; False: the content changed; None: unknown (nothing to compare with,
    or the two values come from different schemes, so their inequality means nothing).

    None must lead to a re-check (compute `fresh` again in the stored value's scheme), never to
    "changed": after the switch to xxh3 every stored sha256 value differs from a fresh one.
    """
    scheme = fingerprint_scheme(stored)
    if scheme is None or scheme != fingerprint_scheme(fresh):
        return None
    return stored == fresh


def is_image_hdu(hdu: HDUInfo) -> bool:
    """Holds image data that is a candidate for the catalogue (lookup tables are not)."""
    return hdu.has_image and not hdu.is_lookup_table


def padded(nbytes: int) -> int:
    return -(-nbytes // BLOCK) * BLOCK


def record_key(card: Card) -> str:
    """The name a card is unique by: its keyword, or for a record-valued card of the distortion
    convention (`DP1 = 'NAXES: 2'`, `DP1 = 'AXIS.1: 1'`) keyword and field (`DP1.NAXES`), since
    such keywords legitimately repeat once per field."""
    if _RVKC_KEYWORD.match(card.keyword):
        raw = card.value_text() or ""
        if raw.startswith("'") and (m := _RVKC_VALUE.match(parse_string_value(raw))):
            return f"{card.keyword}.{m.group(1).upper()}"
    return card.keyword


def duplicate_keywords(cards: tuple[Card, ...]) -> dict[str, list[Card]]:
    """Non-commentary keywords present more than once, with every copy in header order."""
    seen: dict[str, list[Card]] = {}
    for card in cards:
        if card.keyword in _COMMENTARY or card.keyword == "END":
            continue
        seen.setdefault(record_key(card), []).append(card)
    return {kw: copies for kw, copies in seen.items() if len(copies) > 1}


def parse_string_value(raw: str) -> str:
    """A FITS string value `'abc  '` -> `abc` (doubled quotes unescaped, trailing blanks cut)."""
    body = raw[1:]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "'":
            if i + 1 < len(body) and body[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            break
        out.append(ch)
        i += 1
    return "".join(out).rstrip()


# --- byte sources ---------------------------------------------------------------------------


class _RawAccessError(Exception):
    """An OSError of the underlying file, kept apart from decompressor errors (also OSError)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _HashingRaw:
    """Wraps the raw file handed to a decompressor: hashes every stored byte it reads."""

    def __init__(self, raw: BinaryIO, hasher: _Hasher | None) -> None:
        self._raw = raw
        self._hasher = hasher

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except OSError as exc:
            raise _RawAccessError(exc) from exc
        if self._hasher is not None and data:
            self._hasher.update(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """The real file is closed by its owner."""


class _Source:
    """Sequential reader over the logical FITS bytes: a plain file (seeks) or a stream."""

    def __init__(self, fh: BinaryIO, size: int, compression: str | None) -> None:
        self.fh = fh
        self.size = size  # stored size; the logical size only for plain files
        self.compression = compression
        self.pos = 0
        self.stored_hasher: _Hasher | None = None
        self.stream: BinaryIO | None = None

    def start_stream(self, hash_scheme: str | None) -> None:
        """Open the decompressor; with a scheme, every stored byte it reads is hashed too."""
        if self.compression is None:
            return
        self.stored_hasher = _new_hasher(hash_scheme) if hash_scheme else None
        raw = _HashingRaw(self.fh, self.stored_hasher)
        if self.compression == "gzip":
            self.stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[arg-type]
        else:
            self.stream = bz2.BZ2File(raw, mode="rb")  # type: ignore[arg-type]

    def read(self, n: int) -> bytes:
        """Up to n bytes; fewer only at the end of the stream."""
        if self.stream is None:
            data = self.fh.read(n)
            self.pos += len(data)
            return data
        parts: list[bytes] = []
        want = n
        while want > 0:
            chunk = self.stream.read(min(want, CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        data = b"".join(parts)
        self.pos += len(data)
        return data

    def skip(self, n: int) -> int:
        """Advance up to n bytes; returns how many were really there (no allocation for n)."""
        if self.stream is None:
            skipped = max(0, min(n, self.size - self.pos))
            self.pos += skipped
            self.fh.seek(self.pos)
            return skipped
        skipped = 0
        while skipped < n:
            chunk = self.stream.read(min(n - skipped, CHUNK))
            if not chunk:
                break
            skipped += len(chunk)
        self.pos += skipped
        return skipped

    def drain(self) -> int:
        """Read a stream to its end (the decompressor checks CRC and length); bytes read."""
        if self.stream is None:
            return 0
        total = 0
        while chunk := self.stream.read(CHUNK):
            total += len(chunk)
        self.pos += total
        return total


def _open(path: str) -> tuple[BinaryIO, int, int]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - the caller closes it in a finally
    except FileNotFoundError:
        raise FITSFileAccessError(path, "file not found") from None
    except IsADirectoryError:
        raise FITSFileAccessError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise FITSFileAccessError(path, f"cannot open: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fh.fileno())
    except OSError as exc:
        fh.close()
        raise FITSFileAccessError(path, f"cannot stat: {exc.strerror or exc}") from exc
    return fh, st.st_size, st.st_mtime_ns


def _sniff(path: str, fh: BinaryIO) -> str | None:
    head = fh.read(3)
    fh.seek(0)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(_LZW_MAGIC):
        raise DecompressionError(
            path,
            "Unix LZW (.Z) compression is not supported",
            hint="Decompress it (uncompress / gzip -d) or recompress it with gzip.",
        )
    return None


# --- header scanning ------------------------------------------------------------------------


def _read_header(
    src: _Source, path: str, index: int, first_block: bytes | None = None
) -> tuple[tuple[Card, ...], int]:
    """Read header blocks up to END; returns the cards and the header's length in bytes."""
    cards: list[Card] = []
    nblocks = 0
    block = first_block
    while True:
        if block is None:
            block = src.read(BLOCK)
        if len(block) < BLOCK:
            raise TruncatedFITSError(
                path,
                f"HDU {index}: the header stops after {nblocks * BLOCK + len(block)} bytes "
                "without an END card",
            )
        nblocks += 1
        # One regex search per block instead of a Python test per byte (2,880 per block, the
        # larger part of a header scan): the cards before the first bad byte are read as
        # before, so an END card ahead of it still ends the header without complaint.
        bad = _NOT_PRINTABLE.search(block)
        good_cards = CARDS_PER_BLOCK if bad is None else bad.start() // CARD
        text_block = block[: good_cards * CARD].decode("ascii")
        for j in range(good_cards):
            text = text_block[j * CARD : (j + 1) * CARD]
            number = (nblocks - 1) * CARDS_PER_BLOCK + j + 1
            keyword = text[:8].rstrip()
            if keyword == "HIERARCH":  # ESO long keyword: the name runs up to the '='
                keyword = "HIERARCH " + " ".join(text[8:].split("=", 1)[0].split())
            if keyword == "END":
                return tuple(cards), nblocks * BLOCK
            cards.append(Card(number, keyword, text))
        if bad is not None:
            raw = block[good_cards * CARD : (good_cards + 1) * CARD]
            column = bad.start() - good_cards * CARD
            number = (nblocks - 1) * CARDS_PER_BLOCK + good_cards + 1
            keyword = raw[:8].decode("ascii", "replace").rstrip()
            raise BadHeaderError(
                path,
                f"HDU {index}, card {number} ({keyword!r}): byte 0x{raw[column]:02x} at column "
                f"{column + 1} is not printable ASCII; FITS headers allow only bytes 0x20-0x7e",
                hint="Rewrite the header with a FITS-compliant writer (e.g. astropy, "
                "fverify to locate the card).",
            )
        if nblocks >= MAX_HEADER_BLOCKS:
            raise BadHeaderError(
                path,
                f"HDU {index}: no END card within the first {nblocks * CARDS_PER_BLOCK} cards",
            )
        block = None


def _find(cards: tuple[Card, ...], keyword: str) -> Card | None:
    return next((c for c in cards if c.keyword == keyword), None)


def _plain_int(cards: tuple[Card, ...], keyword: str) -> int:
    """An integer card's value; ValueError when missing or not an integer."""
    card = _find(cards, keyword)
    raw = card.value_text() if card else None
    if raw is None:
        raise ValueError(keyword)
    return int(raw)


def _int_card(
    path: str, index: int, cards: tuple[Card, ...], keyword: str, *, default: int | None = None
) -> int:
    card = _find(cards, keyword)
    if card is None:
        if default is not None:
            return default
        raise BadHeaderError(path, f"HDU {index}: mandatory card {keyword} is missing")
    raw = card.value_text()
    try:
        if raw is None:
            raise ValueError
        return int(raw)
    except ValueError:
        raise BadHeaderError(
            path,
            f"HDU {index}, card {card.number} ({keyword}): value {raw!r} is not an integer",
        ) from None


def _logical(cards: tuple[Card, ...], keyword: str) -> bool:
    card = _find(cards, keyword)
    return card is not None and card.value_text() == "T"


def _structure(
    path: str, index: int, cards: tuple[Card, ...], warnings: list[str]
) -> tuple[str, str | None, int, tuple[int, ...], int]:
    """Kind, XTENSION, BITPIX, NAXISn and data size from the mandatory cards."""
    first = cards[0].keyword if cards else ""
    xtension: str | None = None
    if index == 0:
        if first != "SIMPLE":
            raise NotFITSError(path, "the first card is not SIMPLE")
        if cards[0].value_text() != "T":
            warnings.append("SIMPLE = F: the file says it does not conform to the FITS standard")
    else:
        if first != "XTENSION":
            raise BadHeaderError(
                path, f"HDU {index}: the header starts with {first!r} instead of XTENSION"
            )
        raw = cards[0].value_text() or ""
        xtension = parse_string_value(raw) if raw.startswith("'") else raw
    bitpix = _int_card(path, index, cards, "BITPIX")
    if bitpix not in VALID_BITPIX:
        raise BadHeaderError(
            path,
            f"HDU {index}: BITPIX = {bitpix} is not one of {', '.join(map(str, VALID_BITPIX))}",
        )
    naxis_n = _int_card(path, index, cards, "NAXIS")
    if not 0 <= naxis_n <= 999:
        raise BadHeaderError(path, f"HDU {index}: NAXIS = {naxis_n} is outside 0..999")
    naxis = tuple(_int_card(path, index, cards, f"NAXIS{i}") for i in range(1, naxis_n + 1))
    for i, n in enumerate(naxis, start=1):
        if n < 0:
            raise BadHeaderError(path, f"HDU {index}: NAXIS{i} = {n} is negative")
    expected = ["SIMPLE" if index == 0 else "XTENSION", "BITPIX", "NAXIS"]
    expected += [f"NAXIS{i}" for i in range(1, naxis_n + 1)]
    for pos, kw in enumerate(expected):
        if pos < len(cards) and cards[pos].keyword != kw:
            warnings.append(
                f"HDU {index}: mandatory card {kw} is not at position {pos + 1} as FITS requires"
            )
            break
    groups = index == 0 and naxis_n > 0 and naxis[0] == 0 and _logical(cards, "GROUPS")
    if index == 0 and not groups:
        pcount, gcount = 0, 1
    else:
        pcount = _int_card(path, index, cards, "PCOUNT", default=0 if groups else None)
        gcount = _int_card(path, index, cards, "GCOUNT", default=1 if groups else None)
        if pcount < 0 or gcount < 0:
            raise BadHeaderError(path, f"HDU {index}: PCOUNT/GCOUNT must not be negative")
    axes = naxis[1:] if groups else naxis
    product = 1
    for n in axes:
        product *= n
    if not naxis:
        product = 0
    data_size = abs(bitpix) // 8 * gcount * (pcount + product)
    if index == 0:
        kind = "groups" if groups else "primary"
    elif xtension == "IMAGE":
        kind = "image"
    elif xtension in ("BINTABLE", "A3DTABLE"):
        kind = "compressed_image" if _logical(cards, "ZIMAGE") else "bintable"
    elif xtension == "TABLE":
        kind = "table"
    else:
        kind = "other"
    return kind, xtension, bitpix, naxis, data_size


def _iter_hdus(
    src: _Source, path: str, warnings: list[str], *, check_data: bool
) -> Iterator[HDUInfo]:
    """Yield each HDU after its header is read; then skip (and check) its data."""
    first = src.read(BLOCK)
    if not first:
        raise NotFITSError(
            path,
            "the file is empty"
            if src.compression is None
            else f"the {src.compression} stream is empty",
        )
    if not first.startswith(b"SIMPLE  ="):
        what = "" if src.compression is None else f" (after {src.compression} decompression)"
        raise NotFITSError(path, f"the file does not start with a FITS 'SIMPLE' card{what}")
    block: bytes | None = first
    index = 0
    header_offset = 0
    while True:
        cards, header_len = _read_header(src, path, index, block)
        kind, xtension, bitpix, naxis, data_size = _structure(path, index, cards, warnings)
        data_offset = header_offset + header_len
        hdu = HDUInfo(
            index, kind, xtension, header_offset, data_offset, data_size, bitpix, naxis, cards
        )
        yield hdu
        want = padded(data_size)
        got = src.skip(want)
        if got < data_size and check_data:
            raise TruncatedFITSError(
                path,
                f"HDU {index}: the header announces {data_size:,} bytes of data "
                f"({'x'.join(map(str, naxis)) or '0'} x {abs(bitpix) // 8} bytes) from byte "
                f"{data_offset:,}, but only {got:,} are present",
            )
        if got < want:
            if check_data:
                warnings.append(
                    f"HDU {index}: the last data block is not padded to 2880 bytes "
                    f"({want - got} bytes missing after the data)"
                )
            return
        header_offset = data_offset + want
        block = src.read(BLOCK)
        if not block:
            return
        if not block.startswith(b"XTENSION"):
            rest = len(block) + (
                src.drain() if src.stream is not None else max(0, src.size - src.pos)
            )
            if check_data and block.strip(b"\0 "):
                warnings.append(
                    f"{rest:,} bytes after HDU {index} are not a FITS extension and were ignored"
                )
            return
        index += 1


def sampled_blocks(hdu: HDUInfo) -> list[int]:
    """Indices of the 2880-byte data blocks the sampled fingerprint reads for this HDU (block 0
    starts at `data_offset`): FINGERPRINT_SAMPLES evenly spaced, first and last included."""
    if hdu.data_size <= 0:
        return []
    nblocks = -(-hdu.data_size // BLOCK)
    # The expression of the sha256 scheme, kept as it was: legacy values must be reproducible.
    return sorted(
        {
            round(k * (nblocks - 1) / max(1, FINGERPRINT_SAMPLES - 1))
            for k in range(FINGERPRINT_SAMPLES)
        }
    )


def _sampled_fingerprint(fh: BinaryIO, size: int, hdus: list[HDUInfo], scheme: str) -> str:
    """Tag, size, each HDU's header cards (up to END, not the blank fill after it) and the
    `sampled_blocks` of each data unit: a bounded read whatever the file's size."""
    hasher = _new_hasher(scheme, _SAMPLED_TAGS[scheme])
    hasher.update(size.to_bytes(8, "little"))
    for hdu in hdus:
        hasher.update(hdu.header_string().encode("ascii"))
        for b in sampled_blocks(hdu):
            fh.seek(hdu.data_offset + b * BLOCK)
            hasher.update(fh.read(BLOCK))
    return _value(scheme, hasher)


def _full_fingerprint(fh: BinaryIO, scheme: str) -> str:
    fh.seek(0)
    hasher = _new_hasher(scheme)
    while chunk := fh.read(CHUNK):
        hasher.update(chunk)
    return _value(scheme, hasher)


def full_limit(scheme: str) -> int:
    """Plain files up to this many bytes are hashed whole in `scheme` (the module constants are
    read at call time, so a test can lower them)."""
    return LEGACY_FULL_LIMIT if scheme == "sha256" else FINGERPRINT_FULL_LIMIT


def scan(
    path: str | os.PathLike[str], *, fingerprint: bool = True, scheme: str | None = None
) -> FileLayout:
    """Validate the whole file structure (no pixel is decoded) and list its HDUs.

    `scheme` chooses the fingerprint's hash: None for the current one (`FINGERPRINT_SCHEME`,
    read at call time), `LEGACY_SCHEME` to verify a value stored before the switch (see
    `compare_fingerprints`).
    """
    scheme = scheme or FINGERPRINT_SCHEME
    if scheme not in _SAMPLED_TAGS:
        raise ValueError(f"unknown fingerprint scheme {scheme!r}")
    spath = os.path.abspath(os.fspath(path))
    fh, size, mtime_ns = _open(spath)
    warnings: list[str] = []
    try:
        compression = _sniff(spath, fh)
        src = _Source(fh, size, compression)
        with _StreamErrors(spath, compression):
            src.start_stream(scheme if fingerprint else None)
            hdus = list(_iter_hdus(src, spath, warnings, check_data=True))
            src.drain()
        digest = ""
        if fingerprint:
            if src.stored_hasher is not None:
                digest = _value(scheme, src.stored_hasher)
            elif size <= full_limit(scheme):
                digest = _full_fingerprint(fh, scheme)
            else:
                digest = _sampled_fingerprint(fh, size, hdus, scheme)
    except OSError as exc:
        raise FITSFileAccessError(spath, f"read error: {exc.strerror or exc}") from exc
    finally:
        fh.close()
    return FileLayout(spath, size, mtime_ns, compression, tuple(hdus), digest, tuple(warnings))


def fingerprint_file(path: str | os.PathLike[str], scheme: str | None = None) -> str:
    """The fingerprint of a file in `scheme` (None: the current one); a full structural scan,
    so a broken file raises its FITSParsingError."""
    return scan(path, scheme=scheme).fingerprint


def scan_headers(path: str | os.PathLike[str], *, stop_after_image: bool = True) -> list[HDUInfo]:
    """Headers only (data skipped unchecked): the cheap path for the ingest sensor.

    Stops after the first HDU that spans a plane (`HDUInfo.spans_a_plane`, the HDU `parse_fits`
    prefers), so both pick the same image HDU; without one every header is read. For gzip files
    the stream is decompressed up to that header, not verified to its end.
    """
    spath = os.path.abspath(os.fspath(path))
    fh, size, _ = _open(spath)
    hdus: list[HDUInfo] = []
    try:
        compression = _sniff(spath, fh)
        src = _Source(fh, size, compression)
        with _StreamErrors(spath, compression):
            src.start_stream(None)
            for hdu in _iter_hdus(src, spath, [], check_data=False):
                hdus.append(hdu)
                if stop_after_image and is_image_hdu(hdu) and hdu.spans_a_plane:
                    break
    except OSError as exc:
        raise FITSFileAccessError(spath, f"read error: {exc.strerror or exc}") from exc
    finally:
        fh.close()
    return hdus


class _StreamErrors:
    """Turn decompressor failures into DecompressionError, raw read failures into access errors."""

    def __init__(self, path: str, compression: str | None) -> None:
        self.path = path
        self.compression = compression

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        if exc is None or isinstance(exc, FITSParsingError):
            return False
        if isinstance(exc, _RawAccessError):
            raise FITSFileAccessError(
                self.path, f"read error: {exc.error.strerror or exc.error}"
            ) from exc.error
        if self.compression is not None and isinstance(exc, (EOFError, zlib.error, OSError)):
            if isinstance(exc, EOFError):
                what = "the compressed stream ends before its end-of-stream marker (truncated)"
            else:
                what = f"the compressed stream is corrupt ({exc})"
            raise DecompressionError(self.path, f"{self.compression}: {what}") from exc
        return False
