"""Real UVH5 files for the tests: one observation written by pyuvdata, clones of it.

pyuvdata's first `UVData.new` in a process costs a few seconds (numba compiles its baseline
helpers, astropy loads its Earth-rotation tables), and ~35 ms per file after that; so one
observation is written with pyuvdata per session, and scenarios that need more files clone
those with `synthetic.clone_subband` (a byte copy whose times are moved with h5py).
Used by tests/resources/hdf5/conftest.py and tests/resources/repositories/test_hdf5.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from resources.hdf5 import synthetic

START = dt.datetime(2025, 10, 5, 12, 0, 0, tzinfo=dt.UTC)

Observation = Callable[..., list[Path]]


def write_templates(directory: Path) -> dict[int, Path]:
    """One complete observation written by pyuvdata at START, no jitter: subband -> path."""
    paths = synthetic.write_observation(directory, START, max_jitter_s=0)
    return {int(p.name.split("_sb")[1][:2]): p for p in paths}


def observation_maker(templates: dict[int, Path], default_dir: Path) -> Observation:
    """make(start, subbands=, max_jitter_s=, seed=, directory=) -> the observation's paths."""

    def make(
        start: dt.datetime = START,
        *,
        subbands: range | list[int] = range(16),
        max_jitter_s: int = 45,
        seed: int = 1,
        directory: Path | None = None,
    ) -> list[Path]:
        out = directory or default_dir
        out.mkdir(parents=True, exist_ok=True)
        offsets = synthetic.jitter_offsets(list(subbands), max_jitter_s, seed)
        paths = []
        for sb in subbands:
            stamp = start + dt.timedelta(seconds=offsets[sb])
            dest = out / synthetic.subband_filename(stamp, sb)
            paths.append(synthetic.clone_subband(templates[sb], dest, stamp))
        return paths

    return make
