"""`contimg init-home` and `contimg demo`: the embedded default, end to end."""

from __future__ import annotations

import datetime as dt

import click

from pipeline_defs.cli.output import exit_with, fail, print_table, sample_day_options
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
        fail(exc)
    for pool, limit in limits.items():
        click.echo(f"pool {pool}: {'no limit' if limit is None else f'limit {limit}'}")


def _days(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


@click.command("demo")
@sample_day_options(max_days=31)
def demo(days: int, start: dt.date, per_day: int) -> None:
    """Migrate, write sample images (if the incoming dir is empty) and run the daily pipeline.

    Every run is a real Dagster run recorded in DAGSTER_HOME: open `dagster dev` afterwards
    (`make ui`) to see them, their metadata, the contact sheets and the asset checks.
    """
    from dagster import DagsterInstance

    from migrations import runner
    from pipeline_defs.definitions import build_definitions
    from resources.database import Databases
    from resources.fits.synthetic import generate_sample_data

    first = start
    home = ensure_dagster_home()
    click.echo(f"data dir      {data_dir()}\nDAGSTER_HOME  {home}")
    dbs = Databases.from_env()
    try:
        for name in DATABASE_NAMES:
            result = runner.upgrade(name, dbs.url(name), backup=False)
            click.echo(f"migrate       {result.message}")
    except ContimgError as exc:
        fail(exc)
    incoming = incoming_dirs()[0]
    if not any(incoming.rglob("*")) if incoming.exists() else True:
        files = generate_sample_data(incoming, days=days, start=first, per_day=per_day)
        click.echo(f"sample data   {len(files)} files written to {incoming}")
    else:
        click.echo(f"sample data   {incoming} is not empty; using what is there")
    job = build_definitions().resolve_job_def("daily_products_job")
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
        exit_with(1)


def _summary(dbs, days: list[dt.date]) -> None:  # type: ignore[no-untyped-def]
    from resources.repositories import ingest as ingest_queue
    from resources.repositories.products import qa_of_day

    click.echo("")
    table: list[tuple[str, ...]] = []
    for day in days:
        with dbs.connect("products") as conn:
            rows = qa_of_day(conn, day)
        failed = ingest_queue.counts(dbs.engine("ingest"), obs_date=day)["failed"]
        grades = {g: sum(1 for r in rows if r.grade == g) for g in ("good", "warn", "fail")}
        table.append((day.isoformat(), *(str(n) for n in (len(rows), *grades.values(), failed))))
    # Fixed minimum widths and no separator: the layout `make demo` has always printed.
    print_table(
        ("day", "images", "good", "warn", "fail", "failed files"),
        table,
        align="<>>>>>",
        min_widths=(12, 7, 6, 6, 6, 14),
        sep="",
    )
    undated = ingest_queue.counts(dbs.engine("ingest"))["failed"] - sum(
        ingest_queue.counts(dbs.engine("ingest"), obs_date=d)["failed"] for d in days
    )
    if undated:
        click.echo(f"{undated} more files failed before a date could be read (`contimg queue`)")
    click.echo(f"\nthumbnails    {thumbnail_dir()}")
    click.echo("the UI        make ui   (then open http://127.0.0.1:3000)")


COMMANDS: list[click.Command] = [init_home, demo]
