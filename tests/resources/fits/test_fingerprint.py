"""The change-detection fingerprint (docs/fits-service.md, "Fingerprint"): what it covers, what
it does not (the sampled scheme's stated failure mode), its self-describing format, and the rule
for comparing a value stored before the switch from sha256 to xxh3."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import xxhash

from resources.errors import NotFITSError
from resources.fits import structure
from resources.fits.structure import BLOCK, compare_fingerprints, fingerprint_scheme, scan
from tests.resources.fits.helpers import dsa_image, write_hdu

# 240 x 240 float32 = 230,400 bytes = exactly 80 data blocks after a one-block header.
SIDE = 240
NBLOCKS = 80
SAMPLED = [0, 11, 23, 34, 45, 56, 68, 79]


def _image(path: Path) -> Path:
    data = np.arange(SIDE * SIDE, dtype=np.float32).reshape(SIDE, SIDE)
    return write_hdu(path, data, {"OBJECT": "field-1", "BUNIT": "Jy/beam"})


def _patched(path: Path, offset: int, value: int | None = None) -> Path:
    """A copy of `path` with the byte at `offset` changed (XOR 0x01 unless a value is given)."""
    data = bytearray(path.read_bytes())
    data[offset] = data[offset] ^ 0x01 if value is None else value
    out = path.with_name(f"{path.stem}-{offset}.fits")
    out.write_bytes(bytes(data))
    return out


def _fp(path: Path) -> str:
    return scan(path).fingerprint


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A plain file below FINGERPRINT_FULL_LIMIT: hashed whole."""
    path = _image(tmp_path / "small.fits")
    assert path.stat().st_size == (1 + NBLOCKS) * BLOCK <= structure.FINGERPRINT_FULL_LIMIT
    return path


@pytest.fixture
def sampled(small: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same file treated as one above the limit (the limit lowered): sampled."""
    monkeypatch.setattr(structure, "FINGERPRINT_FULL_LIMIT", 0)
    return small


# --- format --------------------------------------------------------------------------------


def test_the_value_names_its_scheme_and_is_xxh3_128_of_the_stored_bytes(small: Path) -> None:
    fp = _fp(small)
    assert fp == "xxh3:" + xxhash.xxh3_128(small.read_bytes()).hexdigest()
    assert len(fp) == 37 and fingerprint_scheme(fp) == "xxh3" == structure.FINGERPRINT_SCHEME


def test_the_legacy_scheme_reproduces_the_values_stored_before_the_switch(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bare sha256 hex, whole file below 16 MiB: what `products.images` holds from before."""
    legacy = scan(small, scheme="sha256").fingerprint
    assert legacy == hashlib.sha256(small.read_bytes()).hexdigest()
    assert fingerprint_scheme(legacy) == "sha256"
    # Above its limit: tag, size, header cards, the same sampled blocks, as before.
    monkeypatch.setattr(structure, "LEGACY_FULL_LIMIT", 0)
    raw = small.read_bytes()
    want = hashlib.sha256(b"contimg-fits-fp1")
    want.update(len(raw).to_bytes(8, "little"))
    want.update(scan(small, fingerprint=False).hdus[0].header_string().encode("ascii"))
    for b in SAMPLED:
        want.update(raw[BLOCK + b * BLOCK : 2 * BLOCK + b * BLOCK])
    assert scan(small, scheme="sha256").fingerprint == want.hexdigest()


def test_gzip_files_hash_every_stored_byte(tmp_path: Path) -> None:
    path = dsa_image(tmp_path / "a.fits.gz", compression="gzip", size=32)
    assert _fp(path) == "xxh3:" + xxhash.xxh3_128(path.read_bytes()).hexdigest()


def test_fingerprint_off_and_unknown_scheme(small: Path) -> None:
    assert scan(small, fingerprint=False).fingerprint == ""
    with pytest.raises(ValueError, match="unknown fingerprint scheme"):
        scan(small, scheme="md5")


# --- whole-file hash: every byte ------------------------------------------------------------


def test_one_changed_byte_anywhere_changes_the_whole_file_hash(small: Path) -> None:
    """Every position of the file, flipped one at a time (the hash over the bytes `scan` reads:
    some flips make the file invalid FITS, which `scan` then rejects before any fingerprint)."""
    raw = small.read_bytes()
    reference = structure._full_fingerprint(io.BytesIO(raw), "xxh3")
    assert reference == _fp(small)
    seen = {reference}
    for offset in range(len(raw)):
        data = bytearray(raw)
        data[offset] ^= 0x01
        seen.add(structure._full_fingerprint(io.BytesIO(bytes(data)), "xxh3"))
    assert len(seen) == len(raw) + 1  # every variant differs from the file and from each other


def test_position_classes_through_scan(small: Path) -> None:
    """The same through `scan`, for valid files: a header card's value, the first data byte, the
    middle of the data, the last byte of the file (the last data block's last byte)."""
    header = small.read_bytes()[:BLOCK]
    card = header.index(b"OBJECT  = 'field-1 '") + len("OBJECT  = 'field-")
    size = small.stat().st_size
    for offset in (card, BLOCK, BLOCK + (size - BLOCK) // 2, size - 1):
        assert _fp(_patched(small, offset)) != _fp(small), offset
    # The first byte: an 'S' changed is no FITS file; no fingerprint is ever made for it.
    with pytest.raises(NotFITSError):
        scan(_patched(small, 0))


def test_same_content_elsewhere_same_fingerprint_appending_changes_it(small: Path) -> None:
    other = small.parent / "elsewhere" / "copy.fits"
    other.parent.mkdir()
    shutil.copyfile(small, other)  # another path, another mtime
    assert _fp(other) == _fp(small)
    with open(other, "ab") as fh:
        fh.write(b"\0" * BLOCK)  # a blank block after the last HDU: ignored by readers
    assert _fp(other) != _fp(small)


def test_the_full_limit_is_inclusive(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = "xxh3:" + xxhash.xxh3_128(small.read_bytes()).hexdigest()
    monkeypatch.setattr(structure, "FINGERPRINT_FULL_LIMIT", small.stat().st_size)
    assert _fp(small) == whole
    monkeypatch.setattr(structure, "FINGERPRINT_FULL_LIMIT", small.stat().st_size - 1)
    assert _fp(small) != whole


# --- sampled scheme: what it covers and its failure mode -------------------------------------


def test_sampled_blocks_are_evenly_spaced_first_and_last_included(sampled: Path) -> None:
    (hdu,) = scan(sampled, fingerprint=False).hdus
    assert -(-hdu.data_size // BLOCK) == NBLOCKS
    assert structure.sampled_blocks(hdu) == SAMPLED


def test_sampled_covers_size_header_cards_and_the_sampled_blocks(sampled: Path) -> None:
    reference = _fp(sampled)
    assert fingerprint_scheme(reference) == "xxh3"
    header = sampled.read_bytes()[:BLOCK]
    card = header.index(b"OBJECT  = 'field-1 '") + len("OBJECT  = 'field-")
    assert _fp(_patched(sampled, card)) != reference
    for b in SAMPLED:
        start = BLOCK + b * BLOCK
        for offset in (start, start + BLOCK // 2, start + BLOCK - 1):
            assert _fp(_patched(sampled, offset)) != reference, (b, offset)
    with open(sampled, "ab") as fh:
        fh.write(b"\0" * BLOCK)  # the size is hashed: appending is seen
    assert _fp(sampled) != reference


def test_sampled_failure_mode_a_byte_outside_the_samples_is_not_seen(
    sampled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stated failure mode: same size, same header cards, a change only in data blocks that
    are not sampled (or in the blank fill after END) leaves the fingerprint as it was."""
    reference = _fp(sampled)
    unsampled = [b for b in range(NBLOCKS) if b not in SAMPLED]
    header = sampled.read_bytes()[:BLOCK]
    after_end = header.index(b"END" + b" " * 77) + 80  # first blank after the END card
    missed = [after_end] + [BLOCK + b * BLOCK + 100 for b in (1, unsampled[len(unsampled) // 2])]
    for offset in missed:
        assert _fp(_patched(sampled, offset, ord("X"))) == reference, offset
    # The whole-file hash, the scheme of files up to the limit, sees each of them.
    monkeypatch.setattr(structure, "FINGERPRINT_FULL_LIMIT", 1 << 30)
    whole = _fp(sampled)
    for offset in missed:
        assert _fp(_patched(sampled, offset, ord("X"))) != whole, offset


# --- comparing stored and fresh values ------------------------------------------------------


def test_comparison_rule_across_schemes(small: Path) -> None:
    new = _fp(small)
    old = scan(small, scheme="sha256").fingerprint
    other = _fp(_patched(small, BLOCK))
    assert compare_fingerprints(new, new) is True
    assert compare_fingerprints(new, other) is False
    assert compare_fingerprints(old, old) is True
    # Different schemes: unknown (re-check in the stored scheme), never "changed".
    assert compare_fingerprints(old, new) is None and compare_fingerprints(new, old) is None
    assert compare_fingerprints(None, new) is None and compare_fingerprints("", new) is None
    assert compare_fingerprints(new, "") is None
    assert fingerprint_scheme("xxh3:" + "0" * 31) is None and fingerprint_scheme("abc") is None
    assert fingerprint_scheme(new + "\n") is None and fingerprint_scheme(new.upper()) is None
    assert compare_fingerprints("not a fingerprint", new) is None
    assert structure.fingerprint_file(small, fingerprint_scheme(old)) == old
