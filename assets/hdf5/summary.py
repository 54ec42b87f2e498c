"""What one day of subband groups amounts to: counts, the incomplete groups, the check's verdict.

Plain code (no Dagster), so the asset's metadata, its check and `contimg hdf5 groups` describe a
day the same way; the groups themselves come from `resources.repositories.hdf5`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from resources.hdf5.grouping import SubbandGroup
from resources.repositories.hdf5 import FailureRow

#: Share of a day's groups that must be complete for the check to pass (issue 20).
MIN_COMPLETE_FRACTION = 0.95
#: Rows of the markdown tables: the CLI lists every group, the UI needs a readable page.
TABLE_ROWS = 100


def subband_list(numbers: Sequence[int]) -> str:
    """Subband numbers as compact ranges (`0-6,8-15`); `-` for none.

    A table cell of 16 numbers would be the widest of the page; the ranges read at a glance.
    """
    if not numbers:
        return "-"
    ordered = sorted(set(numbers))
    runs: list[str] = []
    first = last = ordered[0]
    for value in ordered[1:]:
        if value == last + 1:
            last = value
            continue
        runs.append(f"{first}" if first == last else f"{first}-{last}")
        first = last = value
    runs.append(f"{first}" if first == last else f"{first}-{last}")
    return ",".join(runs)


@dataclass(frozen=True)
class DaySummary:
    """A day's groups and unreadable files, and the verdict of the completeness check."""

    day: dt.date
    groups: list[SubbandGroup]
    failures: list[FailureRow]
    min_complete_fraction: float = MIN_COMPLETE_FRACTION

    @property
    def complete(self) -> int:
        return sum(1 for g in self.groups if g.complete)

    @property
    def incomplete_groups(self) -> list[SubbandGroup]:
        return [g for g in self.groups if not g.complete]

    @property
    def complete_fraction(self) -> float:
        """Share of complete groups; 1.0 for a day without groups (nothing is incomplete)."""
        return self.complete / len(self.groups) if self.groups else 1.0

    @property
    def passed(self) -> bool:
        return self.complete_fraction >= self.min_complete_fraction

    @property
    def files(self) -> int:
        return sum(g.n_files for g in self.groups)

    def check_description(self) -> str:
        """One line for the check's result: the share against the limit, or why it is empty."""
        if not self.groups:
            return f"{self.day.isoformat()}: no subband groups"
        verdict = "at least" if self.passed else "below"
        return (
            f"{self.day.isoformat()}: {self.complete} of {len(self.groups)} groups complete "
            f"({self.complete_fraction:.1%}), {verdict} {self.min_complete_fraction:.0%}"
        )


def incomplete_markdown(groups: Sequence[SubbandGroup], limit: int = TABLE_ROWS) -> str:
    """The incomplete groups as a markdown table (group, files, missing, duplicates)."""
    if not groups:
        return "No incomplete groups."
    lines = [
        "| group | files | missing | duplicates |",
        "|---|---:|---|---|",
        *(
            f"| {g.group_id} | {g.n_files} | {subband_list(g.missing)} | "
            f"{subband_list(g.duplicates)} |"
            for g in groups[:limit]
        ),
    ]
    if len(groups) > limit:
        lines.append(f"\n{len(groups) - limit} more: `contimg hdf5 groups --date ... --incomplete`")
    return "\n".join(lines)


def failures_markdown(failures: Sequence[FailureRow], limit: int = TABLE_ROWS) -> str:
    """The unreadable files as a markdown table (file, error class, message without the path)."""
    if not failures:
        return "No unreadable files."
    lines = ["| file | error | message |", "|---|---|---|"]
    for f in failures[:limit]:
        message = f.error.replace(f.path, "").lstrip(": ").replace("|", "\\|")
        lines.append(f"| {f.filename} | {f.error_class} | {message} |")
    if len(failures) > limit:
        lines.append(f"\n{len(failures) - limit} more: `contimg hdf5 failed --date ...`")
    return "\n".join(lines)
