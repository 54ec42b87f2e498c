"""The code location has one name everywhere a process loads it, and the run tag says it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG as DAGSTER_REPOSITORY_LABEL_TAG

from pipeline_defs.definitions import build_definitions
from pipeline_defs.location import CODE_LOCATION, LOCATION_TAGS, REPOSITORY_LABEL_TAG

REPO = Path(__file__).resolve().parents[2]


def test_dg_and_workspace_name_the_same_location() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["tool"]["dg"]["project"]
    assert project["code_location_name"] == CODE_LOCATION
    assert project["code_location_target_module"] == "pipeline_defs.definitions"
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"] == {
        "module_name": "pipeline_defs.definitions",
        "location_name": CODE_LOCATION,
    }


def test_the_run_tag_is_the_label_dagster_writes_for_the_location() -> None:
    assert REPOSITORY_LABEL_TAG == DAGSTER_REPOSITORY_LABEL_TAG
    # What a run launched by the UI or the daemon from the location `contimg` is tagged with.
    origin = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(CODE_LOCATION), "__repository__")
    assert LOCATION_TAGS == {REPOSITORY_LABEL_TAG: origin.get_label()}


def test_the_daily_job_files_its_runs_under_the_location() -> None:
    job = build_definitions().resolve_job_def("daily_products_job")
    assert job.tags[REPOSITORY_LABEL_TAG] == LOCATION_TAGS[REPOSITORY_LABEL_TAG]
