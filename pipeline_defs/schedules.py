"""Schedules: yesterday's partition again every morning, for files that arrived late."""

import datetime as dt

import dagster as dg

from pipeline_defs.jobs.products import daily_products_job


@dg.schedule(
    job=daily_products_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    name="daily_products_schedule",
    description="At 02:30 UTC, materializes yesterday's observation day (late files, retries).",
)
def daily_products_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    when = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    yesterday = (when.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    return dg.RunRequest(
        run_key=f"daily:{yesterday}",
        partition_key=yesterday,
        tags={"contimg/trigger": "daily_products_schedule"},
    )
