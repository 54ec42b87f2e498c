"""Real measurement sets written once per session by pyuvdata (resources.ms.synthetic).

Writing a set costs ~0.2-0.5 s after a one-off ~4 s pyuvdata import, so the sets tests only
read are shared; a test that changes a set copies it first (`copy_ms`).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from resources.ms import synthetic

START = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)


@dataclass(frozen=True)
class WrittenSets:
    """The shared sets and how each was written (what the summaries must say)."""

    #: 16 subbands x 4 channels in one spectral window, 3 antennas, 2 integrations, Dec +16.3.
    plain: Path
    #: Subbands 0, 3 and 15 as three spectral windows of 8 channels, 3 integrations, Dec -30.5,
    #: named `custom.ms` (no group id).
    per_spw: Path
    #: Subbands 0 and 1 with a CORRECTED_DATA column, an hour after START.
    calibrated: Path


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> WrittenSets:
    root = tmp_path_factory.mktemp("ms")
    return WrittenSets(
        plain=synthetic.write_ms(root / "plain", START),
        per_spw=synthetic.write_ms(
            root / "per_spw",
            START,
            subbands=[15, 0, 3],
            dec_deg=-30.5,
            n_channels=8,
            n_times=3,
            spw_per_subband=True,
            name="custom.ms",
        ),
        calibrated=synthetic.write_ms(
            root / "calibrated", START + dt.timedelta(hours=1), subbands=(0, 1), calibrated=True
        ),
    )


@pytest.fixture
def copy_ms(tmp_path: Path) -> Callable[..., Path]:
    """Copy a shared set into this test's tmp_path (to damage or edit it)."""

    def copy(source: Path, name: str | None = None) -> Path:
        return Path(shutil.copytree(source, tmp_path / (name or source.name)))

    return copy
