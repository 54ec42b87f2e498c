"""Which executor runs the steps, chosen when a run starts (not when the code location loads).

One executor definition, `contimg_executor`, serves the embedded default and a Celery cluster:
it reads `CONTIMG_EXECUTOR` (and the Celery settings) at run start and delegates to Dagster's own
`in_process_executor` (the default: no process start per step; measured against multiprocess
with spawn and with forkserver in docs/performance.md, "The user's path") /
`multiprocess_executor` or to dagster-celery's `celery_executor`. So
switching to Celery workers is a change of environment, not of code, and the Definitions stay
one object (docs/ops/scaling.md). Run config may override every setting per run:

    execution:
      config:
        kind: celery
        broker: redis://broker.example:6379/0
        queue: contimg

The variables and their defaults: docs/configuration.md ("Executor and production instance").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg

from resources.engines import release_connections
from resources.errors import ConfigurationError
from resources.settings import SETTINGS, env_int, env_str

# The registry's choices: the same vocabulary for the variable and for run config.
KINDS: tuple[str, ...] = SETTINGS["CONTIMG_EXECUTOR"].choices
DEFAULT_BROKER: str = SETTINGS["CONTIMG_CELERY_BROKER"].default
DEFAULT_QUEUE: str = SETTINGS["CONTIMG_CELERY_QUEUE"].default
START_METHODS: tuple[str, ...] = SETTINGS["CONTIMG_MP_START_METHOD"].choices

# Dagster's own default for both executors: retries enabled (a step may request a retry).
_RETRIES = {"enabled": {}}


def _opt(config: Mapping[str, Any], key: str) -> Any:
    value = config.get(key)
    return None if value in (None, "") else value


def executor_kind(config: Mapping[str, Any] | None = None) -> str:
    """The executor of a run: run config `kind`, else CONTIMG_EXECUTOR, else in_process."""
    raw = _opt(config or {}, "kind") or env_str("CONTIMG_EXECUTOR")
    kind = str(raw).strip().lower().replace("-", "_")
    if kind not in KINDS:
        raise ConfigurationError(
            "CONTIMG_EXECUTOR", f"unknown executor {raw!r}; expected one of {', '.join(KINDS)}"
        )
    return kind


def celery_settings(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Broker, backend and queue of the Celery executor (run config, else env, else defaults).

    The workers must be started with the same broker and listen on the same queue
    (`dagster-celery worker start -A dagster_celery.app -y celery.yaml -q QUEUE`).
    """
    config = config or {}
    broker = _opt(config, "broker") or env_str("CONTIMG_CELERY_BROKER")
    backend = _opt(config, "backend") or env_str("CONTIMG_CELERY_BACKEND") or broker
    queue = _opt(config, "queue") or env_str("CONTIMG_CELERY_QUEUE")
    return {"broker": broker, "backend": backend, "queue": queue}


def _multiprocess_config(config: Mapping[str, Any]) -> dict[str, Any]:
    max_concurrent = _opt(config, "max_concurrent")
    if max_concurrent is None:
        max_concurrent = env_int("CONTIMG_MAX_CONCURRENT_STEPS")
    method = _opt(config, "start_method") or env_str("CONTIMG_MP_START_METHOD")
    if method not in START_METHODS:
        raise ConfigurationError(
            "CONTIMG_MP_START_METHOD",
            f"unknown start method {method!r}; expected one of {', '.join(START_METHODS)}",
        )
    start: dict[str, Any] = {method: {}}
    if method == "forkserver":
        # Preloading the code location makes every step process a cheap fork of a warm server
        # instead of a fresh interpreter that imports astropy, matplotlib and Dagster again.
        start = {"forkserver": {"preload_modules": ["pipeline_defs.preload"]}}
    return {
        "max_concurrent": max_concurrent or None,
        "tag_concurrency_limits": None,
        "start_method": start,
        "retries": _RETRIES,
        "step_dependency_config": None,
    }


def _celery_config(config: Mapping[str, Any]) -> dict[str, Any]:
    settings = celery_settings(config)
    source = dict(_opt(config, "config_source") or {})
    # dagster-celery sends every step to the app's task_default_queue unless a step is tagged
    # `dagster-celery/queue`; setting it here makes the queue a deployment setting.
    source.setdefault("task_default_queue", settings["queue"])
    return {
        "broker": settings["broker"],
        "backend": settings["backend"],
        "include": list(_opt(config, "include") or []),
        "config_source": source,
        "retries": _RETRIES,
    }


def _requirements(config: Mapping[str, Any]) -> Sequence[dg.ExecutorRequirement]:
    # Evaluated when a run starts (not at import), like the executor itself.
    if executor_kind(config) == "in_process":
        return []
    return dg.multiple_process_executor_requirements()


@dg.executor(
    name="contimg_executor",
    config_schema={
        "kind": dg.Field(
            dg.Noneable(dg.StringSource),
            default_value=None,
            description="in_process, multiprocess or celery (default: CONTIMG_EXECUTOR, else "
            "in_process).",
        ),
        "max_concurrent": dg.Field(
            dg.Noneable(int),
            default_value=None,
            description="multiprocess: step processes at once (default: "
            "CONTIMG_MAX_CONCURRENT_STEPS, else the CPU count).",
        ),
        "start_method": dg.Field(
            dg.Noneable(str),
            default_value=None,
            description="multiprocess: spawn or forkserver (default: CONTIMG_MP_START_METHOD, "
            "else spawn).",
        ),
        "broker": dg.Field(
            dg.Noneable(dg.StringSource),
            default_value=None,
            description="celery: broker URL (default: CONTIMG_CELERY_BROKER, else "
            f"{DEFAULT_BROKER}).",
        ),
        "backend": dg.Field(
            dg.Noneable(dg.StringSource),
            default_value=None,
            description="celery: result backend URL (default: CONTIMG_CELERY_BACKEND, else "
            "the broker URL).",
        ),
        "queue": dg.Field(
            dg.Noneable(dg.StringSource),
            default_value=None,
            description="celery: queue the steps go to (default: CONTIMG_CELERY_QUEUE, else "
            f"{DEFAULT_QUEUE}).",
        ),
        "include": dg.Field(
            dg.Noneable([str]),
            default_value=None,
            description="celery: extra modules the workers import.",
        ),
        "config_source": dg.Field(
            dg.Noneable(dg.Permissive()),
            default_value=None,
            description="celery: extra Celery settings (lowercase names).",
        ),
    },
    requirements=_requirements,
)
def contimg_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """In-process by default; multiprocess or Celery by configuration (CONTIMG_EXECUTOR)."""
    config = init_context.executor_config
    kind = executor_kind(config)
    if kind == "celery":
        from dagster_celery import celery_executor

        return _delegate(init_context, celery_executor, _celery_config(config))
    if kind == "in_process":
        return _ReleasingInProcessExecutor(
            _delegate(
                init_context,
                dg.in_process_executor,
                {"retries": _RETRIES, "marker_to_close": None, "step_dependency_config": None},
            )
        )
    return _delegate(init_context, dg.multiprocess_executor, _multiprocess_config(config))


def _delegate(
    init_context: dg.InitExecutorContext,
    executor_def: dg.ExecutorDefinition,
    config: Mapping[str, Any],
) -> dg.Executor:
    return executor_def.executor_creation_fn(  # type: ignore[misc]
        dg.InitExecutorContext(
            job=init_context.job,
            executor_def=executor_def,
            executor_config=config,
            instance=init_context.instance,
        )
    )


class _ReleasingInProcessExecutor(dg.Executor):
    """Dagster's in-process executor, closing this process's pooled database connections when
    a step ends, before Dagster hands the step's `database` pool slot on.

    In-process, the `Database` resource lives for the whole run, so its teardown (which closes
    the connections of a step in every other executor) comes only at the run's end; without this
    a run would keep a finished step's connections while another run's step took the slot, and
    the connection arithmetic (docs/ops/scaling.md, section 3) would not hold for concurrent
    runs. The step's end event reaches us before the executor frees the slot (Dagster's
    in-process loop yields an event, then handles it), so closing here is in time.
    """

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        for event in self._inner.execute(plan_context, execution_plan):
            if event.is_step_success or event.is_step_failure or event.is_step_up_for_retry:
                release_connections()
            yield event


def reconstructable_job(name: str) -> Any:
    """A job of the code location that other processes can rebuild (Celery workers, step
    processes): what `dagster job execute -m pipeline_defs.definitions -j NAME` would run, for Python callers
    such as `dg.execute_job` in tests and benchmarks."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module(
        "pipeline_defs.definitions", "defs"
    ).get_reconstructable_job(name)
