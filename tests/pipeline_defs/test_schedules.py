"""daily_products_schedule: yesterday's observation day, once per scheduled time."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from assets.partitions import DAILY_PARTITIONS
from pipeline_defs.definitions import build_definitions
from pipeline_defs.schedules import daily_products_schedule

defs = build_definitions()


def evaluate(when: dt.datetime) -> dg.RunRequest:
    with dg.build_schedule_context(scheduled_execution_time=when) as context:
        result = daily_products_schedule(context)
    assert isinstance(result, dg.RunRequest)
    return result


@pytest.mark.parametrize(
    ("when", "partition"),
    [
        (dt.datetime(2025, 10, 6, 2, 30, tzinfo=dt.UTC), "2025-10-05"),
        (dt.datetime(2025, 1, 2, 2, 30, tzinfo=dt.UTC), "2025-01-01"),  # the first partition
        (dt.datetime(2024, 3, 1, 2, 30, tzinfo=dt.UTC), "2024-02-29"),  # leap day
        # 19:30 on 5 Oct in Los Angeles is 02:30 UTC on the 6th: the UTC day decides
        (
            dt.datetime(2025, 10, 5, 19, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
            "2025-10-05",
        ),
    ],
)
def test_yesterdays_partition(when: dt.datetime, partition: str) -> None:
    request = evaluate(when)
    assert request.partition_key == partition
    assert request.run_key == f"daily:{partition}"
    assert request.tags["contimg/trigger"] == "daily_products_schedule"


def test_requested_partition_exists_and_schedule_is_wired() -> None:
    request = evaluate(dt.datetime(2025, 10, 6, 2, 30, tzinfo=dt.UTC))
    assert request.partition_key in DAILY_PARTITIONS.get_partition_keys(
        current_time=dt.datetime(2025, 10, 6, 2, 30, tzinfo=dt.UTC)
    )
    schedule = defs.resolve_schedule_def("daily_products_schedule")
    assert schedule.job_name == "daily_products_job"
    assert schedule.execution_timezone == "UTC"
    assert schedule.cron_schedule == "30 2 * * *"
    # two consecutive ticks ask for two consecutive days, never the same one twice
    first = evaluate(dt.datetime(2025, 10, 6, 2, 30, tzinfo=dt.UTC))
    second = evaluate(dt.datetime(2025, 10, 7, 2, 30, tzinfo=dt.UTC))
    assert (first.partition_key, second.partition_key) == ("2025-10-05", "2025-10-06")
    assert first.run_key != second.run_key
