"""`contimg queue` through click's CliRunner on real SQLite and PostgreSQL."""

from __future__ import annotations

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
