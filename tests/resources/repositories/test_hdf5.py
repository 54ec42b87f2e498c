"""The hdf5 repository on a migrated SQLite database: the files of one observation group."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from resources.models.hdf5 import Hdf5File, parse_hdf5_name
from resources.repositories import hdf5
from tests.resources.repositories.catalogue_data import migrated


def test_files_of_group_in_subband_order(data_dir: Path) -> None:
    engine = migrated("hdf5", f"sqlite:///{data_dir / 'hdf5.sqlite3'}")
    rows = []
    for name, group in (
        ("2025-10-05T12:00:01_sb02.hdf5", "2025-10-05T12:00:00"),
        ("2025-10-05T12:00:00_sb00.hdf5", "2025-10-05T12:00:00"),
        ("2025-10-05T12:05:00_sb00.hdf5", "2025-10-05T12:05:00"),
    ):
        parsed = parse_hdf5_name(name)
        rows.append(
            {
                "path": f"/raw/{name}",
                "filename": name,
                "subband": parsed.subband,
                "timestamp_iso": parsed.timestamp_iso,
                "timestamp": parsed.timestamp,
                "mjd": parsed.mjd,
                "group_id": group,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Hdf5File.__table__), rows)
    with engine.connect() as conn:
        assert hdf5.files_of_group(conn, "2025-10-05T12:00:00") == [
            "/raw/2025-10-05T12:00:00_sb00.hdf5",
            "/raw/2025-10-05T12:00:01_sb02.hdf5",
        ]
        assert hdf5.files_of_group(conn, "nope") == []
    engine.dispose()
