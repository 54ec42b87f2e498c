"""What one day of measurement sets amounts to: stages, failures, the three calibration checks.

Plain code (no Dagster), so the asset's metadata, its checks and `contimg ms list` describe a day
the same way. The inputs come from two databases (products: the MSs; cal_registry: what applies,
what was applied, the overlaps of active sets), gathered by `assets.ms.lineage.gather_day`; the
verdicts are computed here from plain values.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from resources.models.products import MS_STAGES
from resources.ms.reader import datetime_to_mjd
from resources.repositories.cal_registry import Overlap
from resources.repositories.products import MsFailureRow, MsRecord

#: Rows of the markdown tables (the CLI lists everything; the UI needs a readable page).
TABLE_ROWS = 100


def day_mjd_range(day: dt.date) -> tuple[float, float]:
    """[start, end) of a UTC day in MJD."""
    mjd = datetime_to_mjd(dt.datetime.combine(day, dt.time(), dt.UTC))
    return mjd, mjd + 1.0


def describe_overlap(o: Overlap) -> str:
    """One overlap in a sentence: the type, both sets and both windows."""
    (a0, a1), (b0, b1) = o.first_window, o.second_window
    return (
        f"{o.table_type}: active sets {o.first_set} (MJD {a0:.4f}..{a1:.4f}) and "
        f"{o.second_set} (MJD {b0:.4f}..{b1:.4f}) overlap"
    )


@dataclass(frozen=True)
class MsDay:
    """A day's MSs, their failures, and the calibration facts the checks judge."""

    day: dt.date
    sets: list[MsRecord]
    failures: list[MsFailureRow]
    #: MS path -> the set that applies at its mid-time (None: none applies).
    applicable: dict[str, str | None] = field(default_factory=dict)
    #: MS path -> the retired calibration tables recorded as applied to it.
    retired_applied: dict[str, list[str]] = field(default_factory=dict)
    #: Overlapping active sets whose overlap touches this day.
    overlaps: list[Overlap] = field(default_factory=list)

    @property
    def stages(self) -> dict[str, int]:
        counts = Counter(m.stage for m in self.sets)
        return {stage: counts.get(stage, 0) for stage in MS_STAGES}

    @property
    def without_calibration(self) -> list[MsRecord]:
        return [m for m in self.sets if self.applicable.get(m.path) is None]

    @property
    def images(self) -> int:
        return sum(m.n_images for m in self.sets)

    def calibration_check(self) -> tuple[bool, str]:
        """Every MS of the day has an applicable calibration set."""
        missing = self.without_calibration
        if not self.sets:
            return True, f"{self.day.isoformat()}: no measurement sets"
        if not missing:
            return True, f"{self.day.isoformat()}: all {len(self.sets)} MSs have a calibration set"
        names = ", ".join(m.path.rsplit("/", 1)[-1] for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        return False, (
            f"{self.day.isoformat()}: {len(missing)} of {len(self.sets)} MSs have no applicable "
            f"calibration set: {names}{more}"
        )

    def retired_check(self) -> tuple[bool, str]:
        """No retired calibration table was applied to an MS of the day."""
        if not self.retired_applied:
            return True, f"{self.day.isoformat()}: no retired calibration table applied"
        ms, tables = next(iter(sorted(self.retired_applied.items())))
        return False, (
            f"{self.day.isoformat()}: retired tables applied to {len(self.retired_applied)} MSs, "
            f"e.g. {ms.rsplit('/', 1)[-1]}: {', '.join(tables)}"
        )

    def overlap_check(self) -> tuple[bool, str]:
        """No two active sets of one type overlap in validity over this day."""
        if not self.overlaps:
            return True, f"{self.day.isoformat()}: no overlapping active calibration sets"
        return False, f"{self.day.isoformat()}: " + "; ".join(
            describe_overlap(o) for o in self.overlaps[:3]
        )


def ms_markdown(sets: Sequence[MsRecord], applicable: dict[str, str | None]) -> str:
    """The day's MSs as a markdown table: name, stage, group, spw/channels, set, images."""
    if not sets:
        return "No measurement sets."
    lines = [
        "| MS | stage | subband group | spw | channels | calibration | images |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for m in sets[:TABLE_ROWS]:
        cal = m.cal_set_name or (
            f"applicable: {applicable[m.path]}" if applicable.get(m.path) else "none"
        )
        lines.append(
            f"| {m.path.rsplit('/', 1)[-1]} | {m.stage} | {m.hdf5_group or 'unknown'} | "
            f"{m.n_spw if m.n_spw is not None else '-'} | "
            f"{m.n_channels if m.n_channels is not None else '-'} | {cal} | {m.n_images} |"
        )
    if len(sets) > TABLE_ROWS:
        lines.append(f"\n{len(sets) - TABLE_ROWS} more: `contimg ms list --date ...`")
    return "\n".join(lines)


def failures_markdown(failures: Sequence[MsFailureRow]) -> str:
    """The unreadable MS directories as a markdown table (name, error class, message)."""
    if not failures:
        return "No unreadable measurement sets."
    lines = ["| MS | error | message |", "|---|---|---|"]
    for f in failures[:TABLE_ROWS]:
        message = f.error.removeprefix(f.path + ": ").replace("|", "\\|")
        lines.append(f"| {f.path.rsplit('/', 1)[-1]} | {f.error_class} | {message} |")
    if len(failures) > TABLE_ROWS:
        lines.append(f"\n{len(failures) - TABLE_ROWS} more: `contimg ms failed --date ...`")
    return "\n".join(lines)
