"""`contimg cal applylist` through click's CliRunner on real SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import insert

from resources.models.cal_registry import Caltable
from tests.pipeline_defs.cli.catalogue_cli import run


def test_cal_applylist(env) -> None:  # type: ignore[no-untyped-def]
    engines, _ = env
    kinds = {"K": 10, "BP": 30, "GP": 50, "FLUX": 70}
    with engines["cal_registry"].begin() as conn:
        conn.execute(
            insert(Caltable.__table__),
            [
                {
                    "set_name": "s1",
                    "path": f"/cal/s1_{k}",
                    "table_type": k,
                    "apply_order": o,
                    "valid_start_mjd": 60953.0,
                    "valid_end_mjd": 60954.0,
                    "refant": "pad103",
                }
                for k, o in reversed(kinds.items())
            ],
        )
    code, out, _ = run("cal", "applylist", "--mjd", "60953.5")
    assert code == 0 and out.splitlines()[0] == "set s1 applies at MJD 60953.5:"
    assert [line.split()[1] for line in out.splitlines()[2:]] == ["K", "BP", "GP", "FLUX"]
    code, out, _ = run("cal", "applylist", "--mjd", "60953.5", "--json")
    assert [json.loads(x)["apply_order"] for x in out.splitlines()] == [10, 30, 50, 70]
    code, out, _ = run("cal", "applylist", "--mjd", "60000")
    assert code == 0 and "no active calibration tables apply" in out
    code, _, err = run("cal", "applylist", "--mjd", "soon")
    assert code == 2 and len(err.strip().splitlines()) == 1
