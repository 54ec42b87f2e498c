"""`map_planes`: one read per item for every consumer, item order kept, bad files handed on."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from resources.errors import ConfigurationError
from resources.fits import pixels
from resources.fits.pixels import map_planes, pixel_threads, warm_pool
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


# --- worker processes (CONTIMG_PIXEL_POOL, holds_gil) ------------------------------------


def _location(path: Path) -> tuple[str, int]:
    return str(path), 0


def _sum_and_pid(path: Path, plane: np.ndarray | None, why: str | None) -> tuple:
    return path.name, None if plane is None else float(np.nansum(plane)), os.getpid(), why


def _die_on_third(path: Path, plane: np.ndarray | None, why: str | None) -> tuple:
    """Kills its worker process (as the OOM killer would) on img2, once per test: the marker
    file says it already happened."""
    marker = path.parent / "killed"
    if (
        path.name == "img2.fits"
        and not marker.exists()
        and os.getpid() != int((path.parent / "parent").read_text())
    ):
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    return _sum_and_pid(path, plane, why)


@pytest.fixture
def fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No pool left by another test, and processes for the passes that hold the GIL."""
    monkeypatch.setenv("CONTIMG_PIXEL_POOL", "auto")
    pixels._drop_pool()
    yield
    pixels._drop_pool()


def _pass_in_a_child(files: list[Path]) -> None:
    results, _ = map_planes(files, _location, [_sum_and_pid], threads=2, holds_gil=True)
    assert {r[0][2] for r in results} == {os.getpid()}  # on threads: no pool to wait for


def test_a_multiprocessing_child_with_a_pool_exits(files: list[Path], fresh_pool: None) -> None:
    """A step process of the multiprocess executor is a multiprocessing child: it joins its
    children when it ends, before a pool's workers are stopped, so it must not start any (it
    never exited when it did)."""
    child = multiprocessing.get_context("spawn").Process(target=_pass_in_a_child, args=(files,))
    child.start()
    child.join(timeout=120)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def test_a_pass_that_holds_the_gil_runs_on_worker_processes_with_the_same_results(
    files: list[Path], fresh_pool: None
) -> None:
    on_threads, _ = map_planes(files, _location, [_sum_and_pid], threads=2)
    on_processes, times = map_planes(files, _location, [_sum_and_pid], threads=2, holds_gil=True)
    assert [r[0][:2] for r in on_processes] == [r[0][:2] for r in on_threads]
    assert on_processes[3][0][3] is not None  # the bad file is handed on with its reason
    assert {r[0][2] for r in on_threads} == {os.getpid()}
    assert os.getpid() not in {r[0][2] for r in on_processes}
    assert times.planes == 7 and times.unreadable == 1


def test_the_pool_setting_overrides_and_a_bad_value_is_refused(
    files: list[Path], fresh_pool: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTIMG_PIXEL_POOL", "threads")
    results, _ = map_planes(files, _location, [_sum_and_pid], threads=2, holds_gil=True)
    assert {r[0][2] for r in results} == {os.getpid()}
    monkeypatch.delenv("CONTIMG_PIXEL_POOL")  # the default: auto
    results, _ = map_planes(files, _location, [_sum_and_pid], threads=2, holds_gil=True)
    assert os.getpid() not in {r[0][2] for r in results}
    results, _ = map_planes(files, _location, [_sum_and_pid], threads=2)  # releases the GIL
    assert {r[0][2] for r in results} == {os.getpid()}
    monkeypatch.setenv("CONTIMG_PIXEL_POOL", "processes")
    results, _ = map_planes(files, _location, [_sum_and_pid], threads=2)
    assert os.getpid() not in {r[0][2] for r in results}
    monkeypatch.setenv("CONTIMG_PIXEL_POOL", "fork")
    with pytest.raises(ConfigurationError, match="CONTIMG_PIXEL_POOL"):
        map_planes(files, _location, [_sum_and_pid], threads=2)


def test_a_killed_worker_leaves_the_pass_to_threads_and_nothing_is_lost(
    files: list[Path], fresh_pool: None
) -> None:
    (files[0].parent / "parent").write_text(str(os.getpid()))
    results, times = map_planes(files, _location, [_die_on_third], threads=2, holds_gil=True)
    assert (files[0].parent / "killed").exists()  # a worker did die
    assert [r[0][0] for r in results] == [p.name for p in files]
    assert times.planes == 7 and times.unreadable == 1
    # and the next pass gets a new pool
    again, _ = map_planes(files, _location, [_sum_and_pid], threads=2, holds_gil=True)
    assert os.getpid() not in {r[0][2] for r in again}


def _join_warm_up() -> None:
    for thread in threading.enumerate():
        if thread.name == "pixel-pool-warm-up":
            thread.join(timeout=120)


def test_warm_pool_starts_the_workers_the_pass_then_uses(
    files: list[Path], fresh_pool: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTIMG_PIXEL_POOL", "threads")
    warm_pool(2, [__name__])
    _join_warm_up()
    assert pixels._POOL == {}  # a pass on threads needs no workers
    monkeypatch.setenv("CONTIMG_PIXEL_POOL", "auto")
    warm_pool(2, [__name__])
    _join_warm_up()
    pool = pixels._POOL[2]
    workers = set(pool._processes)
    assert len(workers) == 2
    results, _ = map_planes(files, _location, [_sum_and_pid], threads=2, holds_gil=True)
    assert pixels._POOL[2] is pool
    assert {r[0][2] for r in results} <= workers


def test_a_process_kept_on_threads_starts_no_workers(
    files: list[Path], fresh_pool: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Celery pool process (pipeline_defs/celery_worker.py) runs its passes on threads,
    whatever the setting: Celery's processes are the parallelism."""
    monkeypatch.setattr(pixels, "_THREADS_ONLY", None)
    monkeypatch.setenv("CONTIMG_PIXEL_POOL", "processes")
    pixels.keep_passes_on_threads("a test")
    warm_pool(2, [__name__])
    _join_warm_up()
    results, _ = map_planes(files, _location, [_sum_and_pid], threads=2, holds_gil=True)
    assert {r[0][2] for r in results} == {os.getpid()}
    assert pixels._POOL == {}


def _setting(path: Path, plane: np.ndarray | None, why: str | None) -> str | None:
    return os.environ.get("CONTIMG_TEST_WHERE")


def test_workers_see_the_environment_of_each_pass(
    files: list[Path], fresh_pool: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool is kept between passes: a setting changed since it started must reach them."""
    monkeypatch.setenv("CONTIMG_TEST_WHERE", "first")
    one, _ = map_planes(files, _location, [_setting], threads=2, holds_gil=True)
    monkeypatch.setenv("CONTIMG_TEST_WHERE", "second")
    two, _ = map_planes(files, _location, [_setting], threads=2, holds_gil=True)
    monkeypatch.delenv("CONTIMG_TEST_WHERE")
    three, _ = map_planes(files, _location, [_setting], threads=2, holds_gil=True)
    assert {r[0] for r in one} == {"first"} and {r[0] for r in two} == {"second"}
    assert {r[0] for r in three} == {None}
