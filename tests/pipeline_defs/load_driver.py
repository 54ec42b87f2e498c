"""Run one partition of `daily_products_job` and print a JSON summary of the outcome.

Run by tests/pipeline_defs/test_scale_load.py, several at once, each in its own interpreter:

    python -m tests.pipeline_defs.load_driver --home DAGSTER_HOME --partition 2025-10-01

The executor is contimg_executor's Celery kind by default (CONTIMG_CELERY_* say where), or the
multiprocess one (`--kind multiprocess`, forkserver), or all steps in this process (`--kind
in_process`, the fault test). With the first two, every step is its own process
(or Celery task) with its own pools, as in production, and the run's orchestrator claims slots
of the `database` pool from the instance's storage before it starts a step: that is what bounds
the connections across runs. One run per interpreter, as the daemon's run launcher does:
Dagster 1.13 can deadlock when one process starts runs in several threads (each run start calls
`logging.config.dictConfig`, which takes the logging locks in the opposite order of a handler
that is emitting another run's events).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import dagster as dg

from pipeline_defs.executors import reconstructable_job


def run_config(kind: str) -> dict[str, Any]:
    execution: dict[str, Any] = {"kind": kind}
    if kind == "multiprocess":
        execution["start_method"] = "forkserver"
    return {
        "execution": {"config": execution},
        "loggers": {"console": {"config": {"log_level": "ERROR"}}},
    }


def _error_chain(error: Any) -> list[dict[str, str]]:
    chain = []
    while error is not None:
        chain.append({"class": error.cls_name or "", "message": error.message or ""})
        error = error.cause
    return chain


def _summary(partition: str, result: dg.ExecuteJobResult, seconds: float) -> dict[str, Any]:
    failures = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            failures.append(
                {
                    "step": event.step_key,
                    "errors": _error_chain(event.step_failure_data.error),
                }
            )
    # A run can also fail outside any step (orchestration, executor): then keep the run's
    # events, so a failed run always says why.
    run_errors = []
    if not result.success and not failures:
        for event in result.all_events:
            data = event.event_specific_data
            error = getattr(data, "error", None)
            run_errors.append(
                {
                    "event": event.event_type_value,
                    "message": (event.message or "")[:300],
                    "errors": _error_chain(error) if error is not None else [],
                }
            )
    return {
        "partition": partition,
        "run_id": result.run_id,
        "success": result.success,
        "seconds": round(seconds, 2),
        "failures": failures,
        "run_errors": run_errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--home", required=True, help="DAGSTER_HOME of the instance to use")
    parser.add_argument("--partition", required=True)
    parser.add_argument(
        "--kind", choices=("celery", "multiprocess", "in_process"), default="celery"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    with dg.DagsterInstance.from_config(args.home) as instance:
        result = dg.execute_job(
            reconstructable_job("daily_products_job"),
            instance=instance,
            run_config=run_config(args.kind),
            tags={"dagster/partition": args.partition},
            raise_on_error=False,
        )
        print(json.dumps(_summary(args.partition, result, time.monotonic() - started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
