"""The day's lineage table of the catalogue's page, on the scenario's real files and databases."""

from __future__ import annotations

from pathlib import Path

from assets.ms.lineage import UNKNOWN, day_lineage, image_lineage
from resources.database import Databases
from resources.ms.registration import scan_ms
from tests.assets.ms import scenario


def test_day_lineage_links_what_is_known(dbs: Databases, tmp_path: Path) -> None:
    files = scenario.write_files(tmp_path / "files")
    scenario.register_upstream(dbs, files)
    scenario.add_image(dbs, "orphan.fits")
    assert day_lineage(dbs, scenario.DAY)[:2] == (0, 3)  # nothing indexed yet

    scan_ms(dbs.engine("products"), [files.ms])
    linked, total, table = day_lineage(dbs, scenario.DAY)
    assert (linked, total) == (2, 3)
    rows = [line for line in table.splitlines() if line.startswith("| ") and ".fits" in line]
    assert len(rows) == 3
    stamp = scenario.START.strftime(scenario.STAMP)
    assert sum(f"| {stamp}.ms | imaged | {stamp} (missing 7) |" in r for r in rows) == 2
    (orphan_row,) = [r for r in rows if "orphan.fits" in r]
    assert orphan_row.count(UNKNOWN) == 4

    lineage = image_lineage(dbs, None)
    assert lineage.ms is None and all(line.endswith(UNKNOWN) for line in lineage.lines())
