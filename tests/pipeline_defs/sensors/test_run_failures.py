"""run_failure_sensor: a real failed run in an ephemeral instance, logged with step and class."""

from __future__ import annotations

import logging

import dagster as dg

from pipeline_defs.sensors.run_failures import (
    StepFailure,
    failure_report,
    run_failure_sensor,
)
from tests.pipeline_defs.sensors.support import ListHandler


class BeamTableCorruptError(RuntimeError):
    """A class name the sensor can only know from the failed step's error."""


@dg.op
def read_beam_table() -> int:
    raise BeamTableCorruptError("beam table row 7 is garbage (password=hunter2)")


@dg.op
def fine() -> int:
    return 1


@dg.job
def beam_job() -> None:
    read_beam_table()
    fine()


def _evaluate(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> ListHandler:
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    )
    handler = ListHandler()
    context.log.addHandler(handler)
    run_failure_sensor(context)
    return handler


def test_failed_run_is_logged_with_step_key_and_exception_class() -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = beam_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success

    log = _evaluate(instance, result)
    errors = log.messages(logging.ERROR)
    assert len(errors) == 1, log.messages()
    line = errors[0]
    assert f"run {result.run_id} of job beam_job failed" in line
    assert "failing step(s) [read_beam_table]" in line
    assert "exception class(es) [BeamTableCorruptError]" in line
    assert "beam table row 7 is garbage" in line
    assert "hunter2" not in line  # messages are masked
    assert "fine" not in line.split(":", 1)[1].split("]")[0]  # a successful step is not listed


def test_run_that_failed_before_any_step_is_still_reported() -> None:
    line = failure_report("some_job", "abc123", [], "Run worker crashed\nTraceback ...")
    assert line == "run abc123 of job some_job failed before any step failed: Run worker crashed"


def test_several_failing_steps_are_all_named() -> None:
    failures = [
        StepFailure("a", "ValueError", "bad"),
        StepFailure("b", "ValueError", "worse"),
        StepFailure("c", "MigrationError", "no"),
    ]
    line = failure_report("j", "r", failures, None)
    assert "failing step(s) [a, b, c]" in line
    assert "exception class(es) [ValueError, MigrationError]" in line
    assert "step c raised MigrationError: no" in line


def test_the_sensor_watches_failures_of_this_code_location() -> None:
    assert run_failure_sensor.name == "run_failure_sensor"
    assert run_failure_sensor.default_status == dg.DefaultSensorStatus.RUNNING
