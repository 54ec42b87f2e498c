"""Thumbnails: size, mode, determinism, degenerate images, bad shapes, memory, paths, sheets."""

from __future__ import annotations

import datetime as dt
import io
import os
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.visualization import ZScaleInterval
from PIL import Image, ImageDraw, ImageFont

from assets.thumbnails.render import (
    FLAT_VALUE,
    SheetTile,
    _fit_middle,
    block_mean,
    compact_png,
    contact_sheet,
    render_thumbnail,
    thumbnail_relpath,
    write_thumbnail,
    zscale_limits,
)
from resources.errors import ThumbnailError
from tests.assets.synthetic import noise_image


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _open(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


# --- size, mode, determinism ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((1000, 1000), 256, (256, 256)),
        ((500, 2000), 256, (256, 64)),  # (rows, cols) -> PNG (width, height)
        ((3001, 1200), 256, (102, 256)),
        ((100, 50), 256, (128, 256)),  # smaller than the thumbnail: enlarged, aspect kept
        ((5000, 5000), 128, (128, 128)),
        ((1, 7), 256, (256, 37)),
    ],
)
def test_long_side_is_size_and_aspect_is_kept(shape, size, expected) -> None:
    image = _open(render_thumbnail(noise_image(*shape, seed=1, n_sources=1), size=size))
    assert image.size == expected
    assert image.mode == "L"


def test_same_input_gives_identical_bytes_and_no_metadata_chunks() -> None:
    plane = noise_image(1200, seed=2)
    first = render_thumbnail(plane)
    assert render_thumbnail(plane.copy()) == first
    assert render_thumbnail(plane, limits="percentile") == render_thumbnail(
        plane, limits="percentile"
    )
    assert b"tIME" not in first and b"tEXt" not in first


def test_limits_and_stretch_change_the_picture() -> None:
    plane = noise_image(800, seed=3)
    variants = {
        render_thumbnail(plane),
        render_thumbnail(plane, limits="percentile"),
        render_thumbnail(plane, stretch="linear"),
        render_thumbnail(plane, stretch="sqrt"),
    }
    assert len(variants) == 4
    with pytest.raises(ValueError, match="stretch"):
        render_thumbnail(plane, stretch="log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limits"):
        render_thumbnail(plane, limits="minmax")  # type: ignore[arg-type]


def test_north_is_up() -> None:
    """FITS row 0 is the bottom of the sky image; the PNG's first row is its top."""
    plane = np.zeros((512, 512), dtype=np.float32)
    plane += np.random.default_rng(4).normal(0, 0.01, plane.shape).astype(np.float32)
    plane[-128:] += 5.0  # bright band at the highest rows (north)
    pixels = np.asarray(_open(render_thumbnail(plane, stretch="linear", limits="percentile")))
    assert pixels[:32].mean() > 200
    assert pixels[-32:].mean() < 50


# --- degenerate pixels ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plane", "value"),
    [
        (np.zeros((700, 700), dtype=np.float32), FLAT_VALUE),
        (np.full((300, 900), 42.0), FLAT_VALUE),
        (np.full((700, 700), np.nan, dtype=np.float32), 0),
        (np.full((40, 40), np.inf), 0),
        (np.full((100, 100), 7, dtype=np.int16), FLAT_VALUE),
    ],
    ids=["all-zero", "constant", "all-nan", "all-inf", "constant-int"],
)
def test_degenerate_planes_render_flat_without_warnings(plane: np.ndarray, value: int) -> None:
    pixels = np.asarray(_open(render_thumbnail(plane)))
    assert np.unique(pixels).tolist() == [value]


def test_nan_region_is_drawn_with_the_fixed_value() -> None:
    plane = noise_image(1024, seed=5)
    plane[:, :512] = np.nan  # west half blank
    pixels = np.asarray(_open(render_thumbnail(plane, nan_value=255, limits="percentile")))
    assert (pixels[:, :120] == 255).all()
    assert pixels[:, 136:].std() > 10  # the finite half keeps its noise texture


def test_block_mean_ignores_blank_pixels() -> None:
    rng = np.random.default_rng(6)
    plane = rng.normal(size=(40, 30))
    plane[rng.random(plane.shape) < 0.3] = np.nan
    plane[:5, :5] = np.nan  # one block entirely blank
    got = block_mean(plane, 5)
    assert got.shape == (8, 6)
    blocks = plane.reshape(8, 5, 6, 5).transpose(0, 2, 1, 3).reshape(8, 6, 25)
    for i in range(8):
        for j in range(6):
            finite = blocks[i, j][np.isfinite(blocks[i, j])]
            if finite.size:
                assert got[i, j] == pytest.approx(finite.mean())
            else:
                assert np.isnan(got[i, j])


def test_zscale_matches_astropy() -> None:
    values = noise_image(300, seed=7).ravel().astype(np.float64)
    assert zscale_limits(values) == pytest.approx(ZScaleInterval().get_limits(values), rel=1e-9)


# --- bad shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plane", "fragment"),
    [
        (np.arange(100, dtype=np.float32), "1-D"),
        (np.empty((0, 100)), "empty"),
        (np.zeros((2, 50, 50)), "3-D"),
        (np.array([["a"]]), "not numeric"),
    ],
    ids=["1-D", "empty", "real cube", "strings"],
)
def test_undrawable_arrays_raise_thumbnail_error_with_reason(plane, fragment) -> None:
    with pytest.raises(ThumbnailError, match=fragment) as info:
        render_thumbnail(plane, source="/data/obs/x.fits")
    assert info.value.path == "/data/obs/x.fits"


def test_degenerate_leading_axes_are_dropped() -> None:
    plane = noise_image(300, seed=8)
    assert render_thumbnail(plane[None, None]) == render_thumbnail(plane)


# --- large images ------------------------------------------------------------------------------


def test_8192_square_memmap_renders_within_a_memory_bound(tmp_path: Path) -> None:
    n = 8192
    cube = np.lib.format.open_memmap(
        tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(n, n)
    )
    rng = np.random.default_rng(9)
    for r0 in range(0, n, 1024):
        cube[r0 : r0 + 1024] = rng.standard_normal((1024, n), dtype=np.float32)
    cube[:700] = np.nan  # a blanked edge exercises the NaN-aware path
    cube[4000, 4000] = 500.0
    cube.flush()
    del cube
    plane = np.load(tmp_path / "big.npy", mmap_mode="r")  # 256 MB on disk, not in the heap
    tracemalloc.start()
    try:
        png = render_thumbnail(plane)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"8192^2 memmap thumbnail: peak traced temporaries {peak / 2**20:.1f} MB")
    assert peak < 64 * 2**20, f"peak temporaries {peak / 2**20:.1f} MB"
    image = _open(png)
    assert image.size == (256, 256)
    # The blanked rows (the bottom 700 of 8192, ~22 px in the thumbnail) are the fixed value.
    assert (np.asarray(image)[-20:] == 0).all()


# --- paths and writing -------------------------------------------------------------------------


def test_relpath_is_by_date_and_unique_per_full_path() -> None:
    a = thumbnail_relpath("2025-10-05", "/data/a/2025-10-05T01:02:03.img.fits")
    b = thumbnail_relpath("2025-10-05", "/data/b/2025-10-05T01:02:03.img.fits")
    assert a.parent == Path("2025-10-05") and not a.is_absolute()
    assert a.name.startswith("2025-10-05T01_02_03.img-") and a.suffix == ".png"
    assert a != b and a.name.split("-")[-1] != b.name.split("-")[-1]
    assert a == thumbnail_relpath(
        dt.date(2025, 10, 5), Path("/data/a/../a/2025-10-05T01:02:03.img.fits")
    )
    assert thumbnail_relpath("2025-10-05", "/x/field.fits.fz").name.startswith("field-")
    with pytest.raises(ThumbnailError, match="not YYYY-MM-DD"):
        thumbnail_relpath("05/10/25", "/x/field.fits")


def test_write_is_atomic_and_idempotent(tmp_path: Path) -> None:
    png = render_thumbnail(noise_image(300, seed=10))
    dest = tmp_path / "thumbs" / "2025-10-05" / "x-abc.png"
    assert write_thumbnail(png, dest) is True
    assert dest.read_bytes() == png
    stamp = dest.stat().st_mtime_ns
    assert write_thumbnail(png, dest) is False
    assert dest.stat().st_mtime_ns == stamp
    other = render_thumbnail(noise_image(300, seed=11))
    assert write_thumbnail(other, dest) is True and dest.read_bytes() == other
    assert sorted(os.listdir(dest.parent)) == ["x-abc.png"]  # no temp files left behind


def test_write_into_an_unwritable_place_is_a_thumbnail_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ThumbnailError, match="cannot write"):
        write_thumbnail(b"png", blocker / "x.png")


# --- contact sheet ------------------------------------------------------------------------------


def test_contact_sheet_grid_labels_and_size() -> None:
    tiles = [
        (f"2025-10-05T{h:02d}:00 field {h}", render_thumbnail(noise_image(400, 600, seed=h)))
        for h in range(14)
    ]
    png = contact_sheet(tiles)
    sheet = _open(png)
    assert sheet.mode == "L"
    # 12 tiles max, 4 columns x 3 rows of (128 + 4) x (128 + 14 + 4) cells plus a 4 px margin.
    assert sheet.size == (4 * 132 + 4, 3 * 146 + 4)
    assert contact_sheet(tiles) == png
    print(f"contact sheet of 12 noise thumbnails: {len(png)} bytes")
    assert len(png) < 250_000
    small = _open(contact_sheet(tiles[:3], columns=4, tile=64))
    assert small.size == (3 * 68 + 4, 64 + 14 + 4 + 4)


def test_contact_sheet_empty_and_bad_tiles() -> None:
    assert _open(contact_sheet([])).size[0] > 0
    with pytest.raises(ThumbnailError, match="tile 7"):
        contact_sheet([("tile 7", b"not a png")])


def test_contact_sheet_keeps_time_and_dec_strip_and_draws_grades() -> None:
    thumb = render_thumbnail(noise_image(200, seed=3))
    tiles = [
        SheetTile("2025-10-01T02:00:00_dec+16.3", thumb, badge="FAIL", caption="dynamic range 8.2 < 10"),
        SheetTile("02:05:00 dec+54.6", thumb, badge="GOOD"),
    ]  # fmt: skip
    sheet = _open(contact_sheet(tiles, tile=96))
    # a caption adds a second text line to every cell
    assert sheet.size == (2 * 100 + 4, 96 + 2 * 14 + 4 + 4)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    label = _fit_middle(draw, font, "2025-10-01T02:00:00_dec+16.3", 96)
    assert label.startswith("2025") and label.endswith("dec+16.3") and "…" in label
    # the badge is a black box in the tile's top-left corner, with white text in it
    corner = np.asarray(sheet)[4:16, 4:30]
    assert (corner[0] == 0).all() and corner.max() > 200
    plain = np.asarray(_open(contact_sheet([("a", thumb)], tile=96)))[4:16, 4:30]
    assert not (plain[0] == 0).all()  # no badge: the thumbnail itself


def test_compact_png_is_a_small_palette_png() -> None:
    tiles = [(f"t{i}", render_thumbnail(noise_image(300, seed=i))) for i in range(4)]
    full = contact_sheet(tiles)
    small = compact_png(full, colors=16)
    image = _open(small)
    assert image.mode == "P" and image.size == _open(full).size
    assert len(image.getcolors()) <= 16
    assert len(small) < 0.75 * len(full)
    with pytest.raises(ValueError):
        compact_png(full, colors=1)
    with pytest.raises(ThumbnailError):
        compact_png(b"not a png")


def test_compact_png_of_a_drawn_picture_equals_that_of_its_png() -> None:
    """A plot's preview is quantized from the picture as drawn: the same bytes as from its PNG
    (which is lossless), without the decode."""
    from assets.sources.plots import eta_v_image
    from assets.stats.plot import png_bytes

    picture = eta_v_image([(2.0, 0.3, True), (0.5, 0.05, False)], eta_cut=1, v_cut=0.1, title="t")
    assert compact_png(picture, colors=32) == compact_png(png_bytes(picture), colors=32)
    assert _open(compact_png(picture, colors=32)).mode == "P"
