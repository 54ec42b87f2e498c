"""A run worker to kill: executes a one-op job in this process against DAGSTER_HOME's instance.

The op prints `started <run id>` and blocks reading stdin, so a test can SIGKILL the process
while its run is STARTED (what a killed `dg launch` or a run of a `dg dev` killed with
`kill -9` leaves behind). Closing stdin instead lets the run finish normally.
"""

import sys

import dagster as dg


@dg.op
def wait_for_stdin(context: dg.OpExecutionContext) -> None:
    print(f"started {context.run_id}", flush=True)
    sys.stdin.read()


@dg.job(executor_def=dg.in_process_executor)
def blocking_job() -> None:
    wait_for_stdin()


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(blocking_job), instance=instance)
    return 0 if result.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
