"""The chain an operator asks about: image → measurement set → subband group → calibration.

Each link lives in another database (products: images and `ms_index`; hdf5: the subband groups;
cal_registry: the tables applied), so no query can join them: this module follows the links
one database at a time, for one image (`image_lineage`, which `contimg images show` prints) or
for a day (`gather_day`, what the `measurement_sets` asset and its checks see). A link that is
not known is `None`, printed "unknown": an image whose MS is not indexed, an MS whose name names
no subband group, an MS without a calibration record. Plain code over `Databases`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from assets.hdf5.summary import subband_list
from assets.ms.summary import TABLE_ROWS, MsDay, day_mjd_range
from resources.database import Databases
from resources.errors import ContimgError
from resources.hdf5.grouping import SubbandGroup
from resources.repositories import cal_registry, hdf5
from resources.repositories import products as repo
from resources.repositories.cal_registry import AppliedRecord
from resources.repositories.products import MsRecord

UNKNOWN = "unknown"
_LINKS = ("measurement set:  ", "subband group:    ", "calibration:      ")


@dataclass(frozen=True)
class Lineage:
    """One image's upstream chain; each link None when unknown."""

    ms: MsRecord | None = None
    group: SubbandGroup | None = None
    applied: list[AppliedRecord] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What `contimg images show` prints, one link per line."""
        ms = self.ms
        if ms is None:
            return [f"{link}{UNKNOWN}" for link in _LINKS]
        shape = f"stage {ms.stage}, {ms.n_spw} spw, {ms.n_channels} channels"
        lines = [f"{_LINKS[0]}{ms.path} ({shape})"]
        if self.group is not None:
            g = self.group
            state = (
                "complete"
                if g.complete
                else f"incomplete, missing subbands {subband_list(g.missing)}"
            )
            lines.append(f"subband group:    {g.group_id} ({g.n_files} files, {state})")
        else:
            named = f" (named {ms.hdf5_group}, not registered)" if ms.hdf5_group else ""
            lines.append(f"subband group:    {UNKNOWN}{named}")
        if self.applied:
            sets = sorted({a.set_name for a in self.applied})
            tables = ", ".join(
                f"{a.table_type} {a.path.rsplit('/', 1)[-1]}"
                + (" (RETIRED)" if a.status == "retired" else "")
                for a in self.applied
            )
            lines.append(f"calibration:      set {', '.join(sets)}: {tables}")
        else:
            lines.append(f"calibration:      {UNKNOWN}")
        return lines

    def to_dict(self) -> dict[str, object]:
        """The JSON form (`contimg images show --json`): None for an unknown link."""
        return {
            "ms": self.ms.to_dict() if self.ms is not None else None,
            "subband_group": self.group.to_dict() if self.group is not None else None,
            "calibration": [
                {
                    "path": a.path,
                    "table_type": a.table_type,
                    "set_name": a.set_name,
                    "status": a.status,
                    "applied_at": a.applied_at.isoformat() if a.applied_at else None,
                }
                for a in self.applied
            ]
            or None,
        }


def _group_date(group_id: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(group_id[:10])
    except ValueError:
        return None


def groups_by_id(dbs: Databases, group_ids: Sequence[str | None]) -> dict[str, SubbandGroup]:
    """The registered subband groups with these ids (one query per observation day)."""
    wanted = {g for g in group_ids if g}
    days = {d for d in map(_group_date, wanted) if d is not None}
    engine = dbs.engine("hdf5")
    found: dict[str, SubbandGroup] = {}
    for day in sorted(days):
        for group in hdf5.day_groups(engine, day):
            if group.group_id in wanted:
                found[group.group_id] = group
    return found


def image_lineage(dbs: Databases, ms_id: int | None) -> Lineage:
    """The chain of one image (its `images.ms_id`), following each link that is known."""
    if ms_id is None:
        return Lineage()
    with dbs.connect("products") as conn:
        ms = repo.get_ms(conn, ms_id)
    return ms_lineage(dbs, ms) if ms is not None else Lineage()


def ms_lineage(dbs: Databases, ms: MsRecord) -> Lineage:
    """The chain from an MS on: its subband group (hdf5) and the tables applied to it
    (cal_registry); what `image_lineage` and `contimg ms show` both follow."""
    group = groups_by_id(dbs, [ms.hdf5_group]).get(ms.hdf5_group or "")
    applied = cal_registry.applied_to(dbs.engine("cal_registry"), [ms.path]).get(ms.path, [])
    return Lineage(ms, group, applied)


def sync_calibration(dbs: Databases, sets: Sequence[MsRecord]) -> list[MsRecord]:
    """Copy the calibration set recorded in cal_registry onto each MS's `cal_set_name` (and
    its stage); returns the MSs as they are afterwards. The registry is the record; the copy
    lets `contimg ms list --stage calibrated` answer from one database."""
    applied = cal_registry.applied_to(dbs.engine("cal_registry"), [m.path for m in sets])
    changed = False
    with dbs.begin("products") as conn:
        for m in sets:
            names = [a.set_name for a in applied.get(m.path, [])]
            if repo.calibration_label(names) != m.cal_set_name:
                repo.set_ms_calibration(conn, m.path, names)
                changed = True
    if not changed:
        return list(sets)
    with dbs.connect("products") as conn:
        refreshed = {m.path: m for m in (repo.get_ms(conn, s.id) for s in sets) if m is not None}
    return [refreshed.get(s.path, s) for s in sets]


def gather_day(dbs: Databases, day: dt.date) -> MsDay:
    """A day's MSs (calibration synced), failures, and the facts the three checks judge."""
    with dbs.connect("products") as conn:
        sets = repo.list_ms(conn, obs_date=day)
        failures = repo.ms_failures(conn, day)
    sets = sync_calibration(dbs, sets)
    cal = dbs.engine("cal_registry")
    applicable: dict[str, str | None] = {}
    with cal.connect() as conn:
        for m in sets:
            tables = (
                cal_registry.active_caltables_at(conn, m.mid_mjd) if m.mid_mjd is not None else []
            )
            applicable[m.path] = tables[0].set_name if tables else None
    applied = cal_registry.applied_to(cal, [m.path for m in sets])
    retired = {
        path: [a.path.rsplit("/", 1)[-1] for a in records if a.status == "retired"]
        for path, records in applied.items()
    }
    lo, hi = day_mjd_range(day)
    overlaps = [
        o
        for o in cal_registry.overlapping_active_sets(cal)
        if max(o.first_window[0], o.second_window[0]) < hi
        and min(o.first_window[1], o.second_window[1]) > lo
    ]
    return MsDay(
        day,
        sets,
        failures,
        applicable=applicable,
        retired_applied={p: t for p, t in retired.items() if t},
        overlaps=overlaps,
    )


def day_lineage(dbs: Databases, day: dt.date) -> tuple[int, int, str]:
    """(images of the day linked to an MS, images of the day, a markdown table of the chain).

    What the catalogue's page shows per day. The subband groups are read from the hdf5
    database; when it cannot be read the table says so instead of failing the catalogue, whose
    own work does not depend on it.
    """
    with dbs.connect("products") as conn:
        rows = repo.ms_lineage_of_day(conn, day)
    linked = sum(1 for r in rows if r["ms_path"] is not None)
    if not rows:
        return 0, 0, "No images."
    note = ""
    try:
        groups = groups_by_id(dbs, [r["hdf5_group"] for r in rows])
    except (SQLAlchemyError, ContimgError) as exc:
        groups = {}
        note = f"\n\nSubband groups unavailable: {type(exc).__name__}."
    lines = [
        "| image | measurement set | stage | subband group | calibration |",
        "|---|---|---|---|---|",
    ]
    for r in rows[:TABLE_ROWS]:
        group = groups.get(r["hdf5_group"] or "")
        if group is not None:
            state = "complete" if group.complete else f"missing {subband_list(group.missing)}"
            group_cell = f"{group.group_id} ({state})"
        else:
            group_cell = UNKNOWN
        lines.append(
            f"| {r['image_path'].rsplit('/', 1)[-1]} | "
            f"{r['ms_path'].rsplit('/', 1)[-1] if r['ms_path'] else UNKNOWN} | "
            f"{r['stage'] or UNKNOWN} | {group_cell} | {r['cal_set_name'] or UNKNOWN} |"
        )
    if len(rows) > TABLE_ROWS:
        lines.append(f"\n{len(rows) - TABLE_ROWS} more: `contimg images show PATH`")
    return linked, len(rows), "\n".join(lines) + note
