"""`run_failure_sensor`: one log line per failed run of this code location, in one place.

Each line names the job, the run id, every failing step and the exception class it raised (with
the first line of its message, masked), so an operator scanning the sensor's tick log sees what
broke without opening each run. A run that failed before any step did (a crashed run worker, a
bad config) is logged with the run failure message instead.

No `from __future__ import annotations` here: Dagster inspects the sensor signature at import.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from resources.secrets import mask_text

SENSOR_NAME = "run_failure_sensor"
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class StepFailure:
    """The failing step of a run and what it raised."""

    step_key: str
    error_class: str
    message: str

    def describe(self) -> str:
        return f"step {self.step_key} raised {self.error_class}: {self.message}"


def _first_line(text: str) -> str:
    stripped = mask_text(text).strip()
    line = stripped.splitlines()[0] if stripped else ""
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def step_failures(events: Sequence[dg.DagsterEvent]) -> list[StepFailure]:
    """Step keys and exception classes from a run's STEP_FAILURE events."""
    out: list[StepFailure] = []
    for event in events:
        data = event.event_specific_data
        error = getattr(data, "error", None)
        out.append(
            StepFailure(
                step_key=event.step_key or "?",
                error_class=error.cls_name if error is not None and error.cls_name else "unknown",
                message=_first_line(error.message if error is not None else event.message or ""),
            )
        )
    return out


def failure_report(
    job_name: str, run_id: str, failures: Sequence[StepFailure], run_message: str | None
) -> str:
    """The one log line for a failed run."""
    head = f"run {run_id} of job {job_name} failed"
    if failures:
        keys = ", ".join(f.step_key for f in failures)
        classes = ", ".join(dict.fromkeys(f.error_class for f in failures))
        details = "; ".join(f.describe() for f in failures)
        return f"{head}: failing step(s) [{keys}], exception class(es) [{classes}]: {details}"
    return f"{head} before any step failed: {_first_line(run_message or 'no message')}"


@dg.run_failure_sensor(
    name=SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run of this code location with its failing steps and their "
    "exception classes, so failures can be read in one place.",
)
def run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    failures = step_failures(context.get_step_failure_events())
    context.log.error(
        failure_report(run.job_name, run.run_id, failures, context.failure_event.message)
    )


__all__ = ["StepFailure", "failure_report", "run_failure_sensor", "step_failures"]
