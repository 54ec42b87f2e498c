"""The broken-files table of `fits_metadata` fits a 1440 px wide UI: short cells only."""

from __future__ import annotations

from assets.catalogue.definitions import FAILURE_ROWS, MESSAGE_CHARS, failure_table, short_message
from assets.catalogue.ingest import FileFailure

PATH = "/data/incoming/very/deep/directory/tree/2025-10-01T02:00:00_dec+16.3.fits"


def test_failure_cells_are_short() -> None:
    failure = FileFailure(PATH, "FITSParsingError", f"{PATH}: header card 12 is not ASCII\nmore")
    assert (
        short_message(failure) == "2025-10-01T02:00:00_dec+16.3.fits: header card 12 is not ASCII"
    )
    long = FileFailure(PATH, "OSError", "x" * 500)
    assert len(short_message(long)) == MESSAGE_CHARS
    table = failure_table([failure] * (FAILURE_ROWS + 5))
    assert len(table.records) == FAILURE_ROWS
    assert [c.name for c in table.schema.columns] == ["file", "error", "message"]
    assert table.records[0].data["file"] == "2025-10-01T02:00:00_dec+16.3.fits"
    assert "/data/incoming" not in str(table.records[0].data)
