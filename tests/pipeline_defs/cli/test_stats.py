"""`contimg stats` through click's CliRunner on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

from resources.repositories.products import upsert_daily_stats
from tests.pipeline_defs.cli.catalogue_cli import run


def test_stats_ranges(env) -> None:  # type: ignore[no-untyped-def]
    engines, _ = env
    with engines["products"].begin() as conn:
        for k in range(4):
            upsert_daily_stats(
                conn,
                {
                    "obs_date": dt.date(2025, 10, 1 + k),
                    "n_images": 864,
                    "n_good": 800,
                    "n_warn": 50,
                    "n_fail": 10,
                    "rms_median_jy": 6e-4,
                    "images_per_dec_strip": {},
                },
            )
    code, out, _ = run("stats")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["DAY", "IMAGES"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        f"2025-10-0{d}" for d in (1, 2, 3, 4)
    ]
    code, out, _ = run("stats", "--from", "2025-10-02", "--to", "2025-10-03", "--json")
    days = [json.loads(x) for x in out.splitlines()]
    assert [d["obs_date"] for d in days] == ["2025-10-02", "2025-10-03"]
    assert days[0]["n_good"] == 800 and days[0]["rms_median_jy"] == 6e-4
    assert "0.600" in run("stats", "--from", "2025-10-04")[1]
    code, _, err = run("stats", "--from", "2025-10-04", "--to", "2025-10-01")
    assert code == 2 and "after" in err and len(err.strip().splitlines()) == 1
