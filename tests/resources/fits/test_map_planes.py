"""`map_planes`: one read per item for every consumer, item order kept, bad files handed on."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pytest

from resources.fits.pixels import map_planes, pixel_threads
from resources.fits.synthetic import ImageSpec, write_image


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    out = []
    for k in range(7):
        when = dt.datetime(2025, 10, 1, 0, 5 * k, tzinfo=dt.UTC)
        spec = ImageSpec(date_obs=when, dec_deg=16.3, size=32, seed=k)
        out.append(write_image(tmp_path / f"img{k}.fits", spec))
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)  # truncated header
    out.insert(3, bad)
    return out


@pytest.mark.parametrize("threads", [1, 3])
def test_every_consumer_gets_the_one_plane_in_item_order(files: list[Path], threads: int) -> None:
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def first(path: Path, plane: np.ndarray | None, why: str | None) -> tuple[str, float | None]:
        with lock:
            seen.setdefault(str(path), []).append(id(plane))
        return path.name, None if plane is None else float(np.nansum(plane))

    def second(path: Path, plane: np.ndarray | None, why: str | None) -> str | None:
        with lock:
            seen[str(path)].append(id(plane))
        return why

    results, times = map_planes(files, lambda p: (str(p), 0), [first, second], threads=threads)
    assert [r[0][0] for r in results] == [p.name for p in files]
    # both consumers saw the same array object: one read per item
    assert all(len(ids) == 2 and ids[0] == ids[1] for ids in seen.values())
    bad = results[3]
    assert bad[0][1] is None and bad[1] and bad[1].split(":")[0].endswith("Error")
    assert all(r[1] is None for i, r in enumerate(results) if i != 3)
    assert times.planes == 7 and times.unreadable == 1
    assert times.read_s > 0 and len(times.consumers_s) == 2


def test_pixel_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_PIXEL_THREADS", "3")
    assert pixel_threads() == 3
    monkeypatch.setenv("CONTIMG_PIXEL_THREADS", "0")
    assert pixel_threads() >= 1
