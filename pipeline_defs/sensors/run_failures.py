"""`run_failure_sensor`: one log line per failed run of the instance, in one place.

Each line names the job, the run id, every failing step and the exception class it raised (with
the first line of its message, masked), so an operator scanning the sensor's tick log sees what
broke without opening each run. A run that failed before any step did (a crashed run worker, a
bad config) is logged with the run failure message instead.

No `from __future__ import annotations` here: Dagster inspects the sensor signature at import.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


def _user_error(error: Any) -> Any:
    """The exception the step's code raised, not Dagster's wrapper around it.

    `error` is Dagster's SerializableErrorInfo (cls_name, message, cause).

    Dagster records an exception raised in an op as `DagsterExecutionStepExecutionError` (and
    similar `Dagster...Error` wrappers for IO managers and resources) whose `cause` is the
    user's exception.
    """
    while error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    return error


def _message(error: Any) -> str:
    # `message` is traceback's "module.Class: text" line; keep the text.
    text = error.message or ""
    head, sep, rest = text.partition(": ")
    if sep and error.cls_name and head.endswith(error.cls_name):
        text = rest
    return _first_line(text)


def step_failures(events: Sequence[dg.DagsterEvent]) -> list[StepFailure]:
    """Step keys and the classes of the exceptions they raised, from STEP_FAILURE events."""
    out: list[StepFailure] = []
    for event in events:
        error = getattr(event.event_specific_data, "error", None)
        if error is None or not hasattr(error, "cls_name"):
            out.append(
                StepFailure(event.step_key or "?", "unknown", _first_line(event.message or ""))
            )
            continue
        error = _user_error(error)
        message = _message(error)
        if error.cause is not None and error.cause.cls_name:
            message += f" (caused by {error.cause.cls_name})"
        out.append(StepFailure(event.step_key or "?", error.cls_name or "unknown", message))
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
    # Every run of the instance, not only those filed under `contimg`: a run queued under another
    # location name (a CLI pointed at the module instead of the workspace) fails to start, and
    # that is exactly the failure an operator must hear about.
    monitor_all_code_locations=True,
    description="Logs every failed run of this Dagster instance (whatever code location it was "
    "filed under) with its failing steps and their exception classes, so failures can be read "
    "in one place.",
)
def run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    failures = step_failures(context.get_step_failure_events())
    context.log.error(
        failure_report(run.job_name, run.run_id, failures, context.failure_event.message)
    )


__all__ = ["StepFailure", "failure_report", "run_failure_sensor", "step_failures"]
