"""`contimg init-home` and `contimg demo`: the embedded default, end to end."""

from __future__ import annotations

import datetime as dt
import sys

import click

from pipeline_defs.instance import PROFILES, apply_pool_limits, ensure_dagster_home
from resources.errors import ContimgError
from resources.settings import (
    DATABASE_NAMES,
    dagster_home,
    data_dir,
    incoming_dirs,
    thumbnail_dir,
)


@click.command("init-home")
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default="embedded",
    show_default=True,
    help="embedded: SQLite under DAGSTER_HOME; production: PostgreSQL storage from DAGSTER_PG_* "
    "variables, queued runs, the `database` pool (docs/ops/scaling.md).",
)
def init_home(profile: str) -> None:
    """Create DAGSTER_HOME (default <data dir>/dagster_home) with contimg's dagster.yaml, and its
    storage with the pool limits applied (run it again after editing the limits)."""
    existed = (dagster_home() / "dagster.yaml").exists()
    home = ensure_dagster_home(profile)
    if existed:
        click.echo(f"kept the existing {home / 'dagster.yaml'} (remove it to write a new one)")
    click.echo(f"DAGSTER_HOME={home}")
    try:
        limits = apply_pool_limits(home)
    except ContimgError as exc:
        raise click.ClickException(str(exc)) from exc
    for pool, limit in limits.items():
        click.echo(f"pool {pool}: {'no limit' if limit is None else f'limit {limit}'}")


def _days(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


@click.command("demo")
@click.option("--days", default=3, show_default=True, type=click.IntRange(1, 31))
@click.option(
    "--start",
    default="2025-10-01",
    show_default=True,
    help="First observation day of the sample data.",
)
@click.option("--per-day", default=12, show_default=True, type=click.IntRange(1, 288))
def demo(days: int, start: str, per_day: int) -> None:
    """Migrate, write sample images (if the incoming dir is empty) and run the daily pipeline.

    Every run is a real Dagster run recorded in DAGSTER_HOME: open `dagster dev` afterwards
    (`make ui`) to see them, their metadata, the contact sheets and the asset checks.
    """
    from dagster import DagsterInstance

    from migrations import runner
    from pipeline_defs.definitions import defs
    from resources.database import Databases
    from resources.fits.synthetic import generate_sample_data

    try:
        first = dt.date.fromisoformat(start)
    except ValueError:
        raise click.BadParameter(
            f"expected YYYY-MM-DD, got {start!r}", param_hint="--start"
        ) from None
    home = ensure_dagster_home()
    click.echo(f"data dir      {data_dir()}\nDAGSTER_HOME  {home}")
    dbs = Databases.from_env()
    try:
        for name in DATABASE_NAMES:
            result = runner.upgrade(name, dbs.url(name), backup=False)
            click.echo(f"migrate       {result.message}")
    except ContimgError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    incoming = incoming_dirs()[0]
    if not any(incoming.rglob("*")) if incoming.exists() else True:
        files = generate_sample_data(incoming, days=days, start=first, per_day=per_day)
        click.echo(f"sample data   {len(files)} files written to {incoming}")
    else:
        click.echo(f"sample data   {incoming} is not empty; using what is there")
    job = defs.resolve_job_def("daily_products_job")
    instance = DagsterInstance.get()
    ok = True
    for day in _days(first, days):
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        state = "success" if result.success else "FAILED"
        ok = ok and result.success
        click.echo(f"run           {day}: {state} (run id {result.run_id})")
    _summary(dbs, _days(first, days))
    if not ok:
        sys.exit(1)


def _summary(dbs, days: list[dt.date]) -> None:  # type: ignore[no-untyped-def]
    from resources import ingest_queue
    from resources.repositories.images import qa_of_day

    click.echo("")
    click.echo(f"{'day':<12}{'images':>7}{'good':>6}{'warn':>6}{'fail':>6}{'failed files':>14}")
    for day in days:
        with dbs.connect("products") as conn:
            rows = qa_of_day(conn, day)
        failed = ingest_queue.counts(dbs.engine("ingest"), obs_date=day)["failed"]
        grades = {g: sum(1 for r in rows if r.grade == g) for g in ("good", "warn", "fail")}
        click.echo(
            f"{day.isoformat():<12}{len(rows):>7}{grades['good']:>6}{grades['warn']:>6}"
            f"{grades['fail']:>6}{failed:>14}"
        )
    undated = ingest_queue.counts(dbs.engine("ingest"))["failed"] - sum(
        ingest_queue.counts(dbs.engine("ingest"), obs_date=d)["failed"] for d in days
    )
    if undated:
        click.echo(f"{undated} more files failed before a date could be read (`contimg queue`)")
    click.echo(f"\nthumbnails    {thumbnail_dir()}")
    click.echo("the UI        make ui   (then open http://127.0.0.1:3000)")


COMMANDS: list[click.Command] = [init_home, demo]
