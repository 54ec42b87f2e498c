"""`contimg init-home` and `contimg demo`: the embedded default, end to end."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from pipeline_defs.cli.output import exit_with, fail, print_table, sample_day_options
from pipeline_defs.instance import (
    PROFILES,
    apply_pool_limits,
    ensure_dagster_home,
    storage_lock,
)
from resources.errors import ContimgError
from resources.settings import (
    DATABASE_NAMES,
    dagster_home,
    data_dir,
    incoming_dirs,
    thumbnail_dir,
)

if TYPE_CHECKING:
    from resources.database import Databases


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
    try:
        home = ensure_dagster_home(profile)
    except ContimgError as exc:
        fail(exc)
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

    The sample images show one field again and again, with a known sky of steady, variable and
    transient sources (`contimg sample-data --sky`; its truth in sky_truth.csv beside them), so
    the summary ends with the sources found and the top variable candidates.

    Every run is a real Dagster run of the job `daily_products_job`, recorded in DAGSTER_HOME
    under the code location `contimg`: `make ui` afterwards shows them under the job, with their
    metadata, the contact sheets and the asset checks.
    """
    from dagster import DagsterInstance

    from migrations import runner
    from pipeline_defs.definitions import build_definitions
    from resources.database import Databases
    from resources.fits.synthetic import generate_sample_data

    first = start
    try:
        home = ensure_dagster_home()
    except ContimgError as exc:
        fail(exc)
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
        # One field again and again, with a known sky: the demo ends with light curves.
        files = generate_sample_data(incoming, days=days, start=first, per_day=per_day, sky=True)
        click.echo(f"sample data   {len(files)} files written to {incoming}")
    else:
        click.echo(f"sample data   {incoming} is not empty; using what is there")
    job = build_definitions().resolve_job_def("daily_products_job")
    with storage_lock(home):  # creates a fresh home's storage once (pipeline_defs/instance.py)
        instance = DagsterInstance.get()
    ok = True
    for day in _days(first, days):
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            raise_on_error=False,
            # Files that cannot be catalogued are a table in the summary below, not log lines.
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        state = "success" if result.success else "FAILED"
        ok = ok and result.success
        click.echo(f"run           {day}: {state} (run id {result.run_id})")
    _summary(dbs, _days(first, days))
    if not ok:
        exit_with(1)


#: The demo's summary fits a terminal this wide (the message column is clipped to fit).
SUMMARY_WIDTH = 100


def _summary(dbs: Databases, days: list[dt.date]) -> None:
    """Two tables: QA grades per day, then every file that could not be catalogued and why;
    then the sources found (`_sources_summary`) and where to look next.

    Kept apart because they count different things: a `fail` grade is an image that was
    catalogued and judged bad, a failed file never became an image (not FITS, a broken header,
    no observation date...). Files that failed before a date could be read belong to no day, and
    are listed with the others (day `no date`).
    """
    from resources.repositories import ingest as ingest_queue
    from resources.repositories.products import qa_details_of_day

    grades_table: list[tuple[str, ...]] = []
    failed: list[ingest_queue.QueueRow] = []
    with dbs.connect("products") as products, dbs.connect("ingest") as ingest:
        for day in days:
            rows = qa_details_of_day(products, day)
            grades = [sum(1 for r in rows if r.grade == g) for g in ("good", "warn", "fail")]
            grades_table.append((day.isoformat(), *(str(n) for n in (len(rows), *grades))))
            failed += ingest_queue.failed_rows(ingest, obs_date=day, limit=None)
        failed += ingest_queue.failed_without_date(ingest)
    click.echo("\nQA grades of the catalogued images")
    print_table(("day", "images", "good", "warn", "fail"), grades_table, align="<>>>>")
    click.echo(f"\nfiles that could not be catalogued: {len(failed)}")
    if failed:
        cells = [
            (
                row.name,
                row.obs_date.isoformat() if row.obs_date else "no date",
                row.error_class or "-",
                row.short_error(),
            )
            for row in failed
        ]
        fixed = sum(max(len(c[i]) for c in [*cells, ("file", "day", "error")]) for i in range(3))
        room = max(20, SUMMARY_WIDTH - fixed - 3 * 2)
        print_table(
            ("file", "day", "error", "message"),
            [(*c[:3], c[3] if len(c[3]) <= room else c[3][: room - 1] + "…") for c in cells],
        )
        click.echo("(`contimg queue --failed` lists them at any time)")
    _sources_summary(dbs)
    click.echo(f"\nthumbnails    {thumbnail_dir()}")
    click.echo("the UI        make ui   (then open http://127.0.0.1:3000)")


#: The demo's variable candidates: `contimg sources list --min-eta DEMO_MIN_ETA --min-v
#: DEMO_MIN_V`. η of a steady source is about 1 (about 2 with the errors the correlated noise
#: makes too small: docs/sources.md), V about 1/SNR; a 50 % modulation at SNR 20 is far above both.
DEMO_MIN_ETA = 10.0
DEMO_MIN_V = 0.1
DEMO_CANDIDATES = 5


def _sources_summary(dbs: Databases) -> None:
    """What the source assets found, in a few lines: how many measurements became how many
    sources, the top variable candidates (the rows `contimg sources list` prints for the same
    cuts) and the command that shows one of them, so that a first user sees where to go next."""
    from resources.repositories.products import SourceFilter, list_sources

    with dbs.connect("products") as conn:
        everything, _ = list_sources(conn, SourceFilter(sort="id", limit=None))
        flt = SourceFilter(
            min_eta=DEMO_MIN_ETA, min_v=DEMO_MIN_V, sort="eta", limit=DEMO_CANDIDATES
        )
        top, more = list_sources(conn, flt)
    blind = sum(int(s["n_meas"]) - int(s["n_meas_forced"]) for s in everything)
    forced = sum(int(s["n_meas_forced"]) for s in everything)
    repeated = sum(1 for s in everything if int(s["n_meas"]) > 1)
    click.echo(
        f"\nsources       {len(everything)} from {blind} detections and {forced} forced fits; "
        f"{repeated} measured more than once"
    )
    command = f"contimg sources list --min-eta {DEMO_MIN_ETA:g} --min-v {DEMO_MIN_V:g}"
    if not top:
        click.echo(f"no variable candidates (`{command}`)")
        return
    shown = f"top {len(top)}" if more else str(len(top))
    click.echo(f"variable candidates ({shown}; `{command}`):")
    print_table(
        ("ID", "NAME", "FLUX_INT mJy", "N_MEAS", "V_INT", "ETA_INT", "NEW"),
        [
            (
                str(s["id"]),
                s["name"],
                f"{s['avg_flux_int']:.2f}",
                str(s["n_meas"]),
                f"{s['v_int']:.3f}",
                f"{s['eta_int']:.1f}",
                "yes" if s["new"] else "-",
            )
            for s in top
        ],
        align="><>>>><",
    )
    click.echo(f"light curve   contimg sources show {top[0]['id']}   (--png FILE for a plot)")


COMMANDS: list[click.Command] = [init_home, demo]
