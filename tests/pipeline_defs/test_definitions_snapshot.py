"""A snapshot of the code location, so that moving a module can never drop a definition silently.

What is compared: every asset (key, deps, group, partitions, pool, checks, the op making it), every asset check
(blocking or not), job (with the assets it selects), schedule (cron, job), sensor (job targets),
resource key (and its class) and the executor. After an intended change, regenerate with

    CONTIMG_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/pipeline_defs/test_definitions_snapshot.py

and review the diff of definitions_snapshot.json like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from pipeline_defs.definitions import build_definitions, defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def snapshot(definitions: dg.Definitions) -> dict[str, Any]:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "group": node.group_name,
            "partitions": type(partitions).__name__ if partitions else None,
            "pool": node.pools and sorted(node.pools),
            "checks": sorted(check.name for check in node.check_keys),
            # the step that materializes it: one op reads each plane once for three assets
            "op": node.assets_def.node_def.name,
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
        spec = graph.get_check_spec(check_key)
        checks[check_key.to_user_string()] = {"blocking": spec.blocking}
    repo = definitions.get_repository_def()
    jobs = {}
    for job in sorted(repo.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__ASSET_JOB"):
            continue
        selected = job.asset_layer.selected_asset_keys if job.asset_layer else set()
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in selected),
            "executor": job.executor_def.name,
        }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone}
        for s in sorted(repo.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "jobs": sorted(t.job_name for t in s.targets if t.job_name),
            "default_status": s.default_status.value,
        }
        for s in sorted(repo.sensor_defs, key=lambda s: s.name)
    }
    resources = {
        key: type(value).__name__ for key, value in sorted((definitions.resources or {}).items())
    }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "resources": resources,
        "executor": definitions.executor.name if definitions.executor else None,
    }


def test_the_definitions_match_the_snapshot() -> None:
    current = snapshot(build_definitions())
    if os.environ.get("CONTIMG_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected


def test_dagster_loads_the_same_definitions_through_the_lazy_entry_point() -> None:
    """`defs` is what `dagster dev` and the daemon load; it yields the same table of contents."""
    assert snapshot(defs()) == snapshot(build_definitions())


def test_the_snapshot_names_what_the_pipeline_is_known_by() -> None:
    """Guards the snapshot file itself against being regenerated empty."""
    expected = json.loads(SNAPSHOT.read_text())
    assert {"fits_metadata", "image_thumbnails", "image_qa", "pipeline_stats"} <= set(
        expected["assets"]
    )
    assert "daily_products_job" in expected["jobs"]
    assert {"fits_ingest_sensor", "database_health_sensor", "run_failure_sensor"} <= set(
        expected["sensors"]
    )
    assert set(expected["resources"]) == {"database", "fits"}
