"""`contimg queue` through click's CliRunner on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re

from resources.repositories import ingest as ingest_queue
from tests.pipeline_defs.cli.catalogue_cli import run


def test_queue_and_retry_failed(env) -> None:  # type: ignore[no-untyped-def]
    engines, _ = env
    eng = engines["ingest"]
    ingest_queue.register_files(
        eng, [ingest_queue.FileRecord(f"/in/{i}.fits", 1, i) for i in range(5)]
    )
    rows = ingest_queue.claim(eng, limit=3, worker="w1")
    ingest_queue.mark_failed(eng, rows[0].path, "NotFITSError", "no SIMPLE card")
    ingest_queue.mark_failed(eng, rows[1].path, "NotFITSError", "no SIMPLE card")
    code, out, _ = run("queue", "--stuck-minutes", "0")
    assert code == 0
    assert "pending      2" in out and "failed       2" in out and "in_progress  1" in out
    assert "oldest pending: /in/3.fits" in out
    assert "stuck (in_progress > 0 min): 1" in out and rows[2].path in out
    assert "NotFITSError: no SIMPLE card" in out
    code, out, _ = run("queue")
    assert "stuck (in_progress > 30 min): 0" in out

    code, out, _ = run("queue", "--retry-failed", input="n\n")
    assert code == 0 and "retry aborted; nothing changed" in out
    assert ingest_queue.counts(eng)["failed"] == 2
    code, out, _ = run("queue", "--retry-failed", input="y\n")
    assert "Move 2 failed row(s) back to pending?" in out and "moved 2 failed row(s)" in out
    assert ingest_queue.counts(eng)["failed"] == 0 and ingest_queue.counts(eng)["pending"] == 4
    code, out, _ = run("queue", "--retry-failed", "--yes")
    assert code == 0 and "no failed rows to retry" in out


def _failed_queue(eng) -> None:  # type: ignore[no-untyped-def]
    ingest_queue.register_files(
        eng,
        [
            ingest_queue.FileRecord("/in/junk.fits", 1, 1),
            ingest_queue.FileRecord("/in/2025-10-05/cut.fits", 1, 2, dt.date(2025, 10, 5)),
            ingest_queue.FileRecord("/in/ok.fits", 1, 3, dt.date(2025, 10, 5)),
        ],
    )
    for path, error_class, message in (
        ("/in/junk.fits", "NotFITSError", "/in/junk.fits: no SIMPLE card. Check the file."),
        ("/in/2025-10-05/cut.fits", "TruncatedFITSError", "x" * 200),
    ):
        ingest_queue.transition(eng, path, "pending", "in_progress")
        ingest_queue.mark_failed(eng, path, error_class, message)


def test_queue_failed_lists_name_class_and_message(env) -> None:  # type: ignore[no-untyped-def]
    engines, _ = env
    _failed_queue(engines["ingest"])
    code, out, _ = run("queue")
    assert code == 0
    assert "failed: 2 (1 before a date could be read); details: `contimg queue --failed`" in out
    assert "/in/junk.fits  NotFITSError: no SIMPLE card. Check the file. (attempts 1)" in out

    code, out, err = run("queue", "--failed")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["DAY", "FILE", "ERROR", "MESSAGE"]
    assert len(rows) == 2
    junk = next(r for r in rows if "junk.fits" in r)
    assert re.split(r"\s{2,}", junk) == [
        "no date",
        "junk.fits",
        "NotFITSError",
        "no SIMPLE card. Check the file.",
    ]
    cut = next(r for r in rows if "cut.fits" in r)
    assert cut.startswith("2025-10-05") and "TruncatedFITSError" in cut
    assert cut.endswith("…") and len(cut.split("TruncatedFITSError", 1)[1].strip()) == 70
    assert "/in/" not in out  # names, not paths: the path is in --json

    code, out, _ = run("queue", "--failed", "--date", "2025-10-05")
    assert code == 0 and len(out.splitlines()) == 2 and "cut.fits" in out

    code, out, _ = run("queue", "--failed", "--json", "--limit", "1")
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 1
    assert set(lines[0]) == {
        "path", "name", "obs_date", "error_class", "message", "attempts", "failed_at",
    }  # fmt: skip
    code, out, _ = run("queue", "--failed", "--json")
    by_name = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert by_name["junk.fits"] == {
        **by_name["junk.fits"],
        "path": "/in/junk.fits",
        "obs_date": None,
        "error_class": "NotFITSError",
        "message": "no SIMPLE card. Check the file.",
    }

    code, out, _ = run("queue", "--json")
    summary = json.loads(out)
    assert summary["counts"]["failed"] == 2 and summary["failed_without_date"] == 1
    assert {r["name"] for r in summary["failed"]} == {"junk.fits", "cut.fits"}

    code, _, err = run("queue", "--failed", "--retry-failed")
    assert code == 2 and err.startswith("error: --retry-failed cannot be combined")


def test_queue_failed_when_none(env) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run("queue", "--failed")
    assert code == 0 and out.strip() == "no failed files"
